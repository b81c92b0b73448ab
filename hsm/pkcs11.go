package hsm

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// PKCS11Config says which module, token and PIN to use.
type PKCS11Config struct {
	// Module is the path to the PKCS #11 library.
	Module string
	// TokenLabel is the label of the token holding the keys (CKA_LABEL of
	// the token, as shown by C_GetTokenInfo). The slot is found by it, at
	// open and again after every re-initialisation.
	TokenLabel string
	// PIN is the user PIN; the caller reads it from a file or env var.
	// It is passed to C_Login and to nothing else: never logged, never in
	// an error.
	PIN string
	// MaxSessions bounds the sessions open on the token, and so the
	// signatures in progress at once (DefaultMaxSessions when zero).
	MaxSessions int
	// AcquireTimeout is how long Sign (and any call whose context has no
	// deadline) waits for a session before failing with ErrUnavailable
	// (DefaultAcquireTimeout when zero).
	AcquireTimeout time.Duration
	// MaxReinitBackoff caps the wait between re-initialisation attempts
	// while the token is down (they start at 50ms and double;
	// DefaultMaxReinitBackoff when zero).
	MaxReinitBackoff time.Duration
}

// String describes the configuration without the PIN.
func (c PKCS11Config) String() string {
	return fmt.Sprintf("PKCS11Config{Module: %q, TokenLabel: %q, MaxSessions: %d, AcquireTimeout: %v}",
		c.Module, c.TokenLabel, c.MaxSessions, c.AcquireTimeout)
}

// GoString keeps the PIN out of %#v.
func (c PKCS11Config) GoString() string { return "hsm." + c.String() }

// LogValue keeps the PIN out of structured logs.
func (c PKCS11Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("module", c.Module),
		slog.String("token", c.TokenLabel),
		slog.Int("max_sessions", c.MaxSessions),
		slog.Duration("acquire_timeout", c.AcquireTimeout),
	)
}

// The defaults of PKCS11Config's zero fields. They are the only place these
// values are written: jpkica's configuration takes them from here.
const (
	DefaultMaxSessions      = 4
	DefaultAcquireTimeout   = 2 * time.Second
	DefaultMaxReinitBackoff = 5 * time.Second
)

// minReinitBackoff is the first wait between re-initialisation attempts.
const minReinitBackoff = 50 * time.Millisecond

// PKCS11 is a KeyStore backed by one token of a PKCS #11 module. See the
// package documentation for sessions, concurrency and recovery.
type PKCS11 struct {
	pool           *pool
	threads        *signThreads // make the signing calls; see signthreads.go
	stopThreads    sync.Once
	signErrors     atomic.Int64 // signatures that failed, after any retry
	acquireTimeout time.Duration
	rand           io.Reader
	genMu          sync.Mutex // one key generation at a time, so label checks hold
	// restrict are the private key attributes that GenerateKey asks for
	// when the token allows them (restrictedPrivateKey); unrestricted is
	// set once the token has refused them, and they are not asked again.
	restrict     []*pkcs11.Attribute
	unrestricted atomic.Bool
}

// restrictedPrivateKey are attributes of a generated private key beyond
// the ones every token takes: it cannot unwrap (import other keys
// decrypted by it) nor derive keys. Not every token knows them all.
func restrictedPrivateKey() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
}

