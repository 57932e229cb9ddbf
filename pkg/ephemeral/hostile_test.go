package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/pgnative"
)

// forgeRecord writes a record as a repository could ship it in a state directory.
func forgeRecord(t *testing.T, stateDir string, inst *Instance) {
	t.Helper()
	data, err := json.Marshal(inst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, inst.ID+".json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustAnswer(t *testing.T, what, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("%s no longer answers: %v", what, err)
	}
	conn.Close(ctx)
}

// TestHostileNativeRecordsLeaveStrangersAlone forges records that name servers this state
// directory never started: another state directory's ephemeral server, a pgnative server of
// someone else, and a directory a repository crafted whose data directory is a symlink to that
// server's. Neither down (Load+Stop) nor list may stop a process or delete a directory; each
// record is reported as not ours (exit 2) and dropped.
func TestHostileNativeRecordsLeaveStrangersAlone(t *testing.T) {
	testenv.PostgresBinaries(t)
	parent, err := os.MkdirTemp("/dev/shm", "epht-")
	if err != nil {
		parent, err = os.MkdirTemp("/tmp", "epht-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	environ := append(os.Environ(), "TMPDIR="+parent)
	ctx := context.Background()

	// The strangers: an ephemeral server of another state directory, and a plain pgnative one.
	other, err := Start(ctx, Options{Provider: Native, Detach: true, StateDir: t.TempDir(), Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Stop(context.Background(), other) })
	plain, err := pgnative.Start(ctx, pgnative.WithTempDir(parent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plain.Stop(context.Background()) })

	// A repository's crafted server directory: its key matches its own record, its data
	// directory leads to the plain server's, whose postmaster the pid file names.
	repo := t.TempDir()
	crafted := filepath.Join(repo, "pgnative-crafted")
	if err := os.Mkdir(crafted, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plain.DataDir(), filepath.Join(crafted, "data")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crafted, "owner"), []byte("1 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(repo, "pgnative-link")
	if err := os.Symlink(other.Dir, link); err != nil {
		t.Fatal(err)
	}
	fake := "postgres://postgres:guessed@127.0.0.1:1/postgres"
	forged := []*Instance{
		{ID: "a1", Provider: Native, Dir: other.Dir, PID: other.PID, URL: fake},                     // another record's server
		{ID: "a2", Provider: Native, Dir: other.Dir, PID: other.PID, URL: other.URL},                // its URL copied, not its ID
		{ID: other.ID, Provider: Native, Dir: plain.Dir(), PID: plain.PID(), URL: other.URL},        // a server without a key
		{ID: "a4", Provider: Native, Dir: crafted, PID: plain.PID(), URL: fake},                     // data symlinked elsewhere
		{ID: "a5", Provider: Native, Dir: link, PID: other.PID, URL: other.URL},                     // directory symlinked
		{ID: "a6", Provider: Native, Dir: filepath.Dir(other.Dir), PID: other.PID, URL: fake},       // the parent of servers
		{ID: "a7", Provider: Native, Dir: "pgnative-relative", PID: plain.PID(), URL: fake},         // relative
		{ID: "a8", Provider: Native, Dir: other.Dir + "/../" + filepath.Base(other.Dir), URL: fake}, // unclean
	}
	keyOf := &Instance{ID: "a4", URL: fake}
	if err := os.WriteFile(filepath.Join(crafted, keyFile), []byte(keyOf.ownerKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	assertUntouched := func(step string) {
		t.Helper()
		mustAnswer(t, step+": the other state directory's server", other.URL)
		mustAnswer(t, step+": the plain pgnative server", plain.URL())
		for _, dir := range []string{other.Dir, plain.Dir(), plain.DataDir(), crafted} {
			if _, err := os.Lstat(dir); err != nil {
				t.Errorf("%s: %s is gone: %v", step, dir, err)
			}
		}
	}

	for _, f := range forged {
		forgeRecord(t, state, f)
		inst, err := Load(context.Background(), state, f.ID)
		if err != nil {
			t.Fatalf("Load %s: %v", f.ID, err)
		}
		err = Stop(ctx, inst)
		if !errors.Is(err, ErrNotOurs) || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("down %s (dir %s): %v (exit %d); want not ours, exit 2", f.ID, f.Dir, err, exitcode.Of(err))
		}
		if _, err := os.Stat(recordPath(state, f.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("down %s: the record was kept", f.ID)
		}
		assertUntouched("down " + f.ID)
	}

	for _, f := range forged {
		forgeRecord(t, state, f)
	}
	list, err := PruneAndList(context.Background(), state)
	if len(list) != 0 || !errors.Is(err, ErrNotOurs) || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("List = %d instances, %v; want none and not ours, exit 2", len(list), err)
	}
	for _, f := range forged {
		if _, err := os.Stat(recordPath(state, f.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("list: the record %s was kept", f.ID)
		}
	}
	assertUntouched("list")

	// The other state directory still works on its own server.
	again, err := Load(context.Background(), other.stateDir, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := Stop(ctx, again); err != nil {
		t.Fatalf("stopping a real record: %v", err)
	}
	if _, err := os.Lstat(other.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s survived its own down: %v", other.Dir, err)
	}
}

// TestHostileRecordFiles: a record that is a symlink or not JSON is exit 2, naming the file.
func TestHostileRecordFiles(t *testing.T) {
	state := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"id":"b1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(state, "b1.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "b2.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b1", "b2"} {
		_, err := readRecord(state, id)
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(fmt.Sprint(err), id+".json") {
			t.Errorf("readRecord %s: %v; want exit 2 naming the file", id, err)
		}
	}
}
