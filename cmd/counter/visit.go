package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
)

// addVisitFlags adds the flags that describe a resident's visit: issue,
// renew and proxy take them. types says what --types names.
func addVisitFlags(fs *flag.FlagSet, types string) {
	fs.String("resident", "", "resident record (JSON, as in the API)")
	fs.String("card-id", "", "card serial")
	fs.String("card-expires", "", "card expiry YYYY-MM-DD")
	fs.String("types", "authentication,signature", types)
}

// visit is what the visit flags describe.
type visit struct {
	resident wire.Resident
	card     wire.Card
	types    []ca.CertType
}

// visit checks the visit flags: the resident record (readable, of the
// terminal's municipality), the card and the types. now is the visit's
// time, by the terminal's clock.
func (s *settings) visit(t terminal, now time.Time) (visit, problems) {
	var (
		v    visit
		errs problems
		err  error
	)
	if v.resident, err = s.resident(); err != nil {
		errs = append(errs, err)
	} else if t.cert != nil {
		if err := s.checkMunicipality(t, "resident", v.resident.Municipality); err != nil {
			errs = append(errs, err)
		}
	}
	if v.card.ID = s.get("card-id"); v.card.ID == "" {
		errs = append(errs, s.unset("card-id", "the card's serial"))
	}
	switch v.card.Expires = s.get("card-expires"); {
	case v.card.Expires == "":
		errs = append(errs, s.unset("card-expires", "the card's expiry date (YYYY-MM-DD, as printed on the card)"))
	default:
		d, err := ca.ParseDate(v.card.Expires)
		if err != nil {
			errs = append(errs, s.wrong("card-expires", "%q is not a date: write YYYY-MM-DD", v.card.Expires))
		} else if today := ca.DateOf(now); d.Before(today) {
			errs = append(errs, s.wrong("card-expires", "%v is before today, %v: an expired card takes no certificate", d, today))
		}
	}
	if v.types, err = s.cardTypes(); err != nil {
		errs = append(errs, err)
	}
	return v, errs
}

