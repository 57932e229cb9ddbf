package build

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/secret"
)

// TestRunMasksBuildLog: a RUN step that prints the password it was given
// (in a URL, and alone, in two writes of one line) fails the build; with
// Options.Mask neither the log file nor the tail of the failed image holds
// the password, and both still hold the line around it. Without Mask the log
// has the password: what the masked run is compared with.
func TestRunMasksBuildLog(t *testing.T) {
	base := testenv.BaseImage(t, testenv.EnginePodman)
	eng, err := engine.New(testenv.EnginePodman, engine.WithPath(testenv.Podman(t)))
	if err != nil {
		t.Fatal(err)
	}
	const password = "Bu1ld-p@ss w0rd/xyz"
	dbURL := (&url.URL{Scheme: "postgres", User: url.UserPassword("app", password), Host: "db:5432", Path: "/app"}).String()
	root := project(t, map[string]string{
		"containers/leaky/Dockerfile": "FROM " + base + "\nARG DATABASE_URL\nARG DB_PASSWORD\n" +
			`RUN echo "connecting to $DATABASE_URL" && printf 'password: %s' "${DB_PASSWORD%% *}" && sleep 0.2 && printf ' %s!\n' "${DB_PASSWORD#* }" && exit 1` + "\n",
	})
	all, err := Discover(Project{Name: "masktest", Root: root, Containers: filepath.Join(root, "containers"), BaseImage: base,
		BuildArgs: map[string]string{"DATABASE_URL": dbURL, "DB_PASSWORD": password}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan("masktest", all, []string{"leaky"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run := func(mask func(string) string) (log string, tail []string) {
		t.Helper()
		res, err := Run(ctx, eng, plan, Options{Jobs: 1, NoCache: true, Pull: PullNever, LogDir: filepath.Join(t.TempDir(), "logs", "containers"), Mask: mask})
		var fe *FailedError
		if !errors.As(err, &fe) || len(res.Images) != 1 {
			t.Fatalf("Run: %v, want the one image failed (%d images)", err, len(res.Images))
		}
		data, err := os.ReadFile(res.Images[0].Log)
		if err != nil {
			t.Fatal(err)
		}
		return string(data), res.Images[0].LogTail
	}

	plain, _ := run(nil)
	if !strings.Contains(plain, "password: "+password+"!") {
		t.Fatalf("without Mask the log lacks the printed password; the step did not print it as expected:\n%s", plain)
	}

	log, tail := run(secret.NewMasker(password).Mask)
	for _, form := range []string{password, url.PathEscape(password), "Bu1ld-p@ss", "w0rd/xyz"} {
		if strings.Contains(log, form) {
			t.Errorf("the masked log holds %q:\n%s", form, log)
		}
		if slices.ContainsFunc(tail, func(l string) bool { return strings.Contains(l, form) }) {
			t.Errorf("the masked tail holds %q: %q", form, tail)
		}
	}
	for _, want := range []string{"connecting to postgres://app:****@db:5432/app", "password: ****!"} {
		if !strings.Contains(log, want) {
			t.Errorf("the masked log lacks %q:\n%s", want, log)
		}
		if !slices.ContainsFunc(tail, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("the masked tail lacks %q: %q", want, tail)
		}
	}
}
