package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/pgtest"
	"github.com/poststack/poststack/pkg/testenv"
)

// The child process of TestPgtestContainer reads its engine from these.
const (
	pgtestChildImageEnv = "POSTSTACK_E2E_PGTEST_IMAGE"
	pgtestChildHostEnv  = "POSTSTACK_E2E_PGTEST_DOCKER_HOST"
)

// TestPgtestContainer runs pkg/pgtest on a server of the container provider, on each engine,
// with the built postgres image: parallel tests each get their own migrated database. Like
// TestPostgresImageTestcontainers, each engine gets a child process, because testcontainers-go
// settles on one Docker endpoint per process.
func TestPgtestContainer(t *testing.T) {
	if image := os.Getenv(pgtestChildImageEnv); image != "" {
		pgtestOnContainer(t, image, os.Getenv(pgtestChildHostEnv))
		return
	}
	for _, engine := range pgEngines {
		t.Run(engine, func(t *testing.T) {
			var host string
			if engine == testenv.EnginePodman {
				host = testenv.PodmanSocket(t)
			} else {
				host = testenv.Docker(t)
			}
			image := builtPostgresImage(t, engine)
			ctx := testContext(t, 4*time.Minute)
			cmd := exec.CommandContext(ctx, os.Args[0],
				"-test.run=^TestPgtestContainer$", "-test.count=1", "-test.v", "-test.timeout=3m")
			cmd.Env = append(os.Environ(),
				pgtestChildImageEnv+"="+image,
				pgtestChildHostEnv+"="+host,
				"POSTSTACK_E2E_BIN_DIR="+binDir,
			)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pgtest on %s: %v\n%s", engine, err, out)
			}
			if !strings.Contains(string(out), "--- PASS: TestPgtestContainer") {
				t.Fatalf("the child test did not pass:\n%s", out)
			}
			t.Logf("%s", pgTail(out, 2000))
		})
	}
}

func pgtestOnContainer(t *testing.T, image, host string) {
	if host == "" {
		t.Fatalf("%s is not set", pgtestChildHostEnv)
	}
	t.Setenv("DOCKER_HOST", host)
	t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	t.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	ctx := testContext(t, 2*time.Minute)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "0001_items.sql"),
		[]byte("CREATE TABLE items (id serial PRIMARY KEY, owner text NOT NULL);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	srv, err := pgtest.Start(ctx, pgtest.WithProvider(ephemeral.Container), pgtest.WithImage(image))
	if err != nil {
		t.Fatalf("pgtest.Start(container, %s): %v", image, err)
	}
	t.Logf("container server ready in %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("group", func(t *testing.T) {
		for i := range 20 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn, err := pgx.Connect(ctx, srv.New(t, pgtest.WithMigrations(dir)))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, "insert into items (owner) values ($1)", t.Name()); err != nil {
					t.Fatal(err)
				}
				var n int
				var owner string
				if err := conn.QueryRow(ctx, "select count(*), min(owner) from items").Scan(&n, &owner); err != nil {
					t.Fatal(err)
				}
				if n != 1 || owner != t.Name() {
					t.Fatalf("items: %d rows, first of %q; want only this test's row", n, owner)
				}
			})
		}
	})
}
