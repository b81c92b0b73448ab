package ocsp

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
)

// FastHandler returns the responder as a fasthttp handler, for a listener of
// its own (see NewFastServer): the same answers, headers and error mapping
// as ServeHTTP, at a fraction of net/http's cost per request (see
// docs/benchmarks.md). Paths other than the prefix are 404.
func (r *Responder) FastHandler() fasthttp.RequestHandler {
	exact := r.prefix[:len(r.prefix)-1]
	return func(ctx *fasthttp.RequestCtx) {
		buf := bufPool.Get().(*[]byte)
		defer putBuf(buf)
		raw := ctx.URI().PathOriginal() // neither cleaned nor unescaped
		path, ok := unescapePath(raw, (*buf)[:0])
		if !ok || (string(path) != exact && (len(path) < len(r.prefix) || string(path[:len(r.prefix)]) != r.prefix)) {
			ctx.Error("not found", fasthttp.StatusNotFound)
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
			rep = r.handle(ctx, method, der, string(ctx.Request.Header.Peek("If-None-Match")))
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

// NewFastServer is a fasthttp server for the responder with timeouts that
// keep slow clients from holding connections, and the POST body limit.
// Its messages go to the pre-signer's logger at debug level.
func (r *Responder) NewFastServer() *FastServer {
	return &FastServer{&fasthttp.Server{
		Handler:                       r.FastHandler(),
		Name:                          "jpkica",
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		IdleTimeout:                   60 * time.Second,
		MaxRequestBodySize:            int(r.p.cfg.MaxBody),
		ReadBufferSize:                16 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				r.p.m.requests.WithLabelValues("too_large").Inc()
				ctx.Error("request too large", fasthttp.StatusRequestEntityTooLarge)
				return
			}
			ctx.Error("bad request", fasthttp.StatusBadRequest)
		},
		Logger: debugLogger{r.p.log},
	}}
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
