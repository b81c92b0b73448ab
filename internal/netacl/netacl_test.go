package netacl

import (
	"net/netip"
	"testing"
)

func TestList(t *testing.T) {
	l, err := Parse([]string{"10.1.0.0/16", "192.0.2.10", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3":        true,
		"10.2.0.1":        false,
		"192.0.2.10":      true,
		"192.0.2.11":      false,
		"::ffff:10.1.9.9": true, // IPv4-mapped, as a dual-stack listener reports it
		"2001:db8::1":     true,
		"2001:db9::1":     false,
		"127.0.0.1":       false,
	} {
		if got := l.Allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allows(%s) = %v, want %v", addr, got, want)
		}
	}
	for remote, want := range map[string]bool{"10.1.2.3:5555": true, "[2001:db8::1]:443": true, "10.2.0.1:80": false, "garbage": false} {
		if got := l.AllowsRemote(remote); got != want {
			t.Errorf("AllowsRemote(%s) = %v, want %v", remote, got, want)
		}
	}
	var open List
	if !open.Open() || !open.AllowsRemote("garbage") || !open.Allows(netip.MustParseAddr("203.0.113.1")) {
		t.Error("the zero List does not allow everyone")
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1:80"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