// resident reads the resident record that --resident names, and checks
// what the counter can check of it.
func (s *settings) resident() (wire.Resident, error) {
	var r wire.Resident
	path := s.get("resident")
	if path == "" {
		return r, s.unset("resident", "the resident record (JSON, as in the API)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, s.wrong("resident", "%v: name the resident record (JSON, as in the API)", err)
	}
	if err := wire.Decode(b, &r); err != nil {
		return r, s.wrong("resident", "%s: %v", path, err)
	}
	switch {
	case r.ID == "":
		return r, s.wrong("resident", "%s: no id: the record needs the resident record's id", path)
	case !ca.ValidMunicipalityCode(r.Municipality):
		return r, s.wrong("resident", "%s: municipality %q is not a six-digit local government code", path, r.Municipality)
	}
	if _, err := ca.ParseDate(r.BirthDate); err != nil {
		return r, s.wrong("resident", "%s: birth_date: %v", path, err)
	}
	return r, nil
}

// runVisit is issue and renew: every setting is checked, and the
// resident's PINs and eligibility, before the card is opened. A visit
// that stops half-way still sets the PINs of the certificates it wrote
// and shows them, before the error.
func runVisit(ctx context.Context, sys system, cmd string, args []string) error {
	fs, asJSON := apiFlagSet(cmd)
	addCardFlags(fs)
	addVisitFlags(fs, "certificates to issue")
	fs.String("proxy-app", "", "proxy application ID, when a proxy collects the certificates")
	fs.String("answer", "", "answer code from the proxy's answer sheet (with --proxy-app)")
	s, err := parseSettings(fs, args, sys.getenv)
	if err != nil {
		return err
	}
	now := sys.now()
	term, errs := s.terminal(now)
	cardCfg, cerrs := s.cardConfig()
	v, verrs := s.visit(term, now)
	errs = append(append(errs, cerrs...), verrs...)
	job := counter.IssueJob{Types: v.types, Card: v.card, Resident: v.resident, IdempotencyKey: visitKey(), At: now}
	proxy, proxyErrs := s.proxyAnswer()
	errs = append(errs, proxyErrs...)
	job.Proxy = proxy
	if len(verrs) == 0 {
		if err := job.Check(); errors.Is(err, ca.ErrNotEligible) {
			errs = append(errs, &settingError{"--types", err})
		} else if err != nil {
			errs = append(errs, &settingError{"--resident", err})
		}
	}
	var pins map[ca.CertType]cardPIN
	if v.types != nil {
		var pinErrs problems
		pins, pinErrs = cardPINs(cmd, v.types, sys.getenv)
		errs = append(errs, pinErrs...)
	}
	if len(errs) > 0 {
		return errs
	}
	defer term.warnExpiry(sys.stderr)
	// One read of the card's records shows that the API answers and takes
	// this terminal, before a key is made.
	if _, err := term.client.CertificatesByCard(ctx, v.card.ID); err != nil {
		return s.reach(err)
	}
	card, err := counter.OpenCard(cardCfg)
	if err != nil {
		return fmt.Errorf("the card (--module %s, --sig-token %s, --auth-token %s): %w",
			cardCfg.Module, cardCfg.SignatureToken, cardCfg.AuthenticationToken, err)
	}
	defer card.Close()
	for _, t := range v.types {
		if err := card.Login(t, pins[t].login); err != nil {
			return fmt.Errorf("%s: %w", pins[t].loginName, err)
		}
	}
	got, issueErr := counter.IssueOnto(ctx, term.client, card, job)
	for _, g := range got {
		t, err := ca.ParseCertType(g.Type)
		if err != nil {
			return errors.Join(issueErr, err)
		}
		if pins[t].set != "" {
			if err := card.SetPIN(t, pins[t].login, pins[t].set); err != nil {
				return errors.Join(issueErr, err)
			}
		}
	}
	if len(got) > 0 {
		if err := printIssued(sys.stdout, got, *asJSON); err != nil {
			return errors.Join(issueErr, err)
		}
	}
	var ae *counter.APIError
	if errors.As(issueErr, &ae) {
		return s.reach(issueErr)
	}
	return issueErr
}

// proxyAnswer reads --proxy-app and --answer, which go together: a
// proxy collects the certificates with the answer code (the inquiry code
// that proxy printed, copied onto the answer sheet). The answer code is
// folded to upper case; both are checked against the forms in which the
// API issues them (32 hexadecimal digits; letters A-Z and digits).
func (s *settings) proxyAnswer() (*wire.ProxyAnswer, problems) {
	app, answer := s.get("proxy-app"), strings.ToUpper(s.get("answer"))
	if app == "" && answer == "" {
		return nil, nil
	}
	var errs problems
	switch {
	case app == "":
		errs = append(errs, s.unset("proxy-app", "the ID of the proxy application that the answer code (--answer) is for"))
	case len(app) != 32 || strings.Trim(app, "0123456789abcdef") != "":
		errs = append(errs, s.wrong("proxy-app", "%q is not a proxy application's ID: 32 hexadecimal digits, as proxy printed it", app))
	}
	switch {
	case answer == "":
		errs = append(errs, s.unset("answer", "the answer code from the resident's answer sheet, which a proxy (--proxy-app) brings"))
	case len(answer) > 64 || strings.Trim(answer, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		errs = append(errs, s.wrong("answer", "not an answer code: letters A-Z and digits, as on the answer sheet"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &wire.ProxyAnswer{ApplicationID: app, AnswerCode: answer}, nil
}

// runProxy opens a proxy application: the inquiry goes to the resident's
// registered address, and a proxy collects the certificates with the
// answer on another day.
func runProxy(ctx context.Context, sys system, args []string) error {
	fs, asJSON := apiFlagSet("proxy")
	addVisitFlags(fs, "certificates applied for")
	s, err := parseSettings(fs, args, sys.getenv)
	if err != nil {
		return err
	}
	term, errs := s.terminal(sys.now())
	v, verrs := s.visit(term, sys.now())
	if errs = append(errs, verrs...); len(errs) > 0 {
		return errs
	}
	defer term.warnExpiry(sys.stderr)
	types := make([]string, len(v.types))
	for i, t := range v.types {
		types[i] = t.String()
	}
	got, err := term.client.OpenProxyApplication(ctx, wire.ProxyApplicationRequest{Resident: v.resident, Card: v.card, Types: types})
	if err != nil {
		return s.reach(err)
	}
	return printProxy(sys.stdout, got, *asJSON)
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
func cardPINs(cmd string, ts []ca.CertType, getenv func(string) string) (map[ca.CertType]cardPIN, problems) {
	pins := map[ca.CertType]cardPIN{}
	var errs problems
	for _, t := range ts {
		transportVar, residentVar := pinEnv[t][0], pinEnv[t][1]
		resident := getenv(residentVar)
		if resident == "" {
			errs = append(errs, &settingError{residentVar, fmt.Errorf("not set: set it to the resident's %v PIN", t)})
		} else if resident, err := counter.ResidentPIN(t, resident); err != nil {
			errs = append(errs, &settingError{residentVar, err})
		} else if cmd == "renew" {
			pins[t] = cardPIN{loginName: "the resident's " + t.String() + " PIN (" + residentVar + ")", login: resident}
		} else {
			pins[t] = cardPIN{set: resident}
		}
		if cmd == "renew" {
			continue
		}
		transport := getenv(transportVar)
		if transport == "" {
			errs = append(errs, &settingError{transportVar, fmt.Errorf("not set: set it to the card's %v transport PIN", t)})
			continue
		}
		p := pins[t]
		p.loginName, p.login = "the card's "+t.String()+" transport PIN ("+transportVar+")", transport
		pins[t] = p
	}
	return pins, errs
}

// visitKey is a fresh idempotency key for one visit.
func visitKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "visit-" + hex.EncodeToString(b)
}
