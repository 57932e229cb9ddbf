// Package sqlstate tells PostgreSQL's errors apart by their SQLSTATE code.
package sqlstate

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Is reports whether err is, or wraps, a server error with the given SQLSTATE code
// ("28P01": a refused password, "42P04": a database that exists, …).
func Is(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
