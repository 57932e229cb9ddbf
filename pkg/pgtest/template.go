package pgtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/poststack/poststack/pkg/migrate"
)

// templateSet is one migration set on the server: its template and the clones ready to hand out.
type templateSet struct {
	hash     string
	name     string
	source   string
	migs     []*migrate.Migration
	schema   string
	table    string
	poolSize int
	ready    chan string

	// stopFill ends the set's filler early, when an edit of its files made it outdated;
	// filled is closed when the filler has returned.
	stopFill context.CancelFunc
	filled   chan struct{}

	mu      sync.Mutex // held while the template is built
	built   bool
	err     error // a build that failed fails every later request for the same files
	filling bool
}

// templateSet loads the migrations and returns the set their checksums name. Loading on every
// New is what notices an edited file; LoadDir's cache makes it cheap for a large directory.
func (s *Server) templateSet(cfg *config) (*templateSet, error) {
	migs, source, err := loadMigrations(cfg)
	if err != nil {
		return nil, err
	}
	hash, err := setHash(migs, cfg.schema, cfg.table)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("pgtest: the server is closed")
	}
	set := s.sets[hash]
	if set == nil {
		size := max(cfg.poolSize-1, 0) // the filler holds one more, blocked on the send
		set = &templateSet{
			hash: hash, name: templatePrefix + hash, source: source, migs: migs,
			schema: cfg.schema, table: cfg.table, poolSize: cfg.poolSize,
			ready: make(chan string, size),
		}
		s.sets[hash] = set
	}
	return set, nil
}

func loadMigrations(cfg *config) ([]*migrate.Migration, string, error) {
	var (
		migs []*migrate.Migration
		err  error
	)
	switch {
	case cfg.dir != "":
		migs, err = migrate.LoadDir(cfg.dir, migrate.WithDefaultCache(cfg.getenv))
		if err != nil {
			return nil, "", fmt.Errorf("pgtest: load migrations: %w", err)
		}
		return migs, cfg.dir, nil
	case cfg.fsys != nil:
		migs, err = migrate.Load(cfg.fsys, cfg.fsDir)
		if err != nil {
			return nil, "", fmt.Errorf("pgtest: load migrations: %w", err)
		}
	}
	return migs, "", nil
}

// setHash names a migration set's template: migrate.SetDigest, shortened to keep database
// names within Postgres's 63 bytes.
func setHash(migs []*migrate.Migration, schema, table string) (string, error) {
	digest, err := migrate.SetDigest(migs, schema, table)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return digest[:hashLen], nil
}

// ensureTemplate makes sure the set's template exists on the server, building it under an
// advisory lock when no process has yet, and starts the set's filler.
func (s *Server) ensureTemplate(ctx context.Context, set *templateSet) error {
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.err != nil {
		return set.err
	}
	if !set.built {
		if err := s.buildTemplate(ctx, set); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			set.err = err
			return err
		}
		set.built = true
	}
	if !set.filling && set.poolSize > 0 {
		set.filling = true
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.fillers.Add(1)
		}
		s.mu.Unlock()
		if !closed {
			ctx, cancel := context.WithCancel(s.fillCtx)
			set.stopFill, set.filled = cancel, make(chan struct{})
			go s.fill(ctx, set)
		}
	}
	return nil
}

func (s *Server) buildTemplate(ctx context.Context, set *templateSet) (err error) {
	conn, err := s.admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Release()
	if ok, err := templateExists(ctx, conn, set.name); err != nil || ok {
		return err
	}
	key := int32(binary.BigEndian.Uint32([]byte(set.hash[:8])))
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1, $2)", lockTemplate, key); err != nil {
		return fmt.Errorf("pgtest: wait for the template lock: %w", err)
	}
	defer func() {
		// The pooled connection lives on: the lock must go even when ctx is done.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1, $2)", lockTemplate, key); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("pgtest: release the template lock: %w", uerr))
		}
	}()
	// Another process may have built it while this one waited.
	if ok, err := templateExists(ctx, conn, set.name); err != nil || ok {
		return err
	}
	start := time.Now()
	build := fmt.Sprintf("%s%s_%08x", buildPrefix, set.hash, s.owner)
	if err := s.drop(ctx, build); err != nil {
		return err
	}
	// template0 rather than template1: nobody connects to it, which CREATE DATABASE needs.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(build)+" TEMPLATE template0"); err != nil {
		return fmt.Errorf("pgtest: create %s: %w", build, err)
	}
	if err := s.migrate(ctx, build, set); err != nil {
		return errors.Join(err, s.drop(context.WithoutCancel(ctx), build))
	}
	// Renamed only once complete, so that a template's existence means it is whole even to a
	// process that does not take the lock; no connections allowed, so that CREATE DATABASE …
	// TEMPLATE never finds one.
	for _, q := range []string{
		"ALTER DATABASE " + ident(build) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
		"ALTER DATABASE " + ident(build) + " RENAME TO " + ident(set.name),
		"COMMENT ON DATABASE " + ident(set.name) + " IS " + literal(templateComment+set.source),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return errors.Join(fmt.Errorf("pgtest: finish template %s: %s: %w", set.name, q, err), s.drop(context.WithoutCancel(ctx), build))
		}
	}
	s.logf("pgtest: built template %s (%d migrations) in %v", set.name, len(set.migs), time.Since(start).Round(time.Millisecond))
	if set.source != "" {
		s.retireOutdated(ctx, set)
		s.dropOldTemplates(ctx, conn, set)
	}
	return nil
}

func templateExists(ctx context.Context, conn *pgxpool.Conn, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, "select exists (select from pg_database where datname = $1 and datistemplate)", name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("pgtest: look for template %s: %w", name, err)
	}
	return ok, nil
}

func (s *Server) migrate(ctx context.Context, db string, set *templateSet) error {
	if len(set.migs) == 0 {
		return nil
	}
	u, err := databaseURL(s.adminURL, db)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("pgtest: connect to %s: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.New(conn, set.migs, migrate.WithSchema(set.schema), migrate.WithTable(set.table), migrate.WithAppliedBy("pgtest"), migrate.WithProgress(s.report.Func()))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if _, err := m.Up(ctx, 0); err != nil {
		return fmt.Errorf("pgtest: migrate the template: %w", err)
	}
	return nil
}

// dropOldTemplates drops the templates built earlier from the same directory that no clone
// refers to any more: after an edit they would never be used again. A failure only leaves one
// behind, so errors are ignored.
func (s *Server) dropOldTemplates(ctx context.Context, conn *pgxpool.Conn, set *templateSet) {
	rows, err := conn.Query(ctx, `
select d.datname from pg_database d
where d.datname like 'pgtest\_t\_%' and d.datname <> $1
  and shobj_description(d.oid, 'pg_database') = $2
  and not exists (select from pg_database c
                  where c.datname like 'pgtest\_c\_%\_' || substr(d.datname, 10, 8) || '\_%')`,
		set.name, templateComment+set.source)
	if err != nil {
		return
	}
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range old {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE false"); err != nil {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)); err == nil {
			s.logf("pgtest: dropped the outdated template %s", name)
		}
	}
}
