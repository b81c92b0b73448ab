// Signing threads; see signthreads.h and signthreads.go.

#include "signthreads.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

// The PKCS #11 types this file needs, declared by layout (PKCS #11 v2.40
// section 3, on Unix: no struct packing, CK_ULONG is unsigned long).
typedef unsigned long ck_ulong;
typedef struct {
	ck_ulong mechanism;
	void *parameter;
	ck_ulong parameter_len;
} ck_mechanism;
typedef ck_ulong (*ck_sign_init)(ck_ulong session, ck_mechanism *mech, ck_ulong key);
typedef ck_ulong (*ck_sign)(ck_ulong session, unsigned char *data, ck_ulong data_len,
                            unsigned char *sig, ck_ulong *sig_len);

// The head of CK_FUNCTION_LIST: CK_VERSION (two bytes), then the function
// pointers in the order of the standard's function list, C_Initialize
// first. C_SignInit is the 43rd and C_Sign the 44th.
enum { JP_SIGN_INIT = 42, JP_SIGN = 43 };
typedef struct {
	unsigned char major, minor;
	void *fn[JP_SIGN + 1];
} ck_function_list_head;
typedef ck_ulong (*ck_get_function_list)(ck_function_list_head **list);

struct jp_module {
	void *lib;
	ck_sign_init sign_init;
	ck_sign sign;
};

jp_module *jp_module_open(const char *path, const char **err) {
	void *lib = dlopen(path, RTLD_LAZY);
	if (lib == NULL) {
		*err = dlerror();
		return NULL;
	}
	ck_get_function_list get = (ck_get_function_list)dlsym(lib, "C_GetFunctionList");
	ck_function_list_head *list = NULL;
	if (get == NULL || get(&list) != 0 || list == NULL) {
		*err = "C_GetFunctionList failed";
		dlclose(lib);
		return NULL;
	}
	if (list->major < 2) {
		*err = "module's Cryptoki version is older than 2";
		dlclose(lib);
		return NULL;
	}
	// A module that also exports the functions by name must agree with its
	// table; this catches a wrong layout above.
	void *si = dlsym(lib, "C_SignInit"), *s = dlsym(lib, "C_Sign");
	if ((si != NULL && si != list->fn[JP_SIGN_INIT]) || (s != NULL && s != list->fn[JP_SIGN])) {
		*err = "function list does not match the module's C_SignInit and C_Sign";
		dlclose(lib);
		return NULL;
	}
	jp_module *m = calloc(1, sizeof *m);
	if (m == NULL) {
		*err = "out of memory";
		dlclose(lib);
		return NULL;
	}
	m->lib = lib;
	m->sign_init = (ck_sign_init)list->fn[JP_SIGN_INIT];
	m->sign = (ck_sign)list->fn[JP_SIGN];
	return m;
}

void jp_module_close(jp_module *m) {
	dlclose(m->lib);
	free(m);
}

void jp_slot_run(jp_slot *s) {
	ck_mechanism mech = {s->mechanism, s->param_len ? s->param : NULL, s->param_len};
	s->failed_init = 0;
	s->rv = s->mod->sign_init(s->session, &mech, s->key);
	if (s->rv != 0) {
		s->failed_init = 1;
		return;
	}
	ck_ulong n = sizeof s->out;
	s->rv = s->mod->sign(s->session, s->in, s->in_len, s->out, &n);
	s->out_len = n;
}

// jp_run is a slot's thread: wait for a request, sign, report.
static void *jp_run(void *arg) {
	jp_slot *s = arg;
	char b;
	for (;;) {
		ssize_t n = read(s->reqread, &b, 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n != 1 || __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
			break; // stop, or the write end closed (cannot happen before stop)
		}
		jp_slot_run(s);
		b = 1;
		while (write(s->donewrite, &b, 1) != 1 && errno == EINTR) {
		}
	}
	return NULL;
}

// jp_pipe makes a pipe whose ends are closed on exec; nonblocking_read
// makes the read end non-blocking as well.
static int jp_pipe(int fds[2], int nonblocking_read) {
	if (pipe(fds) != 0) {
		return -1;
	}
	if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0 ||
	    (nonblocking_read && fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK) != 0)) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		errno = e;
		return -1;
	}
	return 0;
}

jp_slot *jp_slot_start(jp_module *m) {
	jp_slot *s = calloc(1, sizeof *s);
	if (s == NULL) {
		return NULL;
	}
	s->mod = m;
	int req[2], done[2];
	if (jp_pipe(req, 0) != 0) {
		free(s);
		return NULL;
	}
	if (jp_pipe(done, 1) != 0) {
		int e = errno;
		close(req[0]);
		close(req[1]);
		free(s);
		errno = e;
		return NULL;
	}
	s->reqread = req[0];
	s->reqfd = req[1];
	s->donefd = done[0];
	s->donewrite = done[1];
	int e = pthread_create(&s->thread, NULL, jp_run, s);
	if (e != 0) {
		close(req[0]);
		close(req[1]);
		close(done[0]);
		close(done[1]);
		free(s);
		errno = e;
		return NULL;
	}
	return s;
}

void jp_slot_stop(jp_slot *s) {
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	char b = 1;
	while (write(s->reqfd, &b, 1) != 1 && errno == EINTR) {
	}
	pthread_join(s->thread, NULL);
	close(s->reqfd);
	close(s->reqread);
	close(s->donewrite);
	// donefd belongs to the Go side's os.File, which closes it.
	free(s);
}
