package cli

import (
	"context"
	"log/slog"

	"github.com/poststack/poststack/pkg/logging"
	"github.com/poststack/poststack/pkg/progress"
)

// Report renders a progress event of any package: steps through
// App.Progress (a status line on a terminal, a ::group:: under GitHub
// Actions, plain lines otherwise, nothing with --quiet), and every event as
// a log record. Pass it as the package's progress hook:
//
//	migrate.WithProgress(app.Report)
//	ephemeral.Options{Progress: app.Report}
//
// For steps that run at the same time, use Board.
func (a *App) Report(e progress.Event) {
	switch e.Kind {
	case progress.Start:
		a.Progress.Start(e.Step)
	case progress.Done:
		a.Progress.Done(e.Step, nil)
	case progress.Failed:
		a.Progress.Done(e.Step, logging.ErrFailed)
	case progress.Wait:
		a.Progress.Step(e.Message)
	}
	a.logEvent(e, slog.LevelWarn)
}

// logEvent logs e: a step's end, a wait and an info at debug level, a
// warning at warn; a step's start is not logged (its end is, with the
// time it took).
func (a *App) logEvent(e progress.Event, warn slog.Level) {
	attrs := make([]any, 0, len(e.Attrs)+4)
	attrs = append(attrs, slog.String("op", e.Op))
	if e.Step != "" {
		attrs = append(attrs, slog.String("step", e.Step))
	}
	for _, at := range e.Attrs {
		attrs = append(attrs, at)
	}
	if e.Elapsed > 0 {
		attrs = append(attrs, slog.Duration("elapsed", e.Elapsed))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	if e.Log != "" {
		attrs = append(attrs, slog.String("log", e.Log))
	}
	log := a.Logger
	switch e.Kind {
	case progress.Done, progress.Failed:
		if e.Message != "" {
			attrs = append(attrs, slog.String("state", e.Message))
		}
		log.Debug(e.Op+": "+string(e.Kind), attrs...)
	case progress.Wait, progress.Info:
		log.Debug(e.Message, attrs...)
	case progress.Warn:
		log.Log(context.Background(), warn, e.Message, attrs...)
	}
}
