package migrate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sumHeader is the first line SumText writes above body.
func sumHeader(body []byte) string {
	return fmt.Sprintf("%s sha256:%x\n", sumFormat, sha256.Sum256(body))
}

// FuzzParseSum: any bytes give entries or a one-line *SumError with a line number inside the
// file, never a panic, and whatever it accepts is well-formed.
func FuzzParseSum(f *testing.F) {
	good := "0001_a.sql sha256:" + strings.Repeat("ab", 32) + "\n0001_a.rollback.sql sha256:" + strings.Repeat("cd", 32) + "\n"
	f.Add([]byte(sumHeader([]byte(good)) + good))
	f.Add([]byte(""))
	f.Add([]byte("sum1 sha256:00\n"))
	f.Add([]byte("sum2 sha256:" + strings.Repeat("0", 64) + "\n"))
	f.Add([]byte("<<<<<<< HEAD\n0002_a.sql sha256:x\n=======\n>>>>>>> b\n"))
	f.Add([]byte(sumHeader([]byte(good)) + good[:len(good)-1]))
	f.Add([]byte(strings.ReplaceAll(sumHeader([]byte(good))+good, "\n", "\r\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseSum("poststack.sum", data)
		if err != nil {
			var se *SumError
			if !errors.As(err, &se) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if se.Line < 0 || se.Line > strings.Count(string(data), "\n")+1 {
				t.Fatalf("line %d outside the file (%d lines)", se.Line, strings.Count(string(data), "\n")+1)
			}
			return
		}
		if len(entries) == 0 && len(data) > 0 && strings.Count(string(data), "\n") > 1 {
			t.Fatalf("no entries from %q", data)
		}
		for _, e := range entries {
			if _, _, _, err := ParseName(e.name); err != nil || !validSum(e.sum) {
				t.Fatalf("accepted a malformed entry %+v", e)
			}
		}
	})
}
