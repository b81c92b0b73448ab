package ocsp

// ResponderKeys is how many responder keys (the signing one and those it
// replaced) the Presigner holds for the issuer.
func ResponderKeys(p *Presigner, issuerID string) int {
	return len(*p.byID[issuerID].keys.Load())
}
