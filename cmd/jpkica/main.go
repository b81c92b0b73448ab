// Command jpkica is the certificate authority daemon and its administration
// commands. See API.md for the surface it implements.
//
// Every command starts from open, which loads the configuration and opens
// the store and, as far as the command needs them, the key store and the
// keyring. `serve` is built, then run. build constructs every component of
// the roles it runs into one daemon value: the ocsp role's pre-signer and
// responder, the ca role's authority and API, the crl role's updater, the
// watch of the delegated OCSP responders and the status listener, in the
// order of their dependencies, never in the order of the roles. run binds
// every listener, starts the servers and the loops, and stops them when its
// context ends. The loops themselves are policy and live in packages:
// ocsp.Presigner.Run, crl.Updater.Run, responderwatch.Watch.Run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jpkica/jpkica/internal/cmdflags"
)

const usage = `usage: jpkica <command> [flags]

commands:
  serve     [--config FILE] [--role ca,ocsp,crl]   run the daemon
  init      [--config FILE] [--new-generation]     key ceremony
  clients issue --role ROLE [--municipality CODE] --name NAME --out PREFIX
  issuers   [--config FILE] [--out DIR]            write the issuer and OCSP responder certificates
  revoke    SERIAL --reason REASON
  crl generate [--issuer ID] [--partition CODE|full] [--delta] [--out DIR]
  ocsp presign [--config FILE]                     sign and store every live certificate's response
  renewals  --municipality CODE --on DATE [--format csv|json]
  dev seed  --certificates N [--revoked F] [--municipalities M]
  audit verify [--config FILE] [--anchor HEADS]    check every audit chain
`

// errUsage marks a command line that could not be understood.
var errUsage = cmdflags.ErrUsage

// helpText is what -h or --help after a command asked for: the command's
// flags, for standard output, and no failure.
type helpText = cmdflags.Help

func main() {
	logger := newTextLogger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, logger)
	var help helpText
	switch {
	case err == nil:
	case errors.As(err, &help):
		fmt.Fprint(os.Stdout, help)
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "jpkica: %v\n\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "jpkica: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, logger)
	case "init":
		return cmdInit(ctx, rest, stdout, logger)
	case "dev":
		if len(rest) == 0 || rest[0] != "seed" {
			return fmt.Errorf("%w: dev has one subcommand, seed", errUsage)
		}
		return cmdSeed(ctx, rest[1:], stdout, logger)
	case "clients":
		return cmdClients(ctx, rest, stdout, logger)
	case "issuers":
		return cmdIssuers(ctx, rest, stdout)
	case "crl":
		return cmdCRL(ctx, rest, stdout, logger)
	case "ocsp":
		return cmdOCSP(ctx, rest, stdout, logger)
	case "revoke":
		return cmdRevoke(ctx, rest, stdout, logger)
	case "renewals":
		return cmdRenewals(ctx, rest, stdout, logger)
	case "audit":
		if len(rest) == 0 || rest[0] != "verify" {
			return fmt.Errorf("%w: audit has one subcommand, verify", errUsage)
		}
		return cmdAuditVerify(ctx, rest[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "YAML configuration file (default: embedded development defaults)")
	return fs, configPath
}

// parseFlags parses a command's flags (see cmdflags.Parse) and refuses
// arguments after them.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var synopses []string
	for _, line := range strings.Split(usage, "\n") {
		synopses = append(synopses, strings.TrimSpace(line))
	}
	if err := cmdflags.Parse(fs, args, "jpkica", synopses); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}
