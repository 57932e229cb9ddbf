package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/progress"
)

// Database names. Every database pgtest makes starts with namePrefix so that sweeps never touch
// anything else; the letter after it says what the database is.
const (
	namePrefix     = "pgtest_"
	templatePrefix = namePrefix + "t_" // pgtest_t_<hash>: a finished template
	buildPrefix    = namePrefix + "b_" // pgtest_b_<hash>_<owner>: a template being built
	clonePrefix    = namePrefix + "c_" // pgtest_c_<owner>_<hash8>_<seq>: a test's database
	// keptComment starts the comment of a database kept for a failed test; sweeps leave it.
	keptComment     = "pgtest: kept"
	templateComment = "pgtest template; source="
	hashLen         = 20
)

// Advisory lock classes (the first key of the two-key form, which never collides with the
// one-bigint key pkg/migrate locks with).
const (
	// lockOwner is held by each open Server for its whole life on its own connection: a clone
	// whose owner's lock can be taken belongs to a dead process and may be dropped.
	lockOwner int32 = 0x70677430 // "pgt0"
	// lockTemplate serialises the build of one template across processes.
	lockTemplate int32 = 0x70677431 // "pgt1"
)

// Server makes databases for tests on one PostgreSQL server: it builds a template per set of
// migrations, keeps clones of it ready, and drops them again. It is safe for concurrent use.
// Close it when done; New and NewPool keep one Server per server for the whole test binary.
type Server struct {
	adminURL string
	admin    *pgxpool.Pool
	// ownerConn holds the owner lock; closing it tells other processes our clones are stale.
	ownerConn *pgx.Conn
	owner     uint32
	seq       atomic.Uint64
	strategy  string // the STRATEGY clause of CREATE DATABASE, "" before PostgreSQL 15
	report    progress.Reporter
	stop      func(context.Context) error

	mu     sync.Mutex
	sets   map[string]*templateSet
	closed bool

	fillCtx  context.Context
	stopFill context.CancelFunc
	fillers  sync.WaitGroup
}

// Database is a database of a test's own, cloned from the template of its migrations.
type Database struct {
	// Name is the database's name on the server.
	Name string
	// URL connects to it as the superuser of the server's admin URL.
	URL string
	srv *Server
}

// Open prepares adminURL's server (a superuser URL) for making test databases: it removes the
// databases that dead processes left behind and takes a lock that marks this process's own
// databases as alive. The server-level options (WithURL, WithProvider, WithImage) are ignored.
func Open(ctx context.Context, adminURL string, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return open(ctx, adminURL, cfg)
}

// Start starts a server with pkg/ephemeral (WithProvider, WithImage) and opens it; Close stops
// the server.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return start(ctx, cfg)
}

func start(ctx context.Context, cfg *config) (*Server, error) {
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: cfg.provider, Image: cfg.image, Environ: cfg.environ, Progress: cfg.progress})
	if err != nil {
		return nil, fmt.Errorf("pgtest: start a %s server: %w", providerName(cfg.provider), err)
	}
	stop := func(ctx context.Context) error { return ephemeral.Stop(ctx, inst) }
	s, err := open(ctx, inst.URL, cfg)
	if err != nil {
		return nil, errors.Join(err, stop(context.WithoutCancel(ctx)))
	}
	s.stop = stop
	return s, nil
}

func providerName(p string) string {
	if p == "" {
		return "throwaway"
	}
	return p
}

