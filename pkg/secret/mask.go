package secret

import (
	"net/url"
	"regexp"
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

// Mask returns s with every occurrence of every secret replaced by ****,
// and the password of every URL in s (scheme://user:password@host, any
// scheme in any case) too, registered or not: a URL that reaches an error
// message by a path nobody registered must not carry its password along.
func (m *Masker) Mask(s string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.short[s] {
		return Mask
	}
	if len(m.patterns) > 0 {
		s = m.replacer.Replace(s)
	}
	return maskURLsIn(s)
}

// urlStart finds where a URL may start in text: a scheme and "://".
var urlStart = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://`)

// maskURLsIn applies MaskURL to every URL in s; a URL ends at white space
// or a quote.
func maskURLsIn(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range urlStart.FindAllStringIndex(s, -1) {
		if loc[0] < last {
			continue
		}
		end := len(s)
		if i := strings.IndexAny(s[loc[1]:], " \t\r\n\"'`<>"); i >= 0 {
			end = loc[1] + i
		}
		b.WriteString(s[last:loc[0]])
		b.WriteString(MaskURL(s[loc[0]:end]))
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// Patterns returns every string Mask hides (the values and their encoded
// forms), longest first: what to register with ::add-mask:: under GitHub
// Actions.
func (m *Masker) Patterns() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.patterns)
}

// MaskValue hides a secret value for a report: a URL keeps its shape with only its password
// masked, so a person still sees where it points; anything else is ****.
func MaskValue(v string) string {
	if m := MaskURL(v); m != v {
		return m
	}
	return Mask
}

// MaskURL returns u with the password of its userinfo replaced by ****. It
// works on the text rather than a parsed URL so that even a URL net/url
// refuses (an unescaped '/' or '%' in the password) does not leak; any
// scheme, in any case, is a URL's.
func MaskURL(u string) string {
	from, to, ok := userinfoPassword(u)
	if !ok {
		return u
	}
	return u[:from] + Mask + u[to:]
}

// userinfoPassword returns the byte range of the password in the userinfo
// of the URL u, as a person would read it.
func userinfoPassword(u string) (from, to int, ok bool) {
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return 0, 0, false
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
			return 0, 0, false
		}
		next := strings.Index(rest[authEnd:], "@")
		if next < 0 {
			return 0, 0, false
		}
		at = authEnd + next
	}
	// A password pasted without percent-encoding may hold '@' itself
	// ("u:p@ss/w #x@host"): the readings above end it at its first '@' and
	// would show the rest. A later '@' ends it instead, unless it is in a
	// query ("?email=a@b"; a '?' after a '#' starts none); hiding a host is
	// better than showing part of a password.
	tail := rest[at+1:]
	limit := len(tail)
	if q := strings.IndexByte(tail, '?'); q >= 0 && !strings.Contains(tail[:q], "#") {
		limit = q
	}
	if last := strings.LastIndex(tail[:limit], "@"); last >= 0 {
		at += 1 + last
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return 0, 0, false
	}
	return start + colon + 1, start + at, true
}

// DSNPasswords returns the passwords a connection string carries, in every
// form an error message may quote them: as written, unescaped and
// percent-decoded. It reads every form libpq and pgx accept (a URL, any
// scheme in any case, with the password in its userinfo or a password=
// parameter; keyword=value pairs, quoted or not, with spaces around '=')
// and malformed ones as well as it can, since the strings a parser rejects
// are the ones its error messages quote. Register them with Masker.Add
// before the string is parsed.
func DSNPasswords(dsn string) []string {
	var out []string
	for _, sp := range passwordSpans(dsn) {
		raw := dsn[sp[0]:sp[1]]
		forms := []string{raw, unescapeKeyword(raw)}
		if dec, err := url.PathUnescape(raw); err == nil {
			forms = append(forms, dec)
		}
		if dec, err := url.QueryUnescape(raw); err == nil {
			forms = append(forms, dec)
		}
		for _, f := range forms {
			if f != "" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// MaskDSN returns dsn with every password DSNPasswords finds replaced by
// ****, for messages that must show a connection string.
func MaskDSN(dsn string) string {
	spans := passwordSpans(dsn)
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp[0] < last {
			// Overlapping readings of one password: mask their union once.
			last = max(last, sp[1])
			continue
		}
		b.WriteString(dsn[last:sp[0]])
		b.WriteString(Mask)
		last = sp[1]
	}
	b.WriteString(dsn[last:])
	return b.String()
}

// urlPrefix is a URL's start as libpq would see it if it were lower-case.
var urlPrefix = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9+.-]*://`)

// passwordSpans returns the byte ranges of dsn that may be passwords.
func passwordSpans(dsn string) [][2]int {
	var spans [][2]int
	add := func(from, to int) {
		if from < to {
			spans = append(spans, [2]int{from, to})
		}
	}
	if loc := urlPrefix.FindStringIndex(dsn); loc != nil {
		// libpq ends the userinfo at the first '@' before any '/', and
		// the user name at its first ':'.
		rest := dsn[loc[1]:]
		if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
			if c := strings.IndexByte(rest[:i], ':'); c >= 0 {
				add(loc[1]+c+1, loc[1]+i)
			}
		}
		if from, to, ok := userinfoPassword(dsn); ok {
			add(from, to)
		}
		if q := strings.IndexByte(dsn, '?'); q >= 0 {
			off := q + 1
			for _, kv := range strings.Split(dsn[q+1:], "&") {
				key, _, hasValue := strings.Cut(kv, "=")
				decoded, err := url.QueryUnescape(key)
				if hasValue && (isPasswordKey(key) || err == nil && isPasswordKey(decoded)) {
					add(off+len(key)+1, off+len(kv))
				}
				off += len(kv) + 1
			}
		}
		return spans
	}
	for _, kv := range keywordValues(dsn) {
		if isPasswordKey(dsn[kv[0]:kv[1]]) {
			add(kv[2], kv[3])
		}
	}
	return spans
}

func isPasswordKey(k string) bool {
	return strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword")
}

// keywordValues scans libpq's keyword=value form leniently (a word without
// '=' is skipped, an unterminated quote runs to the end) and returns, for
// each pair, the byte ranges of the keyword and of the value (inside its
// quotes), as [keyFrom, keyTo, valueFrom, valueTo].
func keywordValues(s string) [][4]int {
	var out [][4]int
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	i := 0
	skip := func() {
		for i < len(s) && space(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out
		}
		k := i
		for i < len(s) && s[i] != '=' && !space(s[i]) {
			i++
		}
		keyEnd := i
		skip()
		if i >= len(s) || s[i] != '=' {
			continue
		}
		i++
		skip()
		var from, to int
		if i < len(s) && s[i] == '\'' {
			i++
			from = i
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			to = min(i, len(s))
			i++
		} else {
			from = i
			for i < len(s) && !space(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i = min(i, len(s))
			to = i
		}
		out = append(out, [4]int{k, keyEnd, from, to})
	}
}

// unescapeKeyword drops the backslashes of a keyword=value value.
func unescapeKeyword(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
