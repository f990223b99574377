/*
** fake_cuda.c: a fake NVIDIA CUDA driver (a test double of libcuda.so.1)
** for the specs on machines without a GPU. It exports exactly the entry
** points of CUDRV_FUNCS in src/cudadrv.h and serves them from host memory,
** strictly, so that ltorch's mistakes fail loudly instead of working:
**   - cuInit(0) must come first: anything else (but cuGetErrorString)
**     returns CUDA_ERROR_NOT_INITIALIZED before it;
**   - memory, memcpy/memset and stream calls need a current context
**     (cuCtxSetCurrent, thread-local), else CUDA_ERROR_INVALID_CONTEXT;
**   - a CUdeviceptr is the host address XOR DEV_TAG, a non-canonical
**     address, so dereferencing one on the host crashes (SIGSEGV);
**   - every copy and memset must lie inside one live allocation of the
**     current context's device, else CUDA_ERROR_INVALID_VALUE; a host
**     pointer that is a device pointer is rejected the same way;
**   - fresh device memory is filled with 0xA5 and fresh pinned memory
**     with 0x5A, not zero;
**   - each stream has a worker thread with a FIFO queue: async copies
**     return at once and run later, each after a 200 us sleep, so a
**     staging buffer reused or freed before cuStreamSynchronize gives wrong
**     data. Stream 0 (legacy default) copies synchronously. Synchronous
**     copies, memset and frees first wait for the device's streams.
** Environment:
**   FAKECUDA_DEVICES  number of devices (default 1, at most 64); 0 makes
**                     cuInit return CUDA_ERROR_NO_DEVICE (100)
**   FAKECUDA_MEM      bytes of memory per device (default 1 GiB); an
**                     allocation past it is CUDA_ERROR_OUT_OF_MEMORY
**   FAKECUDA_FAIL     name:N, the N-th call (from 1) of entry point name
**                     returns CUDA_ERROR_UNKNOWN (999) and does nothing
**   FAKECUDA_STATS    a file written at exit, lines "key value": the calls
**                     of each entry point called, device_bytes_peak,
**                     device_bytes_live, pinned_bytes_peak,
**                     pinned_bytes_live, async_from_unpinned (async copies
**                     whose host side is not in a cuMemHostAlloc block
**                     pinned for that device), streams_live
** A malformed variable is reported on stderr and aborts the process.
*/
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cudadrv.h"

#define FAKE_API __attribute__((visibility("default")))
#define CUDA_ERROR_UNKNOWN 999
#define MAX_DEVICES 64
#define DEV_TAG 0x00F0000000000000ULL   /* bits 52-55: non-canonical on x86-64, faults on arm64 */
#define COPY_DELAY_NS 200000L           /* before each queued copy */
#define DEV_ALIGN 256                   /* cuMemAlloc's alignment */
#define HOST_ALIGN 4096                 /* pinned memory is page aligned */
#define HOSTALLOC_FLAGS 0x7u            /* PORTABLE | DEVICEMAP | WRITECOMBINED */

/* every exported entry point, with its prototype */
#define DECLARE(ret, name, params) FAKE_API ret name params;
CUDRV_FUNCS(DECLARE)

#define ENUM(ret, name, params) FN_##name,
enum { CUDRV_FUNCS(ENUM) FN_COUNT };
#define NAME(ret, name, params) #name,
static const char *const fn_names[FN_COUNT] = { CUDRV_FUNCS(NAME) };

struct CUctx_st { int dev; unsigned long retains; };

struct job {                            /* one queued copy, host addresses */
  struct job *next;
  void *dst;
  const void *src;
  size_t n;
};

struct CUstream_st {
  struct CUstream_st *next;             /* the list of live streams */
  CUcontext ctx;
  pthread_t thread;
  pthread_cond_t work;                  /* a job queued, or stop */
  pthread_cond_t drained;               /* pending reached 0, or waiters did */
  struct job *head, *tail;
  size_t pending;                       /* queued or running */
  int waiters;                          /* threads waiting in drained */
  int stop;
};

struct dalloc { CUdeviceptr base; size_t size; int dev; };
struct hblock { char *p; size_t size; unsigned flags; int dev; };

