package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/store"
)

// cmdIssuers runs `jpkica issuers [--config FILE] [--out DIR]`: it writes
// what relying parties need to check certificates and OCSP answers, read
// from the store (no key store needed): DIR/ID.pem for every issuer
// generation (the trust anchors) and DIR/ID-ocsp.pem for each issuer's
// newest delegated OCSP responder certificate.
func cmdIssuers(ctx context.Context, args []string, stdout io.Writer) error {
	fs, configPath := newFlags("issuers")
	out := fs.String("out", ".", "directory to write the certificates to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := open(ctx, *configPath, slog.New(slog.DiscardHandler), withStore)
	if err != nil {
		return err
	}
	defer d.Close()
	files, err := writeIssuerCerts(ctx, d.store, *out)
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return err
}

// writeIssuerCerts writes the issuer and newest responder certificates
// under dir (made 0755 if missing) and returns the files written.
func writeIssuerCerts(ctx context.Context, st *store.Store, dir string) ([]string, error) {
	all, err := st.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	// The client CA is left out: terminals have it from `jpkica clients issue`.
	issuers := slices.DeleteFunc(all, func(is ca.Issuer) bool { return is.Type == ca.Terminal })
	if len(issuers) == 0 {
		return nil, fmt.Errorf("%w: no card issuers in the store: run `jpkica init`", ca.ErrNotFound)
	}
	responders, err := st.Responders(ctx)
	if err != nil {
		return nil, err
	}
	newest := store.NewestResponders(responders)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	var files []string
	write := func(name string, der []byte) error {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		files = append(files, path)
		return nil
	}
	for _, is := range issuers {
		if err := write(is.ID+".pem", is.CertDER); err != nil {
			return files, err
		}
		if r, ok := newest[is.ID]; ok {
			if err := write(is.ID+"-ocsp.pem", r.CertDER); err != nil {
				return files, err
			}
		}
	}
	return files, nil
}