func open(ctx context.Context, adminURL string, cfg *config) (_ *Server, err error) {
	pcfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("pgtest: parse the admin URL: %w", err)
	}
	// CREATE and DROP DATABASE are serialised on the server anyway; more connections would only
	// take slots that the tests' own pools need.
	pcfg.MaxConns = 6
	admin, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to %s: %w", redact(adminURL), err)
	}
	defer func() {
		if err != nil {
			admin.Close()
		}
	}()
	ownerConn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to %s: %w", redact(adminURL), err)
	}
	defer func() {
		if err != nil {
			ownerConn.Close(context.WithoutCancel(ctx))
		}
	}()
	owner, err := takeOwnerLock(ctx, ownerConn)
	if err != nil {
		return nil, err
	}
	var version int
	if err := ownerConn.QueryRow(ctx, "select current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, fmt.Errorf("pgtest: read the server version: %w", err)
	}
	fillCtx, stopFill := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{
		adminURL:  adminURL,
		admin:     admin,
		ownerConn: ownerConn,
		owner:     owner,
		report:    progress.NewReporter("pgtest", cfg.progress),
		sets:      map[string]*templateSet{},
		fillCtx:   fillCtx,
		stopFill:  stopFill,
	}
	var fsync string
	if err := ownerConn.QueryRow(ctx, "select current_setting('fsync')").Scan(&fsync); err != nil {
		return nil, fmt.Errorf("pgtest: read the fsync setting: %w", err)
	}
	if version >= 150000 && fsync == "off" {
		// FILE_COPY copies the template's files and checkpoints twice, which is cheap with
		// fsync off and about twice as fast as 15's default WAL_LOG, which writes every block
		// through shared buffers and the WAL (bench/pgtest.sh). With fsync on, the checkpoints
		// cost more than they save.
		s.strategy = " STRATEGY = FILE_COPY"
	}
	if err := s.sweep(ctx); err != nil {
		stopFill()
		return nil, err
	}
	return s, nil
}

// takeOwnerLock picks a random owner id that no live process holds.
func takeOwnerLock(ctx context.Context, conn *pgx.Conn) (uint32, error) {
	for range 10 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("pgtest: owner id: %w", err)
		}
		owner := binary.BigEndian.Uint32(b[:])
		var ok bool
		if err := conn.QueryRow(ctx, "select pg_try_advisory_lock($1, $2)", lockOwner, int32(owner)).Scan(&ok); err != nil {
			return 0, fmt.Errorf("pgtest: take the owner lock: %w", err)
		}
		if ok {
			return owner, nil
		}
	}
	return 0, errors.New("pgtest: no free owner id after 10 tries")
}

// sweep drops the clones and half-built templates of processes that are gone: their owner lock
// is free. Databases kept for failed tests stay.
func (s *Server) sweep(ctx context.Context) error {
	rows, err := s.ownerConn.Query(ctx, `
select d.datname from pg_database d
where (d.datname like 'pgtest\_c\_%' or d.datname like 'pgtest\_b\_%')
  and coalesce(shobj_description(d.oid, 'pg_database'), '') not like 'pgtest: kept%'`)
	if err != nil {
		return fmt.Errorf("pgtest: list stale databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgtest: list stale databases: %w", err)
	}
	byOwner := map[uint32][]string{}
	for _, n := range names {
		if o, ok := ownerOf(n); ok && o != s.owner {
			byOwner[o] = append(byOwner[o], n)
		}
	}
	var errs []error
	for o, dbs := range byOwner {
		var free bool
		if err := s.ownerConn.QueryRow(ctx, "select pg_try_advisory_lock($1, $2)", lockOwner, int32(o)).Scan(&free); err != nil {
			return fmt.Errorf("pgtest: probe owner %08x: %w", o, err)
		}
		if !free {
			continue
		}
		for _, db := range dbs {
			if err := s.drop(ctx, db); err != nil {
				errs = append(errs, err)
			}
		}
		s.report.Info(fmt.Sprintf("dropped %d databases left by a process that is gone (owner %08x)", len(dbs), o), 0, "databases", dbs)
		if _, err := s.ownerConn.Exec(ctx, "select pg_advisory_unlock($1, $2)", lockOwner, int32(o)); err != nil {
			return fmt.Errorf("pgtest: release owner %08x: %w", o, err)
		}
	}
	return errors.Join(errs...)
}

// logf reports a fact of the server's life (a template built or dropped) as an Info event.
func (s *Server) logf(format string, args ...any) {
	s.report.Info(strings.TrimPrefix(fmt.Sprintf(format, args...), "pgtest: "), 0)
}

