// Package pgtesttc hands pgtest a PostgreSQL server from testcontainers-go's postgres module,
// for test suites that already run their databases that way: the tests get pgtest's template
// and pooled clones (a database of their own per test, cloned from a migrated template, dropped
// at cleanup) on a container that testcontainers-go manages.
//
//	var srv *pgtesttc.Server
//
//	func TestMain(m *testing.M) {
//		ctx := context.Background()
//		var err error
//		srv, err = pgtesttc.Start(ctx, "postgres:16")
//		if err != nil {
//			log.Fatal(err)
//		}
//		code := m.Run()
//		_ = srv.Close(ctx) // drops the clones still prepared and terminates the container
//		os.Exit(code)
//	}
//
//	func TestOrders(t *testing.T) {
//		t.Parallel()
//		pool := srv.NewPool(t, pgtest.WithMigrations("../../migrations"))
//		…
//	}
//
// Start runs the container itself; FromContainer uses one the test already runs and leaves it
// running. It is a package of its own so that only the test binaries that import it link
// testcontainers-go: poststack's commands start containers through pkg/engine instead.
package pgtesttc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/pkg/pgtest"
)

const (
	// pgdata is the data directory of the official image contract, put on a tmpfs by Start.
	pgdata = "/var/lib/postgresql/data"
	// port is the server's port inside the container.
	port = "5432/tcp"
	// stopTimeout is the grace the engine gives the server when Close terminates the
	// container: its data is thrown away, so there is nothing to flush.
	stopTimeout = time.Second
)

// Label marks the containers Start runs (value "true"), so that a person can tell them apart.
const Label = "io.poststack.pgtesttc"

// Server is a pgtest.Server on a testcontainers-go postgres container: its New, NewPool and
// Database hand out clones of migrated templates as pgtest's do. Close it instead of the
// embedded pgtest.Server, which would leave a container that Start ran behind.
type Server struct {
	*pgtest.Server
	ctr *tcpostgres.PostgresContainer
	// owned is true when Start ran the container, so that Close terminates it.
	owned bool
}

// Start runs image with testcontainers-go's postgres module and opens a pgtest Server on it;
// Close terminates the container. The container has the superuser postgres with a random
// password, the database postgres, its data directory on a tmpfs and durability off (fsync,
// synchronous_commit and full_page_writes), and waits with postgres.BasicWaitStrategies; tcOpts
// come after these and may override any of them. The image must follow the official image's
// contract (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB); poststack's own (ps-build postgres)
// does. For pgtest options such as WithProgress, run the container with postgres.Run and pass
// it to FromContainer.
func Start(ctx context.Context, image string, tcOpts ...testcontainers.ContainerCustomizer) (*Server, error) {
	if image == "" {
		return nil, errors.New("pgtesttc: Start: empty image")
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	opts := append([]testcontainers.ContainerCustomizer{
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword(password),
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmd("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
		testcontainers.WithTmpfs(map[string]string{pgdata: "rw"}),
		testcontainers.WithLabels(map[string]string{Label: "true"}),
	}, tcOpts...)
	ctr, err := tcpostgres.Run(ctx, image, opts...)
	if err != nil {
		// Run may return a container that was created but did not become ready.
		return nil, errors.Join(fmt.Errorf("pgtesttc: run %s: %w", image, err), terminate(context.WithoutCancel(ctx), ctr))
	}
	s, err := open(ctx, ctr, nil)
	if err != nil {
		return nil, errors.Join(err, terminate(context.WithoutCancel(ctx), ctr))
	}
	s.owned = true
	return s, nil
}

// FromContainer opens a pgtest Server on ctr, a ready container of testcontainers-go's postgres
// module that the caller runs (and terminates: Close leaves it running). The databases are
// made as the container's POSTGRES_USER, which the official image makes a superuser. opts are
// pgtest's server-level options (WithProgress); the migrations are named per database, in New,
// NewPool or Database.
func FromContainer(ctx context.Context, ctr *tcpostgres.PostgresContainer, opts ...pgtest.Option) (*Server, error) {
	if ctr == nil {
		return nil, errors.New("pgtesttc: FromContainer: nil container")
	}
	return open(ctx, ctr, opts)
}

func open(ctx context.Context, ctr *tcpostgres.PostgresContainer, opts []pgtest.Option) (*Server, error) {
	adminURL, err := AdminURL(ctx, ctr)
	if err != nil {
		return nil, err
	}
	srv, err := pgtest.Open(ctx, adminURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("pgtesttc: container %s: %w", shortID(ctr), err)
	}
	return &Server{Server: srv, ctr: ctr}, nil
}

// Container is the container the Server's databases live on.
func (s *Server) Container() *tcpostgres.PostgresContainer { return s.ctr }

// Close closes the pgtest Server (the clones nobody took are dropped; databases handed out
// stay until their Drop or their test's cleanup) and terminates the container when Start ran
// it.
func (s *Server) Close(ctx context.Context) error {
	err := s.Server.Close(ctx)
	if s.owned {
		s.owned = false
		err = errors.Join(err, terminate(ctx, s.ctr))
	}
	return err
}

// AdminURL is the superuser URL of ctr's server as seen from the host: the user, password and
// database of its POSTGRES_* variables (percent-encoded, unlike the module's ConnectionString)
// at the host and port testcontainers-go maps 5432 to. A password given as
// POSTGRES_PASSWORD_FILE is not known here: open such a container with pgtest.Open and a URL
// of your own.
func AdminURL(ctx context.Context, ctr *tcpostgres.PostgresContainer) (string, error) {
	info, err := ctr.Inspect(ctx)
	if err != nil {
		return "", fmt.Errorf("pgtesttc: inspect container %s: %w", shortID(ctr), err)
	}
	var env []string
	if info.Config != nil {
		env = info.Config.Env
	}
	endpoint, err := ctr.PortEndpoint(ctx, port, "")
	if err != nil {
		return "", fmt.Errorf("pgtesttc: container %s: the host port of %s: %w", shortID(ctr), port, err)
	}
	return adminURL(env, endpoint), nil
}

// adminURL builds the URL from a container's environment (the official image's defaults for
// what it leaves out: user postgres, database named after the user, and no password for
// POSTGRES_HOST_AUTH_METHOD=trust) and its host:port.
func adminURL(env []string, endpoint string) string {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	user := vars["POSTGRES_USER"]
	if user == "" {
		user = "postgres"
	}
	db := vars["POSTGRES_DB"]
	if db == "" {
		db = user
	}
	u := &url.URL{Scheme: "postgres", Host: endpoint, Path: "/" + db}
	if pw, ok := vars["POSTGRES_PASSWORD"]; ok && pw != "" {
		u.User = url.UserPassword(user, pw)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// terminate removes a container Start ran, with its anonymous volumes; nil is nothing to do.
func terminate(ctx context.Context, ctr *tcpostgres.PostgresContainer) error {
	if ctr == nil {
		return nil
	}
	if err := testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx), testcontainers.StopTimeout(stopTimeout)); err != nil {
		return fmt.Errorf("pgtesttc: terminate container %s: %w", shortID(ctr), err)
	}
	return nil
}

func shortID(ctr *tcpostgres.PostgresContainer) string {
	id := ctr.GetContainerID()
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgtesttc: password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
