/*
** lt.h: ltorch's internal header. Types and limits shared by the C core:
** byte buffers (buf.c), dtypes (dtype.c), storages and mappings
** (storage.c), deferred storages (deferred.c), parallel reads (readjobs.c)
** and tensors (tensor.c). Nothing here knows about Lua: what the binding
** files (l*.c) share is in lt_lua.h, the raw I/O layer's contracts in
** rawio.h, the public API for host programs in ltorch.h.
*/
#ifndef LT_H
#define LT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sys/types.h>

#define LT_MAX_DIMS 16          /* highest rank a tensor may have */
#define LT_ALIGN 64             /* alignment of heap storages */
#define LT_MSG 512              /* size of an error message buffer */

/* LT_VECTORIZE on a hot kernel: GCC's full vectoriser (-O2 vectorises only
   loops of known trip counts), and on x86-64 a second copy of the function
   built for AVX2, chosen when the process starts (an ifunc) on a CPU that
   has it. The copies compute the same values: without -ffp-contract (off in
   ISO C mode) nothing fuses into FMA, and GCC never reorders floating-point
   sums. Helpers a kernel calls are static inline, so each copy inlines its
   own. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LT_VECTORIZE __attribute__((optimize("O3"), target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define LT_VECTORIZE __attribute__((optimize("O3")))
#else
#define LT_VECTORIZE
#endif

/* ---- byte buffers and text (buf.c) ------------------------------------ */

/* A growable byte buffer: starts zeroed ({0}), grows by doubling. When memory
   runs out it sets oom and drops every later put, so a writer checks once,
   at the end. p is not NUL-terminated. */
typedef struct lt_buf {
  char *p;
  size_t n, cap;
  int oom;
} lt_buf;
void lt_buf_put(lt_buf *b, const void *s, size_t n);
void lt_buf_puts(lt_buf *b, const char *s);
void lt_buf_free(lt_buf *b);   /* back to empty; safe to call twice */
/* 1 when s[0..n) is valid UTF-8: shortest forms only, no surrogates, at
   most U+10FFFF */
int lt_utf8_valid(const char *s, size_t n);
/* s[0..n) as a JSON string as serde_json writes it: quotes, '"' and '\'
   escaped, \n \r \t \b \f and other controls below 0x20 as \u00XX,
   every other byte (UTF-8 included) as it is */
void lt_buf_json_string(lt_buf *b, const char *s, size_t n);

/* ---- dtypes ----------------------------------------------------------- */

typedef enum lt_dtype {
  LT_FLOAT32, LT_FLOAT64, LT_FLOAT16, LT_BFLOAT16,
  LT_INT8, LT_INT16, LT_INT32, LT_INT64, LT_UINT8, LT_BOOL,
  LT_COMPLEX64, LT_COMPLEX128, LT_FLOAT8_E4M3FN, LT_FLOAT8_E5M2,
  LT_UINT16, LT_UINT32, LT_UINT64,
  LT_NDTYPES
} lt_dtype;

enum { LT_KIND_BOOL, LT_KIND_INT, LT_KIND_FLOAT, LT_KIND_COMPLEX };

typedef struct lt_dtype_traits {
  const char *name;       /* Lua name: "float32" */
  size_t size;            /* bytes per element */
  int kind;               /* LT_KIND_* */
  int is_signed;
  int rank;               /* promotion rank within its kind */
} lt_dtype_traits;

extern const lt_dtype_traits lt_dtypes[LT_NDTYPES];

/* bytes of one part of an element of dt: its size, half of it for complex
   (whose real and imaginary parts are byte-swapped and aligned apart) */
static inline size_t lt_part_size(lt_dtype dt) {
  return lt_dtypes[dt].kind == LT_KIND_COMPLEX ? lt_dtypes[dt].size / 2 : lt_dtypes[dt].size;
}

int lt_dtype_from_name(const char *name);  /* -1 when unknown */
/* uint16, uint32, uint64: PyTorch (>= 2.3) promotes them only with
   themselves and with floating types */
static inline int lt_is_wide_unsigned(lt_dtype dt) {
  return dt == LT_UINT16 || dt == LT_UINT32 || dt == LT_UINT64;
}
/* PyTorch's promoteTypes; LT_NDTYPES where PyTorch refuses (a wide
   unsigned dtype with another non-floating one) */
