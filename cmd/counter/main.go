// Command counter is the municipal counter terminal's CLI over package
// counter: issue both certificates onto a card, renew, revoke, open a proxy
// application, list renewal notices, quote the fee.
//
// counter help prints the usage below (usage), counter COMMAND -h a
// command's flags; each command takes only the flags it uses. Every
// command but fee takes the connection flags (--api, --cert, --key, --ca),
// issue and renew the card flags too (--module, --sig-token,
// --auth-token). A terminal is set up once in a config file, JSON with
// those flags' names as keys, read from the file that COUNTER_CONFIG
// names or else ~/.config/jpkica-counter.json; a flag overrides it.
//
// Every flag, every combination of flags, the config file and the PINs
// are checked before the card is touched, and each error names the flag
// or variable at fault. A visit that the API refuses leaves no key on the
// card (counter.IssueOnto).
//
// The PINs come from the environment, never from flags or files, so they
// stay out of shell history and process lists. issue is for a new card:
// it logs in with the card's transport PINs (COUNTER_SIG_TRANSPORT_PIN,
// COUNTER_AUTH_TRANSPORT_PIN) and sets the resident's PINs
// (COUNTER_SIG_PIN, COUNTER_AUTH_PIN). renew is for a card in use: it logs
// in with the resident's PINs and keeps them. A resident's PIN is checked
// against its rule, and a signature PIN folded to upper case, before it is
// tried on the card.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
	"github.com/jpkica/jpkica/internal/cmdflags"
)

var errUsage = cmdflags.ErrUsage

// synopses are the commands' lines of usage.
var synopses = []string{
	"issue   --resident FILE.json --card-id ID --card-expires DATE [--types T,T] [--proxy-app ID --answer CODE] [--json]",
	"renew   (as issue, onto a card in use: the new certificates supersede the old ones)",
	"revoke  --serial HEX --reason REASON [--json]",
	"proxy   --resident FILE.json --card-id ID --card-expires DATE [--types T,T] [--json]",
	"notices [--municipality CODE] [--on DATE] [--csv | --json]",
	"fee     [--signature] [--authentication] [--my-number-card] [--own-loss] [--per-certificate YEN]",
}

// usage is the whole command line, for help and for a line it cannot read.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: counter <command> [flags]\n\ncommands:\n")
	for _, l := range synopses {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString(`
Every command but fee reaches the API with the connection flags:
  --api URL           the API (default ` + defaultAPI + `)
  --cert FILE         this terminal's certificate (PEM)
  --key FILE          its private key (PEM)
  --ca FILE           the CA that certifies the API's server certificate (PEM)
issue and renew reach the card with the card flags too:
  --module FILE       the card reader's PKCS#11 module
  --sig-token LABEL   the token of the card's signature area
  --auth-token LABEL  the token of the card's user-authentication area

Config file: set a terminal up once in a JSON file whose keys are these
flags' names, read from the file that ` + configEnv + ` names, else from
$XDG_CONFIG_HOME/` + configName + ` or ~/.config/` + configName + `.
A flag on the command line overrides the file; relative paths in it are taken
from its folder. For example:
  {"api": "https://ca.example.jp:8443", "cert": "wakayama-01.crt",
   "key": "wakayama-01.key", "ca": "wakayama-01-ca.crt",
   "module": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
   "sig-token": "JPKI SIG", "auth-token": "JPKI AUTH"}

PINs come from the environment, never from a flag or a file: issue logs in with
the card's transport PINs (COUNTER_SIG_TRANSPORT_PIN, COUNTER_AUTH_TRANSPORT_PIN)
and sets the resident's PINs (COUNTER_SIG_PIN, COUNTER_AUTH_PIN); renew logs in
with the resident's PINs and keeps them.

Everything is checked before the card is touched; a certificate the API refuses
leaves no key on the card. issue and renew print one line per certificate (type,
serial, last day of validity in Japan); --json prints the API's full answer.
counter <command> -h lists a command's flags.
`)
	return b.String()
}

// helpText is what -h asked for, for standard output, and no failure.
type helpText = cmdflags.Help

// parseFlags parses a command's flags (see cmdflags.Parse), and refuses
// arguments that belong to no flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := cmdflags.Parse(fs, args, "counter", synopses); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q: every value goes after its flag (counter %s -h lists them)",
			errUsage, fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// newFlagSet is a command's flag set, which prints nothing itself.
func newFlagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// system is what a run of the command sees of the world: where it
// prints, its environment, its clock.
type system struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], system{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now})
	var help helpText
	if errors.As(err, &help) {
		fmt.Fprint(os.Stdout, help)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "counter: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, sys system) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command\n\n%s", errUsage, usage())
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		return helpText(usage())
	case "issue", "renew":
		return runVisit(ctx, sys, cmd, rest)
	case "revoke":
		return runRevoke(ctx, sys, rest)
	case "proxy":
		return runProxy(ctx, sys, rest)
	case "notices":
		return runNotices(ctx, sys, rest)
	case "fee":
		return runFee(sys, rest)
	}
	return fmt.Errorf("%w: unknown command %q\n\n%s", errUsage, cmd, usage())
}

