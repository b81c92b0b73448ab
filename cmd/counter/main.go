// Command counter is the municipal counter terminal's CLI over package
// counter: issue both certificates onto a card, renew, revoke, open a proxy
// application, list renewal notices, quote the fee.
//
//	counter issue   [connection flags] --resident FILE.json --card-id ID --card-expires DATE [card flags] [--proxy-app ID --answer CODE]
//	counter renew   (as issue, onto a card in use: the new certificates supersede the old ones)
//	counter revoke  [connection flags] --serial HEX --reason REASON
//	counter proxy   [connection flags] --resident FILE.json --card-id ID --card-expires DATE [--types signature,authentication]
//	counter notices [connection flags] --municipality CODE --on DATE [--csv]
//	counter fee     [--signature] [--authentication] [--my-number-card] [--own-loss]
//
// counter help lists the commands, counter COMMAND -h a command's flags.
// Connection flags: --api https://127.0.0.1:8443 --cert PREFIX.crt --key
// PREFIX.key --ca PREFIX-ca.crt. Card flags: --module, --sig-token,
// --auth-token.
//
// The PINs come from the environment, never from flags, so they stay out
// of shell history and process lists. issue is for a new card: it logs in
// with the card's transport PINs (COUNTER_SIG_TRANSPORT_PIN,
// COUNTER_AUTH_TRANSPORT_PIN) and sets the resident's PINs
// (COUNTER_SIG_PIN, COUNTER_AUTH_PIN). renew is for a card in use: it logs
// in with the resident's PINs and keeps them. A resident's PIN is checked
// against its rule, and a signature PIN folded to upper case, before it is
// tried on the card.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
	"github.com/jpkica/jpkica/internal/cmdflags"
)

var errUsage = cmdflags.ErrUsage

// synopses are the commands' lines of usage.
var synopses = []string{
	"issue   --resident FILE.json --card-id ID --card-expires DATE [card flags] [--proxy-app ID --answer CODE]",
	"renew   (as issue, onto a card in use: the new certificates supersede the old ones)",
	"revoke  --serial HEX --reason REASON",
	"proxy   --resident FILE.json --card-id ID --card-expires DATE [--types signature,authentication]",
	"notices --municipality CODE --on DATE [--csv]",
	"fee     [--signature] [--authentication] [--my-number-card] [--own-loss] [--per-certificate YEN]",
}

// usage is the whole command line, for help and for a line it cannot read.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: counter <command> [flags]\n\ncommands:\n")
	for _, l := range synopses {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("\nEvery command but fee takes the connection flags (--api, --cert, --key, --ca);\n" +
		"issue and renew the card flags (--module, --sig-token, --auth-token) too.\n" +
		"counter <command> -h lists a command's flags. The card PINs come from the environment:\n" +
		"issue logs in with the card's transport PINs (COUNTER_SIG_TRANSPORT_PIN,\n" +
		"COUNTER_AUTH_TRANSPORT_PIN) and sets the resident's PINs (COUNTER_SIG_PIN,\n" +
		"COUNTER_AUTH_PIN); renew logs in with the resident's PINs and keeps them.\n")
	return b.String()
}

// helpText is what -h asked for, for standard output, and no failure.
type helpText = cmdflags.Help

// parseFlags parses a command's flags (see cmdflags.Parse).
func parseFlags(fs *flag.FlagSet, args []string) error {
	return cmdflags.Parse(fs, args, "counter", synopses)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
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

type flags struct {
	fs                          *flag.FlagSet
	apiURL, cert, key, caFile   *string
	module, sigToken, authToken *string
	// made is the API client the command made, if any.
	made *counter.Client
}

func newFlags(name string) flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return flags{fs: fs,
		apiURL: fs.String("api", "https://127.0.0.1:8443", "API base URL"),
		cert:   fs.String("cert", "", "terminal certificate (PEM)"), key: fs.String("key", "", "terminal key (PEM)"),
		caFile:    fs.String("ca", "", "CA that certifies the API server (PEM)"),
		module:    fs.String("module", "", "PKCS#11 module of the card reader"),
		sigToken:  fs.String("sig-token", "", "token label of the card's signature area"),
		authToken: fs.String("auth-token", "", "token label of the card's user-authentication area"),
	}
}

