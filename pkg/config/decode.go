package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/safefile"
)

// decoder walks yaml.Node trees by hand so that every problem keeps the
// position of the node that caused it; yaml.v3's struct decoding loses them.
type decoder struct {
	file string
	data []byte
	errs []*Error
	// merging holds the mappings whose merge keys are being followed, so
	// that an anchor merged into itself is reported instead of looping.
	merging map[*yaml.Node]bool
}

type entry struct {
	key *yaml.Node // the key as written, for positions
	val *yaml.Node // the value with aliases followed
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...)})
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// describe names what a node holds, for "must be X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// entries returns the pairs of a mapping node, following aliases and `<<`
// merge keys (explicit keys win over merged ones, earlier merges over later
// ones), and reports duplicate and non-scalar keys.
func (d *decoder) entries(n *yaml.Node) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	var merges []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "keys must be strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, entry{key: k, val: v})
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "duplicate key %q (first defined at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{key: k, val: v})
	}
	for _, me := range merges {
		m := me.val
		var maps []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			maps = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				maps = append(maps, deref(c))
			}
		}
		for _, mm := range maps {
			if mm.Kind != yaml.MappingNode {
				d.errorf(mm, "a << merge needs a mapping or a list of mappings, got %s", describe(mm))
				continue
			}
			if d.merging[mm] || mm == n {
				d.errorf(me.key, "a << merge includes the mapping it is in")
				continue
			}
			if d.merging == nil {
				d.merging = map[*yaml.Node]bool{}
			}
			d.merging[n] = true
			merged := d.entries(mm)
			delete(d.merging, n)
			for _, e := range merged {
				if _, ok := seen[e.key.Value]; ok {
					continue
				}
				seen[e.key.Value] = e.key
				out = append(out, e)
			}
		}
	}
	return out
}

// section is a decoded mapping with a fixed set of keys.
type section struct {
	m map[string]entry
	// suggested holds known keys offered for a misspelt one, so that the
	// misspelling is not reported a second time as a missing required key.
	suggested map[string]bool
}

// missing reports whether a required key is absent and not already
// explained by an "unknown key … did you mean" message.
func (s section) missing(key string) bool {
	_, ok := s.m[key]
	return !ok && !s.suggested[key]
}

// fields decodes a mapping with a fixed set of keys, reporting unknown ones
// with the closest known key. Its m is nil when n is not a mapping.
func (d *decoder) fields(n *yaml.Node, what, where string, known ...string) section {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, got %s", what, describe(n))
		return section{}
	}
	s := section{m: map[string]entry{}, suggested: map[string]bool{}}
	for _, e := range d.entries(n) {
		if !contains(known, e.key.Value) {
			msg := fmt.Sprintf("unknown key %q %s", e.key.Value, where)
			if sug := suggest(e.key.Value, known); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
				s.suggested[sug] = true
			} else {
				msg += " (known: " + strings.Join(known, ", ") + ")"
			}
			d.errorf(e.key, "%s", msg)
			continue
		}
		s.m[e.key.Value] = e
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str returns a scalar's text as written; numbers and booleans are accepted
// because `database: 2024` is as plainly meant as a quoted one.
func (d *decoder) str(e entry, name string) (string, bool) {
	if e.val.Kind != yaml.ScalarNode || e.val.Tag == "!!null" {
		d.errorf(e.val, "%s must be a string, got %s", name, describe(e.val))
		return "", false
	}
	return e.val.Value, true
}

// nonEmpty is str that also refuses "".
func (d *decoder) nonEmpty(e entry, name string) (string, bool) {
	s, ok := d.str(e, name)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(e.val, "%s must not be empty", name)
		return "", false
	}
	return s, ok
}

