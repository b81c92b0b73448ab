// Package counter is the counter terminal's side of jpkica: the API client
// over mutual TLS, the My Number Card as PKCS#11 tokens (keys generated on
// the card, certificates written back to it, PINs set under the card's
// rules), the fee quote, and the workflows that tie them together.
//
// A Client is safe for concurrent use; a Card serialises its calls. An
// error answer of the API is an *APIError (its Code one of wire's); a call
// whose answer never came wraps ErrNoAnswer, a PIN the card's rules refuse
// ErrPIN, and a card that cannot do what was asked ErrCard.
package counter

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
)

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string // one of wire.Code*
	Message string
	// RetryAfter is set on 429 and 503 answers that carry Retry-After.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("API %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether retrying the same request may succeed: a 429
// or a 503, but not a 503 whose HSM refused its PIN (no retry succeeds
// until an operator acts there).
func (e *APIError) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests:
		return true
	case http.StatusServiceUnavailable:
		return e.Code != wire.CodeHSMLoginRefused
	}
	return false
}

// Refused reports a definite refusal: a 4xx answer other than 429. The API
// did not do the call, and the same request will not succeed; an issuance
// sent again with the same idempotency key after a lost answer gets a
// refusal only if the first one was refused too (a replay gives back the
// certificate). 5xx answers and lost answers are not refusals.
func (e *APIError) Refused() bool {
	return e.Status >= 400 && e.Status < 500 && !e.Temporary()
}

// ErrNoAnswer: no answer came back: the connection failed or broke, or the
// client's timeout passed. The API may or may not have done the call: an
// issuance can be sent again with the same idempotency key and body, and
// gives back the same certificate.
var ErrNoAnswer = errors.New("no answer from the API")

// ClientConfig reaches the API.
type ClientConfig struct {
	// BaseURL is https://host:port of the API listener.
	BaseURL string
	// Certificate is the terminal's client certificate and key.
	Certificate tls.Certificate
	// ServerCAs verifies the API's server certificate (jpkica's client CA
	// when the server certificate was made at start).
	ServerCAs *x509.CertPool
	Timeout   time.Duration // per request; 30 s by default
}

// Client calls the /v1 API. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	// expires is the terminal certificate's expiry (Unix seconds) as the
	// API last announced it (wire.HeaderTerminalExpires), or 0.
	expires atomic.Int64
}

// TerminalExpires is when the terminal's certificate expires, if an
// answer of the API said it does soon (api.DefaultTerminalExpiryNotice
// unless the server is configured otherwise): the terminal needs a new
// certificate before then.
func (c *Client) TerminalExpires() (time.Time, bool) {
	u := c.expires.Load()
	return time.Unix(u, 0).UTC(), u != 0
}

// NewClient makes a client; it does not connect yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: API URL %q: want https://host:port", ca.ErrInvalid, cfg.BaseURL)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.ServerCAs,
			Certificates: []tls.Certificate{cfg.Certificate}},
		MaxIdleConnsPerHost: 16,
		ForceAttemptHTTP2:   true,
	}
	return &Client{base: strings.TrimRight(cfg.BaseURL, "/"), hc: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any, header ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return noAnswer(ctx, method, path, err)
	}
	defer resp.Body.Close()
	if t, err := time.Parse(time.RFC3339, resp.Header.Get(wire.HeaderTerminalExpires)); err == nil {
		c.expires.Store(t.Unix())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return noAnswer(ctx, method, path, fmt.Errorf("reading answer: %w", err))
	}
	if resp.StatusCode >= 300 {
		var eb wire.ErrorBody
		_ = json.Unmarshal(data, &eb)
		ae := &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return ae
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// noAnswer wraps a failure to get an answer: ErrNoAnswer, unless the
// caller's own context ended it or TLS refused the connection (an unknown
// or wrong server certificate, a client certificate the server refused,
// a server that does not speak TLS): those need a person, not a retry.
func noAnswer(ctx context.Context, method, path string, err error) error {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		record    tls.RecordHeaderError
	)
	if ctx.Err() != nil || errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) ||
		errors.As(err, &invalid) || errors.As(err, &alert) || errors.As(err, &record) {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return fmt.Errorf("%s %s: %w: %w", method, path, ErrNoAnswer, err)
}

// Issue asks for one certificate. The same idempotencyKey and request
// return the same certificate, so a request whose answer was lost can be
// sent again with the same key.
func (c *Client) Issue(ctx context.Context, idempotencyKey string, req wire.IssueRequest) (wire.Issued, error) {
	var out wire.Issued
	err := c.do(ctx, http.MethodPost, "/v1/certificates", req, &out, wire.HeaderIdempotencyKey, idempotencyKey)
	return out, err
}

// Certificate reads one record.
func (c *Client) Certificate(ctx context.Context, serial string) (wire.Certificate, error) {
	var out wire.Certificate
	err := c.do(ctx, http.MethodGet, "/v1/certificates/"+url.PathEscape(serial), nil, &out)
	return out, err
}

