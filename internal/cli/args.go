package cli

import (
	"context"
	"flag"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// parseInterspersed parses the flags that follow the selected command's positional arguments
// (ps-env up dev --only db, ps-env containers rm api --force, ps-subst pod.yaml --strict)
// and hands its Exec only the positional ones, in order. ffcli stops at the first positional
// argument and passes the rest on unparsed; doing the rest here, before the fallbacks and the
// logger are settled, makes a flag mean the same wherever it stands. "--" ends the flags: what
// follows is positional, dashes and all. The errors are the flag package's, as for the flags
// before the first positional argument (flag.ErrHelp for -h): Run reports both alike.
//
// argv is what root parsed: the selected command's remaining arguments are a suffix of it, so
// the token before them tells whether its flags already ended at a "--".
func parseInterspersed(root *ffcli.Command, argv []string) error {
	c := deepestParsed(root)
	if c.Exec == nil || c.FlagSet == nil {
		return nil
	}
	args := c.FlagSet.Args()
	if i := len(argv) - len(args) - 1; i >= 0 && i < len(argv) && argv[i] == "--" {
		return nil
	}
	pos, err := positional(c.FlagSet, args)
	if err != nil || len(pos) == len(args) {
		return err
	}
	exec := c.Exec
	c.Exec = func(ctx context.Context, _ []string) error { return exec(ctx, pos) }
	return nil
}

// positional parses the flags of fs wherever they stand in args and returns the other
// arguments.
func positional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" {
			pos, args = append(pos, args[0]), args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil // the flags ended at a "--"
		}
		args = rest
	}
	return pos, nil
}
