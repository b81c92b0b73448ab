// Command crlbench measures CRL generation in its own process, so that peak
// RSS (from /usr/bin/time -v) belongs to one method:
//
//	crlbench -mode jpkica  -n 1000000   # crl.Encode from a generator Source
//	crlbench -mode jpkica-slice -n 1000000 # crl.Encode from the same []Entry Go needs
//	crlbench -mode x509    -n 1000000   # x509.CreateRevocationList on the same entries
//	crlbench -mode store -config FILE -issuer ID  # the full CRL straight from a store
//
// The entries are deterministic and the key is read from -key (made on first
// use), so the jpkica and x509 outputs can be compared byte for byte: both
// print the SHA-256 of what they wrote.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/store"
)

var lintMax int64

var now = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func main() {
	mode := flag.String("mode", "jpkica", "jpkica, jpkica-slice, x509 or store")
	n := flag.Int("n", 1000000, "entries (synthetic modes)")
	keyPath := flag.String("key", "/tmp/crlbench-key.pem", "RSA key file (created if missing)")
	out := flag.String("out", "/tmp/crlbench.crl", "output file")
	configPath := flag.String("config", "", "jpkica config (store mode)")
	issuer := flag.String("issuer", "", "issuer ID (store mode)")
	partition := flag.String("partition", "", "municipality (store mode; empty: the full CRL)")
	flag.Int64Var(&lintMax, "lintmax", 0, "crl.Config.LintMaxBytes (store mode; 0: the default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile")
	flag.Parse()
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(pf) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*mode, *n, *keyPath, *out, *configPath, *issuer, *partition); err != nil {
		fmt.Fprintln(os.Stderr, "crlbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(mode string, n int, keyPath, out, configPath, issuerID, partition string) error {
	ctx := context.Background()
	if mode == "store" || mode == "scan" {
		return runStore(ctx, mode, configPath, issuerID, partition)
	}
	key, err := loadKey(keyPath)
	if err != nil {
		return err
	}
	issuer, err := issuerCert(key)
	if err != nil {
		return err
	}
	spec := crl.Spec{Issuer: issuer, Number: big.NewInt(42), ThisUpdate: now, NextUpdate: now.Add(36 * time.Hour),
		IDP: "http://127.0.0.1:8080/crl/signature-g1/302015.crl"}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	start := time.Now()
	var entries int64
	switch mode {
	case "jpkica":
		info, err := crl.Encode(ctx, spec, key, generator(n), w, crl.Options{SpoolDir: os.TempDir()})
		if err != nil {
			return err
		}
		entries = info.Entries
	case "jpkica-slice":
		es := make([]crl.Entry, 0, n)
		generator(n)(ctx, func(sn []byte, at time.Time, r ca.Reason) error {
			es = append(es, crl.Entry{Serial: ca.SerialFromBytes(sn), RevokedAt: at, Reason: r})
			return nil
		})
		start = time.Now()
		info, err := crl.Encode(ctx, spec, key, crl.SliceSource(es), w, crl.Options{SpoolDir: os.TempDir()})
		if err != nil {
			return err
		}
		entries = info.Entries
		runtime.KeepAlive(es)
	case "x509":
		tmpl := &x509.RevocationList{Number: spec.Number, ThisUpdate: spec.ThisUpdate, NextUpdate: spec.NextUpdate,
			ExtraExtensions: []pkix.Extension{idpExtension(spec.IDP)}}
		tmpl.RevokedCertificateEntries = make([]x509.RevocationListEntry, 0, n)
		generator(n)(ctx, func(sn []byte, at time.Time, r ca.Reason) error {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
				SerialNumber: new(big.Int).SetBytes(sn), RevocationTime: at, ReasonCode: int(r)})
			return nil
		})
		start = time.Now()
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
		if err != nil {
			return err
		}
		if _, err := w.Write(der); err != nil {
			return err
		}
		entries = int64(len(tmpl.RevokedCertificateEntries))
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	el := time.Since(start)
	st, _ := f.Stat()
	fmt.Printf("mode=%s entries=%d bytes=%d seconds=%.3f sha256=%x\n", mode, entries, st.Size(), el.Seconds(), h.Sum(nil))
	return nil
}