func (d *decoder) file1(f *File, root *yaml.Node) {
	sec := d.fields(root, "the file", "at the top level", "environment", "project", "environments")
	top := sec.m
	if top == nil {
		return
	}
	if e, ok := top["project"]; ok {
		d.project(f, e)
	} else if sec.missing("project") {
		d.errorf(root, "project is required (project: {name: …})")
	}
	f.EnvironmentsPos = d.pos(root)
	if e, ok := top["environments"]; ok {
		f.EnvironmentsPos = d.pos(e.key)
		d.environments(f, e)
	} else if sec.missing("environments") {
		d.errorf(root, "environments is required")
	}
	if e, ok := top["environment"]; ok {
		f.DefaultPos = d.pos(e.val)
		if name, ok := d.str(e, "environment"); ok {
			f.Default = name
			if _, ok := top["environments"]; ok && !contains(f.Names(), name) {
				d.errorf(e.val, "environment %q is not defined (known: %s)", name, strings.Join(f.Names(), ", "))
			}
		}
	}
}

func (d *decoder) project(f *File, e entry) {
	f.Project.Pos = d.pos(e.key)
	sec := d.fields(e.val, "project", "in project", "name", "description")
	m := sec.m
	if m == nil {
		return
	}
	if n, ok := m["name"]; ok {
		if name, ok := d.nonEmpty(n, "project name"); ok {
			if ValidName(name) {
				f.Project.Name = name
			} else {
				d.errorf(n.val, "project name %q is invalid: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit", name)
			}
		}
	} else if sec.missing("name") {
		d.errorf(e.key, "project.name is required")
	}
	if n, ok := m["description"]; ok {
		f.Project.Description, _ = d.str(n, "description")
	}
}

func (d *decoder) environments(f *File, e entry) {
	if e.val.Kind != yaml.MappingNode {
		d.errorf(e.val, "environments must be a mapping of environment names, got %s", describe(e.val))
		return
	}
	list := d.entries(e.val)
	if len(list) == 0 {
		d.errorf(e.key, "environments must define at least one environment")
	}
	for _, en := range list {
		name := en.key.Value
		if !ValidName(name) {
			d.errorf(en.key, "environment name %q is invalid: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit", name)
		}
		env := &Environment{Name: name, Pos: d.pos(en.key)}
		f.Environments = append(f.Environments, env)
		d.environment(f, env, en)
	}
}

func (d *decoder) environment(f *File, env *Environment, e entry) {
	where := fmt.Sprintf("in environment %q", env.Name)
	sec := d.fields(e.val, fmt.Sprintf("environment %q", env.Name), where, "postgres", "init", "deployment", "seed", "variables")
	m := sec.m
	if m == nil {
		return
	}
	if pg, ok := m["postgres"]; ok {
		d.postgres(f, env, pg)
	} else {
		// Every postgres key has a default (DESIGN.md): an environment may omit the section.
		env.Postgres.Pos = d.pos(e.key)
		d.postgresDefaults(f, env, e.key)
	}
	if in, ok := m["init"]; ok {
		if in.val.Kind != yaml.SequenceNode {
			d.errorf(in.val, "init must be a list of {pod: FILE} or {compose: FILE}, got %s", describe(in.val))
		} else {
			for i, item := range in.val.Content {
				if s, ok := d.step(f, deref(item), fmt.Sprintf("init entry %d of environment %q", i+1, env.Name)); ok {
					env.Init = append(env.Init, s)
				}
			}
		}
	}
	if dep, ok := m["deployment"]; ok {
		if s, ok := d.step(f, dep.val, fmt.Sprintf("deployment of environment %q", env.Name)); ok {
			env.Deployment = &s
		}
	}
	if sd, ok := m["seed"]; ok {
		d.seed(f, env, sd)
	}
	if vars, ok := m["variables"]; ok {
		d.variables(env, vars)
	}
}

// seed decodes `seed:`, a list of SQL files relative to the project; Environment checks that
// they exist and are inside it.
func (d *decoder) seed(f *File, env *Environment, e entry) {
	if e.val.Kind != yaml.SequenceNode {
		d.errorf(e.val, "seed must be a list of SQL files, got %s", describe(e.val))
		return
	}
	for i, item := range e.val.Content {
		p, ok := d.nonEmpty(entry{key: item, val: deref(item)}, fmt.Sprintf("seed entry %d of environment %q", i+1, env.Name))
		if !ok {
			continue
		}
		resolved := p
		if !filepath.IsAbs(p) {
			resolved = filepath.Join(f.Dir, p)
		}
		env.Seed = append(env.Seed, SeedFile{Path: p, File: resolved, Pos: d.pos(item)})
	}
}

