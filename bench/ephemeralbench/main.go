// Command ephemeralbench times `ps-env ephemeral up` (native cold and cached, 50 migrations;
// container with a local image) against baselines measured in the same run, and the same
// starts in-process, and prints a table with issue 5's targets.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/ephemeral"
)

func main() {
	psEnv := flag.String("ps-env", "bin/ps-env", "the ps-env binary")
	runs := flag.Int("runs", 5, "runs per native case (median reported)")
	crun := flag.Int("container-runs", 3, "runs per container case")
	engines := flag.String("engines", "docker,podman", "engines for the container case (comma-separated; empty = none)")
	image := flag.String("image", "poststack/postgres:latest", "local image of the container case")
	flag.Parse()
	if err := run(*psEnv, *runs, *crun, *engines, *image); err != nil {
		fmt.Fprintln(os.Stderr, "ephemeralbench:", err)
		os.Exit(1)
	}
}

type row struct {
	name   string
	d      time.Duration
	target time.Duration
	note   string
}

func run(psEnv string, runs, crun int, engines, image string) error {
	work, err := os.MkdirTemp("", "ephbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	migs := filepath.Join(work, "migrations")
	if err := writeMigrations(migs, 50); err != nil {
		return err
	}
	state := filepath.Join(work, "state")
	warmCache := filepath.Join(work, "cache")
	base := append(os.Environ(), "XDG_STATE_HOME="+state)
	var rows []row

	startup := median(runs, func(int) (time.Duration, error) {
		return timeCmd(base, psEnv, "--version")
	})
	rows = append(rows, row{"ps-env --version (process start-up)", startup.d, 0, startup.note})

	// Cold: every run gets an empty cache directory.
	cold := median(runs, func(i int) (time.Duration, error) {
		env := append(base, fmt.Sprintf("XDG_CACHE_HOME=%s/cold%d", work, i))
		return upDown(env, psEnv, "up", "--provider", "native", "--migrate", migs)
	})
	rows = append(rows, row{"native cold, 50 migrations (ps-env)", cold.d, time.Second, cold.note})
	warmEnv := append(base, "XDG_CACHE_HOME="+warmCache)
	if _, err := upDown(warmEnv, psEnv, "up", "--provider", "native"); err != nil {
		return err
	}
	warm := median(runs, func(int) (time.Duration, error) {
		return upDown(warmEnv, psEnv, "up", "--provider", "native", "--migrate", migs)
	})
	rows = append(rows, row{"native cached, 50 migrations (ps-env)", warm.d, 300 * time.Millisecond, warm.note})

	inproc := func(env []string) func(int) (time.Duration, error) {
		return func(int) (time.Duration, error) {
			began := time.Now()
			inst, err := ephemeral.Start(context.Background(), ephemeral.Options{Provider: ephemeral.Native, Migrate: migs, Environ: env})
			d := time.Since(began)
			if err != nil {
				return 0, err
			}
			return d, ephemeral.Stop(context.Background(), inst)
		}
	}
	ipCold := median(runs, func(i int) (time.Duration, error) {
		return inproc(append(base, fmt.Sprintf("XDG_CACHE_HOME=%s/ipcold%d", work, i)))(i)
	})
	rows = append(rows, row{"native cold, 50 migrations (in-process)", ipCold.d, time.Second, ipCold.note})
	ipWarm := median(runs, inproc(warmEnv))
	rows = append(rows, row{"native cached, 50 migrations (in-process)", ipWarm.d, 300 * time.Millisecond, ipWarm.note})
	ipBare := median(runs, func(int) (time.Duration, error) {
		began := time.Now()
		inst, err := ephemeral.Start(context.Background(), ephemeral.Options{Provider: ephemeral.Native, Environ: warmEnv})
		d := time.Since(began)
		if err != nil {
			return 0, err
		}
		return d, ephemeral.Stop(context.Background(), inst)
	})
	rows = append(rows, row{"native cached, no migrations (in-process)", ipBare.d, 0, ipBare.note})
	bl := median(runs, func(int) (time.Duration, error) { return baselineNative(work) })
	rows = append(rows, row{"baseline: initdb --no-sync + pg_ctl start -w", bl.d, 0, bl.note})

	for _, eng := range strings.Split(engines, ",") {
		if eng == "" {
			continue
		}
		host := "unix:///var/run/docker.sock"
		if eng == "podman" {
			host = "unix:///run/podman/podman.sock"
		}
		// The provider drives the engine's CLI; DOCKER_HOST is kept for docker's.
		env := append(slices.Clip(base), "DOCKER_HOST="+host, "POSTSTACK_CONTAINER_RUNTIME="+eng)
		c := median(crun, func(int) (time.Duration, error) {
			return upDown(env, psEnv, "up", "--provider", "container", "--image", image)
		})
		rows = append(rows, row{"container on " + eng + " (ps-env)", c.d, 2500 * time.Millisecond, c.note})
		b := median(crun, func(int) (time.Duration, error) { return baselineContainer(eng, image) })
		rows = append(rows, row{"baseline: " + eng + " run + first login", b.d, 0, b.note})
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tmedian\ttarget\tresult\t")
	for _, r := range rows {
		target, result := "-", ""
		if r.target > 0 {
			target = r.target.String()
			result = "ok"
			if r.d > r.target {
				result = "MISSED"
			}
		}
		if r.note != "" {
			result += " " + r.note
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t\n", r.name, r.d.Round(time.Millisecond), target, result)
	}
	return tw.Flush()
}

type result struct {
	d    time.Duration
	note string
}

func median(n int, f func(int) (time.Duration, error)) result {
	var ds []time.Duration
	for i := range n {
		d, err := f(i)
		if err != nil {
			return result{note: "error: " + firstLine(err.Error())}
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return result{d: ds[len(ds)/2], note: fmt.Sprintf("(min %v, max %v)", ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func timeCmd(env []string, name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	began := time.Now()
	err := cmd.Run()
	if err != nil {
		return 0, fmt.Errorf("%s %v: %w: %s", name, args, err, stderr.String())
	}
	return time.Since(began), nil
}

// upDown times `ps-env ephemeral up ... --json` until it returned (the URL is usable then),
// checks the URL, and takes the server down untimed.
func upDown(env []string, psEnv string, args ...string) (time.Duration, error) {
	cmd := exec.Command(psEnv, append([]string{"ephemeral"}, append(args, "--json", "--quiet")...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("ps-env ephemeral %v: %w: %s", args, err, stderr.String())
	}
	d := time.Since(began)
	var inst struct{ ID, URL string }
	if err := json.Unmarshal(stdout.Bytes(), &inst); err != nil {
		return 0, err
	}
	defer func() {
		down := exec.Command(psEnv, "ephemeral", "down", inst.ID)
		down.Env = env
		_ = down.Run()
	}()
	conn, err := pgx.Connect(context.Background(), inst.URL)
	if err != nil {
		return 0, fmt.Errorf("URL not usable: %w", err)
	}
	conn.Close(context.Background())
	return d, nil
}

func baselineNative(work string) (time.Duration, error) {
	dir, err := os.MkdirTemp("/dev/shm", "ephbench-base-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if err := exec.Command("chown", "postgres", dir).Run(); err != nil {
		return 0, err
	}
	bin := "/usr/lib/postgresql/15/bin/"
	as := func(args ...string) *exec.Cmd {
		c := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		c.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
		return c
	}
	began := time.Now()
	if out, err := as(bin+"initdb", "--no-sync", "-U", "postgres", "-D", dir+"/data").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if out, err := as(bin+"pg_ctl", "start", "-w", "-D", dir+"/data", "-l", dir+"/log", "-o", fmt.Sprintf("-p 5999 -k %s -c listen_addresses='' -c fsync=off", dir)).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	d := time.Since(began)
	_ = as(bin+"pg_ctl", "stop", "-m", "immediate", "-D", dir+"/data").Run()
	return d, nil
}

func baselineContainer(engine, image string) (time.Duration, error) {
	name := fmt.Sprintf("ephbench-%d", time.Now().UnixNano())
	began := time.Now()
	out, err := exec.Command(engine, "run", "-d", "--name", name, "-e", "POSTGRES_PASSWORD=bench",
		"-p", "127.0.0.1::5432", image).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s run: %w: %s", engine, err, out)
	}
	defer exec.Command(engine, "rm", "-f", "-v", name).Run()
	port, err := exec.Command(engine, "port", name, "5432/tcp").Output()
	if err != nil {
		return 0, fmt.Errorf("%s port: %w", engine, err)
	}
	hp := strings.TrimSpace(strings.Split(string(port), "\n")[0])
	_, p, _ := strings.Cut(hp, ":")
	url := fmt.Sprintf("postgres://postgres:bench@127.0.0.1:%s/postgres?sslmode=disable", p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
			return time.Since(began), nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func writeMigrations(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		sql := fmt.Sprintf("CREATE TABLE t_%04d (id bigint PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());\nCREATE INDEX t_%04d_name ON t_%04d (name);\n", i, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d_t%d.sql", i, i)), []byte(sql), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d_t%d.rollback.sql", i, i)), []byte(fmt.Sprintf("DROP TABLE t_%04d;\n", i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}
