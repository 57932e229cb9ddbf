package migrate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

func TestRecord(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	migs := load(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int);\n", "0001_a.rollback.sql": "DROP TABLE a;\n",
		"0002_b.sql": "CREATE TABLE b (id int);\n",
		"0003_c.sql": "CREATE TABLE c (id int);\n",
	})
	m := newMigrator(t, conn, migs, WithAppliedBy("tester"))
	down := "DROP TABLE a;\n"
	at := time.Date(2024, 2, 3, 4, 5, 6, 789123456, time.UTC)
	rows := []Adopted{
		{Version: 1, Name: "a", Checksum: migs[0].Checksum, Rollback: &down, AppliedAt: at, AppliedBy: "adopt:goose", Duration: 1500 * time.Millisecond},
		{Version: 2, Name: "b", Checksum: migs[1].Checksum},
	}
	if n, err := m.CheckRecord(ctx, rows); err != nil || n != 2 {
		t.Fatalf("check before: %d, %v", n, err)
	}
	if tableExists(t, conn, "poststack.schema_migrations") {
		t.Fatal("CheckRecord created the ledger")
	}
	if n, err := m.Record(ctx, rows); err != nil || n != 2 {
		t.Fatalf("record: %d, %v", n, err)
	}
	states, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := []Status{states[0].Status, states[1].Status, states[2].Status}
	if !slices.Equal(got, []Status{StatusApplied, StatusApplied, StatusPending}) {
		t.Fatalf("status %v", got)
	}
	if !states[0].AppliedAt.Equal(at.Truncate(time.Microsecond)) || states[0].AppliedBy != "adopt:goose" || states[0].Duration != 1500*time.Millisecond {
		t.Errorf("row 1: %+v", states[0])
	}
	if states[1].AppliedBy != "tester" || states[1].AppliedAt.IsZero() {
		t.Errorf("row 2 (no time, no applier): %+v", states[1])
	}
	// Up then runs only what is left; the recorded rollback is the one down uses.
	res, err := m.Up(ctx, 0)
	if err != nil || len(res) != 1 || res[0].Version != 3 {
		t.Fatalf("up after record: %+v, %v", res, err)
	}
	// The same rows again: nothing written, though Up added a newer one since.
	if n, err := m.Record(ctx, rows); err != nil || n != 0 {
		t.Fatalf("second record: %d, %v", n, err)
	}
	// Other rows: refused, naming each difference; nothing written.
	other := slices.Clone(rows)
	other[0].AppliedAt = at.Add(time.Hour)
	other = append(other[:1], Adopted{Version: 2, Name: "renamed", Checksum: migs[1].Checksum})
	_, err = m.Record(ctx, other)
	var ce *RecordConflictError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Check || len(ce.Conflicts) != 2 ||
		!strings.Contains(err.Error(), "version 1 was applied at 2024-02-03T04:05:06.789123Z, not 2024-02-03T05:05:06.789123456Z") ||
		!strings.Contains(err.Error(), `version 2 is named "b", not "renamed"`) {
		t.Fatalf("conflict: %v", err)
	}
	// Rows the ledger has below the newest to write, that are not among them: refused.
	if _, err := m.Record(ctx, rows[1:]); !errors.As(err, &ce) || !strings.Contains(err.Error(), "version 1 is in it but not among the rows to write") {
		t.Fatalf("subset: %v", err)
	}
	if v := ledgerVersions(t, conn); !slices.Equal(v, []int64{1, 2, 3}) {
		t.Fatalf("ledger %v", v)
	}
	if _, err := m.Record(ctx, []Adopted{{Version: 2, Name: "b", Checksum: "x"}, {Version: 1, Name: "a", Checksum: "y"}}); err == nil {
		t.Fatal("unsorted rows accepted")
	}
}