// generator yields n deterministic entries in serial order: 16-byte
// serials (as jpkica issues), times over the last year, JPKI's reasons.
func generator(n int) crl.Source {
	reasons := []ca.Reason{ca.AffiliationChanged, ca.AffiliationChanged, ca.Superseded, ca.CertificateHold,
		ca.KeyCompromise, ca.Unspecified, ca.CessationOfOperation}
	return func(ctx context.Context, yield crl.Yield) error {
		var sn [16]byte
		sn[0] = 0x5a
		for i := 0; i < n; i++ {
			v := uint64(i)*7919 + 1
			for j := 0; j < 8; j++ {
				sn[15-j] = byte(v >> (8 * j))
			}
			copy(sn[1:8], []byte{0x3c, 0x91, 0x07, 0xe2, 0x55, 0x1d, 0xa8}) // constant middle bytes: order kept
			if err := yield(sn[:], now.Add(-time.Duration(i%525600)*time.Minute), reasons[i%len(reasons)]); err != nil {
				return err
			}
		}
		return nil
	}
}

// idpExtension is the issuingDistributionPoint crl.Encode writes for a
// partition, for x509's ExtraExtensions.
func idpExtension(uri string) pkix.Extension {
	gn := append([]byte{0x86, byte(len(uri))}, uri...)
	full := append([]byte{0xa0, byte(len(gn))}, gn...)
	dpn := append([]byte{0xa0, byte(len(full))}, full...)
	v := append(dpn, 0x81, 1, 0xff)
	return pkix.Extension{Id: []int{2, 5, 29, 28}, Critical: true, Value: append([]byte{0x30, byte(len(v))}, v...)}
}

func loadKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der := x509.MarshalPKCS1PrivateKey(k)
		return k, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600)
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParsePKCS1PrivateKey(blk.Bytes)
}

func issuerCert(key *rsa.PrivateKey) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI"}, OrganizationalUnit: []string{"JPKI for digital signature", "crlbench"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		SubjectKeyId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
	}
	// Deterministic: the same key and template give the same certificate.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// runStore generates, checks and publishes one CRL of a real store through
// the Updater, as `jpkica crl generate` does.
func runStore(ctx context.Context, mode, configPath, issuerID, partition string) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	if mode == "scan" { // the store's part alone: read every entry, encode nothing
		start := time.Now()
		var n int64
		err := st.CRLEntries(ctx, issuerID, partition, time.Now(), func([]byte, time.Time, ca.Reason) error { n++; return nil })
		fmt.Printf("mode=scan entries=%d seconds=%.3f\n", n, time.Since(start).Seconds())
		return err
	}
	keys, err := hsm.OpenSoftware(cfg.Keys.SoftwareDir)
	if err != nil {
		return err
	}
	kr, err := ceremony.Load(ctx, st, keys)
	if err != nil {
		return err
	}
	stdout := bufio.NewWriter(os.Stdout)
	defer stdout.Flush()
	u, err := crl.NewUpdater(crl.Config{BaseURL: cfg.URLs.CRLBase, Dir: cfg.Path("crl"), SpoolDir: os.TempDir(), LintMaxBytes: lintMax}, crl.Deps{
		Store: st, Issuers: kr.Issuers, Clock: time.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Progress: func(p crl.Progress) {
			fmt.Fprintf(stdout, "%s: %d entries, %.1fs\n", p.Scope, p.Entries, p.Elapsed.Seconds())
			stdout.Flush()
		},
	})
	if err != nil {
		return err
	}
	start := time.Now()
	p, err := u.Generate(ctx, crl.Scope{Issuer: issuerID, Partition: partition})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mode=store crl=%s entries=%d bytes=%d seconds=%.3f\n", p.Scope, p.Entries, p.Size, time.Since(start).Seconds())
	return nil
}