// CertificatesByCard lists a card's certificates, newest first.
func (c *Client) CertificatesByCard(ctx context.Context, card string) ([]wire.Certificate, error) {
	var out wire.Certificates
	err := c.do(ctx, http.MethodGet, "/v1/certificates?card="+url.QueryEscape(card), nil, &out)
	return out.Certificates, err
}

// CertificatesByResident lists a resident's certificates, newest first.
func (c *Client) CertificatesByResident(ctx context.Context, resident string) ([]wire.Certificate, error) {
	var out wire.Certificates
	err := c.do(ctx, http.MethodGet, "/v1/certificates?resident="+url.QueryEscape(resident), nil, &out)
	return out.Certificates, err
}

// Revoke revokes a certificate with an RFC 5280 reason name.
func (c *Client) Revoke(ctx context.Context, serial, reason string) (wire.Certificate, error) {
	var out wire.Certificate
	err := c.do(ctx, http.MethodPost, "/v1/certificates/"+url.PathEscape(serial)+"/revoke", wire.RevokeRequest{Reason: reason}, &out)
	return out, err
}

// Hold puts a card's certificates on hold (loss line, admin).
func (c *Client) Hold(ctx context.Context, card string) ([]wire.Certificate, error) {
	var out wire.Certificates
	err := c.do(ctx, http.MethodPost, "/v1/cards/"+url.PathEscape(card)+"/hold", nil, &out)
	return out.Certificates, err
}

// ResidentEvent posts a register event (register, admin).
func (c *Client) ResidentEvent(ctx context.Context, resident string, ev wire.EventRequest) ([]wire.Certificate, error) {
	var out wire.Certificates
	err := c.do(ctx, http.MethodPost, "/v1/residents/"+url.PathEscape(resident)+"/events", ev, &out)
	return out.Certificates, err
}

// OpenProxyApplication opens a proxy application.
func (c *Client) OpenProxyApplication(ctx context.Context, req wire.ProxyApplicationRequest) (wire.ProxyApplicationResponse, error) {
	var out wire.ProxyApplicationResponse
	err := c.do(ctx, http.MethodPost, "/v1/proxy-applications", req, &out)
	return out, err
}

// RenewalNotices lists the certificates due for an expiry notice on day.
func (c *Client) RenewalNotices(ctx context.Context, municipality string, day ca.Date) (wire.RenewalNotices, error) {
	var out wire.RenewalNotices
	err := c.do(ctx, http.MethodGet, "/v1/renewal-notices?municipality="+url.QueryEscape(municipality)+"&on="+day.String(), nil, &out)
	return out, err
}

// RenewalNoticesCSV is RenewalNotices as the mail house's CSV.
func (c *Client) RenewalNoticesCSV(ctx context.Context, municipality string, day ca.Date) ([]byte, error) {
	var out []byte
	err := c.do(ctx, http.MethodGet, "/v1/renewal-notices?municipality="+url.QueryEscape(municipality)+"&on="+day.String(), nil, &out,
		"Accept", "text/csv")
	return out, err
}

