package hsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// poolState is where the module is in its life.
type poolState int

const (
	stateUp         poolState = iota // initialised, token found, logged in
	stateRecovering                  // a re-initialisation attempt is due or running
	stateDown                        // last attempt failed; waiting out the backoff
	stateClosed                      // Close was called
)

// pool owns the loaded module and bounds the sessions open on the token.
//
// Invariant: the module is only finalised or re-initialised (by the
// recovery goroutine or Close) while no lease is out (inflight == 0), so a
// lease's session handle and the object handles cached for its generation
// stay meaningful for as long as the lease is held.
type pool struct {
	mod        *pkcs11.Ctx
	tokenLabel string
	pin        string
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration

	permits chan struct{} // one per session that may be leased at once
	stop    chan struct{} // closed by close
	wg      sync.WaitGroup

	loginMu sync.Mutex // serialises the login check on new sessions

	mu         sync.Mutex
	state      poolState
	gen        uint64 // bumped on every re-initialisation
	slot       uint
	idle       []pkcs11.SessionHandle
	inflight   int
	changed    chan struct{} // closed and replaced when state changes or inflight drains
	lastErr    error         // why the pool is not up
	recovering bool          // the recovery goroutine is running
	// okSinceReinit: an operation succeeded since the last
	// (re-)initialisation. If not, the module is flapping, and the next
	// recovery backs off before its first attempt instead of retrying at once.
	okSinceReinit bool
	backoff       time.Duration // next wait between attempts
	retryAt       time.Time     // while down between attempts: when the next one starts

	reinits  atomic.Int64 // successful re-initialisations, for tests and metrics
	attempts atomic.Int64 // re-initialisation attempts
}

// lease is one borrowed, logged-in session.
type lease struct {
	sh   pkcs11.SessionHandle
	gen  uint64
	slot uint
}

const sessionFlags = pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION

// connect initialises the module (if finalize, after finalising it), finds
// the token by label and opens one logged-in session.
func (p *pool) connect(finalize bool) (uint, pkcs11.SessionHandle, error) {
	if finalize {
		// The module may be half dead; whatever Finalize says, we go on.
		_ = p.mod.Finalize()
	}
	if err := p.mod.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return 0, 0, fmt.Errorf("initializing module: %w", err)
	}
	slots, err := p.mod.GetSlotList(true)
	if err != nil {
		return 0, 0, fmt.Errorf("listing slots: %w", err)
	}
	found := false
	var slot uint
	for _, s := range slots {
		ti, err := p.mod.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if ti.Label == p.tokenLabel {
			slot, found = s, true
			break
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("finding token %q: %w", p.tokenLabel, errTokenNotFound)
	}
	sh, err := p.openSession(slot)
	if err != nil {
		return 0, 0, err
	}
	return slot, sh, nil
}

// openSession opens a session on slot and logs the user in if the token
// does not already consider this application logged in. Login state in
// PKCS #11 belongs to the application and token, not the session, so in
// the steady state only the first session ever logs in.
func (p *pool) openSession(slot uint) (pkcs11.SessionHandle, error) {
	sh, err := p.mod.OpenSession(slot, sessionFlags)
	if err != nil {
		return 0, fmt.Errorf("opening session: %w", err)
	}
	if err := p.login(sh); err != nil {
		_ = p.mod.CloseSession(sh)
		return 0, err
	}
	return sh, nil
}

func (p *pool) login(sh pkcs11.SessionHandle) error {
	p.loginMu.Lock()
	defer p.loginMu.Unlock()
	info, err := p.mod.GetSessionInfo(sh)
	if err != nil {
		return fmt.Errorf("reading session state: %w", err)
	}
	if info.State == pkcs11.CKS_RW_USER_FUNCTIONS || info.State == pkcs11.CKS_RO_USER_FUNCTIONS {
		return nil
	}
	// The PIN goes to the module and nowhere else: errors from Login are
	// return codes and never contain it.
	err = p.mod.Login(sh, pkcs11.CKU_USER, p.pin)
	switch {
	case err == nil, isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		return nil
	case classify(err) == failLogin:
		return fmt.Errorf("logging in to token %q: %w: %w", p.tokenLabel, ErrLogin, err)
	default:
		return fmt.Errorf("logging in to token %q: %w", p.tokenLabel, err)
	}
}

// loginRefusedLocked reports whether the pool is down for good because the
// token refused the PIN while recovering. p.mu must be held.
func (p *pool) loginRefusedLocked() bool {
	return p.state == stateDown && errors.Is(p.lastErr, ErrLogin)
}

// broadcastLocked wakes everyone waiting on p.changed. p.mu must be held.
func (p *pool) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// unavailable wraps the reason the pool cannot serve with ErrUnavailable.
func unavailable(reason error) error {
	if reason == nil || errors.Is(reason, ErrUnavailable) {
		if reason == nil {
			return ErrUnavailable
		}
		return reason
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, reason)
}

