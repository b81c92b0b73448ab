// Signing threads: C threads that make the PKCS #11 signing calls, so that
// no goroutine waits inside cgo while the token signs. See signthreads.go.

#ifndef JPKICA_SIGNTHREADS_H
#define JPKICA_SIGNTHREADS_H

#include <pthread.h>

// Sizes of a job's buffers. The input is a DigestInfo or a digest (at most
// 83 bytes for SHA-512); the output an RSA signature of up to 8192 bits or
// an ECDSA r||s; the parameter a CK_RSA_PKCS_PSS_PARAMS.
#define JP_MAX_PARAM 64
#define JP_MAX_IN 512
#define JP_MAX_OUT 1024

typedef struct jp_module jp_module;

// jp_slot is one signing thread and its one job. The Go side owns the job
// fields between taking the slot and writing reqfd; the thread owns them
// from reading reqread until it writes donewrite. Pipes, not eventfds, so
// that it builds on any Unix.
typedef struct jp_slot {
	jp_module *mod;
	int reqfd;    // pipe's write end: the Go side writes a byte per job
	int reqread;  // its read end, blocking: the thread reads the job request
	int donefd;   // pipe's read end, non-blocking: the Go side waits for the result
	int donewrite; // its write end: the thread writes a byte when done
	int stop;   // set (then reqfd written) to end the thread
	pthread_t thread;

	unsigned long session;
	unsigned long key;
	unsigned long mechanism;
	unsigned long param_len;
	unsigned long in_len;
	unsigned long out_len;
	unsigned long rv; // CKR_ of C_SignInit if it failed, else of C_Sign
	int failed_init;  // rv is C_SignInit's
	unsigned char param[JP_MAX_PARAM];
	unsigned char in[JP_MAX_IN];
	unsigned char out[JP_MAX_OUT];
} jp_slot;

// jp_module_open loads the PKCS #11 library at path (a second reference
// to the library the module was loaded from) and reads its function list.
// On failure it returns NULL and a message in err (static or from dlerror;
// not to be freed).
jp_module *jp_module_open(const char *path, const char **err);
void jp_module_close(jp_module *m);

// jp_slot_start makes the pipes and starts the thread; NULL with errno
// set on failure.
jp_slot *jp_slot_start(jp_module *m);
// jp_slot_run does the slot's job on the calling thread: C_SignInit, then
// C_Sign into out.
void jp_slot_run(jp_slot *s);
// jp_slot_stop ends the thread (which must be idle), joins it, closes
// every pipe end but donefd (the Go side's) and frees the slot.
void jp_slot_stop(jp_slot *s);

#endif
