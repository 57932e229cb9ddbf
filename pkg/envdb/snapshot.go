package envdb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlstate"
)

// Snapshot is a named copy of the target's database: a template database on the same server.
type Snapshot struct {
	// Name is the snapshot's name; Template is the database that holds it.
	Name, Template string
	Created        time.Time
	// Size is the template's size on disk, in bytes.
	Size int64
}

// SnapshotOptions are TakeSnapshot's optional inputs.
type SnapshotOptions struct {
	// Force replaces a snapshot of the same name; without it an existing name is a usage error.
	Force bool
}

// TakeSnapshot copies the target's database into the snapshot name. The copy needs the
// database to itself: the sessions connected to it are terminated first (the application sees
// its connections close, as it does on a reset).
func TakeSnapshot(ctx context.Context, t Target, name string, opts SnapshotOptions) (*Snapshot, error) {
	if err := CheckSnapshotName(name); err != nil {
		return nil, err
	}
	s, err := open(ctx, &t, nil)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	db, err := s.lookup(ctx, t.Database)
	if err != nil {
		return nil, err
	}
	if !db.found {
		return nil, exitcode.Usagef("database %s does not exist: create it with a reset", t.Database)
	}
	snap := snapshotName(t.Database, name)
	in, err := s.lookup(ctx, snap)
	if err != nil {
		return nil, err
	}
	if in.found {
		m := in.mark
		switch {
		case !in.ours || m.Kind != kindSnapshot || m.Database != t.Database || m.Name != name:
			return nil, exitcode.Usagef("database %s exists and is not the snapshot %s of %s; drop or rename it", snap, name, t.Database)
		case !opts.Force:
			return nil, exitcode.Usagef("snapshot %s of %s exists (taken %s); --force replaces it", name, t.Database, m.Created.Local().Format(time.DateTime))
		}
		if err := s.dropOurs(ctx, snap); err != nil {
			return nil, err
		}
	}
	if err := s.copyFrom(ctx, snap); err != nil {
		return nil, err
	}
	m := mark{Kind: kindSnapshot, Database: t.Database, Name: name, Created: time.Now().UTC()}
	if err := s.finish(ctx, snap, m); err != nil {
		return nil, err
	}
	res := &Snapshot{Name: name, Template: snap, Created: m.Created}
	if err := s.conn.QueryRow(ctx, "select pg_database_size($1::text::name)", snap).Scan(&res.Size); err != nil {
		return nil, fmt.Errorf("envdb: size of %s: %w", snap, err)
	}
	return res, nil
}

// copyAttempts bounds the retries of a copy whose source a client reconnected to in between.
const copyAttempts = 3

// copyFrom creates snap from the target's database, terminating its sessions first.
func (s *session) copyFrom(ctx context.Context, snap string) error {
	var err error
	for range copyAttempts {
		if _, err = s.conn.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", s.t.Database); err != nil {
			return fmt.Errorf("envdb: end the sessions on %s: %w", s.t.Database, err)
		}
		err = s.exec(ctx, "CREATE DATABASE "+ident(snap)+" TEMPLATE "+ident(s.t.Database)+" OWNER "+ident(s.t.Owner))
		if !sqlstate.Is(err, "55006") { // object_in_use: a client came back
			break
		}
	}
	if err != nil {
		return fmt.Errorf("envdb: copy %s to %s: %w", s.t.Database, snap, err)
	}
	return nil
}

// RestoreResult is one restore.
type RestoreResult struct {
	Database string
	Snapshot Snapshot
	Duration time.Duration
}

// Restore drops the target's database and creates it again from the snapshot name, which stays
// for later restores. Sessions on the database are terminated. A snapshot that does not exist is
// a usage error, and the database is left alone.
func Restore(ctx context.Context, t Target, name string) (*RestoreResult, error) {
	start := time.Now()
	if err := CheckSnapshotName(name); err != nil {
		return nil, err
	}
	s, err := open(ctx, &t, nil)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	snap, err := s.snapshot(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.recreate(ctx, snap.Template); err != nil {
		return nil, err
	}
	return &RestoreResult{Database: t.Database, Snapshot: *snap, Duration: time.Since(start)}, nil
}

// snapshot finds the snapshot name of the target's database.
func (s *session) snapshot(ctx context.Context, name string) (*Snapshot, error) {
	snap := snapshotName(s.t.Database, name)
	in, err := s.lookup(ctx, snap)
	if err != nil {
		return nil, err
	}
	if !in.found || !in.template || !in.ours || in.mark.Kind != kindSnapshot || in.mark.Database != s.t.Database || in.mark.Name != name {
		return nil, exitcode.Usagef("no snapshot %s of %s (snapshots lists them)", name, s.t.Database)
	}
	return &Snapshot{Name: name, Template: snap, Created: in.mark.Created}, nil
}

// DropSnapshot removes the snapshot name; one that does not exist is a usage error.
func DropSnapshot(ctx context.Context, t Target, name string) (*Snapshot, error) {
	if err := CheckSnapshotName(name); err != nil {
		return nil, err
	}
	s, err := open(ctx, &t, nil)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	snap, err := s.snapshot(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.dropOurs(ctx, snap.Template); err != nil {
		return nil, err
	}
	return snap, nil
}

// Snapshots lists the snapshots of the target's database, oldest first. Databases that only
// look like snapshots (a comment copied onto another database) are not listed.
func Snapshots(ctx context.Context, t Target) ([]Snapshot, error) {
	s, err := open(ctx, &t, nil)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	marks, err := s.ours(ctx, kindSnapshot)
	if err != nil {
		return nil, err
	}
	list := []Snapshot{}
	for tpl, m := range marks {
		if CheckSnapshotName(m.Name) != nil || snapshotName(t.Database, m.Name) != tpl {
			continue
		}
		list = append(list, Snapshot{Name: m.Name, Template: tpl, Created: m.Created})
	}
	for i := range list {
		if err := s.conn.QueryRow(ctx, "select pg_database_size($1::text::name)", list[i].Template).Scan(&list[i].Size); err != nil {
			return nil, fmt.Errorf("envdb: size of %s: %w", list[i].Template, err)
		}
	}
	slices.SortFunc(list, func(a, b Snapshot) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list, nil
}