// OpenPKCS11 loads the module, initialises it, finds the token by label,
// logs in, and starts a signing thread per session it may open (see the
// package documentation). A wrong PIN fails with ErrLogin; a missing token with
// ErrUnavailable. logger may be nil. Call Close when done: it finalises the
// module.
//
// The module is process-wide state: open each module at most once per
// process, and do not let other code in the process finalise it.
func OpenPKCS11(ctx context.Context, cfg PKCS11Config, logger *slog.Logger) (*PKCS11, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" {
		return nil, fmt.Errorf("opening PKCS#11 store: %w: module and token label are required", ErrInvalidRequest)
	}
	if cfg.MaxSessions < 0 || cfg.AcquireTimeout < 0 || cfg.MaxReinitBackoff < 0 {
		return nil, fmt.Errorf("opening PKCS#11 store: %w: negative limit", ErrInvalidRequest)
	}
	cfg.MaxSessions = cmp.Or(cfg.MaxSessions, DefaultMaxSessions)
	cfg.AcquireTimeout = cmp.Or(cfg.AcquireTimeout, DefaultAcquireTimeout)
	cfg.MaxReinitBackoff = cmp.Or(cfg.MaxReinitBackoff, DefaultMaxReinitBackoff)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("opening PKCS#11 store: %w", err)
	}
	mod := pkcs11.New(cfg.Module)
	if mod == nil {
		return nil, fmt.Errorf("loading PKCS#11 module %s: %w: cannot load library", cfg.Module, ErrUnavailable)
	}
	p := &pool{
		mod:        mod,
		tokenLabel: cfg.TokenLabel,
		pin:        cfg.PIN,
		logger:     logger,
		minBackoff: min(minReinitBackoff, cfg.MaxReinitBackoff),
		maxBackoff: cfg.MaxReinitBackoff,
		permits:    make(chan struct{}, cfg.MaxSessions),
		stop:       make(chan struct{}),
		changed:    make(chan struct{}),
	}
	slot, sh, err := p.connect(false)
	if err != nil {
		_ = mod.Finalize()
		mod.Destroy()
		if classify(err) == failModule {
			err = unavailable(err)
		}
		return nil, fmt.Errorf("opening PKCS#11 store: %w", err)
	}
	threads, err := startSignThreads(cfg.Module, cfg.MaxSessions)
	if err != nil {
		_ = mod.CloseSession(sh)
		_ = mod.Finalize()
		mod.Destroy()
		return nil, fmt.Errorf("opening PKCS#11 store: %w", err)
	}
	p.slot = slot
	p.idle = []pkcs11.SessionHandle{sh}
	p.okSinceReinit = true
	p.backoff = p.minBackoff
	logger.Info("hsm: PKCS#11 token opened", "config", cfg)
	return &PKCS11{pool: p, threads: threads, acquireTimeout: cfg.AcquireTimeout, rand: rand.Reader,
		restrict: restrictedPrivateKey()}, nil
}

// Close waits for signatures in progress, then finalises and unloads the
// module. Signers obtained from the store fail with ErrUnavailable after.
func (k *PKCS11) Close() error {
	err := k.pool.close()
	k.stopThreads.Do(k.threads.stop)
	return err
}

// withSession runs fn on a borrowed session. If fn fails because the
// session or module went bad, it is run once more on a fresh session
// (after the module is re-initialised, if that is what it took), when retry
// is true. Errors from a bad session or module wrap ErrUnavailable.
//
// Waiting (for a session, or for a re-initialisation) is bounded by ctx's
// deadline, or by AcquireTimeout if ctx has none.
func (k *PKCS11) withSession(ctx context.Context, retry bool, fn func(*lease) error) error {
	w := waiter{ctx: ctx, timeout: k.acquireTimeout}
	defer w.done()
	for attempt := 0; ; attempt++ {
		l, class, err := k.pool.acquireClass(&w)
		if err != nil {
			if retry && attempt == 0 && (class == failSession || class == failModule) {
				continue
			}
			return err
		}
		err = fn(l)
		class = k.pool.release(l, err)
		switch {
		case class == failNone:
			return err
		case class == failLogin:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		case retry && attempt == 0:
			continue
		default:
			return unavailable(err)
		}
	}
}

