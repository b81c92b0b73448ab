// Package softhsmtest gives tests a fresh SoftHSM2 token to talk PKCS#11 to.
//
// # How it works
//
// New writes a private softhsm2.conf and token directory under t.TempDir(),
// points SOFTHSM2_CONF at it with t.Setenv, and initialises one token with
// softhsm2-util. SoftHSM2 reads SOFTHSM2_CONF when the module is
// initialised (C_Initialize), so:
//
//   - The code under test must C_Initialize the module after New returns and
//     C_Finalize it before the test ends (hsm.OpenPKCS11 and (*hsm.PKCS11).Close
//     do exactly that; register Close with t.Cleanup after calling New, so it
//     runs before the environment is restored).
//   - Tests that use New cannot run in parallel with each other inside one
//     test binary: the environment and the loaded module are process-wide.
//     t.Setenv enforces this by panicking in a test that called t.Parallel.
//     Separate packages run as separate processes and do not interfere.
//
// Each token gets a unique label anyway, so a module left initialised by a
// previous test can never hand a test somebody else's keys by mistake.
//
// Besides the token, a test can add a second one (InitToken), make a token
// disappear and come back (Unplug), and sign through miekg/pkcs11 alone
// (RawSigner), the baseline that benchmarks hold jpkica's signing to.
//
// If libsofthsm2.so or softhsm2-util is missing, New skips the test with a
// loud message; CI installs SoftHSM2, so there the tests run for real.
package softhsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// modulePaths are the places New looks for the SoftHSM2 PKCS#11 module.
func modulePaths() []string {
	return []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
	}
}

// Token is one initialised SoftHSM2 token private to a test.
type Token struct {
	// Module is the path of libsofthsm2.so.
	Module string
	// Label is the token label, unique per call to New.
	Label string
	// PIN is the user PIN; SOPIN the security officer PIN.
	PIN, SOPIN string
	// ConfPath is the softhsm2.conf that SOFTHSM2_CONF points to.
	ConfPath string
	// Dir is SoftHSM's token directory (directories.tokendir); the token
	// itself is the single subdirectory SoftHSM creates in it.
	Dir string
}

// FindModule returns the path of libsofthsm2.so, or "" if none is installed.
func FindModule() string {
	for _, p := range modulePaths() {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// New initialises a new token and sets SOFTHSM2_CONF for the rest of the test.
func New(t testing.TB) *Token {
	t.Helper()
	module := FindModule()
	if module == "" {
		t.Skipf("SKIPPING: SoftHSM2 not installed (looked for %s); install the softhsm2 package to run PKCS#11 tests",
			strings.Join(modulePaths(), ", "))
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Skipf("SKIPPING: softhsm2-util not found in PATH; install the softhsm2 package to run PKCS#11 tests")
	}

	base := t.TempDir()
	tk := &Token{
		Module:   module,
		Label:    "test-" + randomHex(t, 6),
		PIN:      "user-" + randomHex(t, 4),
		SOPIN:    "so-" + randomHex(t, 4),
		ConfPath: filepath.Join(base, "softhsm2.conf"),
		Dir:      filepath.Join(base, "tokens"),
	}
	if err := os.Mkdir(tk.Dir, 0o700); err != nil {
		t.Fatalf("creating token dir: %v", err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n", tk.Dir)
	if err := os.WriteFile(tk.ConfPath, []byte(conf), 0o600); err != nil {
		t.Fatalf("writing softhsm2.conf: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", tk.ConfPath)

	tk.InitToken(t, tk.Label, tk.PIN)
	return tk
}

// InitToken initialises a token labelled label, with user PIN pin and the
// SO PIN of tk, in a free slot of tk's SoftHSM2 configuration: a second
// token beside tk (the other area of a card), or tk's own again after
// Unplug.
func (tk *Token) InitToken(t testing.TB, label, pin string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", tk.SOPIN, "--pin", pin)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tk.ConfPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", label, err, out)
	}
}

// TokenPath returns the directory holding this token's objects (the one
// subdirectory of Dir).
func (tk *Token) TokenPath(t testing.TB) string {
	t.Helper()
	entries, err := os.ReadDir(tk.Dir)
	if err != nil {
		t.Fatalf("reading token dir: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(tk.Dir, e.Name()))
		}
	}
	if len(dirs) != 1 {
		t.Fatalf("token dir %s: want exactly one token directory, found %d", tk.Dir, len(dirs))
	}
	return dirs[0]
}

// Unplug makes the token disappear, as if the device were removed: it moves
// the token's directory out of SoftHSM's token directory. SoftHSM notices at
// its next C_Initialize. The returned function puts the token back; it is
// safe to call more than once and is also registered with t.Cleanup.
func (tk *Token) Unplug(t testing.TB) (plugBack func()) {
	t.Helper()
	src := tk.TokenPath(t)
	aside := filepath.Join(filepath.Dir(tk.Dir), "unplugged-"+filepath.Base(src))
	if err := os.Rename(src, aside); err != nil {
		t.Fatalf("unplugging token: %v", err)
	}
	done := false
	plugBack = func() {
		if done {
			return
		}
		done = true
		if err := os.Rename(aside, src); err != nil {
			t.Errorf("plugging token back: %v", err)
		}
	}
	t.Cleanup(plugBack)
	return plugBack
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
