package ca_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// TestEventRule is DOMAIN.md's lifecycle table for register events.
func TestEventRule(t *testing.T) {
	for _, c := range []struct {
		kind   string
		types  []ca.CertType
		reason ca.Reason
	}{
		{"facts_changed", []ca.CertType{ca.Signature}, ca.AffiliationChanged},
		{"deceased", []ca.CertType{ca.Signature, ca.Authentication}, ca.CessationOfOperation},
		{"removed", []ca.CertType{ca.Signature, ca.Authentication}, ca.CessationOfOperation},
	} {
		k, err := ca.ParseEventKind(c.kind)
		if err != nil || k.String() != c.kind {
			t.Fatalf("ParseEventKind(%q) = %v, %v", c.kind, k, err)
		}
		types, reason, err := ca.EventRule(k)
		if err != nil || !slices.Equal(types, c.types) || reason != c.reason {
			t.Errorf("%s: %v %v %v, want %v %v", c.kind, types, reason, err, c.types, c.reason)
		}
	}
	if _, err := ca.ParseEventKind("moved"); err == nil {
		t.Error("unknown event kind accepted")
	}
}

// TestProxyNotBefore: the answer is accepted from 00:00 JST of the next
// day, whatever the hour of the application.
func TestProxyNotBefore(t *testing.T) {
	for _, c := range []struct{ at, want time.Time }{
		{time.Date(2026, 11, 25, 0, 0, 0, 0, ca.JST()), time.Date(2026, 11, 26, 0, 0, 0, 0, ca.JST())},
		{time.Date(2026, 11, 25, 23, 59, 59, 0, ca.JST()), time.Date(2026, 11, 26, 0, 0, 0, 0, ca.JST())},
		{time.Date(2026, 12, 31, 15, 0, 0, 0, time.UTC), time.Date(2027, 1, 2, 0, 0, 0, 0, ca.JST())}, // 2027-01-01 00:00 JST
	} {
		if got := ca.ProxyNotBefore(c.at); !got.Equal(c.want) {
			t.Errorf("ProxyNotBefore(%v) = %v, want %v", c.at, got, c.want)
		}
	}
}
