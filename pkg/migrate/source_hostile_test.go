package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// The attacks of issue 9, item 6: a checkout whose migrations directory holds a symbolic link
// to a file of the user's, to /dev/zero, a FIFO, or a huge file.

// secretSQL is a file outside the project that parses as a migration with an unknown
// directive: a loader that read it would quote the secret in its problem.
const secretSQL = "-- poststack:TOPSECRET-hunter2\nselect 1;\n"

// hostileProject returns a project directory with a migrations directory holding one good
// migration, and a secret file outside the project.
func hostileProject(t *testing.T) (project, migrations, secret string) {
	t.Helper()
	outside := t.TempDir()
	secret = filepath.Join(outside, "credentials.sql")
	writeFile(t, secret, secretSQL)
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	project = t.TempDir()
	migrations = filepath.Join(project, "migrations")
	if err := os.Mkdir(migrations, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(migrations, "0001_init.sql"), "create table t (a int);\n")
	return project, migrations, secret
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// loadVariants are the ways ps-migrate, pkg/ephemeral and pkg/pgtest call LoadDir: with the
// project as root or not, with the cache (lowered threshold, so the small directory uses it)
// or not.
func loadVariants(project string) map[string][]LoadOption {
	lowCacheMin := func(c *loadConfig) error { c.cacheMin = 0; return nil }
	return map[string][]LoadOption{
		"default":         nil,
		"project root":    {WithRoot(project)},
		"cached":          {lowCacheMin, WithCache(filepath.Join(project, ".cache1"))},
		"cached and root": {lowCacheMin, WithCache(filepath.Join(project, ".cache2")), WithRoot(project)},
	}
}

// assertRefusedFile checks that err is a *SourceError (exit 2) naming file, saying want, and
// holding nothing of the secret.
func assertRefusedFile(t *testing.T, err error, file, want string) {
	t.Helper()
	var se *SourceError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *SourceError", err, err)
	}
	if exitcode.Of(err) != exitcode.Usage {
		t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
	}
	if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error holds the secret: %v", err)
	}
	for _, p := range se.Problems {
		if p.File == file && strings.Contains(p.Msg, want) {
			return
		}
	}
	t.Errorf("err = %v, want a problem for %s saying %q", err, file, want)
}

// loadWithin runs LoadDir and fails the test when it takes more than a second (a FIFO opened
// without O_NONBLOCK blocks for ever) or allocates more than 64 MiB (/dev/zero read unbounded).
func loadWithin(t *testing.T, dir string, opts ...LoadOption) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan error, 1)
	go func() {
		_, err := LoadDir(dir, opts...)
		done <- err
	}()
	select {
	case err := <-done:
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("LoadDir allocated %d MiB", alloc>>20)
		}
		return err
	case <-time.After(time.Second):
		t.Fatal("LoadDir blocked for more than a second")
		return nil
	}
}

func TestHostileSymlinkToSecretOutside(t *testing.T) {
	project, migrations, secret := hostileProject(t)
	link := filepath.Join(migrations, "0002_x.sql")
	symlink(t, secret, link)
	for name, opts := range loadVariants(project) {
		t.Run(name, func(t *testing.T) {
			err := loadWithin(t, migrations, opts...)
			assertRefusedFile(t, err, link, "is a symbolic link to "+`"`+secret+`", outside the project directory`)
		})
	}
}

// TestHostileSymlinkIntoProjectOutsideMigrations: a link to a file of the project, outside the
// migrations directory, is followed only when the caller names the project as the root.
func TestHostileSymlinkIntoProjectOutsideMigrations(t *testing.T) {
	project, migrations, _ := hostileProject(t)
	writeFile(t, filepath.Join(project, "shared.sql"), "select 2;\n")
	link := filepath.Join(migrations, "0002_shared.sql")
	symlink(t, "../shared.sql", link)
	_, err := LoadDir(migrations)
	assertRefusedFile(t, err, link, "outside the project directory "+migrations)
	migs, err := LoadDir(migrations, WithRoot(project))
	if err != nil || len(migs) != 2 || migs[1].Up.SQL != "select 2;\n" {
		t.Fatalf("LoadDir with the project as root = %v, %v", migs, err)
	}
}