// Ping checks that a logged-in session can be had and the token answers.
func (k *PKCS11) Ping(ctx context.Context) error {
	err := k.withSession(ctx, true, func(l *lease) error {
		if _, err := k.pool.mod.GetTokenInfo(l.slot); err != nil {
			return fmt.Errorf("reading token info: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pinging token %q: %w", k.pool.tokenLabel, err)
	}
	return nil
}

// GenerateKey makes a key pair on the token: both halves token objects with
// the label and one random CKA_ID; the private half sensitive, private,
// not extractable, for signing only (CKA_SIGN; CKA_DECRYPT, CKA_UNWRAP and
// CKA_DERIVE false). A token that refuses CKA_UNWRAP or CKA_DERIVE in the
// template (CKR_ATTRIBUTE_TYPE_INVALID, ...) gets the key without them,
// and the store logs that once. It fails with ErrKeyExists if any key
// object on the token already has the label. Generation is not retried on a failure
// part-way (it may have created objects); the caller sees the error.
func (k *PKCS11) GenerateKey(ctx context.Context, req GenerateKeyRequest) (crypto.Signer, error) {
	if req.Label == "" {
		return nil, fmt.Errorf("generating key: %w: empty label", ErrInvalidRequest)
	}
	var mech uint
	var pubAttrs []*pkcs11.Attribute
	var keyType uint
	switch req.Algorithm {
	case RSA2048:
		mech, keyType = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKK_RSA
		pubAttrs = []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{0x01, 0x00, 0x01}),
		}
	case ECDSAP256:
		mech, keyType = pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKK_EC
		pubAttrs = []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidP256DER)}
	default:
		return nil, fmt.Errorf("generating key %q: %w: algorithm %v", req.Label, ErrUnsupported, req.Algorithm)
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(k.rand, id); err != nil {
		return nil, fmt.Errorf("generating key %q: making CKA_ID: %w", req.Label, err)
	}
	pub := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, req.Label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}, pubAttrs...)
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, req.Label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}

	k.genMu.Lock()
	defer k.genMu.Unlock()
	var s *p11Signer
	// The existence check and the generation share one session; not retried.
	err := k.withSession(ctx, false, func(l *lease) error {
		existing, err := k.findObjects(l, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, req.Label)}, 1)
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return ErrKeyExists
		}
		pubH, privH, err := k.generatePair(l, mech, pub, priv)
		if err != nil {
			return fmt.Errorf("C_GenerateKeyPair: %w", err)
		}
		pk, err := k.readPublic(l, pubH, keyType)
		if err != nil {
			return err
		}
		s = newP11Signer(k, req.Label, id, pk)
		s.handle.Store(&keyHandle{gen: l.gen, h: privH})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generating key %q: %w", req.Label, err)
	}
	return s, nil
}

// generatePair calls C_GenerateKeyPair with priv and the store's
// restricting attributes, or without those if the token refuses them.
func (k *PKCS11) generatePair(l *lease, mech uint, pub, priv []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	mechs := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
	if k.unrestricted.Load() || len(k.restrict) == 0 {
		return k.pool.mod.GenerateKeyPair(l.sh, mechs, pub, priv)
	}
	pubH, privH, err := k.pool.mod.GenerateKeyPair(l.sh, mechs, pub, append(priv[:len(priv):len(priv)], k.restrict...))
	if !refusedTemplate(err) {
		return pubH, privH, err
	}
	// Nothing was created. If the same template without them works, it
	// was them the token refused.
	pubH, privH, err2 := k.pool.mod.GenerateKeyPair(l.sh, mechs, pub, priv)
	if err2 != nil {
		return 0, 0, err
	}
	if k.unrestricted.CompareAndSwap(false, true) {
		k.pool.logger.Warn("hsm: the token refuses CKA_UNWRAP=false or CKA_DERIVE=false on private keys; generating keys without them",
			"token", k.pool.tokenLabel, "err", err)
	}
	return pubH, privH, nil
}

// refusedTemplate reports whether err is a token's refusal of an attribute
// in a template.
func refusedTemplate(err error) bool {
	return isCode(err, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID) || isCode(err, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID) ||
		isCode(err, pkcs11.CKR_TEMPLATE_INCONSISTENT)
}

