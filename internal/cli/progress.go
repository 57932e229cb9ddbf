package cli

import (
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
func (a *App) Report(e progress.Event) {
	attrs := make([]any, 0, len(e.Attrs)+3)
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
	log := a.Logger
	switch e.Kind {
	case progress.Start:
		a.Progress.Start(e.Step)
	case progress.Done:
		a.Progress.Done(e.Step, nil)
		log.Debug(e.Op+": done", attrs...)
	case progress.Failed:
		a.Progress.Done(e.Step, logging.ErrFailed)
		log.Debug(e.Op+": failed", attrs...)
	case progress.Wait:
		a.Progress.Step(e.Message)
		log.Debug(e.Message, attrs...)
	case progress.Info:
		log.Debug(e.Message, attrs...)
	case progress.Warn:
		log.Warn(e.Message, attrs...)
	}
}
