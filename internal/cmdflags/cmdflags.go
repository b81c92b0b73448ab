// Package cmdflags parses a subcommand's flags for jpkica's two commands,
// jpkica and counter, the same way: -h or --help gives the subcommand's
// line of usage and its flags as a Help, for standard output and no
// failure; a flag it does not know, an error wrapping ErrUsage that lists
// them.
package cmdflags

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage marks a command line that could not be understood.
var ErrUsage = errors.New("usage")

// Help is what -h or --help asked for.
type Help string

func (h Help) Error() string { return string(h) }

// Parse parses args into fs, a flag set made with flag.ContinueOnError.
// The help names program, and the first of synopses that starts with the
// subcommand's name (fs.Name()) and a space as its line of usage.
func Parse(fs *flag.FlagSet, args []string, program string, synopses []string) error {
	err := fs.Parse(args)
	if err == nil {
		return nil
	}
	var b strings.Builder
	for _, l := range synopses {
		if strings.HasPrefix(l, fs.Name()+" ") {
			fmt.Fprintf(&b, "usage: %s %s\n\n", program, l)
			break
		}
	}
	fmt.Fprintf(&b, "flags of %s %s:\n", program, fs.Name())
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if errors.Is(err, flag.ErrHelp) {
		return Help(b.String())
	}
	return fmt.Errorf("%w: %s: %v\n\n%s", ErrUsage, fs.Name(), err, b.String())
}
