package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
)

// Globals are the settings every poststack binary accepts. Each is a flag;
// the settings of DESIGN.md are also a POSTSTACK_<NAME> environment
// variable, a .env entry and a config-file key (see globalFallback).
type Globals struct {
	DatabaseURL                   string
	LogLevel                      slog.Level
	LogDir                        string
	ContainerRuntime              string // "", "podman" or "docker"; "" means detect
	PostgresContainerName         string // "" means derived from project and environment
	PostgresHostPort              int
	MigrationsPath                string
	ProjectContainersPath         string
	ProjectContainerPrefix        string
	ProjectContainerNetwork       string
	ProjectContainerRestartPolicy string
	ConfigFile                    string
	JSON                          bool
	Quiet                         bool
	NoColor                       bool // --no-color, or NO_COLOR / TERM=dumb in the environment
	Version                       bool

	// LogDirExplicit records that the log directory was given by some
	// source rather than defaulted, which makes the file log create it.
	LogDirExplicit bool

	// defined records every flag Register defines, so that help and the
	// fallback rules know the globals from what Register registers.
	defined map[string]globalFlag
}

// globalFlag is what Register knows of a global flag besides its value:
// where else it may come from, and whether it names a place poststack
// reads or writes.
type globalFlag struct {
	fallback Fallback
	path     bool
}

// isGlobal tells the flags Register defined from a command's own, for help.
func (g *Globals) isGlobal(name string) bool {
	_, ok := g.defined[name]
	return ok
}

// fallbackOf is where a global flag may come from besides the command line.
func (g *Globals) fallbackOf(name string) Fallback { return g.defined[name].fallback }

// isPathSetting tells the settings that name a place poststack reads or
// writes: when the project's files set them, they must stay inside it.
func (g *Globals) isPathSetting(name string) bool { return g.defined[name].path }

// Register defines the global flags on fs with their defaults, skipping
// any name fs already defines. dir is the working directory, whose base
// name is the default container prefix.
func (g *Globals) Register(fs *flag.FlagSet, dir string) {
	// Where a global flag may come from besides the command line: the
	// settings of DESIGN.md from the environment, .env and the config file;
	// --config-file from the environment only (a project's .env must not
	// pick the file that configures it); output switches (--json, --quiet,
	// --no-color, --version) from the command line only.
	if g.defined == nil {
		g.defined = map[string]globalFlag{}
	}
	def := func(name string, info globalFlag, define func()) {
		g.defined[name] = info
		if fs.Lookup(name) == nil {
			define()
		}
	}
	setting := globalFlag{fallback: Setting}
	pathSetting := globalFlag{fallback: Setting, path: true}
	commandLine := globalFlag{fallback: CommandLine}
	prefix := filepath.Base(filepath.Clean(dir))
	if prefix == "." || prefix == string(filepath.Separator) {
		prefix = ""
	}
	def("database-url", setting, func() {
		fs.StringVar(&g.DatabaseURL, "database-url", "", "Postgres `URL` of the database to work on")
	})
	def("log-level", setting, func() {
		g.LogLevel = slog.LevelInfo
		fs.Var(levelValue{&g.LogLevel}, "log-level", "log `level`: debug, info, warn or error")
	})
	def("log-dir", pathSetting, func() {
		fs.StringVar(&g.LogDir, "log-dir", "logs", "`dir`ectory for poststack.log (used only if it exists or is set explicitly)")
	})
	def("container-runtime", setting, func() {
		g.ContainerRuntime = ""
		fs.Var(choiceValue{&g.ContainerRuntime, []string{"podman", "docker"}}, "container-runtime",
			"container `engine`: podman or docker (default: detected)")
	})
	def("postgres-container-name", setting, func() {
		fs.StringVar(&g.PostgresContainerName, "postgres-container-name", "",
			"`name` of the Postgres container (default: <project>-<env>-postgres)")
	})
	def("postgres-host-port", setting, func() {
		g.PostgresHostPort = 5432
		fs.Var(portValue{&g.PostgresHostPort}, "postgres-host-port", "host `port` Postgres is published on")
	})
	def("migrations-path", pathSetting, func() {
		fs.StringVar(&g.MigrationsPath, "migrations-path", "./migrations", "`dir`ectory of NNNN_name.sql migrations")
	})
	def("project-containers-path", pathSetting, func() {
		fs.StringVar(&g.ProjectContainersPath, "project-containers-path", "./containers", "`dir`ectory of project container builds")
	})
	def("project-container-prefix", setting, func() {
		fs.StringVar(&g.ProjectContainerPrefix, "project-container-prefix", prefix, "`prefix` for project image and container names")
	})
	def("project-container-network", setting, func() {
		fs.StringVar(&g.ProjectContainerNetwork, "project-container-network", "bridge", "`network` for project containers")
	})
	def("project-container-restart-policy", setting, func() {
		fs.StringVar(&g.ProjectContainerRestartPolicy, "project-container-restart-policy", "unless-stopped",
			"restart `policy` for project containers")
	})
	def("config-file", globalFlag{fallback: Environment}, func() {
		fs.StringVar(&g.ConfigFile, "config-file", "", "read settings from `file` (YAML, or KEY=value lines)")
	})
	def("json", commandLine, func() { fs.BoolVar(&g.JSON, "json", false, "print results as JSON") })
	def("quiet", commandLine, func() { fs.BoolVar(&g.Quiet, "quiet", false, "print only warnings and errors") })
	def("no-color", commandLine, func() { fs.BoolVar(&g.NoColor, "no-color", false, "never colour output (also NO_COLOR)") })
	def("version", commandLine, func() { fs.BoolVar(&g.Version, "version", false, "print the version and exit") })
}

// levelValue accepts exactly the four level names users know, in any case.
type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v levelValue) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		*v.p = slog.LevelDebug
	case "info":
		*v.p = slog.LevelInfo
	case "warn", "warning":
		*v.p = slog.LevelWarn
	case "error":
		*v.p = slog.LevelError
	default:
		return fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return nil
}

type portValue struct{ p *int }

func (v portValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v portValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q out of range (want 1-65535)", s)
	}
	*v.p = n
	return nil
}

// choiceValue accepts "" or one of choices, case-insensitively.
type choiceValue struct {
	p       *string
	choices []string
}

func (v choiceValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v choiceValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		*v.p = ""
		return nil
	}
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("unknown value %q (want %s)", s, strings.Join(v.choices, " or "))
}