lt_dtype lt_promote(lt_dtype a, lt_dtype b);

/* scalar conversions, bit-exact with c10's CPU conversions */
float lt_half_to_float(uint16_t h);
uint16_t lt_float_to_half(float f);
float lt_bf16_to_float(uint16_t b);
uint16_t lt_float_to_bf16(float f);
float lt_e4m3_to_float(uint8_t v);
uint8_t lt_float_to_e4m3(float f);
float lt_e5m2_to_float(uint8_t v);
uint8_t lt_float_to_e5m2(float f);

/* one element through a double, int64 or complex pair */
double lt_get_f64(lt_dtype dt, const void *p);
int64_t lt_get_i64(lt_dtype dt, const void *p);
void lt_get_c128(lt_dtype dt, const void *p, double out[2]);
void lt_set_f64(lt_dtype dt, void *p, double v);
void lt_set_i64(lt_dtype dt, void *p, int64_t v);
void lt_set_c128(lt_dtype dt, void *p, const double v[2]);

/* convert n contiguous elements; src and dst do not overlap */
void lt_convert(lt_dtype to, void *dst, lt_dtype from, const void *src, size_t n);

/* ---- storages --------------------------------------------------------- */

enum { LT_CPU = 0, LT_CUDA = 1 };

typedef struct lt_storage lt_storage;
struct lt_storage {
  atomic_long refs;
  void *data;
  size_t nbytes;
  int device;                          /* LT_CPU or LT_CUDA */
  int device_index;
  void (*release)(lt_storage *s);      /* frees data and ctx; NULL: nothing */
  void *ctx;                           /* owner of data (mapping, host ctx) */
  int mapped;                          /* data points into a file mapping */
  struct lt_deferred *deferred;        /* read from a file on first use
                                          (lt_storage_fill); data is NULL
                                          until then and after an evict */
};

lt_storage *lt_storage_new(size_t nbytes, int zero);   /* NULL on ENOMEM */
lt_storage *lt_storage_wrap(void *data, size_t nbytes,
                            void (*release)(lt_storage *), void *ctx);
void lt_storage_retain(lt_storage *s);
void lt_storage_release(lt_storage *s);
/* bytes of heap storage alive in this process (for GC pacing) */
size_t lt_storage_live_bytes(void);
void *lt_alloc_bytes(size_t nbytes, int zero);   /* big-page aware; NULL on ENOMEM */
/* n rounded up to whole 2 MiB pages from 1 MiB up (lt_alloc_bytes advises
   only whole huge pages: a table of n bytes allocated so takes them all) */
size_t lt_huge_round(size_t n);
void lt_free_bytes(void *p, size_t nbytes);        /* big blocks may be kept for reuse */
void lt_free_bytes_now(void *p, size_t nbytes);    /* given back to the system at once */

/* ---- CUDA device storages (cuda.c) ---------------------------------------- */

/* devices, opening the driver on first use; -1 with err (no driver, no
   device) when CUDA cannot be used */
int lt_cuda_count(char *err);
int lt_cuda_device_name(int dev, char *name, size_t len, char *err);
/* a device storage of nbytes on cuda:dev (zeroed when zero); NULL with err */
lt_storage *lt_cuda_alloc(int dev, size_t nbytes, int zero, char *err);
size_t lt_cuda_live_bytes(void);   /* device bytes alive, for GC pacing */
size_t lt_cuda_live_storages(void);   /* device storages alive */
/* device to device, on one device or between two */
int lt_cuda_d2d(lt_storage *dst, size_t doff, const lt_storage *src, size_t soff, size_t n, char *err);

/* A transfer: copies between host memory and one device's storages through
   the pinned staging buffers, several in flight; begin, any number of
   copies, end. Host memory given to h2d may be reused at once; memory given
   to d2h is written by the time end returns. The first failure stops the
   rest; end returns -1 and err (given to begin) says why. */
