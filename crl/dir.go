package crl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// File names in the publication directory, one subdirectory per issuer:
//
//	<issuer>/<municipality>.crl        partition CRL (named in certificates)
//	<issuer>/<municipality>-delta.crl  its delta CRL
//	<issuer>/full.crl                  the issuer's full CRL
//	<issuer>/full-delta.crl            its delta CRL
//	<issuer>/<name>.json               what was last published under <name>.crl
const (
	fullName    = "full"
	deltaSuffix = "-delta"
)

var (
	issuerIDPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	partitionPattern = regexp.MustCompile(`^[0-9A-Za-z]{1,32}$`)
	fileNamePattern  = regexp.MustCompile(`^[0-9A-Za-z]{1,32}(-delta)?\.crl$`)
)

// Scope names one CRL series of an issuer: a municipality's partition, or
// the full CRL (Partition ""), complete or delta.
type Scope struct {
	Issuer    string
	Partition string // municipality code; "" for the full CRL
	Delta     bool
}

// base is the file name without ".crl".
func (s Scope) base() string {
	n := s.Partition
	if n == "" {
		n = fullName
	}
	if s.Delta {
		n += deltaSuffix
	}
	return n
}

// File is the path of the scope's CRL relative to the publication
// directory.
func (s Scope) File() string { return s.Issuer + "/" + s.base() + ".crl" }

// Complete is the complete CRL scope a delta refers to.
func (s Scope) Complete() Scope { return Scope{Issuer: s.Issuer, Partition: s.Partition} }

func (s Scope) String() string { return s.File() }

// issuerScopes are an issuer's CRL series of one kind (complete or delta):
// the full CRL, then one per partition.
func issuerScopes(issuer string, partitions []string, delta bool) []Scope {
	scopes := []Scope{{Issuer: issuer, Delta: delta}}
	for _, p := range partitions {
		scopes = append(scopes, Scope{Issuer: issuer, Partition: p, Delta: delta})
	}
	return scopes
}

func (s Scope) validate() error {
	if !issuerIDPattern.MatchString(s.Issuer) || s.Partition != "" && (!partitionPattern.MatchString(s.Partition) || s.Partition == fullName) {
		return fmt.Errorf("%w: CRL scope %q/%q", ErrInvalid, s.Issuer, s.Partition)
	}
	return nil
}

// Published is what the directory records about the last CRL of a scope.
type Published struct {
	Scope      Scope     `json:"-"`
	Number     *big.Int  `json:"number"`
	BaseNumber *big.Int  `json:"base_number,omitempty"` // delta CRLs
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	IDP        string    `json:"idp,omitempty"`
	Entries    int64     `json:"entries"`
	Size       int64     `json:"size"`
	// ChangeMark is the store's change mark taken before the entries were
	// read: a delta on this base lists the changes after it.
	ChangeMark int64 `json:"change_mark"`
	// ChangeMarkSerial is the certificate whose revocation ChangeMark is
	// (hex): the updater checks the store still holds it there (wentBack).
	ChangeMarkSerial string `json:"change_mark_serial,omitempty"`
}

// Dir is a publication directory: CRLs are written to a temporary file,
// synced, checked and renamed into place, so readers (the HTTP handler, a
// CDN sync) see the old file or the new one, never a partial one.
type Dir struct {
	root string
}

// OpenDir creates the directory if needed.
func OpenDir(root string) (*Dir, error) {
	if root == "" {
		return nil, fmt.Errorf("%w: no CRL directory", ErrInvalid)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating CRL directory: %w", err)
	}
	return &Dir{root: root}, nil
}

// Root is the directory's path.
func (d *Dir) Root() string { return d.root }

// Last reads what was last published for scope; ok is false if nothing was.
func (d *Dir) Last(scope Scope) (Published, bool, error) {
	b, err := os.ReadFile(d.metaPath(scope))
	if errors.Is(err, fs.ErrNotExist) {
		return Published{}, false, nil
	}
	if err != nil {
		return Published{}, false, fmt.Errorf("reading %s metadata: %w", scope, err)
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil || p.Number == nil {
		return Published{}, false, fmt.Errorf("%w: %s metadata: %v", ErrInvalid, scope, err)
	}
	p.Scope = scope
	return p, true, nil
}

// Partitions lists the partitions published for an issuer.
func (d *Dir) Partitions(issuer string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.root, issuer))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", issuer, err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !fileNamePattern.MatchString(n) {
			continue
		}
		base := n[:len(n)-len(".crl")]
		if base == fullName || len(base) > len(deltaSuffix) && base[len(base)-len(deltaSuffix):] == deltaSuffix {
			continue
		}
		out = append(out, base)
	}
	return out, nil
}

// Published reads what was last published for every CRL of an issuer in
// the directory: the full CRL, each partition, and their deltas.
func (d *Dir) Published(issuer string) ([]Published, error) {
	parts, err := d.Partitions(issuer)
	if err != nil {
		return nil, err
	}
	var out []Published
	for _, delta := range []bool{false, true} {
		for _, s := range issuerScopes(issuer, parts, delta) {
			p, ok, err := d.Last(s)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (d *Dir) path(scope Scope) string {
	return filepath.Join(d.root, scope.Issuer, scope.base()+".crl")
}

func (d *Dir) metaPath(scope Scope) string {
	return filepath.Join(d.root, scope.Issuer, scope.base()+".json")
}

// create makes the temporary file a CRL of scope is written to.
func (d *Dir) create(scope Scope) (*os.File, error) {
	dir := filepath.Join(d.root, scope.Issuer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+scope.base()+"-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary CRL file: %w", err)
	}
	return f, nil
}

// publish renames a synced, checked temporary file into place under an
// exclusive lock of the directory, after checking again (under the lock)
// that it may follow the last published one, which other processes
// publishing into the same directory may have moved. The file's modification time is
// set to thisUpdate, so HTTP Last-Modified is the CRL's thisUpdate.
func (d *Dir) publish(tmp string, p Published) error {
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkFollows(d, p.Scope, p.Number, p.IDP); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // CreateTemp made it 0600
		return fmt.Errorf("publishing %s: %w", p.Scope, err)
	}
	if err := os.Chtimes(tmp, p.ThisUpdate, p.ThisUpdate); err != nil {
		return fmt.Errorf("setting CRL file time: %w", err)
	}
	if err := os.Rename(tmp, d.path(p.Scope)); err != nil {
		return fmt.Errorf("publishing %s: %w", p.Scope, err)
	}
	meta, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(d.metaPath(p.Scope), meta); err != nil {
		return err
	}
	return syncDir(filepath.Dir(d.path(p.Scope)))
}

// lock takes an exclusive flock on the directory's lock file: publishers in
// other processes on this host (or on a file system with working flock)
// wait for each other.
func (d *Dir) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(d.root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening CRL directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking CRL directory: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// writeAtomic writes a small file by temporary file, fsync and rename.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-meta-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
