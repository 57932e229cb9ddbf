package pgenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlstate"
)

func suffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func connect(t *testing.T, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// appURL is the URL of user on database at the admin URL's server.
func appURL(t *testing.T, adminURL, database, user, password string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	return databaseURL(net.JoinHostPort(cfg.Host, itoa(cfg.Port)), user, password, database)
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// dropLater removes what a test provisioned from the shared server.
func dropLater(t *testing.T, adminURL, database, user string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{database}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup: drop database %q: %v", database, err)
		}
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{user}.Sanitize()); err != nil {
			t.Errorf("cleanup: drop role %q: %v", user, err)
		}
	})
}

func databases(t *testing.T, ctx context.Context, conn *pgx.Conn) map[string]bool {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func TestProvisionHostileNames(t *testing.T) {
	admin := testenv.Postgres(t)
	tests := []struct {
		name, database, user, password string
	}{
		{"plain", "app_db_", "app_user_", "s3cret"},
		{"sql injection", `x"; DROP DATABASE postgres; --`, `u"; DROP ROLE postgres; --`, `p'; DROP DATABASE postgres; --`},
		{"quotes and backslashes", `d'\"\\`, `u'\"\\`, `\'\\''"`},
		{"spaces and case", "My Database ", "My User ", " leading and trailing "},
		{"unicode and dollars", "données$$", "utilisateur_é$1", "$$pässwörd$$"},
		{"semicolons only", ";;;", ";;", ";"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sfx := suffix(t)
			database, user := tt.database+sfx, tt.user+sfx
			dropLater(t, admin, database, user)
			adminConn := connect(t, ctx, admin)
			before := databases(t, ctx, adminConn)

			for i := 0; i < 2; i++ { // the second run finds everything in place
				if err := Provision(ctx, admin, database, user, tt.password); err != nil {
					t.Fatalf("Provision #%d: %v", i+1, err)
				}
			}
			after := databases(t, ctx, adminConn)
			for name := range before {
				if !after[name] {
					t.Errorf("database %q disappeared", name)
				}
			}
			if !after[database] || len(after) != len(before)+1 {
				t.Errorf("databases after Provision: %d (want %d), %q present: %v", len(after), len(before)+1, database, after[database])
			}
			var super, login bool
			var owner string
			if err := adminConn.QueryRow(ctx, "SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = $1", user).Scan(&super, &login); err != nil {
				t.Fatalf("role %q: %v", user, err)
			}
			if super || !login {
				t.Errorf("role %q: superuser %v, login %v; want false, true", user, super, login)
			}
			if err := adminConn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database).Scan(&owner); err != nil || owner != user {
				t.Errorf("database %q owner = %q (%v), want %q", database, owner, err, user)
			}

			// The app role logs in with exactly this password, over TCP (scram), and may create
			// tables in its database.
			app := connect(t, ctx, appURL(t, admin, database, user, tt.password))
			var gotUser, gotDB string
			if err := app.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&gotUser, &gotDB); err != nil {
				t.Fatal(err)
			}
			if gotUser != user || gotDB != database {
				t.Errorf("connected as %q to %q, want %q to %q", gotUser, gotDB, user, database)
			}
			if _, err := app.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
				t.Errorf("create table as the owner: %v", err)
			}
			_, err := pgx.Connect(ctx, appURL(t, admin, database, user, tt.password+"x"))
			if !sqlstate.Is(err, "28P01") {
				t.Errorf("wrong password: %v, want SQLSTATE 28P01", err)
			}
		})
	}
}

func TestProvisionResetsPasswordAndOwner(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sfx := suffix(t)
	database, user, other := "reset_db_"+sfx, "reset_user_"+sfx, "other_"+sfx
	dropLater(t, admin, database, user)
	dropLater(t, admin, "unused_"+sfx, other)
	adminConn := connect(t, ctx, admin)
	// A database that exists already, owned by someone else, and a role with another password.
	for _, sql := range []string{
		"CREATE ROLE " + other,
		"CREATE ROLE " + user + " LOGIN PASSWORD 'old'",
		"CREATE DATABASE " + database + " OWNER " + other,
	} {
		if _, err := adminConn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := Provision(ctx, admin, database, user, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, appURL(t, admin, database, user, "old")); !sqlstate.Is(err, "28P01") {
		t.Errorf("old password: %v, want SQLSTATE 28P01", err)
	}
	connect(t, ctx, appURL(t, admin, database, user, "new"))
	var owner string
	if err := adminConn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database).Scan(&owner); err != nil || owner != user {
		t.Errorf("owner = %q (%v), want %q", owner, err, user)
	}
}