#define LT_CUDA_XFER_OUT 256
struct lt_cuda_out { void *dst; const void *src; size_t n; };
typedef struct lt_cuda_xfer {
  int dev, cur, locked, failed;
  size_t pos;
  int pending[2];
  size_t nout[2];
  struct lt_cuda_out out[2][LT_CUDA_XFER_OUT];
  char *err;
} lt_cuda_xfer;
int lt_cuda_xfer_begin(lt_cuda_xfer *x, int dev, char *err);   /* nothing to end on failure */
int lt_cuda_xfer_h2d(lt_cuda_xfer *x, lt_storage *dst, size_t off, const void *src, size_t n);
int lt_cuda_xfer_d2h(lt_cuda_xfer *x, void *dst, const lt_storage *src, size_t off, size_t n);
int lt_cuda_xfer_end(lt_cuda_xfer *x);
/* seconds for n bytes from pinned memory to cuda:dev (make bench); -1 with err */
double lt_cuda_pinned_h2d_seconds(int dev, size_t n, char *err);

/* ---- the thread pool (pool.c) --------------------------------------------- */

/* run fn(ctx, i) for every i in [0, n) on the pool's threads and the
   caller's; returns when all are done. Items run in any order and thread:
   combine per-item results in item order. */
void lt_parallel(int64_t n, void (*fn)(void *ctx, int64_t i), void *ctx);
int lt_pool_threads(void);   /* the caller's thread included */
/* elements per item of a split kernel, and the size below which it runs in
   the caller's thread alone */
#define LT_PAR_ITEM ((int64_t)1 << 18)
#define LT_PAR_MIN ((int64_t)1 << 20)

/* ---- SIGBUS from file mappings (mapguard.c) ------------------------------ */

/* A registered mapping: a SIGBUS inside it (the file was cut short after
   the mapping was made) replaces its pages from there on with zeros, marks
   it changed and counts a fault for the faulting thread. */
typedef struct lt_guard lt_guard;
/* register [base, base+len) of the file path (installs the handler once);
   NULL when out of memory (the mapping is then unguarded) */
lt_guard *lt_guard_add(const void *base, size_t len, const char *path);
void lt_guard_remove(lt_guard *g);                 /* NULL is fine */
/* the file's path when a fault has hit g, else NULL */
const char *lt_guard_changed(const lt_guard *g);
/* this thread's faults in registered mappings so far, and the file of the
   last one (the bindings compare the count around each call, linit.c) */
unsigned lt_mapguard_faults(void);
/* every thread's faults so far (a gemm's worker threads fault in their own) */
unsigned long lt_mapguard_all_faults(void);
const char *lt_mapguard_last(void);
/* memcpy from src when [src, src+n) lies in a registered mapping (0),
   faults turned into zeros as above; else -1 and nothing copied. For a
   write(2) that failed with EFAULT on mapped bytes (rawio.c). */
int lt_mapguard_copy(void *dst, const void *src, size_t n);

/* A read-only file mapping shared by the storages that point into it. */
typedef struct lt_mapping {
  atomic_long refs;
  void *base;
  size_t len;
  lt_guard *guard;      /* SIGBUS turned into an error (mapguard.c) */
  int anon;             /* memory, not a file: its storages are plain memory (not "mapped") */
} lt_mapping;
/* path names the file when it changes under the mapping */
lt_mapping *lt_map_file(int fd, size_t len, const char *path, char *err);
void lt_mapping_release(lt_mapping *m);
/* len bytes of fresh anonymous memory (huge pages advised) as a mapping,
   for bytes that come from elsewhere (a remote object); NULL with err */
lt_mapping *lt_map_memory(size_t len, char *err);
/* A set of objects looked up by the file an fd names (its device and
   inode): the files that are memory (below) and the mirrors of remote
   objects (remote.c). find runs retain on the object under the set's lock
   (so it cannot go meanwhile: retain returns 0 for one whose last
   reference is being dropped, and find gives NULL) and costs one atomic
   load while the set is empty. add: 0, or -1 when out of memory. */
