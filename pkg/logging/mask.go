package logging

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// maskHandler rewrites messages and string-like attributes through mask
// before the inner handler formats them.
type maskHandler struct {
	inner slog.Handler
	mask  func(string) string
}

func (h *maskHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *maskHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(maskAttr(a, h.mask))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

func (h *maskHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = maskAttr(a, h.mask)
	}
	return &maskHandler{inner: h.inner.WithAttrs(masked), mask: h.mask}
}

func (h *maskHandler) WithGroup(name string) slog.Handler {
	return &maskHandler{inner: h.inner.WithGroup(name), mask: h.mask}
}

// maskAttr masks strings, and errors and Stringers too, because a
// connection error is the usual way a database URL leaks into a log.
func maskAttr(a slog.Attr, mask func(string) string) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, mask(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = maskAttr(ga, mask)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, mask(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, mask(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Secrets is a set of strings to hide in human-facing and logged output. It
// is safe for concurrent use; add secrets as they become known (a generated
// password, a URL read from a file).
type Secrets struct {
	mu   sync.RWMutex
	list []string // longest first, so a secret containing another is hidden whole
}

// Redacted replaces every secret in masked output.
const Redacted = "***"

// Add registers secrets; empty strings are ignored.
func (s *Secrets) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v == "" || contains(s.list, v) {
			continue
		}
		s.list = append(s.list, v)
	}
	sort.SliceStable(s.list, func(i, j int) bool { return len(s.list[i]) > len(s.list[j]) })
}

// Mask returns v with every registered secret replaced by Redacted. It
// suits Options.Mask.
func (s *Secrets) Mask(v string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, secret := range s.list {
		v = strings.ReplaceAll(v, secret, Redacted)
	}
	return v
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
