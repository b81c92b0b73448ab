package hsm

// #cgo LDFLAGS: -ldl -lpthread
// #include <stdlib.h>
// #include "signthreads.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// signThreads makes the C_SignInit and C_Sign calls, on the calling
// goroutine's thread or on C threads of its own, one per session the pool
// may lease.
//
// A cgo call keeps its goroutine's P (the right to run Go code) for as long
// as the call runs, until the runtime's monitor thread notices and hands
// the P on; while the token signs, Go code that is ready to run waits. On
// a slot's thread the goroutine instead writes the job into the slot's C
// memory, wakes the thread through a pipe (one write(2)), and parks on a
// second pipe in the network poller, holding no P, until the thread has
// signed.
//
// That costs two thread wake-ups per signature, which an idle machine
// pays in full (more than an ECDSA signature takes in SoftHSM2), and a
// busy one hardly at all. So a signature goes to a thread only while the
// scheduler is saturated (see saturated), and is made by a direct cgo call
// otherwise. docs/benchmarks.md (issuance through the /v1 API, session 4)
// has the measurements behind both halves of that choice.
//
// The threads call the module's own function list, read through a second
// dlopen(3) of the library the module was loaded from: the same library
// instance, already initialised, whose sessions the pool opens. That
// reference also keeps the library loaded until stop.
type signThreads struct {
	mod  *C.jp_module
	free chan *signSlot
	all  []*signSlot

	// offload says whether the next signature goes to a thread;
	// saturated, but tests pin it.
	offload func() bool
	// direct and threaded count the signing calls made each way.
	direct, threaded atomic.Int64
}

// signSlot is one thread and the pipe ends that start a job and say it is
// done.
type signSlot struct {
	c    *C.jp_slot
	done *os.File // c.donefd, in the network poller
}

// startSignThreads loads the module again and starts n threads.
func startSignThreads(module string, n int) (*signThreads, error) {
	path := C.CString(module)
	defer C.free(unsafe.Pointer(path))
	var cerr *C.char
	mod := C.jp_module_open(path, &cerr)
	if mod == nil {
		return nil, fmt.Errorf("signing threads: loading %s: %w: %s", module, ErrUnavailable, C.GoString(cerr))
	}
	t := &signThreads{mod: mod, free: make(chan *signSlot, n), offload: saturated}
	for range n {
		c, err := C.jp_slot_start(mod)
		if c == nil {
			t.stop()
			return nil, fmt.Errorf("signing threads: starting a thread: %w", err)
		}
		s := &signSlot{c: c, done: os.NewFile(uintptr(c.donefd), "pkcs11-sign-done")}
		t.all = append(t.all, s)
		t.free <- s
	}
	return t, nil
}

// stop ends the threads and drops the library reference. No signature may
// be in progress.
func (t *signThreads) stop() {
	for _, s := range t.all {
		C.jp_slot_stop(s.c)
		_ = s.done.Close()
	}
	t.all = nil
	C.jp_module_close(t.mod)
}

// sign runs C_SignInit(sh, mech, key) and C_Sign(sh, input), on a slot's
// thread if offload says so, and waits for them however long the token
// takes: the session is in use until the calls return. A PKCS #11 failure
// comes back as a pkcs11.Error, wrapped with the call's name.
func (t *signThreads) sign(sh pkcs11.SessionHandle, key pkcs11.ObjectHandle, mech *pkcs11.Mechanism, input []byte) ([]byte, error) {
	if len(mech.Parameter) > C.JP_MAX_PARAM || len(input) > C.JP_MAX_IN {
		return nil, fmt.Errorf("%w: %d-byte mechanism parameter, %d-byte input", ErrInvalidRequest, len(mech.Parameter), len(input))
	}
	s := <-t.free
	c := s.c
	c.session = C.ulong(sh)
	c.key = C.ulong(key)
	c.mechanism = C.ulong(mech.Mechanism)
	c.param_len = C.ulong(copy(unsafe.Slice((*byte)(&c.param[0]), C.JP_MAX_PARAM), mech.Parameter))
	c.in_len = C.ulong(copy(unsafe.Slice((*byte)(&c.in[0]), C.JP_MAX_IN), input))
	if t.offload() {
		t.threaded.Add(1)
		if err := s.wake(); err != nil {
			t.free <- s
			return nil, err
		}
		if err := s.wait(); err != nil {
			// The thread may still be signing, so the slot is not given
			// back. Unreachable short of a broken pipe; later signatures
			// wait for the other slots.
			return nil, err
		}
	} else {
		t.direct.Add(1)
		C.jp_slot_run(c)
	}
	defer func() { t.free <- s }()
	switch {
	case c.rv != 0 && c.failed_init != 0:
		return nil, fmt.Errorf("C_SignInit: %w", pkcs11.Error(c.rv))
	case c.rv != 0:
		return nil, fmt.Errorf("C_Sign: %w", pkcs11.Error(c.rv))
	case c.out_len > C.JP_MAX_OUT:
		return nil, fmt.Errorf("C_Sign: %w: %d-byte signature", ErrUnsupported, c.out_len)
	}
	return C.GoBytes(unsafe.Pointer(&c.out[0]), C.int(c.out_len)), nil
}

// wake writes a byte to the slot's request pipe.
func (s *signSlot) wake() error {
	one := []byte{1}
	for {
		_, err := syscall.Write(int(s.c.reqfd), one)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("signing threads: waking a thread: %w", err)
		}
		return nil
	}
}

// wait reads the byte from the slot's done pipe through the network poller.
func (s *signSlot) wait() error {
	var v [1]byte
	if _, err := s.done.Read(v[:]); err != nil {
		return fmt.Errorf("signing threads: waiting for a thread: %w", err)
	}
	return nil
}

// saturated reports whether every P is running Go code or goroutines are
// waiting for one (one runtime/metrics read, cheap next to a signature):
// then a PKCS #11 call made from this goroutine would keep a P from work
// that is ready. A runtime without these metrics counts as saturated.
func saturated() bool {
	s := [...]metrics.Sample{
		{Name: "/sched/goroutines/runnable:goroutines"},
		{Name: "/sched/goroutines/running:goroutines"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	metrics.Read(s[:])
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			return true
		}
	}
	return s[0].Value.Uint64() > 0 || s[1].Value.Uint64() >= s[2].Value.Uint64()
}