typedef struct lt_fileset {
  pthread_mutex_t mu;
  struct lt_fileset_item *v;
  size_t n, cap;
  atomic_size_t count;   /* n, read without the lock */
} lt_fileset;
#define LT_FILESET_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0}
int lt_fileset_add(lt_fileset *set, dev_t dev, ino_t ino, void *obj);
int lt_fileset_remove(lt_fileset *set, const void *obj);   /* 1 when it was there */
void *lt_fileset_find(lt_fileset *set, int fd, int (*retain)(void *obj));
/* Files whose bytes are memory: while m is registered for fd's file (by
   device and inode), lt_map_file of that file gives m and lt_pread_all
   copies from it (a remote object fetched into memory, remote.c). add
   retains m (0, or -1 when out of memory); remove drops it. */
int lt_memfile_add(int fd, lt_mapping *m);
void lt_memfile_remove(lt_mapping *m);
/* the memory registered for fd's file (retained), or NULL: one atomic load
   while none is registered */
lt_mapping *lt_memfile_find(int fd);
/* a storage over [off, off+n) of m; retains m */
lt_storage *lt_storage_from_mapping(lt_mapping *m, size_t off, size_t n);
/* The one rule for whether a load with mmap = true makes a record of a file
   a view of the file's mapping (else a deferred storage, read on first use):
   the file is not a remote object's partial mirror (remote: its bytes are
   fetched on first use, lt_fd_is_remote), the record is stored as it is
   (not deflated, no byte swap), not empty, and at an offset its elements
   can be read at (a multiple of align). */
static inline int lt_may_map(int remote, int stored, int swap, uint64_t off, uint64_t align, uint64_t n) {
  return !remote && stored && !swap && n > 0 && off % align == 0;
}

/* ---- deferred storages (deferred.c) ------------------------------------ */

/* A file kept open (its own descriptor) by the deferred storages that read
   from it; path names it in errors. */
/* ---- remote objects (remote.c) -------------------------------------------- */

/* an object behind a URL, mirrored by a sparse local file that holds the
   ranges fetched so far */
typedef struct lt_remote lt_remote;
typedef struct lt_remote_opts {
  int connections;        /* transfers at once (default 8) */
  int retries;            /* per request, on 5xx and dropped connections (default 3; 0: none) */
  long timeout_ms;        /* connecting, and a transfer stalled below 1 KiB/s (default 30 s) */
  const char *aws_sigv4;  /* CURLOPT_AWS_SIGV4, e.g. "aws:amz:us-east-1:s3"; NULL: no signing */
  const char *userpwd;    /* "KEY_ID:SECRET" for the signature */
  const char *headers;    /* header lines sent with every request ("Name: value\n..."), or NULL */
  const char *ca_file;    /* CURLOPT_CAINFO: the PEM certificates HTTPS servers are verified
                             against; NULL: libcurl's (the system's) */
} lt_remote_opts;
/* one ranged GET of the first 64 KiB: size, version, first bytes */
lt_remote *lt_remote_open(const char *url, const lt_remote_opts *o, char *err);
void lt_remote_release(lt_remote *r);
lt_remote *lt_remote_find(int fd);   /* the object fd's file mirrors (retained), or NULL */
int lt_fd_is_remote(int fd);   /* fd mirrors an object not all fetched yet */
/* Fetch the whole object into memory (lt_map_memory), not the local file:
   an eager load's one copy. From then on the local file is that memory
   (lt_memfile_add): its reads (lt_pread_all) and mapping (lt_map_file).
   progress as below. */
int lt_remote_fetch_memory(lt_remote *r, int (*progress)(void *ud, uint64_t n), void *ud, char *err);
const char *lt_remote_url(const lt_remote *r);
uint64_t lt_remote_size(const lt_remote *r);
int lt_remote_fd(const lt_remote *r);
void lt_remote_stats(lt_remote *r, uint64_t *bytes, unsigned long *requests);
/* make [off, off+len) present in the local file, fetching what is missing */
int lt_remote_ensure(lt_remote *r, uint64_t off, uint64_t len, char *err);
/* several ranges in one batch; progress(ud, bytes) after each request
   (rawio.h's lt_progress_fn; nonzero stops the fetch), or NULL */
int lt_remote_ensure_many(lt_remote *r, const uint64_t *off_len, size_t n,
                          int (*progress)(void *ud, uint64_t n), void *ud, char *err);
