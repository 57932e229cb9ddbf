package exitcode

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

type coded struct{}

func (coded) Error() string { return "coded" }
func (coded) ExitCode() int { return Check }

func TestOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain", errors.New("boom"), Failure},
		{"usage", Usagef("bad flag %q", "-x"), Usage},
		{"wrapped check", fmt.Errorf("ctx: %w", Checkf("drift")), Check},
		{"coder", fmt.Errorf("ctx: %w", coded{}), Check},
		{"canceled", fmt.Errorf("run: %w", context.Canceled), Interrupted},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), Timeout},
		{"explicit beats deadline", With(Usage, context.DeadlineExceeded), Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
	if With(Usage, nil) != nil {
		t.Error("With(code, nil) must be nil")
	}
}
