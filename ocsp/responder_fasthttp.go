package ocsp

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// FastHandler returns the responder as a fasthttp handler, for a listener of
// its own (see NewFastServer): the same answers, headers and error mapping
// as ServeHTTP, at a fraction of net/http's cost per request (see
// docs/benchmarks.md). Paths other than the prefix are 404.
func (r *Responder) FastHandler() fasthttp.RequestHandler { return r.FastGuard(nil) }

// FastGuard returns a fasthttp handler that answers every request for the
// responder's paths (the prefix, and the prefix without its slash, after
// percent-decoding) itself, and hands the rest to next; nil next answers
// them 404. It is Guard for fasthttp: the responder reads the path as the
// client sent it, neither cleaned nor redirected.
func (r *Responder) FastGuard(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	exact := r.prefix[:len(r.prefix)-1]
	if next == nil {
		next = func(ctx *fasthttp.RequestCtx) { ctx.Error("not found", fasthttp.StatusNotFound) }
	}
	return func(ctx *fasthttp.RequestCtx) {
		buf := bufPool.Get().(*[]byte)
		defer putBuf(buf)
		raw := ctx.URI().PathOriginal() // neither cleaned nor unescaped
		path, ok := unescapePath(raw, (*buf)[:0])
		if !ok || (string(path) != exact && (len(path) < len(r.prefix) || string(path[:len(r.prefix)]) != r.prefix)) {
			next(ctx)
			return
		}
		var rep reply
		method := string(ctx.Method())
		switch {
		case !r.p.cfg.Clients.Open() && !r.p.cfg.Clients.Allows(remoteAddr(ctx)):
			rep = r.failed(Unauthorized)
		case method == http.MethodGet || method == http.MethodHead:
			der, ok := decodeGET(r.pathRequest(string(path)), nil)
			if !ok {
				rep = r.failed(MalformedRequest)
				break
			}
			rep = r.handle(ctx, method, der, string(ifNoneMatch(&ctx.Request.Header)))
		case method == http.MethodPost:
			if ct := ctx.Request.Header.ContentType(); len(ct) > 0 && !hasPrefix(ct, "application/ocsp-request") {
				rep = r.failed(MalformedRequest)
				break
			}
			body := ctx.PostBody()
			if int64(len(body)) > r.p.cfg.MaxBody {
				r.p.m.requests.WithLabelValues("too_large").Inc()
				ctx.Error("request too large", fasthttp.StatusRequestEntityTooLarge)
				return
			}
			rep = r.handle(ctx, method, body, "")
		default:
			ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
			ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
			return
		}
		h := &ctx.Response.Header
		h.SetContentType("application/ocsp-response")
		if rep.etag != "" {
			h.Set("ETag", rep.etag)
			h.Set("Last-Modified", rep.lastModified)
			h.Set("Expires", rep.expires)
			h.Set("Cache-Control", rep.cacheControl)
		} else {
			h.Set("Cache-Control", "no-store")
		}
		ctx.SetStatusCode(rep.code)
		if rep.code == http.StatusNotModified {
			return
		}
		b := (*buf)[:0]
		if rep.ok {
			b = rep.ans.AppendDER(b)
		} else {
			b = append(b, ErrorResponse(rep.status)...)
		}
		*buf = b
		if method == http.MethodHead {
			h.SetContentLength(len(b))
			ctx.Response.SkipBody = true
			return
		}
		ctx.Response.AppendBody(b)
	}
}

// NewFastServer is a fasthttp server for the responder alone (FastHandler)
// with timeouts that keep slow clients from holding connections, and the
// POST body limit. Its messages go to the pre-signer's logger at debug
// level.
func (r *Responder) NewFastServer() *FastServer { return r.NewFastServerWith(nil) }

// NewFastServerWith is NewFastServer serving next on every path that is
// not the responder's (FastGuard): one listener for OCSP and whatever else
// next serves, under the same timeouts and limits. A body over the limit is
// 413 on every path, and counted as the responder's "too_large".
func (r *Responder) NewFastServerWith(next fasthttp.RequestHandler) *FastServer {
	s := NewFastServerFor(r.FastGuard(next), r.p.cfg.MaxBody, r.p.log)
	s.ErrorHandler = func(ctx *fasthttp.RequestCtx, err error) {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			r.p.m.requests.WithLabelValues("too_large").Inc()
		}
		fastError(ctx, err)
	}
	return s
}

// NewFastServerFor is a fasthttp server for h with the responder's
// settings: read, write and idle timeouts (10 s, 10 s, 60 s) that keep slow
// clients from holding connections, a 16 KiB limit on the request line and
// headers, and a limit of maxBody octets on a request body (413 above it).
// Its messages go to log at debug level. It is for a listener whose
// handler need not be the responder's.
func NewFastServerFor(h fasthttp.RequestHandler, maxBody int64, log *slog.Logger) *FastServer {
	return &FastServer{&fasthttp.Server{
		Handler:                       h,
		Name:                          "jpkica",
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		IdleTimeout:                   60 * time.Second,
		MaxRequestBodySize:            int(maxBody),
		ReadBufferSize:                16 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		ErrorHandler:                  fastError,
		Logger:                        debugLogger{log},
	}}
}

// fastError answers a request that fasthttp could not read: 413 for a body
// over the limit, 431 for a request line and headers over the read buffer,
// as net/http answers them, and 400 otherwise.
func fastError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request too large", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request header fields too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	default:
		ctx.Error("bad request", fasthttp.StatusBadRequest)
	}
}

// ifNoneMatch is the If-None-Match header, its name in any case: the
// servers keep header names as sent (DisableHeaderNamesNormalizing), and
// net/http would match "if-none-match" too.
func ifNoneMatch(h *fasthttp.RequestHeader) []byte {
	if v := h.Peek("If-None-Match"); v != nil {
		return v
	}
	for k, v := range h.All() {
		if len(k) == len("If-None-Match") && strings.EqualFold(string(k), "If-None-Match") {
			return v
		}
	}
	return nil
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// unescapePath percent-decodes a path ("+" stays a plus).
func unescapePath(p []byte, dst []byte) ([]byte, bool) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(p) {
			return nil, false
		}
		hi, ok1 := unhex(p[i+1])
		lo, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return nil, false
		}
		dst = append(dst, hi<<4|lo)
		i += 2
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// remoteAddr is the client's address.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a
}