// acquire borrows a logged-in session. It waits for a free session and for a
// re-initialisation in progress, but no longer than ctx allows; while the
// module is down between attempts it fails at once. Every error wraps
// ErrUnavailable.
func (p *pool) acquire(ctx context.Context, timeout time.Duration) (*lease, error) {
	w := waiter{ctx: ctx, timeout: timeout}
	defer w.done()
	l, _, err := p.acquireClass(&w)
	return l, err
}

// waiter bounds the waits of one operation (including its retry): by the
// context's deadline, or by timeout from the first wait if the context has
// none. The timer is only made if the operation has to wait, which keeps
// the fast path (a session is free) cheap.
type waiter struct {
	ctx     context.Context
	timeout time.Duration
	cancel  context.CancelFunc
}

func (w *waiter) context() context.Context {
	if w.cancel == nil {
		if _, ok := w.ctx.Deadline(); ok {
			w.cancel = func() {}
		} else {
			w.ctx, w.cancel = context.WithTimeout(w.ctx, w.timeout)
		}
	}
	return w.ctx
}

func (w *waiter) done() {
	if w.cancel != nil {
		w.cancel()
	}
}

// acquireClass is acquire that also says, when opening a new session
// failed, how it failed, so the caller can try again once.
func (p *pool) acquireClass(w *waiter) (*lease, failure, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, failNone, fmt.Errorf("waiting for a session: %w", unavailable(err))
	}
	select {
	case p.permits <- struct{}{}:
	default:
		ctx := w.context()
		select {
		case p.permits <- struct{}{}:
		case <-ctx.Done():
			return nil, failNone, fmt.Errorf("waiting for a session: %w", unavailable(ctx.Err()))
		case <-p.stop:
			return nil, failNone, fmt.Errorf("waiting for a session: %w", unavailable(errClosed))
		}
	}
	for {
		p.mu.Lock()
		switch p.state {
		case stateUp:
			l := &lease{gen: p.gen, slot: p.slot}
			p.inflight++
			if n := len(p.idle); n > 0 {
				l.sh = p.idle[n-1]
				p.idle = p.idle[:n-1]
				p.mu.Unlock()
				return l, failNone, nil
			}
			p.mu.Unlock()
			sh, err := p.openSession(l.slot)
			if err != nil {
				p.releaseFailed(l, err)
				return nil, classify(err), fmt.Errorf("acquiring session: %w", unavailable(err))
			}
			l.sh = sh
			return l, failNone, nil
		case stateRecovering:
			ch := p.changed
			p.mu.Unlock()
			ctx := w.context()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				<-p.permits
				return nil, failNone, fmt.Errorf("waiting for module re-initialisation: %w", unavailable(ctx.Err()))
			}
		default: // stateDown, stateClosed
			reason, retryAt := p.lastErr, p.retryAt
			if p.state == stateClosed {
				retryAt = time.Time{}
			}
			p.mu.Unlock()
			<-p.permits
			err := fmt.Errorf("acquiring session: %w", unavailable(reason))
			if !retryAt.IsZero() {
				err = &downError{err: err, retryIn: max(time.Until(retryAt), 0)}
			}
			return nil, failNone, err
		}
	}
}

var errClosed = errors.New("key store closed")

// downError is an error of the pool while it is down between
// re-initialisation attempts: it knows how long until the next one.
type downError struct {
	err     error
	retryIn time.Duration
}

func (e *downError) Error() string { return e.err.Error() }
func (e *downError) Unwrap() error { return e.err }

// RetryAfter reports how long until the key store next tries to come back,
// for an error that a signer or Ping returned while it was down between
// re-initialisation attempts (measured when the error was made). For any
// other error ok is false: the store does not know better than the caller.
func RetryAfter(err error) (d time.Duration, ok bool) {
	var de *downError
	if !errors.As(err, &de) {
		return 0, false
	}
	return de.retryIn, true
}

// release returns a lease. opErr is the error of the operation done with
// it; release decides from it whether the session goes back to the pool, is
// closed, or the whole module needs re-initialising. It returns the failure
// class so the caller can decide to retry.
func (p *pool) release(l *lease, opErr error) failure {
	class := classify(opErr)
	if class == failSession {
		// Still counted in flight, so the module cannot be finalised under us.
		_ = p.mod.CloseSession(l.sh)
	}
	p.mu.Lock()
	p.inflight--
	switch {
	case p.state != stateUp:
		// The module will be finalised; the session dies with it.
	case class == failNone:
		p.idle = append(p.idle, l.sh)
		if opErr == nil {
			p.okSinceReinit = true
		}
	case class == failModule || class == failLogin:
		p.breakLocked(opErr)
	}
	if p.inflight == 0 && p.state != stateUp {
		p.broadcastLocked()
	}
	p.mu.Unlock()
	<-p.permits
	return class
}