/* all shared state, under mu (the worker threads included) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int ndevices = 1;
static size_t mem_per_device = (size_t)1 << 30;
static int fail_fn = -1;
static unsigned long fail_at;
static int initialized;
static unsigned long calls[FN_COUNT];
static struct CUctx_st contexts[MAX_DEVICES];
static struct dalloc *dallocs;
static size_t ndallocs, dallocs_cap;
static struct hblock *hblocks;
static size_t nhblocks, hblocks_cap;
static size_t dev_live[MAX_DEVICES], dev_bytes_live, dev_bytes_peak;
static size_t pinned_live, pinned_peak;
static unsigned long async_unpinned, nstreams;
static struct CUstream_st *streams;

static _Thread_local CUcontext current;

/* ---- environment --------------------------------------------------------- */

static void die(const char *var, const char *val) {
  fprintf(stderr, "fake_cuda: bad %s=%s\n", var, val);
  abort();
}

static unsigned long long parse_num(const char *var, const char *s) {
  char *end;
  if (*s < '0' || *s > '9') die(var, s);
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) die(var, s);
  return v;
}

static void read_env(void) {
  const char *s;
  if ((s = getenv("FAKECUDA_DEVICES")) && *s) {
    unsigned long long v = parse_num("FAKECUDA_DEVICES", s);
    if (v > MAX_DEVICES) die("FAKECUDA_DEVICES", s);
    ndevices = (int)v;
  }
  if ((s = getenv("FAKECUDA_MEM")) && *s) {
    unsigned long long v = parse_num("FAKECUDA_MEM", s);
    if (v > SIZE_MAX) die("FAKECUDA_MEM", s);
    mem_per_device = (size_t)v;
  }
  if ((s = getenv("FAKECUDA_FAIL")) && *s) {
    const char *colon = strchr(s, ':');
    if (!colon) die("FAKECUDA_FAIL", s);
    for (int i = 0; i < FN_COUNT; i++)
      if (strlen(fn_names[i]) == (size_t)(colon - s) && !strncmp(fn_names[i], s, (size_t)(colon - s)))
        fail_fn = i;
    unsigned long long n = parse_num("FAKECUDA_FAIL", colon + 1);
    if (fail_fn < 0 || n == 0 || n > ULONG_MAX) die("FAKECUDA_FAIL", s);
    fail_at = (unsigned long)n;
  }
}

/* The start of every entry point: count the call, then refuse it if the
** driver is not initialized or FAKECUDA_FAIL names this call. */
static CUresult enter(int fn) {
  CUresult r = CUDA_SUCCESS;
  pthread_once(&env_once, read_env);
  pthread_mutex_lock(&mu);
  unsigned long n = ++calls[fn];
  if (fn != FN_cuInit && !initialized) r = CUDA_ERROR_NOT_INITIALIZED;
  else if (fn == fail_fn && n == fail_at) r = CUDA_ERROR_UNKNOWN;
  pthread_mutex_unlock(&mu);
  return r;
}

#define ENTER(name) do { \
    CUresult e_ = enter(FN_##name); \
    if (e_ != CUDA_SUCCESS) return e_; \
  } while (0)

/* ---- bookkeeping (mu held) ----------------------------------------------- */

static void *host_of(CUdeviceptr p) { return (void *)(uintptr_t)(p ^ DEV_TAG); }

/* a host pointer that carries the tag is a device pointer passed as host */
static int bad_host(const void *p) { return !p || ((uintptr_t)p & (uintptr_t)DEV_TAG); }

/* the live allocation of dev that holds all of [p, p+n), n > 0 */
static struct dalloc *find_range(CUdeviceptr p, size_t n, int dev) {
  for (size_t i = 0; i < ndallocs; i++) {
    struct dalloc *a = &dallocs[i];
    if (a->dev == dev && p >= a->base && p - a->base <= a->size && n <= a->size - (p - a->base))
      return a;
  }
  return NULL;
}

