# tsan.mk: `make tsan` (included by the Makefile). The core and the threads
# host (examples/host/threads.c) built with ThreadSanitizer into build-tsan,
# then the host run: 8 threads, each with its own lua_State, saving and
# loading every format at once. Any report fails the target: halt_on_error
# stops at the first, exitcode=66 makes it the exit status.
# examples/host/tsan.supp holds suppressions for uninstrumented third-party
# libraries only (each justified there), never for ltorch's code.
# OpenBLAS runs with its own worker threads (the host's 160x96x128 matmuls
# are past its threading threshold): they are uninstrumented, but gave no
# false reports, so OPENBLAS_NUM_THREADS is left alone. Should they ever,
# run with OPENBLAS_NUM_THREADS=1 rather than suppress.

# gcc: clang 14 lacks glibc's CMPLX. LT_VECTORIZE's target_clones become a
# no-op attribute here: their ifunc resolvers run while ld.so relocates
# core.so, before the TSan runtime has mapped its shadow memory, and the
# instrumented resolver crashes there (the clones are chosen once, at load,
# before any thread: nothing of them can race)
TSAN_CC ?= gcc
TSAN_ITERS ?= 6
TSAN_FLAGS = -O1 -g -fsanitize=thread -fno-omit-frame-pointer '-Dtarget_clones(...)=unused'
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/examples/host/tsan.supp" \
  LTORCH_ROOT=$(CURDIR)

tsan:
	$(MAKE) CC=$(TSAN_CC) BUILD=build-tsan CFLAGS="$(TSAN_FLAGS)" LDFLAGS="-fsanitize=thread" build-tsan/threads
	$(TSAN_ENV) build-tsan/threads -n $(TSAN_ITERS)
