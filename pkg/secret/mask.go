package secret

import (
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what secrets are replaced with.
const Mask = "****"

// MinMaskLength is the shortest secret masked wherever it occurs. Shorter
// values ("1", "dev", "yes") would blank out ordinary words all over the
// output, so they are masked only when they are the whole text.
const MinMaskLength = 4

// Masker hides secret values in text meant for people. It is safe for
// concurrent use.
type Masker struct {
	mu       sync.RWMutex
	patterns []string // every form masked, longest first
	short    map[string]bool
	replacer *strings.Replacer
}

// NewMasker returns a Masker for the given secret values. Besides each value
// it also masks the value's URL-encoded forms (query, path and userinfo
// encoding), since secrets often travel inside connection URLs.
func NewMasker(secrets ...string) *Masker {
	m := &Masker{}
	m.Add(secrets...)
	return m
}

// Add registers more secrets, as they become known (a generated password, a
// URL read from a file); empty strings are ignored.
func (m *Masker) Add(secrets ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.short == nil {
		m.short = map[string]bool{}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if len(s) < MinMaskLength {
			m.short[s] = true
			continue
		}
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), userinfoEscape(s)} {
			if !slices.Contains(m.patterns, form) {
				m.patterns = append(m.patterns, form)
			}
		}
	}
	// strings.Replacer tries its patterns in argument order at each
	// position, so longest first hides a whole secret rather than a prefix
	// of it that happens to be another secret.
	slices.SortStableFunc(m.patterns, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(m.patterns))
	for _, p := range m.patterns {
		pairs = append(pairs, p, Mask)
	}
	m.replacer = strings.NewReplacer(pairs...)
}

func userinfoEscape(s string) string {
	return strings.TrimPrefix(url.UserPassword("", s).String(), ":")
}

// Mask returns s with every occurrence of every secret replaced by ****.
func (m *Masker) Mask(s string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.short[s] {
		return Mask
	}
	if len(m.patterns) == 0 {
		return s
	}
	return m.replacer.Replace(s)
}

// Patterns returns every string Mask hides (the values and their encoded
// forms), longest first: what to register with ::add-mask:: under GitHub
// Actions.
func (m *Masker) Patterns() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.patterns)
}

// MaskURL returns u with the password of its userinfo replaced by ****. It
// works on the text rather than a parsed URL so that even a URL net/url
// refuses (an unescaped '/' or '%' in the password) does not leak.
func MaskURL(u string) string {
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return u
	}
	start := scheme + 3
	rest := u[start:]
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	// As net/url does: the authority ends at the first '/', '?' or '#',
	// and the userinfo at its last '@'.
	at := strings.LastIndex(rest[:authEnd], "@")
	if at < 0 {
		// "user:pa/ss@host": an unescaped delimiter in the password cut
		// the authority short, leaving something that is not host:port.
		auth := rest[:authEnd]
		colon := strings.Index(auth, ":")
		if colon < 0 || strings.HasPrefix(auth, "[") || allDigits(auth[colon+1:]) {
			return u
		}
		next := strings.Index(rest[authEnd:], "@")
		if next < 0 {
			return u
		}
		at = authEnd + next
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return u
	}
	return u[:start+colon+1] + Mask + rest[at:]
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