/* is [p, p+n) inside a pinned block usable from dev? */
static int is_pinned(const void *p, size_t n, int dev) {
  uintptr_t q = (uintptr_t)p;
  for (size_t i = 0; i < nhblocks; i++) {
    struct hblock *b = &hblocks[i];
    uintptr_t base = (uintptr_t)b->p;
    if (q >= base && q - base <= b->size && n <= b->size - (q - base) &&
        ((b->flags & CU_MEMHOSTALLOC_PORTABLE) || b->dev == dev))
      return 1;
  }
  return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return 1;
  size_t c = *cap ? *cap * 2 : 64;
  void *p = realloc(*arr, c * elem);
  if (!p) return 0;
  *arr = p;
  *cap = c;
  return 1;
}

/* wait, mu held, until s has nothing queued or running */
static void wait_stream(struct CUstream_st *s) {
  s->waiters++;
  while (s->pending) pthread_cond_wait(&s->drained, &mu);
  if (--s->waiters == 0) pthread_cond_broadcast(&s->drained);
}

/* wait until every stream of device dev (all devices if dev < 0) is idle;
** rescans after each wait since the list may change meanwhile */
static void drain(int dev) {
  for (;;) {
    struct CUstream_st *s = streams;
    while (s && (s->pending == 0 || (dev >= 0 && s->ctx->dev != dev))) s = s->next;
    if (!s) return;
    wait_stream(s);
  }
}

static struct CUstream_st *find_stream(CUstream h) {
  struct CUstream_st *s = streams;
  while (s && s != h) s = s->next;
  return s;
}

/* ---- initialization, errors, devices ------------------------------------- */

FAKE_API CUresult cuInit(unsigned int flags) {
  ENTER(cuInit);
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (ndevices == 0) return CUDA_ERROR_NO_DEVICE;
  pthread_mutex_lock(&mu);
  if (!initialized) {
    for (int i = 0; i < ndevices; i++) contexts[i].dev = i;
    initialized = 1;
  }
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDriverGetVersion(int *version) {
  ENTER(cuDriverGetVersion);
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = 12000;
  return CUDA_SUCCESS;
}

/* works before cuInit, is counted, and never fails on purpose */
FAKE_API CUresult cuGetErrorString(CUresult error, const char **str) {
  pthread_once(&env_once, read_env);
  pthread_mutex_lock(&mu);
  calls[FN_cuGetErrorString]++;
  pthread_mutex_unlock(&mu);
  if (!str) return CUDA_ERROR_INVALID_VALUE;
  switch (error) {
  case CUDA_SUCCESS: *str = "no error"; break;
  case CUDA_ERROR_INVALID_VALUE: *str = "invalid argument"; break;
  case CUDA_ERROR_OUT_OF_MEMORY: *str = "out of memory"; break;
  case CUDA_ERROR_NOT_INITIALIZED: *str = "initialization error"; break;
  case CUDA_ERROR_NO_DEVICE: *str = "no CUDA-capable device is detected"; break;
  case CUDA_ERROR_INVALID_DEVICE: *str = "invalid device ordinal"; break;
  case CUDA_ERROR_INVALID_CONTEXT: *str = "invalid device context"; break;
  case CUDA_ERROR_INVALID_HANDLE: *str = "invalid resource handle"; break;
  case CUDA_ERROR_UNKNOWN: *str = "unknown error"; break;
  default: *str = NULL; return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetCount(int *count) {
  ENTER(cuDeviceGetCount);
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = ndevices;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  ENTER(cuDeviceGet);
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal < 0 || ordinal >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  ENTER(cuDeviceGetName);
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)len, "Fake CUDA Device %d", dev);
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  ENTER(cuDeviceTotalMem_v2);
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  *bytes = mem_per_device;
  return CUDA_SUCCESS;
}

/* ---- contexts ------------------------------------------------------------ */

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
  ENTER(cuDevicePrimaryCtxRetain);
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  if (!ctx) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&mu);
  contexts[dev].retains++;
  pthread_mutex_unlock(&mu);
  *ctx = &contexts[dev];
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxSetCurrent(CUcontext ctx) {
  ENTER(cuCtxSetCurrent);
  int known = !ctx;
  for (int i = 0; i < ndevices && !known; i++) known = ctx == &contexts[i];
  if (!known) return CUDA_ERROR_INVALID_CONTEXT;
  current = ctx;
  return CUDA_SUCCESS;
}

