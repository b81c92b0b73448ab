package ca

// ClaimWaiters is how many requests wait for another with the same
// idempotency key: for tests that must know a retry is waiting.
func (a *Authority) ClaimWaiters() int64 { return a.waiting.Load() }
