package migrate

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// freshDB creates a uniquely named database for one test and returns its URL; it is dropped
// when the test ends.
func freshDB(tb testing.TB) string {
	tb.Helper()
	return testenv.Database(tb)
}

func connect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// files builds a migrations directory from base name → content.
func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func load(tb testing.TB, m map[string]string) []*Migration {
	tb.Helper()
	migs, err := Load(files(m), "migrations")
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return migs
}

func newMigrator(tb testing.TB, conn *pgx.Conn, migs []*Migration, opts ...Option) *Migrator {
	tb.Helper()
	m, err := New(conn, migs, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return m
}

func tableExists(tb testing.TB, conn *pgx.Conn, name string) bool {
	tb.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		tb.Fatalf("to_regclass(%s): %v", name, err)
	}
	return ok
}

func ledgerVersions(tb testing.TB, conn *pgx.Conn) []int64 {
	tb.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version FROM poststack.schema_migrations ORDER BY version")
	if err != nil {
		tb.Fatalf("read ledger: %v", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatalf("read ledger: %v", err)
	}
	return vs
}