#define NEED_CONTEXT() do { if (!current) return CUDA_ERROR_INVALID_CONTEXT; } while (0)

/* ---- device and pinned memory -------------------------------------------- */

FAKE_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes) {
  ENTER(cuMemAlloc_v2);
  NEED_CONTEXT();
  if (!dptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;  /* as the real one for 0 */
  int dev = current->dev;
  pthread_mutex_lock(&mu);
  CUresult r = CUDA_ERROR_OUT_OF_MEMORY;
  void *p = NULL;
  if (bytes <= mem_per_device - dev_live[dev] &&
      grow((void **)&dallocs, &dallocs_cap, ndallocs, sizeof *dallocs) &&
      posix_memalign(&p, DEV_ALIGN, bytes) == 0) {
    if ((uintptr_t)p & (uintptr_t)DEV_TAG) {
      fprintf(stderr, "fake_cuda: host address %p collides with DEV_TAG\n", p);
      abort();
    }
    memset(p, 0xA5, bytes);
    *dptr = (CUdeviceptr)(uintptr_t)p ^ DEV_TAG;
    dallocs[ndallocs++] = (struct dalloc){ *dptr, bytes, dev };
    dev_live[dev] += bytes;
    dev_bytes_live += bytes;
    if (dev_bytes_live > dev_bytes_peak) dev_bytes_peak = dev_bytes_live;
    r = CUDA_SUCCESS;
  }
  pthread_mutex_unlock(&mu);
  return r;
}

/* dptr must be the start of a live allocation of the current device;
** it leaves the table at once (so no new copy can use it), then the
** device's streams drain, then it is freed */
FAKE_API CUresult cuMemFree_v2(CUdeviceptr dptr) {
  ENTER(cuMemFree_v2);
  NEED_CONTEXT();
  int dev = current->dev;
  pthread_mutex_lock(&mu);
  size_t i = 0;
  while (i < ndallocs && !(dallocs[i].base == dptr && dallocs[i].dev == dev)) i++;
  if (i == ndallocs) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  size_t size = dallocs[i].size;
  dallocs[i] = dallocs[--ndallocs];
  dev_live[dev] -= size;
  dev_bytes_live -= size;
  drain(dev);
  pthread_mutex_unlock(&mu);
  free(host_of(dptr));
  return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemHostAlloc(void **p, size_t bytes, unsigned int flags) {
  ENTER(cuMemHostAlloc);
  NEED_CONTEXT();
  if (!p || bytes == 0 || (flags & ~HOSTALLOC_FLAGS)) return CUDA_ERROR_INVALID_VALUE;
  void *q = NULL;
  pthread_mutex_lock(&mu);
  CUresult r = CUDA_ERROR_OUT_OF_MEMORY;
  if (grow((void **)&hblocks, &hblocks_cap, nhblocks, sizeof *hblocks) &&
      posix_memalign(&q, HOST_ALIGN, bytes) == 0) {
    memset(q, 0x5A, bytes);
    hblocks[nhblocks++] = (struct hblock){ q, bytes, flags, current->dev };
    pinned_live += bytes;
    if (pinned_live > pinned_peak) pinned_peak = pinned_live;
    *p = q;
    r = CUDA_SUCCESS;
  }
  pthread_mutex_unlock(&mu);
  return r;
}

/* p must be the start of a live block; every stream drains first */
FAKE_API CUresult cuMemFreeHost(void *p) {
  ENTER(cuMemFreeHost);
  NEED_CONTEXT();
  pthread_mutex_lock(&mu);
  size_t i = 0;
  while (i < nhblocks && hblocks[i].p != p) i++;
  if (!p || i == nhblocks) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  pinned_live -= hblocks[i].size;
  hblocks[i] = hblocks[--nhblocks];
  drain(-1);
  pthread_mutex_unlock(&mu);
  free(p);
  return CUDA_SUCCESS;
}

/* ---- synchronous copies and memset --------------------------------------- */

/* Checks one copy for the current device, mu held: dst and src are device
** pointers where d_dst / d_src, host pointers otherwise. Returns the
** error, or 0 with the host addresses in *hd, *hs. */
static CUresult check_copy(int dev, int d_dst, CUdeviceptr dst, void *hdst,
                           int d_src, CUdeviceptr src, const void *hsrc, size_t n,
                           void **hd, const void **hs) {
  if (d_dst) {
    if (!find_range(dst, n, dev)) return CUDA_ERROR_INVALID_VALUE;
    hdst = host_of(dst);
  } else if (bad_host(hdst)) return CUDA_ERROR_INVALID_VALUE;
  if (d_src) {
    if (!find_range(src, n, dev)) return CUDA_ERROR_INVALID_VALUE;
    hsrc = host_of(src);
  } else if (bad_host(hsrc)) return CUDA_ERROR_INVALID_VALUE;
  *hd = hdst;
  *hs = hsrc;
  return CUDA_SUCCESS;
}

/* a copy on the legacy default stream: validate, drain the device's
** streams, copy */
static CUresult copy_now(int d_dst, CUdeviceptr dst, void *hdst,
                         int d_src, CUdeviceptr src, const void *hsrc, size_t n) {
  if (!current) return CUDA_ERROR_INVALID_CONTEXT;
  if (n == 0) return CUDA_SUCCESS;
  void *hd;
  const void *hs;
  pthread_mutex_lock(&mu);
  CUresult r = check_copy(current->dev, d_dst, dst, hdst, d_src, src, hsrc, n, &hd, &hs);
  if (r == CUDA_SUCCESS) drain(current->dev);
  pthread_mutex_unlock(&mu);
  if (r == CUDA_SUCCESS) memcpy(hd, hs, n);
  return r;
}

FAKE_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n) {
  ENTER(cuMemsetD8_v2);
  NEED_CONTEXT();
  if (n == 0) return CUDA_SUCCESS;
  pthread_mutex_lock(&mu);
  CUresult r = find_range(dst, n, current->dev) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  if (r == CUDA_SUCCESS) drain(current->dev);
  pthread_mutex_unlock(&mu);
  if (r == CUDA_SUCCESS) memset(host_of(dst), value, n);
  return r;
}

FAKE_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  ENTER(cuMemcpyHtoD_v2);
  return copy_now(1, dst, NULL, 0, 0, src, n);
}

