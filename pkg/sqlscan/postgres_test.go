package sqlscan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/poststack/poststack/internal/testenv"
)

// freshDB creates a uniquely named database for t and returns a connection to it.
func freshDB(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	adminURL := testenv.Postgres(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	name := fmt.Sprintf("sqlscan_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
		admin.Close(ctx)
	})
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	cfg.Database = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// TestErrorPositionsAgainstPostgres checks that Postgres' error positions map back onto the
// offending token, both when the whole text is sent at once and statement by statement.
func TestErrorPositionsAgainstPostgres(t *testing.T) {
	conn := freshDB(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		text   string
		marker string // the first occurrence is where the error must point
	}{
		{"line 1", "CREATE TABLEX t ();", "TABLEX"},
		{"after multibyte", "SELECT 'ééé日本語', 'ü' AS \"ñ\";\n  SELECT 'ß', 1; CREATE TABLEX t ();", "TABLEX"},
		{"after multi-line string", "SELECT 'line one\nline ü two\n\nline four';\n\nCREATE TABLEX t ();", "TABLEX"},
		{"same statement after multi-line string", "SELECT 'a\nb', 'é'\n  , bogus_col\n  FROM pg_class;", "bogus_col"},
		{"after dollar-quoted function body", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  -- ü; ';'\n  RETURN 1;\nEND\n$fn$;\nSELECT f();\n   CREATE TABLEX t ();", "TABLEX"},
		{"after begin atomic body", "CREATE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\nSELECT bogus_col2 FROM pg_class;", "bogus_col2"},
		{"after E string and comments", "/* ü\n ; */ SELECT E'it\\'s; é', 1 -- ;'\n  FROM nowhere_tbl;", "nowhere_tbl"},
		{"tab and CRLF", "SELECT 1;\r\n\tSELECT 'é'\r\n\t\tFROM nowhere_tbl2;", "nowhere_tbl2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := strings.Index(tc.text, tc.marker)
			wantLine, wantCol := LineCol(tc.text, off)

			// Whole text in one simple-protocol message: the position is relative to the text.
			_, err := conn.Exec(ctx, tc.text)
			pgErr := asPgError(t, err)
			if l, c := CharPosition(tc.text, int(pgErr.Position)); l != wantLine || c != wantCol {
				t.Errorf("whole text: %q at position %d mapped to %d:%d, want %d:%d", pgErr.Message, pgErr.Position, l, c, wantLine, wantCol)
			}

			// Statement by statement, in a transaction so that nothing stays behind.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			defer tx.Rollback(ctx)
			for _, st := range Split(tc.text) {
				_, err := tx.Exec(ctx, st.SQL)
				if err == nil {
					continue
				}
				pgErr := asPgError(t, err)
				if l, c := st.Position(int(pgErr.Position)); l != wantLine || c != wantCol {
					t.Errorf("statement %q: %q at position %d mapped to %d:%d, want %d:%d", st.SQL, pgErr.Message, pgErr.Position, l, c, wantLine, wantCol)
				}
				return
			}
			t.Errorf("no statement failed")
		})
	}
}

func asPgError(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("want a PgError, got %v", err)
	}
	if pgErr.Position == 0 {
		t.Fatalf("error %q carries no position", pgErr.Message)
	}
	return pgErr
}