// releaseFailed returns a lease whose session could not be opened.
func (p *pool) releaseFailed(l *lease, err error) {
	p.mu.Lock()
	p.inflight--
	if c := classify(err); p.state == stateUp && (c == failModule || c == failLogin) {
		p.breakLocked(err)
	}
	if p.inflight == 0 && p.state != stateUp {
		p.broadcastLocked()
	}
	p.mu.Unlock()
	<-p.permits
}

// breakLocked marks the module broken and starts the recovery goroutine
// unless it is already running. p.mu must be held.
func (p *pool) breakLocked(cause error) {
	if p.state != stateUp {
		return
	}
	p.logger.Warn("hsm: module failure, re-initialising", "token", p.tokenLabel, "err", cause)
	p.state = stateRecovering
	p.lastErr = cause
	p.idle = nil
	p.broadcastLocked()
	if !p.recovering {
		p.recovering = true
		p.wg.Add(1)
		go p.recover()
	}
}

// recover re-initialises the module until it works, the PIN is refused, or
// the pool is closed. Only one runs at a time (p.recovering). The first
// attempt is immediate if the module had worked since it was last
// initialised; otherwise (it is flapping) and between failed attempts it
// waits, doubling the wait from minBackoff up to maxBackoff.
func (p *pool) recover() {
	defer p.wg.Done()
	p.mu.Lock()
	if p.okSinceReinit {
		p.backoff = p.minBackoff
	} else if !p.sleepLocked() {
		return
	}
	p.okSinceReinit = false
	p.mu.Unlock()

	for attempt := 1; ; attempt++ {
		p.mu.Lock()
		for p.inflight > 0 && p.state != stateClosed {
			ch := p.changed
			p.mu.Unlock()
			<-ch
			p.mu.Lock()
		}
		if p.state == stateClosed {
			p.recovering = false
			p.mu.Unlock()
			return
		}
		p.gen++
		p.idle = nil
		p.mu.Unlock()

		p.attempts.Add(1)
		slot, sh, err := p.connect(true)

		p.mu.Lock()
		if p.state == stateClosed {
			p.recovering = false
			p.mu.Unlock()
			return
		}
		if err == nil {
			p.state = stateUp
			p.slot = slot
			p.idle = append(p.idle, sh)
			p.lastErr = nil
			p.recovering = false
			p.reinits.Add(1)
			p.broadcastLocked()
			p.mu.Unlock()
			p.logger.Info("hsm: module re-initialised", "token", p.tokenLabel, "attempt", attempt)
			return
		}
		p.lastErr = err
		if classify(err) == failLogin {
			// Trying again could lock the PIN. Stay down until restarted.
			p.state = stateDown
			p.broadcastLocked()
			p.recovering = false
			p.mu.Unlock()
			p.logger.Error("hsm: token refused the PIN, giving up re-initialisation", "token", p.tokenLabel, "err", err)
			return
		}
		p.logger.Warn("hsm: re-initialisation failed", "token", p.tokenLabel, "attempt", attempt, "retry_in", p.backoff, "err", err)
		if !p.sleepLocked() {
			return
		}
		p.mu.Unlock()
	}
}

// sleepLocked marks the pool down, so callers fail at once instead of
// waiting, sleeps for p.backoff, doubles it, and marks the pool recovering
// again. p.mu must be held; it is held again on return if sleepLocked
// returns true. It returns false, with p.mu released and p.recovering
// cleared, if the pool was closed meanwhile.
func (p *pool) sleepLocked() bool {
	p.state = stateDown
	p.broadcastLocked()
	wait := p.backoff
	p.backoff = min(2*p.backoff, p.maxBackoff)
	p.retryAt = time.Now().Add(wait)
	p.mu.Unlock()
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-p.stop:
		t.Stop()
	}
	p.mu.Lock()
	if p.state == stateClosed {
		p.recovering = false
		p.mu.Unlock()
		return false
	}
	p.state = stateRecovering
	p.retryAt = time.Time{}
	p.broadcastLocked()
	return true
}

// close stops recovery, waits for leases to come back, and finalises and
// unloads the module.
func (p *pool) close() error {
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		return nil
	}
	p.state = stateClosed
	p.lastErr = errClosed
	close(p.stop)
	p.broadcastLocked()
	for p.inflight > 0 {
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	p.idle = nil
	p.mu.Unlock()
	p.wg.Wait()
	err := p.mod.Finalize()
	p.mod.Destroy()
	if err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return fmt.Errorf("finalizing module: %w", err)
	}
	return nil
}
