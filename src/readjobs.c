/*
** readjobs.c: read many byte ranges of one file into their final memory with
** a few threads. Loading an eager checkpoint is mostly the kernel zeroing
** fresh pages and copying from the page cache; both scale with cores, and a
** single reader leaves the other cores idle. Jobs are cut into chunks that
** the threads (the caller's included) take in file order from an atomic
** counter. Only the caller's thread reports progress, between its chunks,
** so a Lua progress callback never runs beside the workers' writes. Each
** chunk is one lt_pread_all (rawio.c).
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include "lt.h"
#include "rawio.h"

#define CHUNK ((uint64_t)4 << 20)        /* 2 MiB huge pages: two per chunk */
#define PARALLEL_MIN ((uint64_t)16 << 20) /* below this, one thread */
#define MAX_THREADS 8

typedef struct rjctx {
  int fd;
  const lt_readjob *jobs;
  size_t njobs;
  uint64_t *first;          /* first chunk index of each job; first[njobs] = total chunks */
  atomic_size_t next;       /* next chunk to take */
  atomic_uint_least64_t done;
  atomic_int stop;          /* an error or the progress callback stopped the reads */
  atomic_int active;        /* workers still reading */
  pthread_mutex_t lock;     /* guards the first error */
  int err_errno;
  size_t err_job;
  uint64_t err_off;
  int failed;
} rjctx;

/* the job holding chunk k: the last job whose first chunk is <= k */
static size_t job_of(const rjctx *c, uint64_t k) {
  size_t lo = 0, hi = c->njobs;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->first[mid] <= k) lo = mid; else hi = mid;
  }
  return lo;
}

static void record_error(rjctx *c, size_t j, uint64_t off, int e) {
  pthread_mutex_lock(&c->lock);
  if (!c->failed) { c->failed = 1; c->err_job = j; c->err_off = off; c->err_errno = e; }
  pthread_mutex_unlock(&c->lock);
  atomic_store(&c->stop, 1);
}

/* read one chunk; 0 when there was none left or on error */
static int one_chunk(rjctx *c) {
  if (atomic_load(&c->stop)) return 0;
  uint64_t k = atomic_fetch_add(&c->next, 1);
  if (k >= c->first[c->njobs]) return 0;
  size_t j = job_of(c, k);
  const lt_readjob *jb = &c->jobs[j];
  uint64_t at = (k - c->first[j]) * CHUNK;
  uint64_t n = jb->len - at < CHUNK ? jb->len - at : CHUNK;
  uint64_t off = jb->off + at;
  size_t got;
  int rc = lt_pread_all(c->fd, (char *)jb->dst + at, (size_t)n, off, &got);
  atomic_fetch_add(&c->done, (uint64_t)got);
  if (rc) { record_error(c, j, off + got, errno); return 0; }
  return 1;
}

static void *worker(void *ud) {
  rjctx *c = ud;
  while (one_chunk(c)) {}
  atomic_fetch_sub(&c->active, 1);
  return NULL;
}

static void report(rjctx *c, int (*progress)(void *, uint64_t), void *ud, uint64_t *reported, int *stopped) {
  uint64_t d = atomic_load(&c->done);
  if (!progress || d == *reported || atomic_load(&c->stop)) return;
  *reported = d;
  if (progress(ud, d)) { *stopped = 1; atomic_store(&c->stop, 1); }
}

int lt_read_jobs(int fd, const lt_readjob *jobs, size_t n, int (*progress)(void *ud, uint64_t done),
                 void *ud, char *err) {
  rjctx c;
  memset(&c, 0, sizeof c);
  c.fd = fd;
  c.jobs = jobs;
  c.njobs = n;
  c.first = malloc((n + 1) * sizeof *c.first);
  if (!c.first) { snprintf(err, LT_MSG, "out of memory"); return -1; }
  uint64_t total = 0, chunks = 0;
  for (size_t i = 0; i < n; i++) {
    c.first[i] = chunks;
    chunks += (jobs[i].len + CHUNK - 1) / CHUNK;
    total += jobs[i].len;
  }
  c.first[n] = chunks;
  atomic_init(&c.next, 0);
  atomic_init(&c.done, 0);
  atomic_init(&c.stop, 0);
  pthread_mutex_init(&c.lock, NULL);

  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nthreads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  if (total < PARALLEL_MIN) nthreads = 1;
  if ((uint64_t)nthreads > chunks) nthreads = chunks ? (int)chunks : 1;
  pthread_t th[MAX_THREADS];
  int started = 0;
  atomic_init(&c.active, nthreads - 1);
  for (int i = 1; i < nthreads; i++) {
    if (pthread_create(&th[started], NULL, worker, &c) != 0) {   /* fewer threads still work */
      atomic_fetch_sub(&c.active, nthreads - 1 - started);
      break;
    }
    started++;
  }
  int stopped = 0;
  uint64_t reported = 0;
  while (one_chunk(&c)) report(&c, progress, ud, &reported, &stopped);
  /* the last chunks are the workers': keep the progress moving meanwhile */
  while (progress && atomic_load(&c.active) > 0) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    report(&c, progress, ud, &reported, &stopped);
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  if (!c.failed && !stopped && progress) {
    uint64_t d = atomic_load(&c.done);
    if (d != reported && progress(ud, d)) stopped = 1;
  }
  pthread_mutex_destroy(&c.lock);
  free(c.first);
  if (c.failed) {
    const lt_readjob *jb = &jobs[c.err_job];
    snprintf(err, LT_MSG, "%s%scannot read %llu bytes at offset %llu: %s", jb->what ? jb->what : "",
             jb->what ? ": " : "", (unsigned long long)jb->len, (unsigned long long)c.err_off,
             c.err_errno ? strerror(c.err_errno) : "the file ends first");
    return -1;
  }
  return stopped ? 1 : 0;
}
