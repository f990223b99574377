/*
** pool.c: a small fixed thread pool for the kernels that stream big
** contiguous tensors (sums, max/min, elementwise arithmetic, comparisons,
** casts): one core's load and store bandwidth is a fraction of the
** machine's. lt_parallel(n, fn, ctx) runs fn(ctx, i) for every i in
** [0, n), the caller's thread taking items too, and returns when all are
** done. The workers (the online CPUs less one, at most 7, or
** LTORCH_NUM_THREADS - 1) start with the first call. One job runs at a
** time: a call made while another runs (another lua_State's thread)
** runs its items itself, so nothing waits for the pool or nests in it.
** Items are taken from an atomic counter; a kernel that combines results
** gives each item its own slot and combines them in item order, so a
** result never depends on how many threads ran.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "lt.h"

#define MAX_WORKERS 7

static struct {
  pthread_mutex_t mu;              /* the job fields, gen, busy_workers */
  pthread_cond_t go, done;
  pthread_mutex_t run;             /* held by the one caller whose job runs */
  int started, nworkers;
  unsigned long gen;               /* a new job for the workers */
  void (*fn)(void *, int64_t);
  void *ctx;
  int64_t n;
  atomic_llong next;               /* the next item to take */
  int busy;                        /* workers still in the job */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, NULL, 0, 0, 0};

static int atfork_set;             /* once per process image, under P.mu */

static void take_items(void (*fn)(void *, int64_t), void *ctx, int64_t n) {
  for (;;) {
    int64_t i = atomic_fetch_add(&P.next, 1);
    if (i >= n) return;
    fn(ctx, i);
  }
}

static void *worker(void *arg) {
  (void)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&P.mu);
  for (;;) {
    while (P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
    seen = P.gen;
    void (*fn)(void *, int64_t) = P.fn;
    void *ctx = P.ctx;
    int64_t n = P.n;
    pthread_mutex_unlock(&P.mu);
    take_items(fn, ctx, n);
    pthread_mutex_lock(&P.mu);
    if (--P.busy == 0) pthread_cond_signal(&P.done);
  }
  return NULL;
}

static int want_workers(void) {
  const char *e = getenv("LTORCH_NUM_THREADS");
  long n = e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  n -= 1;
  return n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

/* a forked child has none of the parent's threads: it starts its own */
static void after_fork(void) {
  pthread_mutex_init(&P.mu, NULL);
  pthread_mutex_init(&P.run, NULL);
  pthread_cond_init(&P.go, NULL);
  pthread_cond_init(&P.done, NULL);
  P.started = 0;
  P.nworkers = 0;
  P.busy = 0;
}

/* under P.mu */
static void start(void) {
  if (!atfork_set) { pthread_atfork(NULL, NULL, after_fork); atfork_set = 1; }
  int want = want_workers();
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 256 << 10);
  for (int i = 0; i < want; i++) {
    pthread_t t;
    if (pthread_create(&t, &a, worker, NULL) != 0) break;   /* fewer threads still work */
    P.nworkers++;
  }
  pthread_attr_destroy(&a);
  P.started = 1;
}

int lt_pool_threads(void) {
  pthread_mutex_lock(&P.mu);
  if (!P.started) start();
  int n = P.nworkers + 1;
  pthread_mutex_unlock(&P.mu);
  return n;
}

void lt_parallel(int64_t n, void (*fn)(void *, int64_t), void *ctx) {
  if (n <= 0) return;
  if (n == 1 || lt_pool_threads() == 1 || pthread_mutex_trylock(&P.run) != 0) {
    for (int64_t i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  pthread_mutex_lock(&P.mu);
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  atomic_store(&P.next, 0);
  P.busy = P.nworkers;
  P.gen++;
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.mu);
  take_items(fn, ctx, n);
  pthread_mutex_lock(&P.mu);
  while (P.busy > 0) pthread_cond_wait(&P.done, &P.mu);
  pthread_mutex_unlock(&P.mu);
  pthread_mutex_unlock(&P.run);
}
