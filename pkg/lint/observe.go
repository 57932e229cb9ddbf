package lint

import (
	"context"
	"fmt"
	"math/bits"
	"strings"

	"github.com/jackc/pgx/v5"
)

// lockModes are the table lock modes, weakest first, as pg_locks names them (bit i of a
// modeSet is the i-th).
const lockModes = "AccessShareLock RowShareLock RowExclusiveLock ShareUpdateExclusiveLock " +
	"ShareLock ShareRowExclusiveLock ExclusiveLock AccessExclusiveLock"

// modeSet is a set of lock modes, bit i for the i-th of lockModes.
type modeSet uint8

// blocksWrites are the modes that conflict with ROW EXCLUSIVE, the lock INSERT, UPDATE and
// DELETE take: SHARE and stronger.
const blocksWrites modeSet = 0b1111_0000

const accessExclusive modeSet = 0b1000_0000

func modeOf(name string) modeSet {
	for i, m := range strings.Fields(lockModes) {
		if m == name {
			return 1 << i
		}
	}
	return 0
}

// strongest names the strongest mode of s as the documentation does ("ACCESS EXCLUSIVE").
func (s modeSet) strongest() string {
	if s == 0 {
		return ""
	}
	name := strings.TrimSuffix(strings.Fields(lockModes)[7-bits.LeadingZeros8(uint8(s))], "Lock")
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// table is a table (or partitioned table, or materialized view) that existed before the
// migration under review.
type table struct {
	name     string // schema.name, or name in public
	filenode uint32
	size     int64
}

// baseline is what existed before a migration: its tables and the storage of their indexes.
type baseline struct {
	tables    map[uint32]*table
	oids      []uint32 // of tables, for the observation query
	filenodes []uint32 // of tables, in the order of oids
	indexes   []uint32 // relfilenodes of the tables' indexes
}

// baselineQuery lists the tables a migration may lock, rewrite or scan, outside any
// transaction (pg_relation_size takes a lock that would otherwise stay).
const baselineQuery = `SELECT c.oid, CASE WHEN n.nspname = 'public' THEN quote_ident(c.relname) ELSE format('%I.%I', n.nspname, c.relname) END,
	c.relfilenode, CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) ELSE 0 END,
	coalesce((SELECT array_agg(ic.relfilenode) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
	AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'`

func takeBaseline(ctx context.Context, conn *pgx.Conn, ledgerSchema string) (*baseline, error) {
	rows, err := conn.Query(ctx, baselineQuery, ledgerSchema)
	if err != nil {
		return nil, fmt.Errorf("lint: list tables: %w", err)
	}
	defer rows.Close()
	b := &baseline{tables: map[uint32]*table{}}
	for rows.Next() {
		var oid uint32
		var t table
		var idx []uint32
		if err := rows.Scan(&oid, &t.name, &t.filenode, &t.size, &idx); err != nil {
			return nil, fmt.Errorf("lint: list tables: %w", err)
		}
		b.tables[oid] = &t
		b.oids = append(b.oids, oid)
		b.filenodes = append(b.filenodes, t.filenode)
		b.indexes = append(b.indexes, idx...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lint: list tables: %w", err)
	}
	if b.oids == nil {
		b.oids, b.filenodes, b.indexes = []uint32{}, []uint32{}, []uint32{}
	}
	return b, nil
}

// build is an index whose storage is new: built, not reused.
type build struct {
	table    uint32
	filenode uint32
	name     string
}

// observation is what the server says of this backend at one moment, about the baseline's
// tables: the locks it holds, the tables whose storage changed, the rows read and the indexes
// built in the current transaction, and its lock_timeout.
type observation struct {
	locks       map[uint32]modeSet
	filenodes   map[uint32]uint32 // tables whose relfilenode is not the baseline's
	sizes       map[uint32]int64  // their size now
	reads       map[uint32]int64  // seq_tup_read + idx_tup_fetch so far (pending counters)
	builds      map[uint32]build  // by index OID
	otherLocks  int               // locks above ACCESS SHARE on other user relations
	lockTimeout string
}

// observeQuery is the one query run after each statement. Locks accumulate in a transaction;
// the counters of pg_stat_xact_user_tables (seq_tup_read, and the heap part of idx_tup_fetch,
// read here from the functions behind the view) are the backend's pending ones (they may include
// earlier transactions not yet flushed), so only differences between two observations in one
// transaction mean anything.
const observeQuery = `SELECT 'l', l.relation, 0::int8, 0::int8, l.mode FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
	AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND (l.relation = ANY($1) OR (l.relation >= 16384 AND l.mode <> 'AccessShareLock'))
UNION ALL
SELECT 'r', c.oid, c.relfilenode::int8, pg_relation_size(c.oid), '' FROM unnest($1::oid[], $2::oid[]) AS p(oid, fn)
	JOIN pg_class c ON c.oid = p.oid WHERE c.relfilenode <> p.fn
UNION ALL
SELECT 's', s.oid, s.n, 0, '' FROM (SELECT p.oid, pg_stat_get_xact_tuples_returned(p.oid) + pg_stat_get_xact_tuples_fetched(p.oid) AS n
	FROM unnest($1::oid[]) AS p(oid)) s WHERE s.n > 0
UNION ALL
SELECT 'i', i.indrelid, c.relfilenode::int8, i.indexrelid::int8, c.relname::text FROM pg_index i
	JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ANY($1) AND c.relfilenode <> ALL($3)
UNION ALL
SELECT 't', 0, 0, 0, current_setting('lock_timeout')`

func observe(ctx context.Context, conn *pgx.Conn, b *baseline) (*observation, error) {
	rows, err := conn.Query(ctx, observeQuery, b.oids, b.filenodes, b.indexes)
	if err != nil {
		return nil, fmt.Errorf("lint: observe: %w", err)
	}
	defer rows.Close()
	o := &observation{locks: map[uint32]modeSet{}, filenodes: map[uint32]uint32{}, sizes: map[uint32]int64{},
		reads: map[uint32]int64{}, builds: map[uint32]build{}}
	for rows.Next() {
		var kind, text string
		var rel uint32
		var a, n int64
		if err := rows.Scan(&kind, &rel, &a, &n, &text); err != nil {
			return nil, fmt.Errorf("lint: observe: %w", err)
		}
		switch kind {
		case "l":
			if _, ok := b.tables[rel]; ok {
				o.locks[rel] |= modeOf(text)
			} else {
				o.otherLocks++
			}
		case "r":
			o.filenodes[rel], o.sizes[rel] = uint32(a), n
		case "s":
			o.reads[rel] = a
		case "i":
			o.builds[uint32(n)] = build{table: rel, filenode: uint32(a), name: text}
		case "t":
			o.lockTimeout = text
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lint: observe: %w", err)
	}
	return o, nil
}

// filenode is t's relfilenode as of o.
func (o *observation) filenode(b *baseline, oid uint32) uint32 {
	if fn, ok := o.filenodes[oid]; ok {
		return fn
	}
	return b.tables[oid].filenode
}

// work is what one statement did to one table of the baseline.
type work struct {
	rewrite bool
	builds  []string // index names
	reads   int64
}

func (w work) any() bool { return w.rewrite || len(w.builds) > 0 || w.reads > 0 }

// effect is what one statement did, from two observations around it.
type effect struct {
	work  map[uint32]*work
	added map[uint32]modeSet // modes it added
	held  map[uint32]modeSet // modes held after it (with those taken earlier in the transaction)
	// otherLocks is set when it took a lock above ACCESS SHARE on a relation that is not a
	// baseline table (one it created, say).
	otherLocks  bool
	lockTimeout string
}

// diff attributes to one statement what changed from before to after; reads are ignored when
// the two are not of one transaction (counts is false).
func diff(b *baseline, before, after *observation, counts bool) effect {
	e := effect{work: map[uint32]*work{}, added: map[uint32]modeSet{}, held: after.locks,
		otherLocks: after.otherLocks > before.otherLocks, lockTimeout: after.lockTimeout}
	get := func(oid uint32) *work {
		if e.work[oid] == nil {
			e.work[oid] = &work{}
		}
		return e.work[oid]
	}
	for oid, m := range after.locks {
		if add := m &^ before.locks[oid]; add != 0 {
			e.added[oid] = add
		}
	}
	for oid := range after.filenodes {
		if after.filenode(b, oid) == before.filenode(b, oid) {
			continue
		}
		// TRUNCATE gives new, empty storage too, without reading a row.
		if after.sizes[oid] == 0 && b.tables[oid].size > 0 {
			continue
		}
		get(oid).rewrite = true
	}
	for idx, bl := range after.builds {
		if prev, ok := before.builds[idx]; ok && prev.filenode == bl.filenode {
			continue
		}
		w := get(bl.table)
		w.builds = append(w.builds, bl.name)
	}
	if counts {
		for oid, n := range after.reads {
			if d := n - before.reads[oid]; d > 0 {
				get(oid).reads = d
			}
		}
	}
	return e
}