func TestHostileSymlinkInsideAccepted(t *testing.T) {
	project, migrations, _ := hostileProject(t)
	if err := os.Mkdir(filepath.Join(migrations, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(migrations, "shared", "body.sql"), "select 3;\n")
	symlink(t, "shared/body.sql", filepath.Join(migrations, "0002_linked.sql"))
	for name, opts := range loadVariants(project) {
		t.Run(name, func(t *testing.T) {
			for range 2 { // the second run of a cached variant takes the cache's word
				migs, err := LoadDir(migrations, opts...)
				if err != nil || len(migs) != 2 {
					t.Fatalf("LoadDir = %v, %v", migs, err)
				}
				if sql, err := migs[1].Up.Text(); err != nil || sql != "select 3;\n" {
					t.Fatalf("Text = %q, %v", sql, err)
				}
			}
		})
	}
}

func TestHostileSymlinkToDevZero(t *testing.T) {
	project, migrations, _ := hostileProject(t)
	link := filepath.Join(migrations, "0002_x.sql")
	symlink(t, "/dev/zero", link)
	for name, opts := range loadVariants(project) {
		t.Run(name, func(t *testing.T) {
			err := loadWithin(t, migrations, opts...)
			assertRefusedFile(t, err, link, "outside the project directory")
		})
	}
	// With / as the root the link stays inside it: the type check must refuse it.
	err := loadWithin(t, migrations, WithRoot("/"))
	assertRefusedFile(t, err, link, "is a character device, not a regular file")
}

func TestHostileFIFO(t *testing.T) {
	project, migrations, _ := hostileProject(t)
	fifo := filepath.Join(migrations, "0002_x.sql")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, opts := range loadVariants(project) {
		t.Run(name, func(t *testing.T) {
			err := loadWithin(t, migrations, opts...)
			assertRefusedFile(t, err, fifo, "is a named pipe (FIFO), not a regular file")
		})
	}
	// A symbolic link to the FIFO, inside the directory.
	link := filepath.Join(migrations, "0003_y.sql")
	symlink(t, "0002_x.sql", link)
	err := loadWithin(t, migrations)
	assertRefusedFile(t, err, link, "is a named pipe (FIFO), not a regular file")

	done := make(chan error, 1)
	go func() { _, err := Load(os.DirFS(migrations), "."); done <- err }()
	select {
	case err := <-done:
		assertRefusedFile(t, err, "0002_x.sql", "is a named pipe (FIFO), not a regular file")
	case <-time.After(time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

func TestHostileHugeFile(t *testing.T) {
	project, migrations, _ := hostileProject(t)
	huge := filepath.Join(migrations, "0002_huge.sql")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse 17 MiB file: the cap must refuse it before reading it.
	if err := f.Truncate(17 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for name, opts := range loadVariants(project) {
		t.Run(name, func(t *testing.T) {
			err := loadWithin(t, migrations, opts...)
			assertRefusedFile(t, err, huge, "is larger than 16 MiB")
		})
	}
	// The cap is configurable, and a file of exactly the cap is read.
	writeFile(t, huge, "select '"+strings.Repeat("x", 1000)+"';\n")
	if _, err := LoadDir(migrations, WithMaxFileSize(1011)); err != nil {
		t.Fatalf("a file of exactly the cap: %v", err)
	}
	err = loadWithin(t, migrations, WithMaxFileSize(1010))
	assertRefusedFile(t, err, huge, "is larger than 1010 bytes")
	if _, err := LoadDir(migrations, WithMaxFileSize(0)); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("WithMaxFileSize(0): err = %v, want exit 2", err)
	}
}

// TestHostileMigrationsDirSymlinkOut: a project's migrations directory that is a symbolic link
// out of the project is refused when the project is the root; a directory the user names
// outside the project is its own root.
func TestHostileMigrationsDirSymlinkOut(t *testing.T) {
	project, _, secret := hostileProject(t)
	elsewhere := filepath.Dir(secret)
	link := filepath.Join(project, "migrations-link")
	symlink(t, elsewhere, link)
	_, err := LoadDir(link, WithRoot(project))
	assertRefusedFile(t, err, link, "outside the project directory")

	other := t.TempDir()
	writeFile(t, filepath.Join(other, "0001_a.sql"), "select 1;\n")
	if migs, err := LoadDir(other, WithRoot(project)); err != nil || len(migs) != 1 {
		t.Fatalf("LoadDir of a directory outside the project = %v, %v", migs, err)
	}
	if _, err := LoadDir(other, WithRoot("")); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("WithRoot(\"\"): err = %v, want exit 2", err)
	}
}

// TestHostileSwapAfterCache: a file cached as regular, then replaced by a link to a secret
// before it runs, is refused by Text without reading the secret.
func TestHostileSwapAfterCache(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	c.load()
	migs, reads := c.load()
	if len(reads) != 0 {
		t.Fatalf("second load read %v, want the cache to answer", reads)
	}
	_, _, secret := hostileProject(t)
	file := migs[1].Up.File
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	symlink(t, secret, file)
	_, err := migs[1].Up.Text()
	assertRefusedFile(t, err, file, "outside the project directory")
}

// TestHostileExcerptCapped: a problem quotes at most a line's beginning, not megabytes of it.
func TestHostileExcerptCapped(t *testing.T) {
	long := strings.Repeat("é", 1<<20)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "0001_a.sql"), "-- poststack:"+long+"\nselect 1;\n")
	writeFile(t, filepath.Join(dir, "0002_b.sql"), "commit -- "+long+"\n;\n")
	_, err := LoadDir(dir)
	var se *SourceError
	if !errors.As(err, &se) || len(se.Problems) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	if len(err.Error()) > 1000 {
		t.Errorf("the error is %d bytes long, want a capped excerpt", len(err.Error()))
	}
	if !strings.Contains(err.Error(), "…") {
		t.Errorf("err = %v, want an ellipsis where the excerpt is cut", err)
	}
}
