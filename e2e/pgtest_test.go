package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/pgtest"
)

// TestPgtestContainer runs pkg/pgtest on a server of the container provider, on each engine,
// with the built postgres image: parallel tests each get their own migrated database.
func TestPgtestContainer(t *testing.T) {
	perEngineChild(t, "TestPgtestContainer", pgtestOnContainer)
}

func pgtestOnContainer(t *testing.T, image, _ string) {
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