/* An S3 object written by a multipart upload of part_size parts (5 MiB at
   least) from a local file: begin starts the upload (NULL with err);
   follow names the file while a writer still writes it front to
   back (follow_fd: a descriptor of it, which up then owns), and a thread
   sends each part as soon as the writer is past it;
   finish(path) sends the rest of the file at path (its final name) and
   completes the upload, the object appearing only then (0, or -1 with
   err); abort drops the upload. finish and abort free up; a failed finish
   aborts, so nothing of the upload is left on the server. */
typedef struct lt_s3_up lt_s3_up;
lt_s3_up *lt_s3_begin(const char *url, const lt_remote_opts *o, uint64_t part_size, char *err);
void lt_s3_follow_fd(lt_s3_up *up, int fd);
/* 1 once the upload has failed (its message in err, when not NULL), else 0 */
int lt_s3_failed(lt_s3_up *up, char *err);
int lt_s3_finish(lt_s3_up *up, const char *path, char *err);
void lt_s3_abort(lt_s3_up *up);

typedef struct lt_file {
  atomic_long refs;
  int fd;
  char *path;
  lt_remote *remote;   /* the file mirrors this object: reads fetch first */
} lt_file;
lt_file *lt_file_new(int fd, const char *path);   /* dups fd; NULL when out of fds or memory */
void lt_file_release(lt_file *f);

/* Where a deferred storage's bytes lie: a record of the file at off, stored
   or raw-deflated (a zip entry: csize bytes in the file, usize out), of which
   the first skip bytes are not the storage's (a .npy header), byte-swapped
   in units of swap bytes when swap > 1. what names it in errors. */
typedef struct lt_source {
  uint64_t off, csize, usize, skip;
  uint32_t crc;        /* of the usize bytes: checked when the whole record is
                          read and check_crc is set (or it is deflated) */
  int method;          /* 0 stored, 8 deflated */
  int check_crc;
  int swap;
  const char *what;    /* copied */
} lt_source;
/* a storage of nbytes whose bytes are src's, read on first use; retains f */
lt_storage *lt_storage_deferred(lt_file *f, size_t nbytes, const lt_source *src);
/* a host storage of a device storage's bytes, copied back on first use
   and freed by an evict: what a save writes for a CUDA tensor */
lt_storage *lt_storage_from_device(lt_storage *dev);
/* read a deferred storage's bytes if they are not in memory: 0 ok (and for
   any other storage), -1 with err ("path: entry 'x': what is wrong") */
int lt_storage_fill(lt_storage *s, char *err);
/* free a filled deferred storage's bytes: the next fill reads them again
   (changes made to them in place are lost: only for data written out) */
void lt_storage_evict(lt_storage *s);
static inline int lt_storage_pending(const lt_storage *s) { return s->deferred && !s->data; }
/* heap bytes counted by lt_storage_live_bytes, for storages made elsewhere */
void lt_storage_count(size_t add, size_t sub);
/* Write the elements of t in row-major order as dtype to through rawio's
   streamed writer (lt_write_elems, rawio.h: ws may be NULL), a deferred
   storage's bytes read first and, with ws->release, freed after. 0 ok; -1
   with err. */
struct lt_tensor;
struct lt_wstream;
int lt_write_tensor_as(int fd, const struct lt_tensor *t, lt_dtype to, const struct lt_wstream *ws,
                       char *err);

/* ---- hashing ------------------------------------------------------------ */

/* FNV-1a of n bytes, its high bits folded down: for the open-addressing
   tables of zip entry names and pickle storage keys (index with & mask) */
