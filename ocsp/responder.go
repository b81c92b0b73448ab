package ocsp

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Responder is the OCSP responder over HTTP (RFC 6960 appendix A.1, RFC 5019
// section 5): POST of an application/ocsp-request body, GET (and HEAD) of
// the base64 request after the prefix, URL-escaped or not. It is safe for
// concurrent use.
//
// Error mapping (the only place errors become OCSP statuses): a request that
// does not decode, carries too many CertIDs or a hash other than SHA-1 and
// SHA-256 is malformedRequest; a CertID of an issuer not served is
// unauthorized; ErrUnavailable is tryLater; anything else internalError.
// These go out with HTTP 200, as RFC 5019 expects. A POST body over
// Config.MaxBody is HTTP 413, other methods 405.
type Responder struct {
	p      *Presigner
	prefix string
}

// NewResponder serves p's answers for GETs under prefix ("/ocsp/").
func NewResponder(p *Presigner, prefix string) *Responder {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Responder{p: p, prefix: prefix}
}

// Guard returns a handler that sends every request for the responder's
// paths (the prefix, and the prefix without its slash) to the responder,
// and the rest to next. Put it in front of a ServeMux: the mux cleans paths
// and would redirect a GET whose base64 holds "//".
func (r *Responder) Guard(next http.Handler) http.Handler {
	exact := strings.TrimSuffix(r.prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.EscapedPath()
		if p == exact || strings.HasPrefix(p, r.prefix) {
			r.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

var (
	hdrContentType = []string{"application/ocsp-response"}
	hdrNoStore     = []string{"no-store"}
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var (
		der []byte
		buf = bufPool.Get().(*[]byte)
	)
	defer func() {
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			bufPool.Put(buf)
		}
	}()
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		enc := strings.TrimPrefix(req.URL.EscapedPath(), strings.TrimSuffix(r.prefix, "/"))
		enc = strings.TrimPrefix(enc, "/")
		var ok bool
		der, ok = decodeGET(enc, (*buf)[:0])
		if !ok {
			r.fail(w, req, MalformedRequest)
			return
		}
		*buf = der
	case http.MethodPost:
		if ct := req.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/ocsp-request") {
			r.fail(w, req, MalformedRequest)
			return
		}
		if req.ContentLength > r.p.cfg.MaxBody {
			r.p.m.requests.WithLabelValues("too_large").Inc()
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		b := (*buf)[:0]
		body := io.LimitReader(req.Body, r.p.cfg.MaxBody+1)
		for {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)]
			}
			n, err := body.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				r.fail(w, req, MalformedRequest)
				return
			}
		}
		*buf = b
		if int64(len(b)) > r.p.cfg.MaxBody {
			r.p.m.requests.WithLabelValues("too_large").Inc()
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		der = b
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	parsed, err := ParseRequest(der, r.p.cfg.MaxCertsPerRequest)
	if err != nil {
		r.fail(w, req, MalformedRequest)
		return
	}
	ans, err := r.p.Answer(req.Context(), &parsed)
	if err != nil {
		r.fail(w, req, statusOf(err))
		return
	}
	r.p.m.requests.WithLabelValues(ans.Status.String()).Inc()
	r.write(w, req, &ans)
}

func statusOf(err error) ResponseStatus {
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnsupportedHash):
		return MalformedRequest
	case errors.Is(err, ErrUnauthorized):
		return Unauthorized
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return TryLater
	}
	return InternalError
}

// decodeGET turns the path after the prefix into DER: URL-unescaped (so %2B,
// %2F and %3D work, and a literal "+" stays a plus), then standard base64,
// padded or not; the URL-safe alphabet is accepted too.
func decodeGET(enc string, dst []byte) ([]byte, bool) {
	if strings.IndexByte(enc, '%') >= 0 {
		u, err := url.PathUnescape(enc)
		if err != nil {
			return nil, false
		}
		enc = u
	}
	enc = strings.TrimRight(enc, "=")
	if enc == "" || len(enc) > 16<<10 {
		return nil, false
	}
	e := base64.RawStdEncoding
	if strings.ContainsAny(enc, "-_") {
		e = base64.RawURLEncoding
	}
	n := e.DecodedLen(len(enc))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	n, err := e.Decode(dst, []byte(enc))
	if err != nil {
		return nil, false
	}
	return dst[:n], true
}

func (r *Responder) fail(w http.ResponseWriter, req *http.Request, s ResponseStatus) {
	r.p.m.requests.WithLabelValues(s.String()).Inc()
	h := w.Header()
	h["Content-Type"] = hdrContentType
	h["Cache-Control"] = hdrNoStore
	body := ErrorResponse(s)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		w.Write(body)
	}
}

// write sends a successful response with the RFC 5019 section 6 cache
// headers (for GET and HEAD of a pre-signed response): Last-Modified is
// producedAt, Expires nextUpdate, max-age the time to nextUpdate capped at
// Config.MaxAge, and the ETag the last eight octets of the signature, which
// differ between any two responses that differ.
func (r *Responder) write(w http.ResponseWriter, req *http.Request, ans *Answer) {
	h := w.Header()
	h["Content-Type"] = hdrContentType
	cacheable := !ans.Fresh && req.Method != http.MethodPost
	if cacheable {
		now := r.p.clock()
		maxAge := min(ans.NextUpdate.Sub(now), r.p.cfg.MaxAge)
		if maxAge < 0 {
			maxAge = 0
		}
		var tag [20]byte
		t := tag[:0]
		t = append(t, '"')
		t = hex.AppendEncode(t, ans.Body[max(0, len(ans.Body)-8):])
		t = append(t, '"')
		etag := string(t)
		h["Etag"] = []string{etag}
		h["Last-Modified"] = []string{ans.ProducedAt.UTC().Format(http.TimeFormat)}
		h["Expires"] = []string{ans.NextUpdate.UTC().Format(http.TimeFormat)}
		h["Cache-Control"] = []string{"max-age=" + strconv.Itoa(int(maxAge/time.Second)) + ", public, no-transform, must-revalidate"}
		if inm := req.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		h["Cache-Control"] = hdrNoStore
	}
	h["Content-Length"] = []string{strconv.Itoa(ans.Len())}
	if req.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	out := bufPool.Get().(*[]byte)
	b := ans.AppendDER((*out)[:0])
	w.Write(b)
	*out = b[:0]
	bufPool.Put(out)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
