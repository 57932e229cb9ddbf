package pgnative_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/pgnative"
	"github.com/poststack/poststack/pkg/progress"
)

func TestZZRealRules(t *testing.T) {
	if os.Getenv("PGN_STRESS") == "" {
		t.Skip()
	}
	out, err := exec.Command("iptables", "-t", "nat", "-S", "NETAVARK-HOSTPORT-DNAT").Output()
	if err != nil {
		t.Skip(err)
	}
	var hijacked []int
	for _, m := range regexp.MustCompile(`--dport (\d+)`).FindAllStringSubmatch(string(out), -1) {
		p, _ := strconv.Atoi(m[1])
		if l, err := net.Listen("tcp", "127.0.0.1:"+m[1]); err == nil {
			l.Close()
			hijacked = append(hijacked, p)
		}
	}
	t.Logf("bindable forwarded ports: %v", hijacked)
	for _, hp := range hijacked {
		n := 0
		pick := func() (int, error) {
			n++
			if n == 1 {
				return hp, nil
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			defer l.Close()
			return l.Addr().(*net.TCPAddr).Port, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := pgnative.Start(ctx, pgnative.WithCacheDir(sharedCache), pgnative.WithPortPicker(pick),
			pgnative.WithProgress(func(e progress.Event) {
				if e.Kind == progress.Warn {
					t.Logf("%d: %s", hp, progress.Line(e))
				}
			}))
		cancel()
		if err != nil {
			t.Errorf("%d: %v", hp, err)
			continue
		}
		c := connect(t, srv.URL())
		queryString(t, c, "select 'x'")
		t.Logf("%d -> server on %d, reached", hp, srv.Port())
		srv.Stop(context.Background())
	}
}
