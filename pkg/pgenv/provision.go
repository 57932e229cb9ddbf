package pgenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlstate"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names would be truncated silently,
// so that the role or database created would not be the one asked for.
const maxIdentifierLen = 63

// checkIdentifier rejects names PostgreSQL cannot store exactly; any other name, quotes and
// semicolons included, is created as written.
func checkIdentifier(what, name string) error {
	switch {
	case name == "":
		return exitcode.Usagef("postgres: empty %s name", what)
	case len(name) > maxIdentifierLen:
		return exitcode.Usagef("postgres: %s name %q is %d bytes long; PostgreSQL allows at most %d", what, name, len(name), maxIdentifierLen)
	case strings.ContainsRune(name, 0):
		return exitcode.Usagef("postgres: %s name %q contains a NUL byte", what, name)
	case !utf8.ValidString(name):
		return exitcode.Usagef("postgres: %s name %q is not valid UTF-8", what, name)
	}
	return nil
}

// checkPassword rejects what cannot travel in a SQL literal. The message never shows the value.
func checkPassword(what, pw string) error {
	switch {
	case pw == "":
		return exitcode.Usagef("postgres: empty %s", what)
	case strings.ContainsRune(pw, 0):
		return exitcode.Usagef("postgres: the %s contains a NUL byte", what)
	case !utf8.ValidString(pw):
		return exitcode.Usagef("postgres: the %s is not valid UTF-8", what)
	}
	return nil
}

// quoteLiteral quotes s as a SQL string literal, as PostgreSQL's quote_literal does: utility
// statements such as CREATE ROLE take no parameters. A backslash makes it an E” literal with
// backslashes doubled, which means the same whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}

// Provision makes user a login role (not a superuser) whose password is password, and database
// a database owned by it, connecting as the superuser at adminURL. It is idempotent: an
// existing role gets the password again, so the stored password always works, and an existing
// database is handed to user if someone else owns it. Names are quoted, never interpreted: a
// name such as `x"; DROP DATABASE postgres; --` is created exactly as written. Empty names,
// names over 63 bytes, a NUL byte or user being the superuser of adminURL are usage errors.
func Provision(ctx context.Context, adminURL, database, user, password string) error {
	if err := checkIdentifier("database", database); err != nil {
		return err
	}
	if err := checkIdentifier("user", user); err != nil {
		return err
	}
	if err := checkPassword("password", password); err != nil {
		return err
	}
	if database == "template0" || database == "template1" {
		return exitcode.Usagef("postgres: database %q is a template database; choose another name", database)
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return exitcode.Usagef("postgres: admin URL: %w", err)
	}
	if cfg.User == user {
		return exitcode.Usagef("postgres: user %q is the superuser of the admin connection; the application role must be another", user)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: provision: connect as %s: %w", cfg.User, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := ensureRole(ctx, conn, user, password); err != nil {
		return fmt.Errorf("postgres: provision role %q: %w", user, err)
	}
	if err := ensureDatabase(ctx, conn, database, user); err != nil {
		return fmt.Errorf("postgres: provision database %q: %w", database, err)
	}
	return nil
}

// execDDL runs a utility statement through the unnamed statement: nothing stays prepared or
// cached on the connection, which matters for statements that carry a password. (The simple
// protocol would do too, but pgx refuses it when standard_conforming_strings is off, while the
// literals of quoteLiteral mean the same either way.)
func execDDL(ctx context.Context, conn *pgx.Conn, sql string) error {
	_, err := conn.Exec(ctx, sql, pgx.QueryExecModeExec)
	return err
}

func ensureRole(ctx context.Context, conn *pgx.Conn, user, password string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil {
		return fmt.Errorf("look up role: %w", err)
	}
	id := pgx.Identifier{user}.Sanitize()
	if !exists {
		err := execDDL(ctx, conn, "CREATE ROLE "+id+" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD "+quoteLiteral(password))
		if err == nil {
			return nil
		}
		// Another provisioner created it meanwhile: set the password as for an existing role.
		if !sqlstate.Is(err, "42710") {
			return fmt.Errorf("create role: %w", err)
		}
	}
	if err := execDDL(ctx, conn, "ALTER ROLE "+id+" WITH LOGIN PASSWORD "+quoteLiteral(password)); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// ensureDatabase checks pg_database first because CREATE DATABASE cannot run in a DO block or
// a transaction, where a conditional would have to live.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, database, user string) error {
	owner, err := databaseOwner(ctx, conn, database)
	if errors.Is(err, pgx.ErrNoRows) {
		err = execDDL(ctx, conn, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()+" OWNER "+pgx.Identifier{user}.Sanitize())
		if err == nil {
			return nil
		}
		if !sqlstate.Is(err, "42P04") {
			return fmt.Errorf("create database: %w", err)
		}
		owner, err = databaseOwner(ctx, conn, database)
	}
	if err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if owner == user {
		return nil
	}
	if err := execDDL(ctx, conn, "ALTER DATABASE "+pgx.Identifier{database}.Sanitize()+" OWNER TO "+pgx.Identifier{user}.Sanitize()); err != nil {
		return fmt.Errorf("change owner from %q: %w", owner, err)
	}
	return nil
}

func databaseOwner(ctx context.Context, conn *pgx.Conn, database string) (string, error) {
	var owner string
	err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = $1", database).Scan(&owner)
	return owner, err
}

// permanent reports connection errors that waiting does not cure: a refused password or role,
// a missing database, a refused host (pg_hba.conf).
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "28P01", "28000", "3D000":
		return true
	}
	return false
}

// attemptTimeout bounds one connection attempt, so that a port that accepts and then hangs
// does not eat the whole wait.
const attemptTimeout = 5 * time.Second

// pollInterval is the pause between connection attempts.
const pollInterval = 200 * time.Millisecond

// connectOnce connects, runs `select 1` and disconnects.
func connectOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(actx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(actx, "select 1").Scan(&one)
}

// CheckExternal waits up to timeout until the database at dbURL accepts a connection and
// answers a query; it is all an external (managed) database needs. A malformed URL is a usage
// error (exit 2), a refused login or missing database fails at once (exit 1), and a server that
// stays unreachable is a timeout (exit 4). Messages never show the password.
func CheckExternal(ctx context.Context, dbURL string, timeout time.Duration) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return exitcode.Usagef("postgres: database URL: %w", err)
	}
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	deadline := time.Now().Add(timeout)
	for {
		err := connectOnce(ctx, cfg)
		switch {
		case err == nil:
			return nil
		case permanent(err):
			return fmt.Errorf("postgres: external database %s: %w", where, err)
		case ctx.Err() != nil:
			return fmt.Errorf("postgres: external database %s: %w", where, ctx.Err())
		case time.Now().After(deadline):
			return exitcode.With(exitcode.Timeout, fmt.Errorf("postgres: external database %s not reachable within %v: %w", where, timeout, err))
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("postgres: external database %s: %w", where, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
