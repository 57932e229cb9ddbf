package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/migrate"
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
	logf      func(format string, args ...any)
	stop      func(context.Context) error

	mu     sync.Mutex
	sets   map[string]*templateSet
	loads  map[string]*loaded // by migration directory
	closed bool

	fillCtx    context.Context
	stopFill   context.CancelFunc
	fillers    sync.WaitGroup
	fillerErrs atomic.Int64
}

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
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: cfg.provider, Image: cfg.image, Logf: cfg.logf})
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
	logf := cfg.logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	fillCtx, stopFill := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{
		adminURL:  adminURL,
		admin:     admin,
		ownerConn: ownerConn,
		owner:     owner,
		logf:      logf,
		sets:      map[string]*templateSet{},
		loads:     map[string]*loaded{},
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
		s.logf("pgtest: dropped %d databases left by a process that is gone (owner %08x)", len(dbs), o)
		if _, err := s.ownerConn.Exec(ctx, "select pg_advisory_unlock($1, $2)", lockOwner, int32(o)); err != nil {
			return fmt.Errorf("pgtest: release owner %08x: %w", o, err)
		}
	}
	return errors.Join(errs...)
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

// templateSet loads the migrations and returns the set their checksums name; loading every time
// is what notices an edited file (a few hundred microseconds for 50 files).
func (s *Server) templateSet(cfg *config) (*templateSet, error) {
	migs, hash, source, err := s.load(cfg)
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

// loaded is a migration directory as last read: reused while the directory's listing, sizes and
// modification times stay the same, because reading and checksumming 50 files on every New
// would cost more than handing out the database.
type loaded struct {
	fingerprint string
	migs        []*migrate.Migration
	hash        string
}

// racyWindow: a file modified this close to its reading may change again without its
// modification time changing (coarse timestamps), so its fingerprint is not trusted.
const racyWindow = 2 * time.Second

func (s *Server) load(cfg *config) ([]*migrate.Migration, string, string, error) {
	if cfg.dir == "" {
		migs, source, err := loadMigrations(cfg)
		if err != nil {
			return nil, "", "", err
		}
		hash, err := setHash(migs, cfg.schema, cfg.table)
		return migs, hash, source, err
	}
	key := cfg.dir + "\x00" + cfg.schema + "\x00" + cfg.table
	fp, racy := fingerprint(cfg.dir, time.Now())
	s.mu.Lock()
	l := s.loads[key]
	s.mu.Unlock()
	if fp != "" && l != nil && l.fingerprint == fp {
		return l.migs, l.hash, cfg.dir, nil
	}
	migs, source, err := loadMigrations(cfg)
	if err != nil {
		return nil, "", "", err
	}
	hash, err := setHash(migs, cfg.schema, cfg.table)
	if err != nil {
		return nil, "", "", err
	}
	if fp != "" && !racy {
		s.mu.Lock()
		s.loads[key] = &loaded{fingerprint: fp, migs: migs, hash: hash}
		s.mu.Unlock()
	}
	return migs, hash, source, nil
}

// fingerprint sums up the directory's entries by name, size and modification time; "" when it
// cannot be read (LoadDir then reports why). racy is set when an entry changed too recently.
func fingerprint(dir string, now time.Time) (fp string, racy bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	h := sha256.New()
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return "", false
		}
		mt := info.ModTime()
		if now.Sub(mt) < racyWindow {
			racy = true
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\n", e.Name(), info.Size(), mt.UnixNano(), info.Mode())
	}
	return string(h.Sum(nil)), racy
}

func loadMigrations(cfg *config) ([]*migrate.Migration, string, error) {
	var (
		migs []*migrate.Migration
		err  error
	)
	switch {
	case cfg.dir != "":
		migs, err = migrate.LoadDir(cfg.dir)
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

// setHash names a migration set by what ends up in its template: each file's version, name and
// checksum, the rollback SQL the ledger stores, and where the ledger lives.
func setHash(migs []*migrate.Migration, schema, table string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "pgtest 1\nledger %q %q\n", schema, table)
	for _, m := range migs {
		fmt.Fprintf(h, "%d %q %s", m.Version, m.Name, m.Checksum)
		if m.Down != nil {
			text, err := m.Down.Text()
			if err != nil {
				return "", fmt.Errorf("pgtest: read %s: %w", m.Down.File, err)
			}
			sum := sha256.Sum256([]byte(text))
			fmt.Fprintf(h, " down %x", sum)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:hashLen], nil
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
	m, err := migrate.New(conn, set.migs, migrate.WithSchema(set.schema), migrate.WithTable(set.table), migrate.WithAppliedBy("pgtest"))
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

// clone creates a database from the set's template. A template that vanished (dropped as
// outdated by a process with other files in the same directory) is rebuilt once.
func (s *Server) clone(ctx context.Context, set *templateSet) (string, error) {
	name := fmt.Sprintf("%s%08x_%s_%d", clonePrefix, s.owner, set.hash[:8], s.seq.Add(1))
	q := "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(set.name) + s.strategy
	_, err := s.admin.Exec(ctx, q)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		set.mu.Lock()
		set.built = false
		set.mu.Unlock()
		if err := s.ensureTemplate(ctx, set); err != nil {
			return "", err
		}
		_, err = s.admin.Exec(ctx, q)
	}
	if err != nil {
		return "", fmt.Errorf("pgtest: create database %s from %s: %w", name, set.name, err)
	}
	return name, nil
}

// retireOutdated forgets the sets of this process built from the same directory as set before
// an edit: their filler stops and the clones it prepared are dropped, so that nothing refers
// to the outdated template any more.
func (s *Server) retireOutdated(ctx context.Context, set *templateSet) {
	s.mu.Lock()
	var old []*templateSet
	for hash, o := range s.sets {
		if o != set && o.source == set.source {
			old = append(old, o)
			delete(s.sets, hash)
		}
	}
	s.mu.Unlock()
	for _, o := range old {
		o.mu.Lock()
		stop, filled := o.stopFill, o.filled
		o.mu.Unlock()
		if stop != nil {
			stop()
			<-filled
		}
		s.drain(ctx, o)
	}
}

// drain drops the clones ready in set's pool.
func (s *Server) drain(ctx context.Context, set *templateSet) error {
	var errs []error
	for {
		select {
		case name := <-set.ready:
			if err := s.drop(ctx, name); err != nil {
				errs = append(errs, err)
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// fill keeps the set's pool full until Close. A clone in the making is finished rather than
// cancelled, so that Close knows every database the filler made.
func (s *Server) fill(ctx context.Context, set *templateSet) {
	defer s.fillers.Done()
	defer close(set.filled)
	for ctx.Err() == nil {
		name, err := s.clone(context.WithoutCancel(ctx), set)
		if err != nil {
			// The tests' own clones report the error; the filler backs off and retries.
			s.fillerErrs.Add(1)
			select {
			case <-time.After(200 * time.Millisecond):
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case set.ready <- name:
		case <-ctx.Done():
			_ = s.drop(context.Background(), name)
			return
		}
	}
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