// CSR makes a PKCS#10 request signed by the card key (PEM).
func CSR(key crypto.Signer) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Country: []string{"JP"}}, SignatureAlgorithm: x509.SHA256WithRSA}, key)
	if err != nil {
		return "", fmt.Errorf("making the CSR on the card: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// IssueJob is one visit's issuance onto a card.
type IssueJob struct {
	// Types to issue; the user-authentication certificate goes first,
	// since it caps the signature certificate's validity.
	Types    []ca.CertType
	Card     wire.Card
	Resident wire.Resident
	Proxy    *wire.ProxyAnswer
	// IdempotencyKey is the visit's key; each type uses key + "-" + type.
	IdempotencyKey string
	// At is the time of the visit, by the counter's clock: the resident's
	// eligibility for each type is checked at it before anything is made
	// on the card (the API checks again at its own).
	At time.Time
}

// types are the job's types, both when it names none.
func (job IssueJob) types() []ca.CertType {
	if len(job.Types) == 0 {
		return []ca.CertType{ca.Authentication, ca.Signature}
	}
	return job.Types
}

// Check is what a counter can check of a visit before it touches the
// card: an idempotency key and a time, each type once, a card ID and
// expiry date, a proxy's application ID and answer code together, and the
// resident's eligibility for every type on the visit's day. A job it
// refuses is ErrInvalid, or ca.ErrNotEligible for the eligibility.
// IssueOnto checks it again.
func (job IssueJob) Check() error {
	if job.IdempotencyKey == "" || job.At.IsZero() {
		return fmt.Errorf("%w: an issuance needs an idempotency key and the visit's time", ca.ErrInvalid)
	}
	ts := job.types()
	for i, t := range ts {
		if t != ca.Signature && t != ca.Authentication {
			return fmt.Errorf("%w: no %v certificate goes on a card", ca.ErrInvalid, t)
		}
		if slices.Contains(ts[:i], t) {
			return fmt.Errorf("%w: the %v certificate is asked twice", ca.ErrInvalid, t)
		}
	}
	if job.Card.ID == "" {
		return fmt.Errorf("%w: no card ID", ca.ErrInvalid)
	}
	if _, err := ca.ParseDate(job.Card.Expires); err != nil {
		return fmt.Errorf("card expiry: %w", err)
	}
	if p := job.Proxy; p != nil && (p.ApplicationID == "" || p.AnswerCode == "") {
		return fmt.Errorf("%w: a proxy application needs its ID and the answer code", ca.ErrInvalid)
	}
	return eligible(job.Resident, ts, job.At)
}

// IssueOnto runs the counter's issuance: the job's Check first, then for
// each type a new key on the card, a CSR signed by it, the API call, and
// the certificate written back onto the card. The card's tokens must be
// logged in. A call that fails for a temporary reason (429, 503) or whose
// answer was lost (ErrNoAnswer) is sent again with the same key and CSR,
// up to three times in all: the API then gives back the certificate it
// issued, never a second one.
//
// A certificate the API refused (APIError.Refused), or one whose CSR
// could not be made, leaves no key behind: the key pair made for it is
// deleted from the card. A key whose certificate may have been issued
// (no answer, a 5xx, a cancelled call) stays on the card, and so does
// every key that got its certificate. The certificates issued before a
// failure are returned with it.
func IssueOnto(ctx context.Context, c *Client, card *Card, job IssueJob) ([]wire.Issued, error) {
	if err := job.Check(); err != nil {
		return nil, err
	}
	var out []wire.Issued
	for _, t := range job.types() {
		got, err := issueOne(ctx, c, card, job, t)
		if err != nil {
			return out, fmt.Errorf("issuing the %v certificate: %w", t, err)
		}
		out = append(out, got)
	}
	return out, nil
}

// issueOne issues the certificate of type t onto the card, and deletes the
// key it made if the certificate was refused (see IssueOnto).
func issueOne(ctx context.Context, c *Client, card *Card, job IssueJob, t ca.CertType) (wire.Issued, error) {
	key, err := card.GenerateKey(t)
	if err != nil {
		return wire.Issued{}, err
	}
	got, err := requestCertificate(ctx, c, job, t, key)
	var ae *APIError
	if err != nil && (errors.Is(err, errNotSent) || errors.As(err, &ae) && ae.Refused()) {
		if derr := card.DeleteKey(key); derr != nil {
			return got, errors.Join(err, fmt.Errorf("deleting the key pair made for it: %w", derr))
		}
		return got, fmt.Errorf("%w; the key pair made for it was deleted from the card", err)
	}
	if err != nil {
		return got, fmt.Errorf("%w; the key pair made for it stays on the card, since the CA may have issued its certificate", err)
	}
	block, _ := pem.Decode([]byte(got.Certificate))
	if block == nil {
		return got, fmt.Errorf("the answer holds no certificate")
	}
	if err := card.WriteCertificate(t, block.Bytes); err != nil {
		return got, fmt.Errorf("writing it onto the card: %w", err)
	}
	return got, nil
}

// errNotSent marks a request that never left the counter.
var errNotSent = errors.New("not sent")

// requestCertificate asks the API for the certificate of key, sending the
// same request again after a temporary failure or a lost answer.
func requestCertificate(ctx context.Context, c *Client, job IssueJob, t ca.CertType, key crypto.Signer) (wire.Issued, error) {
	csr, err := CSR(key)
	if err != nil {
		return wire.Issued{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	req := wire.IssueRequest{Type: t.String(), CSR: csr, Card: job.Card, Resident: job.Resident, Proxy: job.Proxy}
	for attempt := 0; ; attempt++ {
		got, err := c.Issue(ctx, job.IdempotencyKey+"-"+t.String(), req)
		var ae *APIError
		temporary := errors.As(err, &ae) && ae.Temporary()
		if err == nil || !(temporary || errors.Is(err, ErrNoAnswer)) || attempt == 2 {
			return got, err
		}
		wait := 200 * time.Millisecond
		if temporary {
			wait = max(ae.RetryAfter, wait)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// eligible checks that the resident may hold every certificate type of a
// visit on its day: a visit refused at its second certificate would leave
// the first one issued.
func eligible(res wire.Resident, ts []ca.CertType, at time.Time) error {
	birth, err := ca.ParseDate(res.BirthDate)
	if err != nil {
		return fmt.Errorf("resident record: birth_date: %w", err)
	}
	for _, t := range ts {
		err := ca.CheckEligibility(ca.EligibilityRequest{Type: t, BirthDate: birth, IssuedAt: at,
			AdultGuardianship: res.AdultGuardianship})
		if errors.Is(err, ca.ErrNotEligible) {
			return fmt.Errorf("no %v certificate for this resident (%w); leave it out of the visit", t, err)
		}
		if err != nil {
			return fmt.Errorf("resident record: %w", err)
		}
	}
	return nil
}
