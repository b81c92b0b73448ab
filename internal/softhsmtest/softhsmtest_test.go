package softhsmtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestNewInitialisesAPrivateToken(t *testing.T) {
	tk := New(t)
	if got := os.Getenv("SOFTHSM2_CONF"); got != tk.ConfPath {
		t.Fatalf("SOFTHSM2_CONF = %q, want %q", got, tk.ConfPath)
	}
	slots := func() string {
		out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
		if err != nil {
			t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
		}
		return string(out)
	}
	if !strings.Contains(slots(), tk.Label) {
		t.Fatalf("token %q not in --show-slots output", tk.Label)
	}
	if fi, err := os.Stat(tk.TokenPath(t)); err != nil || !fi.IsDir() {
		t.Fatalf("token directory: %v", err)
	}

	plugBack := tk.Unplug(t)
	if strings.Contains(slots(), tk.Label) {
		t.Fatalf("token %q still listed after Unplug", tk.Label)
	}
	plugBack()
	plugBack() // idempotent
	if !strings.Contains(slots(), tk.Label) {
		t.Fatalf("token %q not listed after plugging back", tk.Label)
	}

	// A second token in another test gets its own label and directory.
	other := New(t)
	if other.Label == tk.Label || other.Dir == tk.Dir {
		t.Fatalf("two tokens share a label or directory")
	}
}