// checkSeed says what is wrong with a seed file of the selected environment, "" if nothing: it
// must be a regular file inside the project, since a checkout could name ~/.ssh/id_rsa.
func checkSeed(dir string, sf SeedFile) string {
	info, err := os.Stat(sf.File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("seed file %s does not exist", sf.Path)
	case err != nil:
		return fmt.Sprintf("seed file %s: %v", sf.Path, err)
	case !info.Mode().IsRegular():
		return fmt.Sprintf("seed file %s is not a regular file", sf.Path)
	}
	if _, err := safefile.Inside(dir, sf.File); err != nil {
		reason := err.Error()
		if se := (*safefile.Error)(nil); errors.As(err, &se) {
			reason = se.Reason
		}
		return fmt.Sprintf("seed file %s %s", sf.Path, reason)
	}
	return ""
}

func (d *decoder) step(f *File, n *yaml.Node, what string) (Step, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be {pod: FILE} or {compose: FILE}, got %s", what, describe(n))
		return Step{}, false
	}
	m := d.fields(n, what, "in "+what, string(Pod), string(Compose)).m
	if len(m) != 1 {
		if len(m) == 2 {
			d.errorf(n, "%s must have exactly one of pod or compose, got both", what)
		} else if len(d.entries(n)) == 0 {
			d.errorf(n, "%s must have exactly one of pod or compose, got neither", what)
		}
		return Step{}, false
	}
	for k, e := range m {
		p, ok := d.nonEmpty(e, k+" file")
		if !ok {
			return Step{}, false
		}
		resolved := p
		if !filepath.IsAbs(p) {
			resolved = filepath.Join(f.Dir, p)
		}
		return Step{Kind: StepKind(k), Path: p, File: resolved, Pos: d.pos(e.key)}, true
	}
	return Step{}, false
}

// postgresDefaults fills in what an omitted postgres key means: database <project>_<env>,
// user <project>_<env>_user, a generated password, port, image and bind address.
func (d *decoder) postgresDefaults(f *File, env *Environment, at *yaml.Node) {
	pg := &env.Postgres
	pg.PortAuto, pg.Image, pg.Bind, pg.GeneratePassword = true, DefaultImage, DefaultBind, true
	if f.Project.Name == "" {
		return // the missing or invalid project name is reported already
	}
	pg.Database = d.defaultIdentifier(at, env, "database", f.Project.Name+"_"+env.Name)
	pg.User = d.defaultIdentifier(at, env, "user", f.Project.Name+"_"+env.Name+"_user")
}

// defaultIdentifier is a default role or database name, which Postgres must not truncate.
func (d *decoder) defaultIdentifier(at *yaml.Node, env *Environment, key, name string) string {
	if len(name) > 63 {
		d.errorf(at, "environment %q: the default postgres.%s %q is longer than 63 bytes: set postgres.%s", env.Name, key, name, key)
		return ""
	}
	return name
}