// ownerOf reads the owner id out of a clone's or a build's name.
func ownerOf(name string) (uint32, bool) {
	var field string
	switch {
	case strings.HasPrefix(name, clonePrefix):
		parts := strings.Split(strings.TrimPrefix(name, clonePrefix), "_")
		if len(parts) != 3 {
			return 0, false
		}
		field = parts[0]
	case strings.HasPrefix(name, buildPrefix):
		parts := strings.Split(strings.TrimPrefix(name, buildPrefix), "_")
		if len(parts) != 2 {
			return 0, false
		}
		field = parts[1]
	default:
		return 0, false
	}
	o, err := strconv.ParseUint(field, 16, 32)
	return uint32(o), err == nil && len(field) == 8
}

// Close stops filling, drops the clones nobody took, releases the owner lock and stops the
// server when Start started it. Databases handed out stay until their Drop.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sets := make([]*templateSet, 0, len(s.sets))
	for _, set := range s.sets {
		sets = append(sets, set)
	}
	s.mu.Unlock()
	s.stopFill()
	s.fillers.Wait()
	var errs []error
	for _, set := range sets {
		errs = append(errs, s.drain(ctx, set))
	}
	errs = append(errs, s.ownerConn.Close(ctx))
	s.admin.Close()
	if s.stop != nil {
		errs = append(errs, s.stop(ctx))
	}
	return errors.Join(errs...)
}

// URL is the server's admin URL.
func (s *Server) URL() string { return s.adminURL }

// Database hands out a new database of the migration set that opts name (WithMigrations,
// WithMigrationsFS, WithLedger; none: an empty database), building its template first when the
// files changed or the server has none yet. The caller drops it with Drop.
func (s *Server) Database(ctx context.Context, opts ...Option) (*Database, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return s.database(ctx, cfg)
}

func (s *Server) database(ctx context.Context, cfg *config) (*Database, error) {
	set, err := s.templateSet(cfg)
	if err != nil {
		return nil, err
	}
	// A clone ready in the pool costs a channel receive; only an empty pool pays for CREATE.
	select {
	case name := <-set.ready:
		return s.newDatabase(name)
	default:
	}
	if err := s.ensureTemplate(ctx, set); err != nil {
		return nil, err
	}
	select {
	case name := <-set.ready:
		return s.newDatabase(name)
	default:
	}
	name, err := s.clone(ctx, set)
	if err != nil {
		return nil, err
	}
	return s.newDatabase(name)
}

func (s *Server) newDatabase(name string) (*Database, error) {
	u, err := databaseURL(s.adminURL, name)
	if err != nil {
		return nil, err
	}
	return &Database{Name: name, URL: u, srv: s}, nil
}

// drop removes a database, forcing out its sessions.
func (s *Server) drop(ctx context.Context, name string) error {
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

// Drop drops the database, ending the sessions still connected to it.
func (d *Database) Drop(ctx context.Context) error { return d.srv.drop(ctx, d.Name) }

// Keep marks the database as kept, so that no sweep drops it; why says for what (a test name).
func (d *Database) Keep(ctx context.Context, why string) error {
	q := "COMMENT ON DATABASE " + ident(d.Name) + " IS " + literal(keptComment+": "+why)
	if _, err := d.srv.admin.Exec(ctx, q); err != nil {
		return fmt.Errorf("pgtest: keep database %s: %w", d.Name, err)
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// databaseURL is adminURL pointing at database name instead, in the URL or the key=value form.
func databaseURL(adminURL, name string) (string, error) {
	if strings.HasPrefix(adminURL, "postgres://") || strings.HasPrefix(adminURL, "postgresql://") {
		u, err := url.Parse(adminURL)
		if err != nil {
			return "", fmt.Errorf("pgtest: parse the admin URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Del("dbname")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// Later keys win in the key=value form.
	return adminURL + " dbname=" + name, nil
}

// redact hides the password of a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "<admin URL>"
	}
	return u.Redacted()
}