FAKE_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  ENTER(cuMemcpyDtoH_v2);
  return copy_now(0, 0, dst, 1, src, NULL, n);
}

/* overlapping ranges are undefined in CUDA: refused here */
FAKE_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  ENTER(cuMemcpyDtoD_v2);
  if (current && n && dst < src + n && src < dst + n) return CUDA_ERROR_INVALID_VALUE;
  return copy_now(1, dst, NULL, 1, src, NULL, n);
}

/* ---- streams ------------------------------------------------------------- */

static void *worker(void *arg) {
  struct CUstream_st *s = arg;
  struct timespec delay = { 0, COPY_DELAY_NS };
  pthread_mutex_lock(&mu);
  for (;;) {
    while (!s->head && !s->stop) pthread_cond_wait(&s->work, &mu);
    if (!s->head) break;
    struct job *j = s->head;
    if (!(s->head = j->next)) s->tail = NULL;
    pthread_mutex_unlock(&mu);
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {}
    delay.tv_nsec = COPY_DELAY_NS;
    memcpy(j->dst, j->src, j->n);
    free(j);
    pthread_mutex_lock(&mu);
    if (--s->pending == 0) pthread_cond_broadcast(&s->drained);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* an async copy: stream 0 runs it at once, others queue it */
static CUresult copy_async(int d_dst, CUdeviceptr dst, void *hdst,
                           int d_src, CUdeviceptr src, const void *hsrc,
                           size_t n, CUstream stream) {
  NEED_CONTEXT();
  int dev = current->dev;
  void *hd;
  const void *hs;
  struct job *j = NULL;
  pthread_mutex_lock(&mu);
  struct CUstream_st *s = stream ? find_stream(stream) : NULL;
  CUresult r = CUDA_SUCCESS;
  if (stream && !s) r = CUDA_ERROR_INVALID_HANDLE;
  else if (s && s->ctx != current) r = CUDA_ERROR_INVALID_CONTEXT;
  else if (n == 0) goto out;
  else r = check_copy(dev, d_dst, dst, hdst, d_src, src, hsrc, n, &hd, &hs);
  if (r != CUDA_SUCCESS) goto out;
  if (!is_pinned(d_dst ? hs : hd, n, dev)) async_unpinned++;
  if (!s) {                             /* legacy stream: synchronous */
    drain(dev);
    pthread_mutex_unlock(&mu);
    memcpy(hd, hs, n);
    return CUDA_SUCCESS;
  }
  if (!(j = malloc(sizeof *j))) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  *j = (struct job){ NULL, hd, hs, n };
  if (s->tail) s->tail->next = j;
  else s->head = j;
  s->tail = j;
  s->pending++;
  pthread_cond_signal(&s->work);
out:
  pthread_mutex_unlock(&mu);
  return r;
}

FAKE_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream stream) {
  ENTER(cuMemcpyHtoDAsync_v2);
  return copy_async(1, dst, NULL, 0, 0, src, n, stream);
}

FAKE_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream stream) {
  ENTER(cuMemcpyDtoHAsync_v2);
  return copy_async(0, 0, dst, 1, src, NULL, n, stream);
}

