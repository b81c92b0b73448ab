// Package netacl is a list of client networks allowed to reach a listener:
// the relying parties' networks for OCSP and CRLs, which DOMAIN.md gives
// only to registered verifiers. An empty list allows everyone.
package netacl

import (
	"fmt"
	"net/netip"
	"strings"
)

// List is an immutable list of allowed networks. The zero List allows every
// address. It is safe for concurrent use.
type List struct {
	prefixes []netip.Prefix
}

// Parse reads networks in CIDR form ("10.0.0.0/8", "2001:db8::/32") or
// single addresses ("192.0.2.10"). An IPv4 network also allows the same
// addresses written as IPv4-mapped IPv6 (::ffff:a.b.c.d), as dual-stack
// listeners report them.
func Parse(entries []string) (List, error) {
	var l List
	for _, e := range entries {
		e = strings.TrimSpace(e)
		var p netip.Prefix
		var err error
		if strings.Contains(e, "/") {
			p, err = netip.ParsePrefix(e)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(e); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return List{}, fmt.Errorf("client network %q: %w", e, err)
		}
		l.prefixes = append(l.prefixes, p.Masked())
	}
	return l, nil
}

// Open reports whether the list allows every address (it is empty).
func (l List) Open() bool { return len(l.prefixes) == 0 }

// Allows reports whether a may connect.
func (l List) Allows(a netip.Addr) bool {
	if len(l.prefixes) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// AllowsRemote is Allows for a remote address "host:port" as net/http
// gives it (http.Request.RemoteAddr); one it cannot read is refused.
func (l List) AllowsRemote(remote string) bool {
	if len(l.prefixes) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && l.Allows(ap.Addr())
}
