package lint

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/migrate"
)

// benchMigrations is a base of 200 simple migrations (a table with an index each) and 20
// changes that touch those tables the ways real changes do, safe and not.
func benchMigrations(b *testing.B) (base, changes []*migrate.Migration) {
	files := map[string]string{}
	for i := 1; i <= 200; i++ {
		files[fmt.Sprintf("%04d_t%d.sql", i, i)] = fmt.Sprintf(
			"CREATE TABLE t%d (id bigserial PRIMARY KEY, name text NOT NULL, qty int, created timestamptz DEFAULT now());\nCREATE INDEX t%d_name ON t%d (name);\n", i, i, i)
	}
	kinds := []struct{ up, down string }{
		{"ALTER TABLE t%[1]d ADD COLUMN note text;", "ALTER TABLE t%[1]d DROP COLUMN note;"},
		{"CREATE INDEX t%[1]d_qty ON t%[1]d (qty);", "DROP INDEX t%[1]d_qty;"},
		{"ALTER TABLE t%[1]d ALTER COLUMN qty TYPE bigint;", "ALTER TABLE t%[1]d ALTER COLUMN qty TYPE int;"},
		{"ALTER TABLE t%[1]d ADD CONSTRAINT t%[1]d_qty CHECK (qty > 0) NOT VALID;", "ALTER TABLE t%[1]d DROP CONSTRAINT t%[1]d_qty;"},
		{"-- poststack:no-transaction\nCREATE INDEX CONCURRENTLY t%[1]d_created ON t%[1]d (created);", "DROP INDEX t%[1]d_created;"},
	}
	for i := 1; i <= 20; i++ {
		k := kinds[i%len(kinds)]
		files[fmt.Sprintf("%04d_change%d.sql", 1000+i, i)] = fmt.Sprintf(k.up, i*7)
		if i%4 == 0 { // a few with a rollback, which the review checks
			files[fmt.Sprintf("%04d_change%d.rollback.sql", 1000+i, i)] = fmt.Sprintf(k.down, i*7)
		}
	}
	all := loadMap(b, files)
	return all[:200], all[200:]
}

// BenchmarkReview reviews 20 changes on a base of 200 migrations: "fresh" applies the base
// too (an empty scratch), "seeded" starts from a scratch that holds the base already, as
// ps-migrate lint's cached server does.
func BenchmarkReview(b *testing.B) {
	base, changes := benchMigrations(b)
	ctx := context.Background()
	for _, seeded := range []bool{false, true} {
		name := "fresh"
		if seeded {
			name = "seeded"
		}
		b.Run(name, func(b *testing.B) {
			var findings int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				conn, err := pgx.Connect(ctx, testenv.Database(b))
				if err != nil {
					b.Fatal(err)
				}
				if seeded {
					m, err := migrate.New(conn, base)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := m.Up(ctx, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				rep, err := Review(ctx, conn, base, changes, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(len(changes)), "ms/change")
				findings = len(rep.Findings)
				if len(rep.Reviewed) != len(changes) || rep.Incomplete != "" {
					b.Fatalf("reviewed %d of %d changes: %s", len(rep.Reviewed), len(changes), rep.Incomplete)
				}
				b.StopTimer()
				conn.Close(ctx)
			}
			if findings != 8 {
				b.Fatalf("%d findings, want 8 (the index builds and the rewrites)", findings)
			}
		})
	}
}
