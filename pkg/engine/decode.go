package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// decodeList decodes CLI JSON output that is either one array of objects (podman's
// `--format json`, every `inspect`) or a stream of objects, one a line (docker's
// `--format '{{json .}}'`). Empty output is an empty list.
func decodeList[T any](data []byte) ([]T, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []T
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode engine JSON: %w", err)
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case bytes.Equal(raw, []byte("null")):
		case len(raw) > 0 && raw[0] == '[':
			var items []T
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("decode engine JSON array: %w", err)
			}
			out = append(out, items...)
		default:
			var item T
			if err := json.Unmarshal(raw, &item); err != nil {
				return nil, fmt.Errorf("decode engine JSON object: %w", err)
			}
			out = append(out, item)
		}
	}
}

// labelMap accepts labels as an object (inspect, podman), null (podman without labels) or the
// "k=v,k=v" string of docker's list commands, which is ambiguous when a value holds ",k=";
// inspect output is exact.
type labelMap map[string]string

func (l *labelMap) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = labelMap{}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		m := labelMap{}
		last := ""
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok && last != "" {
				// A comma inside a value: "k=a,b" splits into "k=a" and "b".
				m[last] += "," + kv
				continue
			}
			if kv == "" {
				continue
			}
			m[k] = v
			last = k
		}
		*l = m
		return nil
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*l = m
	return nil
}

// matchLabels reports whether have holds every k=v of want. Both engines filter by label
// themselves, but podman ORs repeated label filters on some list commands, so results are
// checked again here.
func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// labelArgs renders labels as repeated flag k=v arguments in key order, so that the same
// options always produce the same command line.
func labelArgs(flag string, labels map[string]string) []string {
	var args []string
	for _, k := range sortedKeys(labels) {
		args = append(args, flag, k+"="+labels[k])
	}
	return args
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cloneLabels returns a non-nil copy so callers can index results without nil checks.
func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// lines splits CLI output into its non-empty trimmed lines.
func lines(out []byte) []string {
	var res []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			res = append(res, l)
		}
	}
	return res
}