// runRevoke revokes one certificate.
func runRevoke(ctx context.Context, sys system, args []string) error {
	fs, asJSON := apiFlagSet("revoke")
	fs.String("serial", "", "certificate serial (hex)")
	fs.String("reason", "", "RFC 5280 reason, e.g. keyCompromise")
	s, err := parseSettings(fs, args, sys.getenv)
	if err != nil {
		return err
	}
	term, errs := s.terminal(sys.now())
	serial, reason := s.get("serial"), s.get("reason")
	if serial == "" {
		errs = append(errs, s.unset("serial", "the serial (hex) of the certificate to revoke"))
	} else if _, err := ca.ParseSerial(serial); err != nil {
		errs = append(errs, s.wrong("serial", "%q is not a serial: write it in hex, as issue printed it", serial))
	}
	if reason == "" {
		errs = append(errs, s.unset("reason", "the RFC 5280 reason, e.g. keyCompromise or cessationOfOperation"))
	} else if r, err := ca.ParseReason(reason); err != nil {
		errs = append(errs, s.wrong("reason", "%q is no RFC 5280 reason: write e.g. keyCompromise or cessationOfOperation", reason))
	} else {
		reason = r.String()
	}
	if len(errs) > 0 {
		return errs
	}
	defer term.warnExpiry(sys.stderr)
	got, err := term.client.Revoke(ctx, serial, reason)
	if err != nil {
		return s.reach(err)
	}
	return printRecord(sys.stdout, got, *asJSON)
}

// runNotices lists the certificates due for an expiry notice, for the
// terminal's municipality and today unless told otherwise.
func runNotices(ctx context.Context, sys system, args []string) error {
	fs, asJSON := apiFlagSet("notices")
	fs.String("municipality", "", "six-digit code (default: this terminal's municipality)")
	fs.String("on", "", "date YYYY-MM-DD (default: today in Japan)")
	asCSV := fs.Bool("csv", false, "CSV for the mail house")
	s, err := parseSettings(fs, args, sys.getenv)
	if err != nil {
		return err
	}
	term, errs := s.terminal(sys.now())
	m := s.get("municipality")
	switch {
	case m == "" && term.cert != nil && term.municipality() == "":
		errs = append(errs, s.unset("municipality", "the six-digit code of the municipality"))
	case m == "" && term.cert != nil:
		m = term.municipality()
	case m != "" && !ca.ValidMunicipalityCode(m):
		errs = append(errs, s.wrong("municipality", "%q is not a six-digit local government code", m))
	case m != "" && term.cert != nil:
		if err := s.checkMunicipality(term, "municipality", m); err != nil {
			errs = append(errs, err)
		}
	}
	day := ca.DateOf(sys.now())
	if on := s.get("on"); on != "" {
		if day, err = ca.ParseDate(on); err != nil {
			errs = append(errs, s.wrong("on", "%q is not a date: write YYYY-MM-DD", on))
		}
	}
	if *asCSV && *asJSON {
		errs = append(errs, s.wrong("json", "--csv and --json both asked: choose one"))
	}
	if len(errs) > 0 {
		return errs
	}
	defer term.warnExpiry(sys.stderr)
	if *asCSV {
		b, err := term.client.RenewalNoticesCSV(ctx, m, day)
		if err != nil {
			return s.reach(err)
		}
		_, err = sys.stdout.Write(b)
		return err
	}
	got, err := term.client.RenewalNotices(ctx, m, day)
	if err != nil {
		return s.reach(err)
	}
	return printNotices(sys.stdout, got, m, day, *asJSON)
}

// runFee quotes the fee of a visit.
func runFee(sys system, args []string) error {
	fs := newFlagSet("fee")
	var req counter.FeeRequest
	fs.BoolVar(&req.Signature, "signature", false, "a signature certificate")
	fs.BoolVar(&req.Authentication, "authentication", false, "a user-authentication certificate")
	fs.BoolVar(&req.MyNumberCard, "my-number-card", false, "onto a My Number Card")
	fs.BoolVar(&req.ReissueAfterOwnLoss, "own-loss", false, "re-issue after the holder's own loss")
	per := fs.Int("per-certificate", counter.DefaultFees.PerCertificate, "the municipality's fee per certificate (yen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !req.Signature && !req.Authentication {
		return &settingError{"--signature, --authentication", errors.New("neither set: name the certificates to quote, one or both")}
	}
	if *per < 0 {
		return &settingError{"--per-certificate", fmt.Errorf("%d is negative: give the fee in yen", *per)}
	}
	q := counter.FeeSchedule{PerCertificate: *per}.Quote(req)
	for _, l := range q.Lines {
		fmt.Fprintf(sys.stdout, "%-15s %5d yen  %s\n", l.Type, l.Yen, l.Why)
	}
	fmt.Fprintf(sys.stdout, "%-15s %5d yen\n", "total", q.Total)
	return nil
}
