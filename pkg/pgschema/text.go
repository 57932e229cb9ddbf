package pgschema

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText renders the snapshot for people, compactly, in the spirit of psql's \d: each table
// with its columns, then its indexes, constraints and triggers; then views, sequences,
// functions, types and extensions, one line each where possible.
func (s *Schema) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("schemas: %s\n", listOrNone(s.Schemas))
	for _, t := range s.Tables {
		ew.printf("\n%s %s.%s\n", t.Kind, t.Schema, t.Name)
		var cols bytes.Buffer
		tw := tabwriter.NewWriter(&cols, 0, 4, 2, ' ', 0)
		for _, c := range t.Columns {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, c.Type, strings.Join(columnNotes(c), "  "))
		}
		_ = tw.Flush() // writes to a bytes.Buffer cannot fail
		for _, line := range strings.SplitAfter(cols.String(), "\n") {
			if line != "" {
				ew.printf("%s\n", strings.TrimRight(line, " \n"))
			}
		}
		writeIndexes(ew, t.Indexes)
		if len(t.Constraints) > 0 {
			ew.printf("  constraints:\n")
			for _, c := range t.Constraints {
				ew.printf("    %s %s\n", c.Name, c.Definition)
			}
		}
		if len(t.Triggers) > 0 {
			ew.printf("  triggers:\n")
			for _, tr := range t.Triggers {
				ew.printf("    %s\n", tr.Definition)
			}
		}
	}
	for _, v := range s.Views {
		kind := "view"
		if v.Materialized {
			kind = "materialized view"
		}
		ew.printf("\n%s %s.%s\n", kind, v.Schema, v.Name)
		for _, line := range strings.Split(strings.TrimSpace(v.Definition), "\n") {
			ew.printf("    %s\n", line)
		}
		writeIndexes(ew, v.Indexes)
	}
	if len(s.Sequences) > 0 {
		ew.printf("\nsequences:\n")
		for _, q := range s.Sequences {
			ew.printf("  %s.%s %s start %d increment %d min %d max %d cache %d", q.Schema, q.Name, q.Type,
				q.Start, q.Increment, q.Min, q.Max, q.Cache)
			if q.Cycle {
				ew.printf(" cycle")
			}
			if q.OwnedBy != "" {
				ew.printf(" owned by %s", q.OwnedBy)
			}
			ew.printf("\n")
		}
	}
	if len(s.Functions) > 0 {
		ew.printf("\nfunctions:\n")
		for _, f := range s.Functions {
			ew.printf("  %s %s.%s", f.Kind, f.Schema, f.Signature())
			if f.Result != "" {
				ew.printf(" returns %s", f.Result)
			}
			ew.printf("\n")
		}
	}
	if len(s.Types) > 0 {
		ew.printf("\ntypes:\n")
		for _, t := range s.Types {
			ew.printf("  %s %s.%s", t.Kind, t.Schema, t.Name)
			switch t.Kind {
			case "enum":
				quoted := make([]string, 0, len(t.Labels))
				for _, l := range t.Labels {
					quoted = append(quoted, "'"+strings.ReplaceAll(l, "'", "''")+"'")
				}
				ew.printf(" (%s)", strings.Join(quoted, ", "))
			case "domain":
				ew.printf(" %s", t.BaseType)
				if t.NotNull {
					ew.printf(" not null")
				}
				if t.Default != "" {
					ew.printf(" default %s", t.Default)
				}
				for _, c := range t.Constraints {
					ew.printf(" %s", c.Definition)
				}
			case "composite":
				attrs := make([]string, 0, len(t.Attributes))
				for _, a := range t.Attributes {
					attrs = append(attrs, a.Name+" "+a.Type)
				}
				ew.printf(" (%s)", strings.Join(attrs, ", "))
			}
			ew.printf("\n")
		}
	}
	if len(s.Extensions) > 0 {
		ew.printf("\nextensions:\n")
		for _, e := range s.Extensions {
			ew.printf("  %s %s (schema %s)\n", e.Name, e.Version, e.Schema)
		}
	}
	return ew.err
}

func columnNotes(c Column) []string {
	var notes []string
	if c.NotNull {
		notes = append(notes, "not null")
	}
	if c.Default != "" {
		notes = append(notes, "default "+c.Default)
	}
	if c.Identity != "" {
		notes = append(notes, "generated "+c.Identity+" as identity")
	}
	if c.Generated != "" {
		notes = append(notes, "generated always as ("+c.Generated+") stored")
	}
	if c.Collation != "" {
		notes = append(notes, "collate "+c.Collation)
	}
	return notes
}

// writeIndexes prints each index as its name and the part of its definition after ON, which
// is what differs between indexes of one table.
func writeIndexes(ew *errWriter, ix []Index) {
	if len(ix) == 0 {
		return
	}
	ew.printf("  indexes:\n")
	for _, i := range ix {
		def := i.Definition
		if at := strings.Index(def, " USING "); at >= 0 {
			def = def[at+len(" USING "):]
		}
		var flags []string
		if i.Primary {
			flags = append(flags, "primary key")
		} else if i.Unique {
			flags = append(flags, "unique")
		}
		flags = append(flags, def)
		ew.printf("    %s %s\n", i.Name, strings.Join(flags, ", "))
	}
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, ", ")
}

// errWriter keeps the first write error so that rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
