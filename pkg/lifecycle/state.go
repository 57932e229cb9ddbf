package lifecycle

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/hostport"
)

// noFollow keeps log writes from following a link planted under logs/.
const noFollow = syscall.O_NOFOLLOW

// initTable records the init entries that ran to success, in the environment's database: the
// record lives and dies with the data, so a new volume (down --volumes) runs them again.
const initTable = "poststack.environment_init"

func initDone(ctx context.Context, url, unit, fingerprint string) (bool, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false, fmt.Errorf("init: connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "select to_regclass($1) is not null", initTable).Scan(&exists); err != nil || !exists {
		return false, wrapf(err, "init: look up %s", initTable)
	}
	var fp string
	err = conn.QueryRow(ctx, "select fingerprint from "+initTable+" where unit = $1", unit).Scan(&fp)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("init: read %s: %w", initTable, err)
	}
	return fp == fingerprint, nil
}

func recordInit(ctx context.Context, url, unit, fingerprint string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("init: connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range []string{
		"create schema if not exists poststack",
		"create table if not exists " + initTable + " (unit text primary key, fingerprint text not null, ran_at timestamptz not null default now())",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("init: %s: %w", q, err)
		}
	}
	_, err = conn.Exec(ctx, "insert into "+initTable+" (unit, fingerprint) values ($1, $2) on conflict (unit) do update set fingerprint = excluded.fingerprint, ran_at = now()", unit, fingerprint)
	return wrapf(err, "init: record %s", unit)
}

func portFree(p deploy.Port) bool {
	if p.Protocol == "udp" {
		return true // nothing binds UDP here; the engine reports a clash itself
	}
	bind := p.HostIP
	if bind == "" {
		bind = "0.0.0.0"
	}
	return hostport.Free(bind, p.HostPort)
}

func suggestPort(p deploy.Port) int {
	bind := p.HostIP
	if bind == "" {
		bind = "0.0.0.0"
	}
	n, err := hostport.FirstFree(bind, p.HostPort+1, nil)
	if err != nil {
		return 0
	}
	return n
}

// holder names the container publishing host port, "" when none does: ours with its project
// and environment, anyone else's by name. A pod's ports show on each of its containers, the
// infra container included, so a labelled container is preferred to name the holder.
func holder(ctx context.Context, env *Environment, port int) string {
	if env.Engine == nil {
		return ""
	}
	cs, err := env.Engine.ListContainers(ctx, nil)
	if err != nil {
		return ""
	}
	other := ""
	for _, c := range cs {
		if !c.Running || !publishes(c.Ports, port) {
			continue
		}
		if p, e := c.Labels[deploy.LabelProject], c.Labels[deploy.LabelEnvironment]; p != "" && e != "" {
			return fmt.Sprintf("container %s of project %s, environment %s", c.Name, p, e)
		}
		if other == "" {
			other = "container " + c.Name
		}
	}
	return other
}

func publishes(ports []engine.PortMapping, port int) bool {
	for _, pm := range ports {
		if pm.HostPort == port {
			return true
		}
	}
	return false
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"… (" + strconv.Itoa(len(lines)-n) + " lines before)"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
