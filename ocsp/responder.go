package ocsp

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Responder is the OCSP responder over HTTP (RFC 6960 appendix A.1, RFC 5019
// section 5): POST of an application/ocsp-request body, GET (and HEAD) of
// the base64 request after the prefix, URL-escaped or not. It is safe for
// concurrent use.
//
// Error mapping (the only place errors become OCSP statuses): a request that
// does not decode, carries too many CertIDs or a hash other than SHA-1 and
// SHA-256 is malformedRequest; a CertID of an issuer not served is
// unauthorized, and so is a client outside Config.Clients; ErrUnavailable
// is tryLater; anything else internalError.
// These go out with HTTP 200, as RFC 5019 expects. A POST body over
// Config.MaxBody is HTTP 413, other methods 405.
type Responder struct {
	p      *Presigner
	prefix string
	// answered counts answers by CertStatus, curried once from the
	// requests counter rather than looked up by label on each request.
	answered [3]prometheus.Counter
}

// NewResponder serves p's answers for GETs under prefix ("/ocsp/").
func NewResponder(p *Presigner, prefix string) *Responder {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	r := &Responder{p: p, prefix: prefix}
	for i := range r.answered {
		r.answered[i] = p.m.requests.WithLabelValues(CertStatus(i).String())
	}
	return r
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

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// reply is what one request gets, whatever the HTTP layer.
type reply struct {
	code   int            // HTTP status
	status ResponseStatus // an unsuccessful OCSP status when ok is false
	ok     bool
	ans    Answer
	// Cache headers, set for cacheable answers.
	etag, lastModified, expires, cacheControl string
}

// pathRequest is the base64 request of a GET: the (already unescaped)
// path after the prefix.
func (r *Responder) pathRequest(path string) string {
	enc := strings.TrimPrefix(path, strings.TrimSuffix(r.prefix, "/"))
	return strings.TrimPrefix(enc, "/")
}

// handle answers a DER request: method is GET, HEAD or POST, inm the
// If-None-Match header.
func (r *Responder) handle(ctx context.Context, method string, der []byte, inm string) reply {
	parsed, err := ParseRequest(der, r.p.cfg.MaxCertsPerRequest)
	if err != nil {
		return r.failed(MalformedRequest)
	}
	ans, err := r.p.Answer(ctx, &parsed)
	if err != nil {
		return r.failed(statusOf(err))
	}
	if int(ans.Status) < len(r.answered) {
		r.answered[ans.Status].Inc()
	}
	rep := reply{code: http.StatusOK, ok: true, ans: ans}
	if ans.Fresh || method == http.MethodPost {
		return rep
	}
	now := r.p.clock()
	maxAge := min(ans.NextUpdate.Sub(now), r.p.cfg.MaxAge)
	if maxAge < 0 {
		maxAge = 0
	}
	// The four header values are built in one buffer and made one string.
	var hb [160]byte
	b := append(hb[:0], '"')
	b = hex.AppendEncode(b, ans.Body[max(0, len(ans.Body)-8):])
	b = append(b, '"')
	etag := len(b)
	b = appendHTTPDate(b, ans.ProducedAt)
	modified := len(b)
	b = appendHTTPDate(b, ans.NextUpdate)
	expires := len(b)
	b = append(b, "max-age="...)
	b = strconv.AppendInt(b, int64(maxAge/time.Second), 10)
	b = append(b, ", public, no-transform, must-revalidate"...)
	h := string(b)
	rep.etag, rep.lastModified, rep.expires, rep.cacheControl = h[:etag], h[etag:modified], h[modified:expires], h[expires:]
	if inm != "" && etagMatch(inm, rep.etag) {
		rep.code = http.StatusNotModified
	}
	return rep
}

func (r *Responder) failed(s ResponseStatus) reply {
	r.p.m.requests.WithLabelValues(s.String()).Inc()
	return reply{code: http.StatusOK, status: s}
}

func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	buf := bufPool.Get().(*[]byte)
	defer putBuf(buf)
	var rep reply
	switch {
	case !r.p.cfg.Clients.AllowsRemote(req.RemoteAddr):
		rep = r.failed(Unauthorized)
	case req.Method == http.MethodGet || req.Method == http.MethodHead:
		// URL.Path is already unescaped (%2B, %2F, %3D), and a literal
		// "+" stays a plus in a path.
		der, ok := decodeGET(r.pathRequest(req.URL.Path), (*buf)[:0])
		if !ok {
			rep = r.failed(MalformedRequest)
			break
		}
		*buf = der
		rep = r.handle(req.Context(), req.Method, der, req.Header.Get("If-None-Match"))
	case req.Method == http.MethodPost:
		if ct := req.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/ocsp-request") {
			rep = r.failed(MalformedRequest)
			break
		}
		if req.ContentLength > r.p.cfg.MaxBody {
			r.tooLarge(w)
			return
		}
		b, err := readBody(req.Body, (*buf)[:0], r.p.cfg.MaxBody)
		*buf = b
		switch {
		case errors.Is(err, errTooLarge):
			r.tooLarge(w)
			return
		case err != nil:
			rep = r.failed(MalformedRequest)
		default:
			rep = r.handle(req.Context(), req.Method, b, "")
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrContentType
	if rep.etag != "" {
		h["Etag"] = []string{rep.etag}
		h["Last-Modified"] = []string{rep.lastModified}
		h["Expires"] = []string{rep.expires}
		h["Cache-Control"] = []string{rep.cacheControl}
	} else {
		h["Cache-Control"] = hdrNoStore
	}
	if rep.code == http.StatusNotModified {
		w.WriteHeader(rep.code)
		return
	}
	out := bufPool.Get().(*[]byte)
	defer putBuf(out)
	b := (*out)[:0]
	if rep.ok {
		b = rep.ans.AppendDER(b)
	} else {
		b = append(b, ErrorResponse(rep.status)...)
	}
	*out = b
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(rep.code)
	if req.Method != http.MethodHead {
		w.Write(b)
	}
}

var errTooLarge = errors.New("request body too large")

// readBody reads at most limit octets of body into dst.
func readBody(body io.Reader, dst []byte, limit int64) ([]byte, error) {
	lr := io.LimitReader(body, limit+1)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := lr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst, err
		}
	}
	if int64(len(dst)) > limit {
		return dst, errTooLarge
	}
	return dst, nil
}

func (r *Responder) tooLarge(w http.ResponseWriter) {
	r.p.m.requests.WithLabelValues("too_large").Inc()
	http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
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

// decodeGET turns the unescaped path after the prefix into DER: standard
// base64, padded or not; the URL-safe alphabet is accepted too.
func decodeGET(enc string, dst []byte) ([]byte, bool) {
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

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