FAKE_API CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
  ENTER(cuStreamCreate);
  NEED_CONTEXT();
  if (!stream || (flags & ~CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = calloc(1, sizeof *s);
  if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
  s->ctx = current;
  pthread_cond_init(&s->work, NULL);
  pthread_cond_init(&s->drained, NULL);
  if (pthread_create(&s->thread, NULL, worker, s) != 0) {
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->drained);
    free(s);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  pthread_mutex_lock(&mu);
  s->next = streams;
  streams = s;
  nstreams++;
  pthread_mutex_unlock(&mu);
  *stream = s;
  return CUDA_SUCCESS;
}

/* stream 0 waits for every stream of the current device */
FAKE_API CUresult cuStreamSynchronize(CUstream stream) {
  ENTER(cuStreamSynchronize);
  NEED_CONTEXT();
  CUresult r = CUDA_SUCCESS;
  pthread_mutex_lock(&mu);
  struct CUstream_st *s = stream ? find_stream(stream) : NULL;
  if (!stream) drain(current->dev);
  else if (!s) r = CUDA_ERROR_INVALID_HANDLE;
  else wait_stream(s);
  pthread_mutex_unlock(&mu);
  return r;
}

/* unlinked first (later uses get CUDA_ERROR_INVALID_HANDLE), then its
** queue drains and the threads waiting on it leave, then the worker ends */
FAKE_API CUresult cuStreamDestroy_v2(CUstream stream) {
  ENTER(cuStreamDestroy_v2);
  NEED_CONTEXT();
  pthread_mutex_lock(&mu);
  struct CUstream_st **pp = &streams;
  while (*pp && *pp != stream) pp = &(*pp)->next;
  struct CUstream_st *s = *pp;
  if (!stream || !s) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  *pp = s->next;
  nstreams--;
  while (s->pending || s->waiters) pthread_cond_wait(&s->drained, &mu);
  s->stop = 1;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&mu);
  pthread_join(s->thread, NULL);
  pthread_cond_destroy(&s->work);
  pthread_cond_destroy(&s->drained);
  free(s);
  return CUDA_SUCCESS;
}

/* ---- statistics at exit -------------------------------------------------- */

__attribute__((destructor)) static void write_stats(void) {
  const char *path = getenv("FAKECUDA_STATS");
  if (!path || !*path) return;
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "fake_cuda: cannot write FAKECUDA_STATS=%s\n", path);
    return;
  }
  pthread_mutex_lock(&mu);
  for (int i = 0; i < FN_COUNT; i++)
    if (calls[i]) fprintf(f, "%s %lu\n", fn_names[i], calls[i]);
  fprintf(f, "device_bytes_peak %zu\ndevice_bytes_live %zu\n", dev_bytes_peak, dev_bytes_live);
  fprintf(f, "pinned_bytes_peak %zu\npinned_bytes_live %zu\n", pinned_peak, pinned_live);
  fprintf(f, "async_from_unpinned %lu\nstreams_live %lu\n", async_unpinned, nstreams);
  pthread_mutex_unlock(&mu);
  fclose(f);
}
