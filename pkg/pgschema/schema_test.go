package pgschema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/poststack/poststack/internal/testenv"
)

var dbCounter atomic.Int64

// freshDB creates a uniquely named database, dropped when t ends, and returns its URL and a
// connection to it.
func freshDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	adminURL := testenv.Postgres(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	name := fmt.Sprintf("pgschema_%d_%d", time.Now().UnixNano(), dbCounter.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return u.String(), conn
}

// fixture has one object of every kind Snapshot reads, plus a citext extension whose own
// functions and types must not show up, and a ledger table to exclude.
const fixture = `
CREATE SCHEMA app;
CREATE EXTENSION citext;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.email AS citext NOT NULL CONSTRAINT email_at CHECK (VALUE ~ '@');
CREATE TYPE app.pair AS (a integer, b text);
CREATE SEQUENCE app.counter INCREMENT 5 START 100;
CREATE TABLE app.users (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email app.email UNIQUE,
	mood app.mood DEFAULT 'ok',
	name varchar(20) COLLATE "C",
	name_len integer GENERATED ALWAYS AS (length(name)) STORED,
	created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE app.posts (
	id serial PRIMARY KEY,
	user_id bigint REFERENCES app.users (id),
	body text CHECK (body <> '')
);
CREATE INDEX posts_user_idx ON app.posts (user_id);
CREATE TABLE app.t (c integer, e text);
CREATE VIEW app.user_names AS SELECT id, name FROM app.users;
CREATE MATERIALIZED VIEW app.post_counts AS SELECT user_id, count(*) AS n FROM app.posts GROUP BY user_id;
CREATE UNIQUE INDEX post_counts_user_idx ON app.post_counts (user_id);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.created := now();
	RETURN NEW;
END
$$;
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE PROCEDURE app.noop(x integer) LANGUAGE sql BEGIN ATOMIC SELECT 1; END;
CREATE AGGREGATE app.mysum(integer) (SFUNC = int4pl, STYPE = integer);
CREATE TABLE public.ledger (version bigint PRIMARY KEY, id serial);
`

var fixtureOpts = Options{ExcludeTables: []string{"public.ledger"}}

func setup(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dbURL, conn := freshDB(t)
	if _, err := conn.Exec(context.Background(), fixture); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return dbURL, conn
}

func snapshot(t *testing.T, conn *pgx.Conn, opts Options) *Schema {
	t.Helper()
	s, err := Snapshot(context.Background(), conn, opts)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return s
}

func TestSnapshotReadsEveryKind(t *testing.T) {
	_, conn := setup(t)
	s := snapshot(t, conn, fixtureOpts)

	if want := []string{"app", "public"}; !slices.Equal(s.Schemas, want) {
		t.Errorf("Schemas = %v, want %v", s.Schemas, want)
	}
	var exts []string
	for _, e := range s.Extensions {
		exts = append(exts, e.Name+"@"+e.Schema)
	}
	if want := []string{"citext@public", "plpgsql@pg_catalog"}; !slices.Equal(exts, want) {
		t.Errorf("Extensions = %v, want %v", exts, want)
	}

	var tables []string
	for _, tb := range s.Tables {
		tables = append(tables, tb.Schema+"."+tb.Name)
	}
	if want := []string{"app.posts", "app.t", "app.users"}; !slices.Equal(tables, want) {
		t.Fatalf("Tables = %v, want %v (ledger excluded)", tables, want)
	}
	users := s.Tables[2]
	wantCols := []Column{
		{Name: "id", Type: "bigint", NotNull: true, Identity: "always"},
		{Name: "email", Type: "app.email"},
		{Name: "mood", Type: "app.mood", Default: "'ok'::app.mood"},
		{Name: "name", Type: "character varying(20)", Collation: `"C"`},
		{Name: "name_len", Type: "integer", Generated: "length((name)::text)"},
		{Name: "created", Type: "timestamp with time zone", NotNull: true, Default: "now()"},
	}
	if !reflect.DeepEqual(users.Columns, wantCols) {
		t.Errorf("users columns:\n got %+v\nwant %+v", users.Columns, wantCols)
	}
	wantIdx := []Index{
		{Name: "users_email_key", Definition: "CREATE UNIQUE INDEX users_email_key ON app.users USING btree (email)", Unique: true},
		{Name: "users_pkey", Definition: "CREATE UNIQUE INDEX users_pkey ON app.users USING btree (id)", Primary: true, Unique: true},
	}
	if !reflect.DeepEqual(users.Indexes, wantIdx) {
		t.Errorf("users indexes:\n got %+v\nwant %+v", users.Indexes, wantIdx)
	}
	if len(users.Triggers) != 1 || users.Triggers[0].Name != "users_touch" ||
		!strings.Contains(users.Triggers[0].Definition, "EXECUTE FUNCTION app.touch()") {
		t.Errorf("users triggers = %+v", users.Triggers)
	}
	posts := s.Tables[0]
	wantCons := []Constraint{
		{Name: "posts_body_check", Type: "check", Definition: "CHECK (body <> ''::text)"},
		{Name: "posts_pkey", Type: "primary key", Definition: "PRIMARY KEY (id)"},
		{Name: "posts_user_id_fkey", Type: "foreign key", Definition: "FOREIGN KEY (user_id) REFERENCES app.users(id)"},
	}
	if !reflect.DeepEqual(posts.Constraints, wantCons) {
		t.Errorf("posts constraints:\n got %+v\nwant %+v", posts.Constraints, wantCons)
	}
	if len(posts.Triggers) != 0 {
		t.Errorf("posts has internal FK triggers listed: %+v", posts.Triggers)
	}

	wantSeq := []Sequence{
		{Schema: "app", Name: "counter", Type: "bigint", Start: 100, Increment: 5, Min: 1, Max: 9223372036854775807, Cache: 1},
		{Schema: "app", Name: "posts_id_seq", Type: "integer", Start: 1, Increment: 1, Min: 1, Max: 2147483647, Cache: 1, OwnedBy: "app.posts.id"},
	}
	if !reflect.DeepEqual(s.Sequences, wantSeq) {
		t.Errorf("Sequences (no identity, no ledger):\n got %+v\nwant %+v", s.Sequences, wantSeq)
	}

	if len(s.Views) != 2 {
		t.Fatalf("Views = %+v", s.Views)
	}
	pc, un := s.Views[0], s.Views[1]
	if pc.Name != "post_counts" || !pc.Materialized || len(pc.Indexes) != 1 || pc.Indexes[0].Name != "post_counts_user_idx" {
		t.Errorf("materialized view = %+v", pc)
	}
	if un.Name != "user_names" || un.Materialized || !strings.Contains(un.Definition, "FROM app.users") {
		t.Errorf("view = %+v", un)
	}

	var funcs []string
	for _, f := range s.Functions {
		funcs = append(funcs, f.Kind+" "+f.Schema+"."+f.Signature()+" "+f.Result)
	}
	wantFuncs := []string{"aggregate app.mysum(integer) integer", "procedure app.noop(IN x integer) ", "function app.touch() trigger"}
	if !slices.Equal(funcs, wantFuncs) {
		t.Errorf("Functions (no citext ones):\n got %q\nwant %q", funcs, wantFuncs)
	}
	if !strings.Contains(s.Functions[2].Definition, "NEW.created := now();") {
		t.Errorf("touch definition = %q", s.Functions[2].Definition)
	}

	wantTypes := []Type{
		{Schema: "app", Name: "email", Kind: "domain", BaseType: "citext", NotNull: true,
			Constraints: []Constraint{{Name: "email_at", Type: "check", Definition: "CHECK (VALUE ~ '@'::citext)"}}},
		{Schema: "app", Name: "mood", Kind: "enum", Labels: []string{"sad", "ok", "happy"}},
		{Schema: "app", Name: "pair", Kind: "composite", Attributes: []Column{{Name: "a", Type: "integer"}, {Name: "b", Type: "text"}}},
	}
	if !reflect.DeepEqual(s.Types, wantTypes) {
		t.Errorf("Types (no citext, no table row types):\n got %+v\nwant %+v", s.Types, wantTypes)
	}
}

func TestSnapshotExcludesSchemas(t *testing.T) {
	_, conn := setup(t)
	s := snapshot(t, conn, Options{Exclude: []string{"app"}})
	if want := []string{"public"}; !slices.Equal(s.Schemas, want) {
		t.Errorf("Schemas = %v, want %v", s.Schemas, want)
	}
	if len(s.Tables) != 1 || s.Tables[0].Name != "ledger" {
		t.Errorf("Tables = %+v, want only public.ledger", s.Tables)
	}
	if len(s.Types)+len(s.Views)+len(s.Functions) != 0 || len(s.Sequences) != 1 {
		t.Errorf("objects of excluded schema app remain: %+v", s)
	}
}

func TestSnapshotJSONIsStableAndEmptyListsAreArrays(t *testing.T) {
	_, conn := setup(t)
	a, err := json.Marshal(snapshot(t, conn, fixtureOpts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(snapshot(t, conn, fixtureOpts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two snapshots of one database marshal differently")
	}

	_, empty := freshDB(t)
	e, err := json.Marshal(snapshot(t, empty, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemas":["public"],"extensions":[{"name":"plpgsql","schema":"pg_catalog","version":"1.0"}],"types":[],"sequences":[],"tables":[],"views":[],"functions":[]}`
	if string(e) != want {
		t.Errorf("empty database JSON:\n got %s\nwant %s", e, want)
	}
}

func TestWriteText(t *testing.T) {
	_, conn := setup(t)
	var buf bytes.Buffer
	if err := snapshot(t, conn, fixtureOpts).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"schemas: app, public\n",
		"\ntable app.users\n",
		"  id        bigint                    not null  generated always as identity\n",
		"  name_len  integer                   generated always as (length((name)::text)) stored\n",
		"    users_pkey primary key, btree (id)\n",
		"    posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES app.users(id)\n",
		"  triggers:\n    CREATE TRIGGER users_touch BEFORE UPDATE",
		"\nmaterialized view app.post_counts\n",
		"  app.posts_id_seq integer start 1 increment 1 min 1 max 2147483647 cache 1 owned by app.posts.id\n",
		"  function app.touch() returns trigger\n",
		"  enum app.mood ('sad', 'ok', 'happy')\n",
		"  domain app.email citext not null CHECK (VALUE ~ '@'::citext)\n",
		"  composite app.pair (a integer, b text)\n",
		"  citext ",
		"\n  user_id  bigint\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " \n") {
		t.Errorf("text has trailing spaces:\n%s", out)
	}
	if strings.Contains(out, "ledger") {
		t.Errorf("excluded table rendered:\n%s", out)
	}
}

func TestDiffAgainstPostgres(t *testing.T) {
	tests := []struct {
		name   string
		change string
		want   []string
	}{
		{"nothing", "SELECT 1", nil},
		{"drop index", "DROP INDEX app.posts_user_idx", []string{"index app.posts_user_idx exists only before"}},
		{"create index", "CREATE INDEX t_c_idx ON app.t (c)", []string{"index app.t_c_idx exists only after"}},
		{"column type", "ALTER TABLE app.t ALTER COLUMN c TYPE bigint", []string{"column app.t.c: type integer → bigint"}},
		{"add constraint", "ALTER TABLE app.t ADD CONSTRAINT t_c_positive CHECK (c > 0)",
			[]string{"constraint app.t.t_c_positive exists only after"}},
		{"not null and default", "ALTER TABLE app.t ALTER c SET NOT NULL, ALTER c SET DEFAULT 7", []string{
			"column app.t.c: nullability nullable → not null",
			"column app.t.c: default (none) → 7",
		}},
		{"drop table hides its parts", "DROP TABLE app.t", []string{"table app.t exists only before"}},
		{"add column", "ALTER TABLE app.t ADD COLUMN d text", []string{"column app.t.d exists only after"}},
		{"column order", "ALTER TABLE app.t DROP COLUMN c; ALTER TABLE app.t ADD COLUMN c integer",
			[]string{"table app.t: column order c, e → e, c"}},
		{"enum value", "ALTER TYPE app.mood ADD VALUE 'meh'", []string{"type app.mood: labels sad, ok, happy → sad, ok, happy, meh"}},
		{"function body", "CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
			[]string{"function app.touch(): definition changed"}},
		{"sequence", "ALTER SEQUENCE app.counter INCREMENT 10", []string{"sequence app.counter: increment 5 → 10"}},
		{"new schema with table", "CREATE SCHEMA extra; CREATE TABLE extra.x (a int)", []string{
			"schema extra exists only after", "table extra.x exists only after",
		}},
		{"trigger dropped", "DROP TRIGGER users_touch ON app.users", []string{"trigger app.users.users_touch exists only before"}},
		{"excluded table ignored", "ALTER TABLE public.ledger ADD COLUMN note text; CREATE INDEX ON public.ledger (note)", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, conn := setup(t)
			before := snapshot(t, conn, fixtureOpts)
			if _, err := conn.Exec(context.Background(), tc.change); err != nil {
				t.Fatalf("change: %v", err)
			}
			got := Diff(before, snapshot(t, conn, fixtureOpts))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDiffUnit(t *testing.T) {
	base := func() *Schema {
		return &Schema{
			Schemas: []string{"public"},
			Tables: []Table{{Schema: "public", Name: "t", Kind: "table",
				Columns: []Column{{Name: "a", Type: "integer"}}}},
			Types: []Type{{Schema: "public", Name: "k", Kind: "enum", Labels: []string{"x"}}},
		}
	}
	tests := []struct {
		name   string
		mutate func(*Schema)
		want   []string
	}{
		{"identical", func(*Schema) {}, nil},
		{"type changes kind", func(s *Schema) {
			s.Types[0] = Type{Schema: "public", Name: "k", Kind: "domain", BaseType: "text"}
		}, []string{
			"type public.k: kind enum → domain",
			"type public.k: labels x → (none)",
			"type public.k: base type (none) → text",
			"type public.k: nullability (none) → nullable",
		}},
		{"identity", func(s *Schema) { s.Tables[0].Columns[0].Identity = "by default" },
			[]string{"column public.t.a: identity (none) → by default"}},
		{"nil after", nil, []string{"schema public exists only before", "type public.k exists only before", "table public.t exists only before"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var after *Schema
			if tc.mutate != nil {
				after = base()
				tc.mutate(after)
			}
			if got := Diff(base(), after); !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tc.want)
			}
			// Swapping sides swaps before/after and never panics.
			Diff(after, base())
		})
	}
}

func TestSnapshotInsideCallersTransaction(t *testing.T) {
	_, conn := setup(t)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "CREATE TABLE app.in_tx (a int)"); err != nil {
		t.Fatal(err)
	}
	s := snapshot(t, conn, Options{ExcludeTables: []string{"ledger"}})
	var names []string
	for _, tb := range s.Tables {
		names = append(names, tb.Schema+"."+tb.Name)
	}
	if want := []string{"app.in_tx", "app.posts", "app.t", "app.users"}; !slices.Equal(names, want) {
		t.Errorf("tables = %v, want %v (bare ledger name means public.ledger)", names, want)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM app.in_tx"); err != nil {
		t.Errorf("caller's transaction was ended: %v", err)
	}
}

// TestSnapshotOnly: a restricted snapshot is the full one with only the named tables, the
// sequences they own and the named sequences; everything that is not a table or a sequence is
// read in full; a name of no relation is ignored, and an empty list reads no table.
func TestSnapshotOnly(t *testing.T) {
	_, conn := setup(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA "we.ird"; CREATE TABLE "we.ird"."x.y" (id serial); CREATE TABLE "we.ird".x (id int)`); err != nil {
		t.Fatal(err)
	}
	full := snapshot(t, conn, fixtureOpts)
	only := snapshot(t, conn, Options{ExcludeTables: fixtureOpts.ExcludeTables,
		Only: &Only{Relations: []string{"app.posts", "app.counter", "we.ird.x.y", "app.nosuch", "public.ledger"}}})

	var tables []string
	for _, tb := range only.Tables {
		tables = append(tables, tb.Schema+"."+tb.Name)
		i := slices.IndexFunc(full.Tables, func(f Table) bool { return f.Schema == tb.Schema && f.Name == tb.Name })
		if i < 0 || !reflect.DeepEqual(full.Tables[i], tb) {
			t.Errorf("table %s.%s differs from the full snapshot's", tb.Schema, tb.Name)
		}
	}
	if want := []string{"app.posts", "we.ird.x.y"}; !slices.Equal(tables, want) {
		t.Errorf("tables %v, want %v (the excluded ledger neither)", tables, want)
	}
	var seqs []string
	for _, q := range only.Sequences {
		seqs = append(seqs, q.Schema+"."+q.Name)
	}
	if want := []string{"app.counter", "app.posts_id_seq", "we.ird.x.y_id_seq"}; !slices.Equal(seqs, want) {
		t.Errorf("sequences %v, want %v", seqs, want)
	}
	rest := func(s *Schema) Schema {
		c := *s
		c.Tables, c.Sequences = nil, nil
		return c
	}
	if !reflect.DeepEqual(rest(full), rest(only)) {
		t.Error("what is not a table or a sequence differs from the full snapshot")
	}
	none := snapshot(t, conn, Options{Only: &Only{}})
	if len(none.Tables) != 0 || len(none.Sequences) != 0 || len(none.Functions) == 0 {
		t.Errorf("Only{} read %d tables, %d sequences, %d functions", len(none.Tables), len(none.Sequences), len(none.Functions))
	}
}
