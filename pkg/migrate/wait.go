package migrate

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// WaitReady connects with cfg until the server answers a query or ctx ends.
// On failure it returns the last connection error along with ctx's error,
// so the caller can say why the database never became ready.
func WaitReady(ctx context.Context, cfg *pgx.ConnConfig) (last error, err error) {
	delay := 50 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = ping(attempt, cfg)
		cancel()
		if last == nil {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func ping(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "select 1")
	return err
}
