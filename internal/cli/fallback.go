package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/dotenv"
	"github.com/poststack/poststack/pkg/exitcode"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "POSTSTACK_"

// EnvName is the environment variable for a flag: --log-level is
// POSTSTACK_LOG_LEVEL.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// configKey normalises a flag name or config-file key, so database-url,
// database_url and POSTSTACK_DATABASE_URL all match --database-url.
func configKey(s string) string {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	return strings.TrimPrefix(s, "poststack_")
}

// Fallback says where a flag's value may come from when the command line
// does not give it. A checkout may be hostile (CI runs fork pull requests),
// so a command's own flags come from its command line only unless the
// command says otherwise; flags that destroy, redirect output, relax a check
// or reveal secrets must stay CommandLine.
type Fallback uint8

const (
	// CommandLine: the flag is only ever set on the command line.
	CommandLine Fallback = iota
	// Environment: also from its POSTSTACK_<NAME> variable in the process
	// environment, which the user (or the CI job) controls, never from the
	// project's files.
	Environment
	// Setting: also from the environment, ./.env and --config-file, like
	// the global settings.
	Setting
)

// Source supplies values for flags the command line left unset.
type Source struct {
	// Name says where a bad value came from, in errors.
	Name string
	// Needs is the least Fallback a flag must allow to be set from here.
	Needs Fallback
	// Lookup returns the values for a flag, ok false when the source has
	// none. Several values are set in order (for repeatable flags).
	Lookup func(flagName string) (values []string, ok bool)
}

// ApplyFallback sets, on every parsed flag set in sets, each flag that no
// earlier pass has set (on any of the sets: a global flag given after a
// subcommand counts for the root as well) and whose fallback (as allows
// says) reaches src.Needs, from src. Call it once per source, highest
// precedence first, after the command line was parsed. It returns the names
// it set. A value the flag rejects is a usage error (exit 2).
func ApplyFallback(sets []*flag.FlagSet, src Source, allows func(fs *flag.FlagSet, name string) Fallback) ([]string, error) {
	set := map[string]bool{}
	for _, fs := range sets {
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	var (
		err   error
		names []string
	)
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			if err != nil || set[f.Name] || allows(fs, f.Name) < src.Needs {
				return
			}
			vals, ok := src.Lookup(f.Name)
			if !ok {
				return
			}
			for _, v := range vals {
				if e := fs.Set(f.Name, v); e != nil {
					err = exitcode.Usagef("%s: invalid value %q for --%s: %v", src.Name, v, f.Name, e)
					return
				}
			}
			set[f.Name] = true
			names = append(names, f.Name)
		})
	}
	return names, err
}

// EnvSource reads POSTSTACK_<NAME> through getenv; empty means unset.
func EnvSource(getenv func(string) string) Source {
	return Source{
		Name:  "environment",
		Needs: Environment,
		Lookup: func(name string) ([]string, bool) {
			if v := getenv(EnvName(name)); v != "" {
				return []string{v}, true
			}
			return nil, false
		},
	}
}

// DotEnvSource reads the POSTSTACK_* entries of the dotenv file at path;
// a missing file is an empty source. ${VAR} references expand from getenv
// and earlier entries, as docker compose does. The file belongs to the
// project: it must be a regular file inside root (see safefile).
func DotEnvSource(root, path string, getenv func(string) string) (Source, error) {
	vars := map[string]string{}
	b, err := readProjectFile(root, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Source{}, exitcode.With(exitcode.Usage, err)
	default:
		vars, err = dotenv.ParseWithLookup(bytes.NewReader(b), lookupFrom(getenv))
		if err != nil {
			return Source{}, exitcode.With(exitcode.Usage, fmt.Errorf("%s: %w", path, err))
		}
	}
	return Source{
		Name:  path,
		Needs: Setting,
		Lookup: func(name string) ([]string, bool) {
			v, ok := vars[EnvName(name)]
			return []string{v}, ok
		},
	}, nil
}

// ConfigFileSource reads a config file: YAML (.yaml, .yml, .json) with one
// top-level key per flag, or dotenv-style KEY=value lines otherwise. Keys
// may be spelt database_url, database-url or POSTSTACK_DATABASE_URL.
// Unknown keys are ignored, so that one file can serve all four binaries.
// A missing file is a usage error: it was asked for explicitly.
func ConfigFileSource(path string, getenv func(string) string) (Source, error) {
	b, err := readUserFile(path)
	if err != nil {
		return Source{}, exitcode.With(exitcode.Usage, fmt.Errorf("config file: %w", err))
	}
	vals := map[string][]string{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		if vals, err = parseYAMLConfig(b); err != nil {
			return Source{}, exitcode.With(exitcode.Usage, fmt.Errorf("config file %s: %w", path, err))
		}
	default:
		env, err := dotenv.ParseWithLookup(bytes.NewReader(b), lookupFrom(getenv))
		if err != nil {
			return Source{}, exitcode.With(exitcode.Usage, fmt.Errorf("config file %s: %w", path, err))
		}
		for k, v := range env {
			vals[configKey(k)] = []string{v}
		}
	}
	return Source{
		Name:  path,
		Needs: Setting,
		Lookup: func(name string) ([]string, bool) {
			v, ok := vals[configKey(name)]
			return v, ok
		},
	}, nil
}

func parseYAMLConfig(b []byte) (map[string][]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	if len(doc.Content) == 0 {
		return out, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping of setting: value", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := configKey(k.Value)
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue
			}
			out[key] = []string{v.Value}
		case yaml.SequenceNode:
			var list []string
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("line %d: %s: want a list of plain values", item.Line, k.Value)
				}
				list = append(list, item.Value)
			}
			out[key] = list
		default:
			return nil, fmt.Errorf("line %d: %s: want a plain value", v.Line, k.Value)
		}
	}
	return out, nil
}

func lookupFrom(getenv func(string) string) dotenv.LookupFn {
	return func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}
}
