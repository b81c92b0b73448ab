package hsm

// Stats are a PKCS #11 store's counters since it was opened and its
// sessions now, for metrics. Safe to call at any time, from any goroutine.
type Stats struct {
	// Signing calls (C_SignInit and C_Sign) made directly, and on the
	// store's signing threads (see the package documentation, Sessions and
	// concurrency): every attempt, failed ones and retries included.
	DirectSignatures, ThreadSignatures int64
	// SignatureErrors counts signatures that reached the pool and failed
	// there or in the token, after any retry.
	SignatureErrors int64
	// Reinitialisations of the module that succeeded, and attempts.
	Reinitialisations, ReinitAttempts int64
	// SessionsOpen is the sessions open on the token, SessionsInUse those
	// lent out now.
	SessionsOpen, SessionsInUse int
	// LoginRefused: the token refused the PIN while the store was
	// re-initialising, and the store has stopped trying (so as not to lock
	// the token). It stays down until an operator acts and restarts it.
	LoginRefused bool
}

// Stats returns the store's counters and session counts.
func (k *PKCS11) Stats() Stats {
	p := k.pool
	p.mu.Lock()
	inUse, idle := p.inflight, len(p.idle)
	refused := p.loginRefusedLocked()
	p.mu.Unlock()
	return Stats{
		DirectSignatures:  k.threads.direct.Load(),
		ThreadSignatures:  k.threads.threaded.Load(),
		SignatureErrors:   k.signErrors.Load(),
		Reinitialisations: p.reinits.Load(),
		ReinitAttempts:    p.attempts.Load(),
		SessionsOpen:      inUse + idle,
		SessionsInUse:     inUse,
		LoginRefused:      refused,
	}
}