// Signer finds the private key with the label (CKO_PRIVATE_KEY, CKA_LABEL)
// and its public key (same CKA_ID). ErrKeyNotFound if there is none; an
// error if the label names more than one private key.
func (k *PKCS11) Signer(ctx context.Context, label string) (crypto.Signer, error) {
	if label == "" {
		return nil, fmt.Errorf("finding key: %w: empty label", ErrInvalidRequest)
	}
	var s *p11Signer
	err := k.withSession(ctx, true, func(l *lease) error {
		privs, err := k.findObjects(l, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		}, 2)
		if err != nil {
			return err
		}
		switch len(privs) {
		case 0:
			return ErrKeyNotFound
		case 1:
		default:
			return fmt.Errorf("%w: more than one private key has label %q", ErrInvalidRequest, label)
		}
		attrs, err := k.pool.mod.GetAttributeValue(l.sh, privs[0], []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		})
		if err != nil {
			return fmt.Errorf("reading private key attributes: %w", err)
		}
		id := attrs[0].Value
		keyType, err := attrUint(attrs[1].Value)
		if err != nil {
			return err
		}
		pubs, err := k.findObjects(l, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}, 1)
		if err != nil {
			return err
		}
		pubFrom := privs[0] // an RSA private key carries its modulus and exponent too
		if len(pubs) > 0 {
			pubFrom = pubs[0]
		} else if keyType != pkcs11.CKK_RSA {
			return fmt.Errorf("%w: no public key object with the CKA_ID of %q", ErrKeyNotFound, label)
		}
		pk, err := k.readPublic(l, pubFrom, keyType)
		if err != nil {
			return err
		}
		s = newP11Signer(k, label, id, pk)
		s.handle.Store(&keyHandle{gen: l.gen, h: privs[0]})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finding key %q: %w", label, err)
	}
	return s, nil
}

// findObjects returns up to max handles matching template.
func (k *PKCS11) findObjects(l *lease, template []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	mod := k.pool.mod
	if err := mod.FindObjectsInit(l.sh, template); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	hs, _, err := mod.FindObjects(l.sh, max)
	if ferr := mod.FindObjectsFinal(l.sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("C_FindObjects: %w", err)
	}
	return hs, nil
}

// oidP256DER is CKA_EC_PARAMS for P-256: the DER of OID 1.2.840.10045.3.1.7.
var oidP256DER = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// readPublic reads the public key from a key object.
func (k *PKCS11) readPublic(l *lease, h pkcs11.ObjectHandle, keyType uint) (crypto.PublicKey, error) {
	mod := k.pool.mod
	switch keyType {
	case pkcs11.CKK_RSA:
		attrs, err := mod.GetAttributeValue(l.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading RSA public key: %w", err)
		}
		n := new(big.Int).SetBytes(attrs[0].Value)
		e := new(big.Int).SetBytes(attrs[1].Value)
		if n.Sign() <= 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("reading RSA public key: %w: bad modulus or exponent", ErrUnsupported)
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		attrs, err := mod.GetAttributeValue(l.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading EC public key: %w", err)
		}
		if !bytes.Equal(attrs[0].Value, oidP256DER) {
			return nil, fmt.Errorf("reading EC public key: %w: curve is not P-256", ErrUnsupported)
		}
		return parseECPoint(attrs[1].Value)
	default:
		return nil, fmt.Errorf("reading public key: %w: CKA_KEY_TYPE %#x", ErrUnsupported, keyType)
	}
}

// parseECPoint decodes CKA_EC_POINT: a DER OCTET STRING holding the
// uncompressed point (PKCS #11 v2.40 section 2.3.3). Some modules give the
// bare point; that is accepted too.
func parseECPoint(v []byte) (*ecdsa.PublicKey, error) {
	point := v
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 {
		point = inner
	}
	pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("parsing CKA_EC_POINT: %w", err)
	}
	return pk, nil
}

// attrUint decodes a CK_ULONG attribute value (native byte order and size).
func attrUint(v []byte) (uint, error) {
	switch len(v) {
	case 8:
		return uint(binary.NativeEndian.Uint64(v)), nil
	case 4:
		return uint(binary.NativeEndian.Uint32(v)), nil
	default:
		return 0, fmt.Errorf("%w: CK_ULONG attribute of %d bytes", ErrUnsupported, len(v))
	}
}
