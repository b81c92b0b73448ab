package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/ca"
)

// TestRevokeUnknownSerial: revoking a serial the store does not hold says
// there is no such certificate, and a serial that is not one says so with
// the argument as typed; neither shows SQL.
func TestRevokeUnknownSerial(t *testing.T) {
	cfg := writeConfig(t).path
	for _, tt := range []struct {
		serial string
		want   error
		says   string
	}{
		{"0123ABCD", ca.ErrNotFound, "no such certificate 0123abcd"},
		{"UNKNOWNSERIAL", ca.ErrInvalid, `serial "UNKNOWNSERIAL"`},
	} {
		t.Run(tt.serial, func(t *testing.T) {
			err := run(context.Background(), []string{"revoke", "--config", cfg, tt.serial, "--reason", "keyCompromise"}, io.Discard, quiet())
			if !errors.Is(err, tt.want) {
				t.Fatalf("revoke %s: %v, want %v", tt.serial, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("revoke %s prints %q, which does not say %q", tt.serial, err, tt.says)
			}
			if strings.Contains(err.Error(), sql.ErrNoRows.Error()) || strings.Contains(err.Error(), "sql:") {
				t.Errorf("revoke %s prints SQL: %q", tt.serial, err)
			}
		})
	}
}
