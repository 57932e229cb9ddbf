package secret

import (
	"slices"
	"strings"
	"testing"
)

// hostileDSNs are connection strings, well-formed or not, that carry the
// password "s3cr3t-pw" (want lists the forms that must be found).
var hostileDSNs = []struct {
	name, dsn string
	want      []string
}{
	{"url", "postgres://u:s3cr3t-pw@h:5432/db", []string{"s3cr3t-pw"}},
	{"upper-case scheme", "POSTGRES://u:s3cr3t-pw@h:5432/db", []string{"s3cr3t-pw"}},
	{"mixed-case scheme", "PostgreSQL://u:s3cr3t-pw@h/db", []string{"s3cr3t-pw"}},
	{"other scheme", "postgis://u:s3cr3t-pw@h/db", []string{"s3cr3t-pw"}},
	{"bad port", "postgres://u:s3cr3t-pw@h:abc/db", []string{"s3cr3t-pw"}},
	{"unescaped slash", "postgres://u:s3cr3t/-pw@h/db", []string{"s3cr3t/-pw"}},
	{"unescaped at", "postgres://u:s3cr3t@-pw@h/db", []string{"s3cr3t@-pw"}},
	{"percent-encoded", "postgres://u:s3cr3t%2D%70w@h/db", []string{"s3cr3t%2D%70w", "s3cr3t-pw"}},
	{"query parameter", "postgres://u@h/db?sslmode=disable&password=s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"encoded query key", "postgres://u@h/db?pass%77ord=s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"sslpassword", "postgres://u@h/db?sslpassword=s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"keyword/value", "host=x password=s3cr3t-pw port=abc", []string{"s3cr3t-pw"}},
	{"spaces around =", "host=x password = s3cr3t-pw port=abc", []string{"s3cr3t-pw"}},
	{"quoted", "host=x password='s3cr3t-pw' port=abc", []string{"s3cr3t-pw"}},
	{"quoted with space", "host=x password='s3cr3t -pw' port=abc", []string{"s3cr3t -pw"}},
	{"escaped space", `host=x password=s3cr3t\ -pw port=abc`, []string{`s3cr3t\ -pw`, "s3cr3t -pw"}},
	{"escaped quote", `host=x password='s3cr3t\'-pw' port=abc`, []string{`s3cr3t\'-pw`, "s3cr3t'-pw"}},
	{"unterminated quote", "host=x password='s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"upper-case keyword", "host=x PASSWORD=s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"after a stray word", "host=x oops password=s3cr3t-pw", []string{"s3cr3t-pw"}},
	{"tabs and newlines", "host=x\tpassword=\ns3cr3t-pw\r\nport=1", []string{"s3cr3t-pw"}},
}

func TestHostileDSNPasswordsFindsEveryForm(t *testing.T) {
	for _, tt := range hostileDSNs {
		t.Run(tt.name, func(t *testing.T) {
			got := DSNPasswords(tt.dsn)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("DSNPasswords(%q) = %q: missing %q", tt.dsn, got, w)
				}
			}
			masked := MaskDSN(tt.dsn)
			if strings.Contains(masked, "s3cr3t") || !strings.Contains(masked, Mask) {
				t.Errorf("MaskDSN(%q) = %q: the password is not masked", tt.dsn, masked)
			}
			m := NewMasker(got...)
			line := "cannot parse `" + tt.dsn + "`: invalid port"
			if out := m.Mask(line); strings.Contains(out, "s3cr3t") {
				t.Errorf("Mask(%q) = %q", line, out)
			}
		})
	}
}

func TestHostileDSNWithoutPassword(t *testing.T) {
	for _, dsn := range []string{"", "host=x port=5432 user=app", "postgres://u@h/db?sslmode=disable", "postgres://h:5432/db?email=a@b"} {
		if got := DSNPasswords(dsn); len(got) != 0 {
			t.Errorf("DSNPasswords(%q) = %q, want none", dsn, got)
		}
		if got := MaskDSN(dsn); got != dsn {
			t.Errorf("MaskDSN(%q) = %q, want it unchanged", dsn, got)
		}
	}
}

// TestHostileMaskHidesUnregisteredURLPasswords: a URL that reaches a message
// by a path that registered nothing still loses its password, whatever the
// case of its scheme.
func TestHostileMaskHidesUnregisteredURLPasswords(t *testing.T) {
	m := NewMasker()
	tests := []struct{ in, want string }{
		{`parse "POSTGRES://u:s3cr3t-pw@h/db": bad`, `parse "POSTGRES://u:****@h/db": bad`},
		{"near Postgres://u:s3cr3t-pw@h:1/db and postgres://v:other-pw@h/x", "near Postgres://u:****@h:1/db and postgres://v:****@h/x"},
		{"`postgresql://u:s3cr3t/pw@h/db`", "`postgresql://u:****@h/db`"},
		{"https://example.com:8443/path@x", "https://example.com:8443/path@x"},
		{"no url here: a://", "no url here: a://"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskDSNMasksOverlappingReadingsOnce(t *testing.T) {
	// libpq reads the password as "s3cr3t", net/url as "s3cr3t@-pw".
	if got, want := MaskDSN("postgres://u:s3cr3t@-pw@h/db"), "postgres://u:****@h/db"; got != want {
		t.Errorf("MaskDSN = %q, want %q", got, want)
	}
}
