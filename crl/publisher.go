package crl

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// NewHandler serves the CRLs published in dir at prefix/<issuer>/<file>.crl
// (prefix is the path of urls.crl_base, e.g. "/crl"): GET and HEAD, as
// application/pkix-crl, with Last-Modified (the CRL's thisUpdate), an ETag
// that changes with every publication, and 304 answers to conditional GETs
// (http.ServeContent). Anything else under prefix is 404. This is the only
// file of the package that imports net/http.
func NewHandler(dir *Dir, prefix string) http.Handler {
	prefix = "/" + strings.Trim(prefix, "/") + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		issuer, file, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || !issuerIDPattern.MatchString(issuer) || !fileNamePattern.MatchString(file) {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(dir.root, issuer, file))
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() || st.Size() < 32 {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		// The ETag is the end of the signature: it changes with every CRL
		// and is the same on every node serving the same one.
		var tail [16]byte
		if _, err := f.ReadAt(tail[:], st.Size()-int64(len(tail))); err != nil {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/pkix-crl")
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), tail))
		h.Set("Cache-Control", "public, max-age=300, no-transform")
		http.ServeContent(w, r, file, st.ModTime(), f)
	})
}
