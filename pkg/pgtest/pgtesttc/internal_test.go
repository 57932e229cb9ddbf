package pgtesttc

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdminURL checks that the URL pgx parses back is the container's login, whatever its
// password holds, with the official image's defaults for what the environment leaves out.
func TestAdminURL(t *testing.T) {
	cases := []struct {
		name     string
		env      []string
		endpoint string
		user     string
		password string
		database string
		host     string
		port     uint16
	}{
		{
			name:     "all set",
			env:      []string{"PATH=/usr/bin", "POSTGRES_USER=app", "POSTGRES_PASSWORD=s3cret", "POSTGRES_DB=appdb"},
			endpoint: "localhost:49153",
			user:     "app", password: "s3cret", database: "appdb", host: "localhost", port: 49153,
		},
		{
			name:     "hostile password",
			env:      []string{"POSTGRES_PASSWORD=p@ss w/rd:#%+?&=x"},
			endpoint: "127.0.0.1:5433",
			user:     "postgres", password: "p@ss w/rd:#%+?&=x", database: "postgres", host: "127.0.0.1", port: 5433,
		},
		{
			name:     "database defaults to the user",
			env:      []string{"POSTGRES_USER=tc", "POSTGRES_PASSWORD=pw"},
			endpoint: "localhost:5432",
			user:     "tc", password: "pw", database: "tc", host: "localhost", port: 5432,
		},
		{
			name:     "trust, no password",
			env:      []string{"POSTGRES_HOST_AUTH_METHOD=trust", "POSTGRES_PASSWORD="},
			endpoint: "[::1]:40000",
			user:     "postgres", database: "postgres", host: "::1", port: 40000,
		},
		{
			name:     "value with an equals sign",
			env:      []string{"POSTGRES_PASSWORD=a=b", "POSTGRES_DB=my db"},
			endpoint: "localhost:1",
			user:     "postgres", password: "a=b", database: "my db", host: "localhost", port: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := adminURL(c.env, c.endpoint)
			cfg, err := pgconn.ParseConfig(u)
			if err != nil {
				t.Fatalf("pgx cannot parse %q: %v", u, err)
			}
			if cfg.User != c.user || cfg.Password != c.password || cfg.Database != c.database || cfg.Host != c.host || cfg.Port != c.port {
				t.Errorf("%q parses as user %q password %q database %q at %s:%d; want %q %q %q at %s:%d",
					u, cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port,
					c.user, c.password, c.database, c.host, c.port)
			}
		})
	}
}
