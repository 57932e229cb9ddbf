package cli

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// usage renders a command's --help: what it does, how to call it, its
// subcommands and flags, where else flags come from, and examples.
func (a *App) usage(c *ffcli.Command) string {
	var b strings.Builder
	if c.ShortHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.ShortHelp)
	}
	b.WriteString("USAGE\n")
	if c.ShortUsage != "" {
		fmt.Fprintf(&b, "  %s\n\n", c.ShortUsage)
	} else {
		fmt.Fprintf(&b, "  %s\n\n", c.Name)
	}
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimRight(c.LongHelp, "\n"))
	}
	if len(c.Subcommands) > 0 {
		b.WriteString("COMMANDS\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, s := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.ShortHelp)
		}
		tw.Flush()
		b.WriteString("\n")
	}
	isRoot := c == a.root
	if c.FlagSet != nil {
		var lines []string
		c.FlagSet.VisitAll(func(f *flag.Flag) {
			if !isRoot && a.Globals.isGlobal(f.Name) {
				return
			}
			lines = append(lines, flagLine(f, a.fallbackOf(c.FlagSet, f.Name), a.Globals.isGlobal(f.Name)))
		})
		if len(lines) > 0 {
			b.WriteString("FLAGS\n")
			tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
			for _, l := range lines {
				fmt.Fprint(tw, l)
			}
			tw.Flush()
			b.WriteString("\n")
		}
	}
	if isRoot {
		fmt.Fprintf(&b, "The settings marked [env, .env, config] can also be set as a %sNAME\n"+
			"environment variable (--log-level is %s), as such a line in ./.env, or\n"+
			"as a key in --config-file (log_level: debug); the command line wins, then the\n"+
			"environment, .env, the config file, the default. Paths set by .env or the config\n"+
			"file must stay inside the project. Every other flag comes from the command line\n"+
			"only, unless its help names a variable. NO_COLOR turns colour off.\n\n",
			EnvPrefix, EnvName("log-level"))
	} else {
		fmt.Fprintf(&b, "The global flags (see '%s --help') are accepted here too.\n\n", a.Name)
	}
	if ex := a.examples[c]; len(ex) > 0 {
		b.WriteString("EXAMPLES\n")
		for _, e := range ex {
			for _, line := range strings.Split(strings.TrimRight(e, "\n"), "\n") {
				fmt.Fprintf(&b, "  %s\n", line)
			}
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func flagLine(f *flag.Flag, fb Fallback, global bool) string {
	arg, usage := flag.UnquoteUsage(f)
	name := "--" + f.Name
	if len(f.Name) == 1 {
		name = "-" + f.Name
	}
	if arg != "" {
		name += " " + arg
	}
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
		usage += fmt.Sprintf(" (default %s)", f.DefValue)
	}
	switch fb {
	case Environment:
		usage += fmt.Sprintf(" [env %s]", EnvName(f.Name))
	case Setting:
		if global {
			usage += " [env, .env, config]"
		} else {
			usage += fmt.Sprintf(" [env %s, .env, config]", EnvName(f.Name))
		}
	}
	return fmt.Sprintf("  %s\t%s\n", name, usage)
}