func (d *decoder) postgres(f *File, env *Environment, e entry) {
	pg := &env.Postgres
	pg.Pos = d.pos(e.key)
	sec := d.fields(e.val, "postgres", fmt.Sprintf("in postgres of environment %q", env.Name),
		"database", "port", "user", "password", "image", "bind", "url")
	m := sec.m
	if m == nil {
		return
	}
	if u, ok := m["url"]; ok {
		d.externalURL(env, u, m)
		return
	}
	d.postgresDefaults(f, env, e.key)
	if v, ok := m["database"]; ok {
		pg.Database, _ = d.identifier(v, "database")
	}
	if v, ok := m["user"]; ok {
		pg.User, _ = d.identifier(v, "user")
	}
	if v, ok := m["password"]; ok {
		if s, ok := d.str(v, "password"); ok {
			switch {
			case s == AutoGenerated:
			case s == "":
				d.errorf(v.val, "password must not be empty (use %s to have one generated)", AutoGenerated)
			default:
				pg.Password, pg.GeneratePassword = s, false
			}
		}
	}
	if v, ok := m["port"]; ok {
		pg.Port = d.port(v)
		pg.PortAuto = pg.Port == 0 && v.val.Kind == yaml.ScalarNode && v.val.Value == "auto"
	}
	if v, ok := m["image"]; ok {
		if s, ok := d.nonEmpty(v, "image"); ok {
			pg.Image = s
		}
	}
	if v, ok := m["bind"]; ok {
		if s, ok := d.str(v, "bind"); ok {
			if _, err := netip.ParseAddr(s); err != nil {
				d.errorf(v.val, "bind must be an IP address such as 127.0.0.1 or 0.0.0.0, got %q", s)
			} else {
				pg.Bind = s
			}
		}
	}
}

// identifier decodes a role or database name; Postgres truncates names
// longer than 63 bytes, which would silently connect to something else.
func (d *decoder) identifier(e entry, name string) (string, bool) {
	s, ok := d.nonEmpty(e, name)
	if ok && len(s) > 63 {
		d.errorf(e.val, "%s must be at most 63 bytes, got %d", name, len(s))
		return "", false
	}
	return s, ok
}

func (d *decoder) port(e entry) int {
	n := e.val
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "auto" {
		return 0
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!str") {
		if p, err := strconv.Atoi(n.Value); err == nil && p >= 1 && p <= 65535 {
			return p
		}
	}
	d.errorf(n, "port must be a number 1–65535 or auto, got %s", describe(n))
	return 0
}

// externalURL decodes postgres.url, which replaces the container settings.
// Messages show the URL redacted: it usually carries a password.
func (d *decoder) externalURL(env *Environment, e entry, m map[string]entry) {
	pg := &env.Postgres
	for _, k := range []string{"database", "user", "password", "port", "image", "bind"} {
		if v, ok := m[k]; ok {
			d.errorf(v.key, "%s cannot be combined with url (an external database is configured by its url alone)", k)
		}
	}
	s, ok := d.nonEmpty(e, "url")
	if !ok {
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		d.errorf(e.val, "url is not a valid URL")
		return
	}
	var problems []string
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		problems = append(problems, "scheme postgres://")
	}
	if u.Hostname() == "" {
		problems = append(problems, "a host")
	}
	if u.User == nil || u.User.Username() == "" {
		problems = append(problems, "a user")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		problems = append(problems, "a database")
	}
	port := DefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			problems = append(problems, "a port 1–65535")
		}
		port = n
	}
	if len(problems) > 0 {
		d.errorf(e.val, "url must have %s, got %q", strings.Join(problems, ", "), u.Redacted())
		return
	}
	pg.URL, pg.Database, pg.User, pg.Port = s, db, u.User.Username(), port
	pg.Password, _ = u.User.Password()
}

func (d *decoder) variables(env *Environment, e entry) {
	if e.val.Kind != yaml.MappingNode {
		d.errorf(e.val, "variables must be a mapping of NAME: value, got %s", describe(e.val))
		return
	}
	for _, v := range d.entries(e.val) {
		name := v.key.Value
		switch {
		case !ValidVariableName(name):
			d.errorf(v.key, "variable name %q is invalid: use letters, digits and '_', not starting with a digit", name)
			continue
		case IsBuiltin(name):
			d.errorf(v.key, "variable %s is built-in and cannot be set in variables:", name)
			continue
		}
		if v.val.Kind != yaml.ScalarNode || v.val.Tag == "!!null" {
			d.errorf(v.val, "variable %s must be a string, number or boolean, got %s", name, describe(v.val))
			continue
		}
		env.Variables = append(env.Variables, Variable{Name: name, Value: v.val.Value, Pos: d.pos(v.key)})
	}
}
