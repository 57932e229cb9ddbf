// Command substbench measures ps-subst against its baselines in one run and
// prints ratios: throughput against GNU envsubst and compose-go's
// template.Substitute on the same 30 MB file, peak memory on a 1 GB stream,
// and the start-up time of `ps-subst --version`.
//
// Usage: go run ./bench/substbench -ps-subst bin/ps-subst [-size 30] [-big 1024]
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/template"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "substbench:", err)
		os.Exit(1)
	}
}

var vars = map[string]string{
	"APP_NAME":  "myapp",
	"APP_PORT":  "8080",
	"LOG_LEVEL": "debug",
	"DB_HOST":   "myapp-dev-postgres",
	"IMAGE":     "localhost/myapp/app:latest",
}

func run() error {
	bin := flag.String("ps-subst", "bin/ps-subst", "ps-subst binary to measure")
	sizeMB := flag.Int("size", 30, "size of the throughput input in MB")
	bigMB := flag.Int("big", 1024, "size of the streamed input for the memory check in MB (0 skips)")
	rounds := flag.Int("rounds", 3, "timed rounds per tool; the best is kept")
	nestedKB := flag.Int("nested", 1200, "size of the nested-defaults template in kB (0 skips)")
	flag.Parse()

	envsubst, err := exec.LookPath("envsubst")
	if err != nil {
		return fmt.Errorf("GNU envsubst not found (apt-get install gettext-base): %w", err)
	}
	dir, err := os.MkdirTemp("", "substbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	in := filepath.Join(dir, "input.yaml")
	if err := writeInput(in, int64(*sizeMB)<<20); err != nil {
		return err
	}
	env := os.Environ()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	want, err := os.ReadFile(in)
	if err != nil {
		return err
	}

	// Throughput: each tool reads the file on standard input (a template named as an
	// argument is capped at 16 MiB; standard input streams) and writes to a file;
	// outputs must agree.
	outOf := func(name string) string { return filepath.Join(dir, name+".out") }
	psT, err := best(*rounds, func() error { return runTo(outOf("ps-subst"), in, env, *bin) })
	if err != nil {
		return err
	}
	envT, err := best(*rounds, func() error { return runTo(outOf("envsubst"), in, env, envsubst) })
	if err != nil {
		return err
	}
	var composed string
	cgT, err := best(*rounds, func() error {
		data, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		composed, err = template.SubstituteWithOptions(string(data), func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		}, template.WithoutLogging)
		if err != nil {
			return err
		}
		return os.WriteFile(outOf("compose-go"), []byte(composed), 0o600)
	})
	if err != nil {
		return err
	}
	psOut, _ := os.ReadFile(outOf("ps-subst"))
	envOut, _ := os.ReadFile(outOf("envsubst"))
	if !bytes.Equal(psOut, envOut) || string(psOut) != composed {
		return fmt.Errorf("outputs differ: ps-subst %d bytes, envsubst %d bytes, compose-go %d bytes", len(psOut), len(envOut), len(composed))
	}
	mb := float64(len(want)) / (1 << 20)
	fmt.Printf("throughput on %.0f MB (best of %d, identical output from all three):\n", mb, *rounds)
	fmt.Printf("  ps-subst             %8.1f MB/s  %v\n", mb/psT.Seconds(), psT.Round(time.Millisecond))
	fmt.Printf("  envsubst (GNU)       %8.1f MB/s  %v\n", mb/envT.Seconds(), envT.Round(time.Millisecond))
	fmt.Printf("  compose-go template  %8.1f MB/s  %v\n", mb/cgT.Seconds(), cgT.Round(time.Millisecond))
	fmt.Printf("  ratio ps-subst/envsubst speed:   %.2fx  (target >= 1.0)\n", envT.Seconds()/psT.Seconds())
	fmt.Printf("  ratio ps-subst/compose-go speed: %.2fx  (target >= 10)\n", cgT.Seconds()/psT.Seconds())

	if *bigMB > 0 {
		rss, d, err := streamRSS(*bin, env, int64(*bigMB)<<20)
		if err != nil {
			return err
		}
		fmt.Printf("peak memory streaming %d MB through ps-subst (strict, stdin to stdout): %.1f MB RSS in %v  (target < 64 MB)\n",
			*bigMB, float64(rss)/1024, d.Round(time.Millisecond))
	}

	if *nestedKB > 0 {
		kb, d, err := nestedRun(*bin, dir, *nestedKB*1000)
		if err != nil {
			return err
		}
		fmt.Printf("nested defaults ${V0:-${V1:-…x}…}, %d kB on one line: %.1f MB RSS in %v  (issue 9: 84 s and 460 MB before)\n",
			*nestedKB, float64(kb)/1024, d.Round(time.Millisecond))
	}

	vT, err := median(51, func() error { return exec.Command(*bin, "--version").Run() })
	if err != nil {
		return err
	}
	trueT, err := median(51, func() error { return exec.Command("/bin/true").Run() })
	if err != nil {
		return err
	}
	fmt.Printf("ps-subst --version: median %v over 51 runs (/bin/true: %v; ratio %.1fx)  (target < 10ms)\n",
		vT.Round(10*time.Microsecond), trueT.Round(10*time.Microsecond), vT.Seconds()/trueT.Seconds())
	return nil
}

