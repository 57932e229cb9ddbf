// Package pgenv runs an environment's PostgreSQL: one container per project and environment
// with its data in a named volume, published on the host, and the application's role and
// database provisioned over SQL. It also checks an external database that needs no container.
package pgenv

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
)

// Defaults of Spec.
const (
	DefaultImage        = "poststack/postgres:latest"
	DefaultBind         = "127.0.0.1"
	DefaultReadyTimeout = 60 * time.Second
)

// Labels put on the container, network and volume. LabelConfig holds a hash of the settings
// that can only change by recreating the container.
const (
	LabelProject     = "io.poststack.project"
	LabelEnvironment = "io.poststack.environment"
	LabelService     = "io.poststack.service"
	LabelConfig      = "io.poststack.config"
)

// AdminUser is the superuser the container is created with (POSTGRES_USER).
const AdminUser = "postgres"

// containerPort is where every official-compatible image listens.
const containerPort = 5432

// dataDir is PGDATA of the official image contract, declared there as a VOLUME.
const dataDir = "/var/lib/postgresql/data"

// Spec describes one environment's PostgreSQL container and the role and database it serves.
type Spec struct {
	Project, Environment string // validated with config.ValidName
	Image                string // default DefaultImage
	Bind                 string // host address the port is published on; default DefaultBind
	Port                 int    // host port, 1..65535
	// Database, User and Password are the application's database and the role that owns it.
	// User must not be AdminUser: the application role is not a superuser.
	Database, User, Password string
	// AdminPassword is the superuser's password. It must stay the same across runs (generate it
	// once and store it): a change recreates the container and resets the password in the
	// existing data directory.
	AdminPassword string
	ReadyTimeout  time.Duration // default DefaultReadyTimeout
	// Container, Network and Volume default to <project>-<env>-postgres, <project>-<env> and
	// <project>-<env>-pgdata.
	Container, Network, Volume string
}

// withDefaults returns s with every empty optional field set and checks it; a bad spec is a
// usage error (exit 2) and nothing is touched.
func (s Spec) withDefaults() (Spec, error) {
	if !config.ValidName(s.Project) {
		return s, exitcode.Usagef("postgres: invalid project name %q", s.Project)
	}
	if !config.ValidName(s.Environment) {
		return s, exitcode.Usagef("postgres: invalid environment name %q", s.Environment)
	}
	base := s.Project + "-" + s.Environment
	if s.Image == "" {
		s.Image = DefaultImage
	}
	if s.Bind == "" {
		s.Bind = DefaultBind
	}
	if net.ParseIP(s.Bind) == nil {
		return s, exitcode.Usagef("postgres: bind address %q is not an IP address", s.Bind)
	}
	if s.Port < 1 || s.Port > 65535 {
		return s, exitcode.Usagef("postgres: port %d is out of range 1..65535; set `port:` in .poststack.yml", s.Port)
	}
	if s.ReadyTimeout <= 0 {
		s.ReadyTimeout = DefaultReadyTimeout
	}
	if s.Container == "" {
		s.Container = base + "-postgres"
	}
	if s.Network == "" {
		s.Network = base
	}
	if s.Volume == "" {
		s.Volume = base + "-pgdata"
	}
	if err := checkIdentifier("database", s.Database); err != nil {
		return s, err
	}
	if err := checkIdentifier("user", s.User); err != nil {
		return s, err
	}
	if s.User == AdminUser {
		return s, exitcode.Usagef("postgres: user %q is the container's superuser; choose another name for the application role", s.User)
	}
	if err := checkPassword("password", s.Password); err != nil {
		return s, err
	}
	if err := checkPassword("admin password", s.AdminPassword); err != nil {
		return s, err
	}
	return s, nil
}

// labels are those of everything Up creates; config is added to the container's.
func (s Spec) labels() map[string]string {
	return map[string]string{
		LabelProject:     s.Project,
		LabelEnvironment: s.Environment,
		LabelService:     "postgres",
	}
}

// configHash covers the settings baked into a container at creation. The image ID is not in
// it: it is compared with the container's own, so that an image the engine pulls on the first
// run does not cause a second, needless recreation.
func (s Spec) configHash() (string, error) {
	h := sha256.New()
	// The admin password enters through a salted, slow key derivation so that the label, which
	// anyone allowed to inspect containers can read, is no cheap oracle for guessing it.
	key, err := pbkdf2.Key(sha256.New, s.AdminPassword, []byte("poststack-pgenv:"+s.Container), 10000, 32)
	if err != nil {
		return "", fmt.Errorf("postgres: hash the container settings: %w", err)
	}
	for _, f := range []string{"v1", s.Image, s.Bind, strconv.Itoa(s.Port), s.Network, s.Volume, hex.EncodeToString(key)} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hostAddr is where the host reaches the published port.
func (s Spec) hostAddr() string {
	return net.JoinHostPort(s.hostIP(), strconv.Itoa(s.Port))
}

// hostIP is the address of hostAddr: a wildcard bind is reached on loopback.
func (s Spec) hostIP() string {
	if ip := net.ParseIP(s.Bind); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return s.Bind
}

// databaseURL renders a libpq URL; user and database are escaped, so any name works.
func databaseURL(hostport, user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     hostport,
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// HostURL is the application's URL as seen from the host.
func (s Spec) HostURL() string {
	return databaseURL(s.hostAddr(), s.User, s.Password, s.Database)
}

// ContainerURL is the application's URL as seen from containers on the environment's network.
func (s Spec) ContainerURL() string {
	return databaseURL(net.JoinHostPort(s.Container, strconv.Itoa(containerPort)), s.User, s.Password, s.Database)
}

// adminURL is the superuser's URL from the host, on the maintenance database.
// AdminURL is the superuser's URL as seen from the host; it carries AdminPassword.
func (s Spec) AdminURL() string { return s.adminURL() }

func (s Spec) adminURL() string {
	return databaseURL(s.hostAddr(), AdminUser, s.AdminPassword, "postgres")
}
