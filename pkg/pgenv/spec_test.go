package pgenv

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/exitcode"
)

func validSpec() Spec {
	return Spec{
		Project: "myapp", Environment: "dev", Port: 5433,
		Database: "myapp_dev", User: "myapp_user", Password: "pw", AdminPassword: "admin",
	}
}

func TestSpecDefaults(t *testing.T) {
	s, err := validSpec().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Project: "myapp", Environment: "dev", Port: 5433,
		Database: "myapp_dev", User: "myapp_user", Password: "pw", AdminPassword: "admin",
		Image: DefaultImage, Bind: DefaultBind, ReadyTimeout: DefaultReadyTimeout,
		Container: "myapp-dev-postgres", Network: "myapp-dev", Volume: "myapp-dev-pgdata",
	}
	if s != want {
		t.Errorf("withDefaults() = %+v\nwant %+v", s, want)
	}
}

func TestSpecRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string // in the message
	}{
		{"bad project", func(s *Spec) { s.Project = "My App" }, "project"},
		{"empty environment", func(s *Spec) { s.Environment = "" }, "environment"},
		{"port zero", func(s *Spec) { s.Port = 0 }, "`port:`"},
		{"port too big", func(s *Spec) { s.Port = 65536 }, "65536"},
		{"bind not an IP", func(s *Spec) { s.Bind = "localhost" }, "bind"},
		{"empty database", func(s *Spec) { s.Database = "" }, "empty database"},
		{"long user", func(s *Spec) { s.User = strings.Repeat("u", 64) }, "at most 63"},
		{"NUL in database", func(s *Spec) { s.Database = "a\x00b" }, "NUL"},
		{"superuser as app user", func(s *Spec) { s.User = AdminUser }, "superuser"},
		{"empty password", func(s *Spec) { s.Password = "" }, "empty password"},
		{"NUL in password", func(s *Spec) { s.Password = "a\x00" }, "NUL"},
		{"empty admin password", func(s *Spec) { s.AdminPassword = "" }, "admin password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.modify(&s)
			_, err := s.withDefaults()
			if exitcode.Of(err) != exitcode.Usage {
				t.Fatalf("withDefaults() = %v (exit %d), want exit %d", err, exitcode.Of(err), exitcode.Usage)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	// 63 bytes of a multi-byte name are fine: the limit is PostgreSQL's, in bytes.
	s := validSpec()
	s.User = strings.Repeat("é", 31) + "x"
	if _, err := s.withDefaults(); err != nil {
		t.Errorf("63-byte user: %v", err)
	}
}

func TestConfigHash(t *testing.T) {
	base, err := validSpec().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	h0, err := base.configHash()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := base.configHash(); again != h0 {
		t.Fatalf("hash not stable: %s then %s", h0, again)
	}
	if strings.Contains(h0, base.AdminPassword) {
		t.Fatalf("hash %s shows the admin password", h0)
	}
	changes := []struct {
		name   string
		modify func(*Spec)
		differ bool
	}{
		{"image", func(s *Spec) { s.Image = "postgres:16" }, true},
		{"port", func(s *Spec) { s.Port = 5434 }, true},
		{"bind", func(s *Spec) { s.Bind = "0.0.0.0" }, true},
		{"admin password", func(s *Spec) { s.AdminPassword = "other" }, true},
		{"volume", func(s *Spec) { s.Volume = "v2" }, true},
		// The app role is provisioned over SQL: changing it needs no new container.
		{"app password", func(s *Spec) { s.Password = "other" }, false},
		{"database", func(s *Spec) { s.Database = "other" }, false},
		{"ready timeout", func(s *Spec) { s.ReadyTimeout = 1 }, false},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.modify(&s)
			h, err := s.configHash()
			if err != nil {
				t.Fatal(err)
			}
			if (h != h0) != tt.differ {
				t.Errorf("hash changed = %v, want %v", h != h0, tt.differ)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	hostile := `x"; DROP DATABASE postgres; --/?#%@:`
	tests := []struct {
		bind, wantHost string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"0.0.0.0", "127.0.0.1"},
		{"::", "::1"},
		{"192.168.1.5", "192.168.1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.bind, func(t *testing.T) {
			s := validSpec()
			s.Bind, s.User, s.Database, s.Password = tt.bind, hostile+"u", hostile+"d", hostile+"p'\\"
			s, err := s.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				url, host string
				port      uint16
			}{{s.HostURL(), tt.wantHost, 5433}, {s.ContainerURL(), "myapp-dev-postgres", 5432}} {
				cfg, err := pgx.ParseConfig(c.url)
				if err != nil {
					t.Fatalf("parse %s: %v", c.url, err)
				}
				if cfg.Host != c.host || cfg.Port != c.port || cfg.User != s.User || cfg.Database != s.Database || cfg.Password != s.Password {
					t.Errorf("%s parses as host %q port %d user %q db %q password %q", c.url, cfg.Host, cfg.Port, cfg.User, cfg.Database, cfg.Password)
				}
			}
		})
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := map[string]string{
		"plain":       "'plain'",
		"it's":        "'it''s'",
		`back\slash`:  `E'back\\slash'`,
		`\'; --`:      `E'\\''; --'`,
		"$$dollar$$":  "'$$dollar$$'",
		"ünïcødé ✓":   "'ünïcødé ✓'",
		"''":          "''''''",
		"new\nline\t": "'new\nline\t'",
	}
	for in, want := range tests {
		if got := quoteLiteral(in); got != want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}