// writeInput writes a YAML-like file of about size bytes with a variable
// reference every ~80 bytes, in the two forms GNU envsubst understands.
func writeInput(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	lines := []string{
		"apiVersion: v1\n",
		"kind: Pod\n",
		"metadata:\n",
		"  name: ${APP_NAME}-pod\n",
		"  labels: {app: $APP_NAME, tier: backend, owner: platform-team}\n",
		"spec:\n",
		"  containers:\n",
		"    - name: app\n",
		"      image: ${IMAGE}\n",
		"      env:\n",
		"        - {name: LOG_LEVEL, value: \"$LOG_LEVEL\"}\n",
		"        - {name: DATABASE_HOST, value: \"${DB_HOST}\"}\n",
		"      ports: [{containerPort: ${APP_PORT}, protocol: TCP}]\n",
		"      # a comment line without any variable in it, as real files have\n",
	}
	var n int64
	for n < size {
		for _, l := range lines {
			m, err := w.WriteString(l)
			if err != nil {
				return err
			}
			n += int64(m)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func runTo(out, in string, env []string, name string, args ...string) error {
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	defer o.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout = o
	cmd.Stderr = os.Stderr
	if len(args) == 0 {
		i, err := os.Open(in)
		if err != nil {
			return err
		}
		defer i.Close()
		cmd.Stdin = i
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// streamRSS pipes size bytes of generated text through ps-subst and returns
// its peak resident set size in KiB. GNU time measures it: Go starts
// children with a vfork-style clone, so the rusage this process gets for a
// child also counts this process's own memory from before the exec.
func streamRSS(bin string, env []string, size int64) (int64, time.Duration, error) {
	gnuTime, err := exec.LookPath("time")
	if err != nil || !strings.HasPrefix(gnuTime, "/usr/bin") {
		gnuTime = "/usr/bin/time"
	}
	report, err := os.CreateTemp("", "substbench-rss-")
	if err != nil {
		return 0, 0, err
	}
	report.Close()
	defer os.Remove(report.Name())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gnuTime, "-f", "%M", "-o", report.Name(), bin)
	cmd.Env = env
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("%s (GNU time, apt-get install time): %w", gnuTime, err)
	}
	chunk := []byte(strings.Repeat("  image: ${IMAGE} # pulled by $APP_NAME on port ${APP_PORT:-80}\n", 1<<14))
	var werr error
	for n := int64(0); n < size && werr == nil; n += int64(len(chunk)) {
		_, werr = stdin.Write(chunk)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("ps-subst on the stream: %w", err)
	}
	d := time.Since(start)
	if werr != nil {
		return 0, 0, werr
	}
	out, err := os.ReadFile(report.Name())
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return 0, 0, fmt.Errorf("GNU time printed nothing")
	}
	kb, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("GNU time printed %q: %w", out, err)
	}
	return kb, d, nil
}

func best(n int, f func() error) (time.Duration, error) {
	ds, err := times(n, f)
	if err != nil {
		return 0, err
	}
	return ds[0], nil
}

func median(n int, f func() error) (time.Duration, error) {
	ds, err := times(n, f)
	if err != nil {
		return 0, err
	}
	return ds[len(ds)/2], nil
}

func times(n int, f func() error) ([]time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds, nil
}

// nestedRun renders a template of size bytes made of one chain of nested
// defaults, the shape that was quadratic, and returns ps-subst's peak RSS
// in KiB and the time it took (both under GNU time).
func nestedRun(bin, dir string, size int) (int64, time.Duration, error) {
	var b strings.Builder
	n := size / 7
	for i := range n {
		fmt.Fprintf(&b, "${V%d:-", i%10)
	}
	b.WriteString("x" + strings.Repeat("}", n) + "\n")
	in := filepath.Join(dir, "nested.tmpl")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		return 0, 0, err
	}
	report := filepath.Join(dir, "nested.time")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/time", "-f", "%M", "-o", report, bin, "--allow-undefined", in)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("ps-subst on nested defaults: %w", err)
	}
	d := time.Since(start)
	out, err := os.ReadFile(report)
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return 0, 0, fmt.Errorf("GNU time printed nothing")
	}
	kb, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	return kb, d, err
}