func (f *flags) client() (*counter.Client, error) {
	pair, err := tls.LoadX509KeyPair(*f.cert, *f.key)
	if err != nil {
		return nil, fmt.Errorf("terminal certificate: %w", err)
	}
	pem, err := os.ReadFile(*f.caFile)
	if err != nil {
		return nil, fmt.Errorf("server CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("server CA %s: no certificate", *f.caFile)
	}
	c, err := counter.NewClient(counter.ClientConfig{BaseURL: *f.apiURL, Certificate: pair, ServerCAs: roots})
	f.made = c
	return c, err
}

// warnExpiry tells the clerk, on stderr, that the terminal's certificate
// expires soon, if the API said so in this command's calls.
func (f *flags) warnExpiry(stderr io.Writer) {
	if f.made == nil {
		return
	}
	if t, soon := f.made.TerminalExpires(); soon {
		fmt.Fprintf(stderr, "counter: this terminal's certificate expires on %s: ask the PKI administrators for a new one before then\n",
			t.Format(time.RFC3339))
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command\n\n%s", errUsage, usage())
	}
	switch args[0] {
	case "help", "-h", "--help":
		return helpText(usage())
	}
	cmd, rest := args[0], args[1:]
	f := newFlags(cmd)
	defer f.warnExpiry(stderr)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	switch cmd {
	case "issue", "renew":
		residentFile := f.fs.String("resident", "", "resident record (JSON, as in the API)")
		cardID := f.fs.String("card-id", "", "card serial")
		cardExpires := f.fs.String("card-expires", "", "card expiry YYYY-MM-DD")
		types := f.fs.String("types", "authentication,signature", "certificates to issue")
		proxyApp := f.fs.String("proxy-app", "", "proxy application ID")
		answer := f.fs.String("answer", "", "answer code from the proxy's answer sheet")
		if err := parseFlags(f.fs, rest); err != nil {
			return err
		}
		res, err := readResident(*residentFile)
		if err != nil {
			return err
		}
		var ts []ca.CertType
		for _, s := range strings.Split(*types, ",") {
			t, err := ca.ParseCertType(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			ts = append(ts, t)
		}
		job := counter.IssueJob{Types: ts, Card: wire.Card{ID: *cardID, Expires: *cardExpires}, Resident: res,
			IdempotencyKey: visitKey(), At: time.Now()}
		if *proxyApp != "" {
			job.Proxy = &wire.ProxyAnswer{ApplicationID: *proxyApp, AnswerCode: *answer}
		}
		pins, err := cardPINs(cmd, ts, getenv)
		if err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		card, err := counter.OpenCard(counter.CardConfig{Module: *f.module, SignatureToken: *f.sigToken, AuthenticationToken: *f.authToken})
		if err != nil {
			return err
		}
		defer card.Close()
		for _, t := range ts {
			if err := card.Login(t, pins[t].login); err != nil {
				return fmt.Errorf("%s: %w", pins[t].loginName, err)
			}
		}
		// A visit that stops half-way still sets the PINs of the
		// certificates it wrote and shows them, before the error.
		got, issueErr := counter.IssueOnto(ctx, c, card, job)
		for _, g := range got {
			t, err := ca.ParseCertType(g.Type)
			if err != nil {
				return err
			}
			if pins[t].set != "" {
				if err := card.SetPIN(t, pins[t].login, pins[t].set); err != nil {
					return errors.Join(issueErr, err)
				}
			}
		}
		if len(got) > 0 {
			if err := out.Encode(got); err != nil {
				return errors.Join(issueErr, err)
			}
		}
		return issueErr
	case "revoke":
		serial := f.fs.String("serial", "", "certificate serial (hex)")
		reason := f.fs.String("reason", "", "RFC 5280 reason, e.g. keyCompromise")
		if err := parseFlags(f.fs, rest); err != nil {
			return err
		}
		if *serial == "" || *reason == "" {
			return fmt.Errorf("%w: revoke --serial HEX --reason REASON", errUsage)
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		got, err := c.Revoke(ctx, *serial, *reason)
		if err != nil {
			return err
		}
		return out.Encode(got)
	case "proxy":
		residentFile := f.fs.String("resident", "", "resident record (JSON)")
		cardID := f.fs.String("card-id", "", "card serial")
		cardExpires := f.fs.String("card-expires", "", "card expiry YYYY-MM-DD")
		types := f.fs.String("types", "authentication,signature", "certificates applied for")
		if err := parseFlags(f.fs, rest); err != nil {
			return err
		}
		res, err := readResident(*residentFile)
		if err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		got, err := c.OpenProxyApplication(ctx, wire.ProxyApplicationRequest{Resident: res,
			Card: wire.Card{ID: *cardID, Expires: *cardExpires}, Types: strings.Split(*types, ",")})
		if err != nil {
			return err
		}
		return out.Encode(got)
	case "notices":
		m := f.fs.String("municipality", "", "six-digit code")
		on := f.fs.String("on", "", "date YYYY-MM-DD")
		asCSV := f.fs.Bool("csv", false, "CSV for the mail house")
		if err := parseFlags(f.fs, rest); err != nil {
			return err
		}
		day, err := ca.ParseDate(*on)
		if err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		if *asCSV {
			b, err := c.RenewalNoticesCSV(ctx, *m, day)
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		got, err := c.RenewalNotices(ctx, *m, day)
		if err != nil {
			return err
		}
		return out.Encode(got)
	case "fee":
		fs := flag.NewFlagSet("fee", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var req counter.FeeRequest
		fs.BoolVar(&req.Signature, "signature", false, "a signature certificate")
		fs.BoolVar(&req.Authentication, "authentication", false, "a user-authentication certificate")
		fs.BoolVar(&req.MyNumberCard, "my-number-card", false, "onto a My Number Card")
		fs.BoolVar(&req.ReissueAfterOwnLoss, "own-loss", false, "re-issue after the holder's own loss")
		per := fs.Int("per-certificate", counter.DefaultFees.PerCertificate, "the municipality's fee per certificate (yen)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if !req.Signature && !req.Authentication {
			return fmt.Errorf("%w: fee: name the certificates to quote, --signature and/or --authentication", errUsage)
		}
		if *per < 0 {
			return fmt.Errorf("%w: fee: --per-certificate %d is negative", errUsage, *per)
		}
		q := counter.FeeSchedule{PerCertificate: *per}.Quote(req)
		for _, l := range q.Lines {
			fmt.Fprintf(stdout, "%-15s %5d yen  %s\n", l.Type, l.Yen, l.Why)
		}
		fmt.Fprintf(stdout, "%-15s %5d yen\n", "total", q.Total)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q\n\n%s", errUsage, cmd, usage())
}

// pinEnv names the environment variables of a token's PINs: the card's
// transport PIN, and the resident's PIN.
var pinEnv = map[ca.CertType][2]string{
	ca.Signature:      {"COUNTER_SIG_TRANSPORT_PIN", "COUNTER_SIG_PIN"},
	ca.Authentication: {"COUNTER_AUTH_TRANSPORT_PIN", "COUNTER_AUTH_PIN"},
}

// cardPIN is how a command uses a token's PINs: it logs in with login
// (loginName says which PIN that is) and, if set is not empty, sets the
// resident's PIN after the issuance.
type cardPIN struct {
	loginName, login, set string
}

// cardPINs reads the PINs of the tokens of ts from the environment, for
// issue (a new card: log in with the transport PIN, set the resident's)
// or renew (a card in use: log in with the resident's PIN and keep it).
// The resident's PIN is checked against its rule and folded (counter.
// ResidentPIN) before it goes near the card, whose tries are few (5 for
// the signature PIN, 3 for the user-authentication PIN). The PINs never
// appear in an error.
func cardPINs(cmd string, ts []ca.CertType, getenv func(string) string) (map[ca.CertType]cardPIN, error) {
	pins := map[ca.CertType]cardPIN{}
	for _, t := range ts {
		transportVar, residentVar := pinEnv[t][0], pinEnv[t][1]
		resident := getenv(residentVar)
		if resident == "" {
			return nil, fmt.Errorf("%w: %s: set %s to the resident's %v PIN", errUsage, cmd, residentVar, t)
		}
		resident, err := counter.ResidentPIN(t, resident)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", residentVar, err)
		}
		if cmd == "renew" {
			pins[t] = cardPIN{loginName: "the resident's " + t.String() + " PIN (" + residentVar + ")", login: resident}
			continue
		}
		transport := getenv(transportVar)
		if transport == "" {
			return nil, fmt.Errorf("%w: %s: set %s to the card's %v transport PIN", errUsage, cmd, transportVar, t)
		}
		pins[t] = cardPIN{loginName: "the card's " + t.String() + " transport PIN (" + transportVar + ")", login: transport, set: resident}
	}
	return pins, nil
}

func readResident(path string) (wire.Resident, error) {
	var r wire.Resident
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("resident record: %w", err)
	}
	if err := wire.Decode(b, &r); err != nil {
		return r, fmt.Errorf("resident record %s: %w", path, err)
	}
	return r, nil
}

// visitKey is a fresh idempotency key for one visit.
func visitKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "visit-" + hex.EncodeToString(b)
}
