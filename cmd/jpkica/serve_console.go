package main

import (
	"time"

	"github.com/jpkica/jpkica/console"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/store"
)

// newConsole builds the administrators' console, which the ca role serves
// at /admin/ on the /v1 listener to the admin role. It shows the CRLs and
// the OCSP pre-signer of the roles that run in this process (o is nil
// without the ocsp role; withCRLs: the crl role runs, and its directory is
// read), and the same readiness checks as /readyz.
func newConsole(d *deployment, o *ocspRole, withCRLs bool, clock func() time.Time) (*console.Console, error) {
	names := make(map[string]string, len(d.cfg.Municipalities))
	for code, m := range d.cfg.Municipalities {
		names[code] = m.Prefecture + " " + m.Name
	}
	deps := console.Deps{
		Registry: d.store, Audit: d.store, Records: d.store, Verifier: d.store,
		Ready: map[string]console.Pinger{"database": d.store, "keys": d.keys},
		Clock: clock, Logger: d.logger,
	}
	if o != nil {
		deps.OCSP = o.presigner
	}
	if d.store.Dialect() == store.PostgreSQL {
		deps.Lag = d.store
	}
	if withCRLs {
		dir, err := crl.OpenDir(d.cfg.Path(d.cfg.CRL.Dir))
		if err != nil {
			return nil, err
		}
		deps.CRLs = dir
	}
	return console.New(console.Config{
		ResponderRenewBefore: d.cfg.Issuance.ResponderRenewBefore,
		Municipalities:       names,
	}, deps)
}