func TestProvisionRejects(t *testing.T) {
	admin := testenv.Postgres(t)
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sfx := suffix(t)
	good := "rej_" + sfx
	dropLater(t, admin, good, good)
	tests := []struct {
		name, database, user, password string
	}{
		{"empty database", "", good, "pw"},
		{"empty user", good, "", "pw"},
		{"64-byte database", strings.Repeat("d", 64), good, "pw"},
		{"64-byte user", good, strings.Repeat("u", 56) + sfx, "pw"},
		{"NUL in user", good, "a\x00b", "pw"},
		{"NUL in password", good, good, "p\x00w"},
		{"empty password", good, good, ""},
		{"template database", "template1", good, "pw"},
		{"the superuser", good, cfg.User, "pw"},
		{"invalid UTF-8", "\xff\xfe", good, "pw"},
	}
	adminConn := connect(t, ctx, admin)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Provision(ctx, admin, tt.database, tt.user, tt.password)
			if exitcode.Of(err) != exitcode.Usage {
				t.Fatalf("Provision = %v (exit %d), want exit 2", err, exitcode.Of(err))
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) && tt.password != "pw" {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	var n int
	if err := adminConn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE $1) + (SELECT count(*) FROM pg_database WHERE datname LIKE $1)", "%"+sfx).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d roles or databases created by rejected calls", n)
	}
}

// TestQuoteLiteralRoundTrip has the server read back every literal, with
// standard_conforming_strings on and off: the E” form must mean the same under both.
func TestQuoteLiteralRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := connect(t, ctx, testenv.Postgres(t))
	inputs := []string{"plain", "it's", `back\slash`, `\'; DROP TABLE x; --`, `\\''\\`, "$$x$$", "ünï ✓", "a\nb\tc", `E'x'`}
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			var got string
			if err := conn.QueryRow(ctx, "SELECT "+quoteLiteral(in), pgx.QueryExecModeExec).Scan(&got); err != nil {
				t.Errorf("standard_conforming_strings=%s: SELECT %s: %v", scs, quoteLiteral(in), err)
				continue
			}
			if got != in {
				t.Errorf("standard_conforming_strings=%s: SELECT %s = %q, want %q", scs, quoteLiteral(in), got, in)
			}
		}
	}
}

func TestCheckExternal(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	// A port nobody listens on: bind one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    int
		maxTime time.Duration
	}{
		{"reachable", admin, 5 * time.Second, exitcode.OK, 5 * time.Second},
		{"wrong password", databaseURL(net.JoinHostPort(cfg.Host, itoa(cfg.Port)), cfg.User, "wrong-secret", cfg.Database), 10 * time.Second, exitcode.Failure, 5 * time.Second},
		{"missing database", databaseURL(net.JoinHostPort(cfg.Host, itoa(cfg.Port)), cfg.User, cfg.Password, "no_such_db_"+suffix(t)), 10 * time.Second, exitcode.Failure, 5 * time.Second},
		{"nobody listening", databaseURL(closed, "u", "wrong-secret", "d"), time.Second, exitcode.Timeout, 5 * time.Second},
		{"malformed", "postgres://u:wrong-secret@host:notaport/db", time.Second, exitcode.Usage, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := CheckExternal(ctx, tt.url, tt.timeout)
			if got := exitcode.Of(err); got != tt.want {
				t.Fatalf("CheckExternal = %v (exit %d), want exit %d", err, got, tt.want)
			}
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("took %v, want at most %v", d, tt.maxTime)
			}
			if err != nil && strings.Contains(err.Error(), "wrong-secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
