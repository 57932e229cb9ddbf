package logging

import (
	"context"
	"fmt"
	"log/slog"
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