static inline uint64_t lt_hash_bytes(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

/* a slot of such a table: the hash, and an index into the table's items */
typedef struct lt_hslot { uint64_t h; size_t i; } lt_hslot;

/* Filling such a table from many keys met in order, whose slots are met
   at random: each key is hashed LT_AHEAD keys before its turn and its slot
   fetched then (the waits for the slots were most of indexing 20,000 zip
   entries or dict keys). lt_ahead_key(a, i, ...) for the first LT_AHEAD
   keys; then at key i, lt_ahead_hash(a, i) first, and lt_ahead_key for key
   i + LT_AHEAD (it takes i's place in the ring). */
#define LT_AHEAD 16
typedef struct lt_ahead {
  uint64_t h[LT_AHEAD];
  const char *slots;    /* the table's first slot */
  size_t size, mask;    /* bytes of a slot; slot count - 1 */
} lt_ahead;

static inline void lt_ahead_key(lt_ahead *a, size_t i, const char *k, size_t kl) {
  uint64_t h = a->h[i % LT_AHEAD] = lt_hash_bytes(k, kl);
  __builtin_prefetch(a->slots + (h & a->mask) * a->size, 1);
}

static inline uint64_t lt_ahead_hash(const lt_ahead *a, size_t i) { return a->h[i % LT_AHEAD]; }

/* the number k that n bytes spell as "k" (decimal, no sign, no leading
   zero) when k < lim, else -1: torch.save's storage keys "0", "1", ...,
   looked up by number in the pickle reader and the loader, not hashed */
static inline int64_t lt_decimal_key(const char *p, size_t n, size_t lim) {
  if (n == 0 || n > 9 || (n > 1 && p[0] == '0')) return -1;
  int64_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    k = k * 10 + (p[i] - '0');
  }
  return (uint64_t)k < lim ? k : -1;
}

/* ---- parallel reads (readjobs.c) --------------------------------------- */

/* len bytes of the file at off into dst; what names it in errors ("entry 'x'") */
typedef struct lt_readjob { void *dst; uint64_t off, len; const char *what; } lt_readjob;
/* Read every job with a few threads (the caller's included, one when the
   total is small). progress(ud, done_bytes), when not NULL, runs in the
   caller's thread only, between chunks; returning nonzero stops the reads.
   All threads have finished when this returns. 0 done; 1 stopped by
   progress; -1 with err on a read error. */
int lt_read_jobs(int fd, const lt_readjob *jobs, size_t n, int (*progress)(void *ud, uint64_t done),
                 void *ud, char *err);

/* ---- tensors ---------------------------------------------------------- */

typedef struct lt_tensor {
  lt_storage *storage;      /* NULL once freed */
  lt_dtype dtype;
  int ndim;
  int requires_grad;        /* carried through save/load only */
  int64_t offset;           /* in elements */
  int64_t shape[LT_MAX_DIMS];
  int64_t stride[LT_MAX_DIMS];
} lt_tensor;

int64_t lt_numel(const lt_tensor *t);
int lt_is_contiguous(const lt_tensor *t);
void lt_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
/* *t = a 1-D view of dtype dt over all of storage s (no reference taken) */
void lt_storage_tensor(lt_tensor *t, lt_storage *s, lt_dtype dt);
static inline char *lt_data(const lt_tensor *t) {
  return (char *)t->storage->data + t->offset * (int64_t)lt_dtypes[t->dtype].size;
}
/* checks that every element of the view lies in its storage; 0 ok */
int lt_check_extent(const lt_tensor *t, size_t storage_bytes, char *err);
/* product of dims with overflow check: -1 on overflow or negative dim */
int64_t lt_shape_numel(int ndim, const int64_t *shape);

/* Iterate over the elements of a strided view in row-major order. */
typedef struct lt_iter {
  int ndim;
  int64_t idx[LT_MAX_DIMS];
  int64_t shape[LT_MAX_DIMS];
  int64_t stride[LT_MAX_DIMS];   /* in bytes */
  char *p;
  int64_t left;
} lt_iter;
void lt_iter_init(lt_iter *it, const lt_tensor *t);
/* advance; returns the pointer to the current element then moves on */
static inline char *lt_iter_next(lt_iter *it) {
  char *cur = it->p;
  int d = it->ndim - 1;
  it->left--;
  while (d >= 0) {
    it->p += it->stride[d];
    if (++it->idx[d] < it->shape[d]) break;
    it->p -= it->stride[d] * it->shape[d];
    it->idx[d] = 0;
    d--;
  }
  return cur;
}

/* one element of isz bytes; the common sizes as fixed-size copies */
static inline void lt_copy_elem(char *dst, const char *src, size_t isz) {
  switch (isz) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, isz); break;
  }
}

/* copy src into dst (same shape), converting dtypes; handles any strides */
void lt_copy(lt_tensor *dst, const lt_tensor *src);
/* write the elements of t in row-major order into out (contiguous, t->dtype) */
void lt_gather(void *out, const lt_tensor *t);

#endif
