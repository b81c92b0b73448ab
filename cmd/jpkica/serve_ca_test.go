package main

import (
	"testing"

	"github.com/jpkica/jpkica/internal/config"
)

// TestProfileConfig: the config's profile switches reach ca.ProfileConfig
// the right way round: the defaults are the real certificate's form (the
// zero value), and each false sets its extension to the shorter form.
func TestProfileConfig(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if p := profileConfig(cfg); p.OmitIssuerAltName || p.OmitCRLDirectoryName || p.AKIKeyIDOnly {
		t.Errorf("defaults: %+v, want the real certificate's form", p)
	}
	cfg.Profile = config.Profile{}
	if p := profileConfig(cfg); !p.OmitIssuerAltName || !p.OmitCRLDirectoryName || !p.AKIKeyIDOnly {
		t.Errorf("all false: %+v, want the shorter forms", p)
	}
}
