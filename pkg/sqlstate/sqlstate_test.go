package sqlstate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestIs(t *testing.T) {
	refused := &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	for _, tc := range []struct {
		err  error
		code string
		want bool
	}{
		{refused, "28P01", true},
		{fmt.Errorf("connect: %w", refused), "28P01", true},
		{refused, "42P04", false},
		{errors.New("28P01"), "28P01", false},
		{nil, "28P01", false},
	} {
		if got := Is(tc.err, tc.code); got != tc.want {
			t.Errorf("Is(%v, %q) = %v, want %v", tc.err, tc.code, got, tc.want)
		}
	}
}
