package pgtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// clone creates a database from the set's template. A template that vanished (dropped as
// outdated by a process with other files in the same directory) is rebuilt once.
func (s *Server) clone(ctx context.Context, set *templateSet) (string, error) {
	name := fmt.Sprintf("%s%08x_%s_%d", clonePrefix, s.owner, set.hash[:8], s.seq.Add(1))
	q := "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(set.name) + s.strategy
	_, err := s.admin.Exec(ctx, q)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		set.mu.Lock()
		set.built = false
		set.mu.Unlock()
		if err := s.ensureTemplate(ctx, set); err != nil {
			return "", err
		}
		_, err = s.admin.Exec(ctx, q)
	}
	if err != nil {
		return "", fmt.Errorf("pgtest: create database %s from %s: %w", name, set.name, err)
	}
	return name, nil
}

// retireOutdated forgets the sets of this process built from the same directory as set before
// an edit: their filler stops and the clones it prepared are dropped, so that nothing refers
// to the outdated template any more.
func (s *Server) retireOutdated(ctx context.Context, set *templateSet) {
	s.mu.Lock()
	var old []*templateSet
	for hash, o := range s.sets {
		if o != set && o.source == set.source {
			old = append(old, o)
			delete(s.sets, hash)
		}
	}
	s.mu.Unlock()
	for _, o := range old {
		o.mu.Lock()
		stop, filled := o.stopFill, o.filled
		o.mu.Unlock()
		if stop != nil {
			stop()
			<-filled
		}
		s.drain(ctx, o)
	}
}

// drain drops the clones ready in set's pool.
func (s *Server) drain(ctx context.Context, set *templateSet) error {
	var errs []error
	for {
		select {
		case name := <-set.ready:
			if err := s.drop(ctx, name); err != nil {
				errs = append(errs, err)
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// fill keeps the set's pool full until Close. A clone in the making is finished rather than
// cancelled, so that Close knows every database the filler made.
func (s *Server) fill(ctx context.Context, set *templateSet) {
	defer s.fillers.Done()
	defer close(set.filled)
	for ctx.Err() == nil {
		name, err := s.clone(context.WithoutCancel(ctx), set)
		if err != nil {
			// The tests' own clones report the error; the filler backs off and retries.
			select {
			case <-time.After(200 * time.Millisecond):
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case set.ready <- name:
		case <-ctx.Done():
			_ = s.drop(context.Background(), name)
			return
		}
	}
}
