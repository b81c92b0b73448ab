package softhsmtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// Objects counts the objects of the token labelled label (tk's own, or one
// that InitToken made beside it) by class: pkcs11.CKO_PRIVATE_KEY,
// CKO_PUBLIC_KEY, CKO_CERTIFICATE. It logs in with pin, so that private
// objects count too.
//
// It loads the module once more, on a session of its own. If the code
// under test has the module initialised and logged in, it uses it as it
// is and leaves it so; otherwise it initialises the module, logs in, and
// logs out and finalises it again after.
func (tk *Token) Objects(t testing.TB, label, pin string) map[uint]int {
	t.Helper()
	mod := pkcs11.New(tk.Module)
	if mod == nil {
		t.Fatalf("loading %s", tk.Module)
	}
	defer mod.Destroy()
	err := mod.Initialize()
	if err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatalf("C_Initialize: %v", err)
	}
	if err == nil {
		defer mod.Finalize()
	}
	slot, err := labelledSlot(mod, label)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatalf("C_OpenSession: %v", err)
	}
	defer mod.CloseSession(sh)
	err = mod.Login(sh, pkcs11.CKU_USER, pin)
	if err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		t.Fatalf("C_Login on token %q: %v", label, err)
	}
	if err == nil {
		defer mod.Logout(sh)
	}
	if err := mod.FindObjectsInit(sh, nil); err != nil {
		t.Fatalf("C_FindObjectsInit: %v", err)
	}
	defer mod.FindObjectsFinal(sh)
	counts := map[uint]int{}
	for {
		hs, _, err := mod.FindObjects(sh, 64)
		if err != nil {
			t.Fatalf("C_FindObjects: %v", err)
		}
		if len(hs) == 0 {
			return counts
		}
		for _, h := range hs {
			attrs, err := mod.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil)})
			if err != nil {
				t.Fatalf("C_GetAttributeValue(CKA_CLASS): %v", err)
			}
			counts[classOf(attrs[0].Value)]++
		}
	}
}

// classOf reads a CK_OBJECT_CLASS as the module wrote it (a CK_ULONG in
// the host's byte order), by comparing it with miekg's encoding of each
// class a token holds.
func classOf(v []byte) uint {
	for _, c := range []uint{pkcs11.CKO_DATA, pkcs11.CKO_CERTIFICATE, pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_SECRET_KEY} {
		if string(pkcs11.NewAttribute(pkcs11.CKA_CLASS, c).Value) == string(v) {
			return c
		}
	}
	return ^uint(0)
}

// labelledSlot finds the slot of the token labelled label.
func labelledSlot(mod *pkcs11.Ctx, label string) (uint, error) {
	slots, err := mod.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		if ti, err := mod.GetTokenInfo(s); err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("token %q not found", label)
}
