/*
** rawio.c: the raw I/O of the C core (contracts in rawio.h). Every read and
** write loop of the core is here: whole preads and writes (EINTR retried,
** short counts continued, at most 1 GiB per system call), byte swapping,
** crc32, the reader of a stored or raw-deflated range of a file (zip
** entries of .pt and .npz, deferred storages), and the streamed tensor
** writer with its one cast loop (lt_cast), which safetensors, .npy,
** TorchSharp, the .npz members and the .pt records all write through.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <fcntl.h>
#include <zlib.h>
#include "rawio.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LT_CLMUL 1
#endif

#define MAX_IO ((size_t)1 << 30)   /* bytes per read or write call */

/* ---- whole reads and writes ------------------------------------------------ */

int lt_pread_all(int fd, void *buf, size_t n, uint64_t off, size_t *got) {
  char *p = buf;
  size_t done = 0;
  int rc = 0;
  lt_mapping *m = lt_memfile_find(fd);   /* a file whose bytes are memory (remote.c) */
  if (m) {
    size_t k = off >= m->len ? 0 : m->len - off < n ? (size_t)(m->len - off) : n;
    if (k) memcpy(buf, (const char *)m->base + off, k);
    lt_mapping_release(m);
    if (got) *got = k;
    if (k == n) return 0;
    errno = 0;   /* the end of the file */
    return -1;
  }
  while (done < n) {
    ssize_t r = pread(fd, p + done, n - done > MAX_IO ? MAX_IO : n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) { if (r == 0) errno = 0; rc = -1; break; }
    done += (size_t)r;
  }
  if (got) *got = done;
  return rc;
}

int lt_pread_full(int fd, void *buf, size_t n, uint64_t off, char *err) {
  size_t got;
  if (lt_pread_all(fd, buf, n, off, &got) == 0) return 0;
  if (errno)
    snprintf(err, LT_MSG, "read error at byte %llu: %s", (unsigned long long)(off + got), strerror(errno));
  else
    snprintf(err, LT_MSG, "truncated: expected %zu bytes at byte %llu, found %zu", n,
             (unsigned long long)off, got);
  return -1;
}

/* the stops (lt_write_stop_add): few, rare, looked at only while one is set */
typedef struct wstop { int fd; dev_t dev; ino_t ino; lt_write_stop_fn fn; void *ud; } wstop;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static wstop stops[8];
static atomic_int nstops;

int lt_write_stop_add(int fd, lt_write_stop_fn stopped, void *ud) {
  struct stat sb;
  if (fstat(fd, &sb)) return -1;
  int rc = -1;
  pthread_mutex_lock(&stop_mu);
  for (int i = 0; i < 8; i++)
    if (!stops[i].fn) {
      stops[i] = (wstop){fd, sb.st_dev, sb.st_ino, stopped, ud};
      atomic_fetch_add(&nstops, 1);
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&stop_mu);
  return rc;
}

void lt_write_stop_remove(void *ud) {
  pthread_mutex_lock(&stop_mu);
  for (int i = 0; i < 8; i++)
    if (stops[i].fn && stops[i].ud == ud) {
      stops[i].fn = NULL;
      atomic_fetch_sub(&nstops, 1);
    }
  pthread_mutex_unlock(&stop_mu);
}

/* 1 (errno ECANCELED) when a stop on fd says its writes end */
static int write_stopped(int fd) {
  if (!atomic_load_explicit(&nstops, memory_order_relaxed)) return 0;
  int stop = 0;
  struct stat sb;
  pthread_mutex_lock(&stop_mu);
  for (int i = 0; i < 8 && !stop; i++)
    if (stops[i].fn && stops[i].fd == fd && !fstat(fd, &sb) && sb.st_dev == stops[i].dev &&
        sb.st_ino == stops[i].ino)
      stop = stops[i].fn(stops[i].ud);
  pthread_mutex_unlock(&stop_mu);
  if (stop) errno = ECANCELED;
  return stop;
}

/* write from a file mapping cut short under it (write(2) fails with EFAULT
   where a read would raise SIGBUS): through a buffer, whose copy faults as
   any read of the mapping does (mapguard.c), so the save fails as an op
   would. -1 (errno EFAULT) when p is not in a mapping of ltorch's. */
static ssize_t write_bounced(int fd, const char *p, size_t n) {
  char buf[16384];
  if (n > sizeof buf) n = sizeof buf;
  if (lt_mapguard_copy(buf, p, n)) { errno = EFAULT; return -1; }
  return write(fd, buf, n);
}

int lt_write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  if (write_stopped(fd)) return -1;
  while (n) {
    ssize_t w = write(fd, p, n > MAX_IO ? MAX_IO : n);
    if (w < 0 && errno == EFAULT) w = write_bounced(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

#define PREALLOC_MIN ((uint64_t)1 << 20)

void lt_preallocate(int fd, uint64_t n) {
  if (n < PREALLOC_MIN || n > (uint64_t)INT64_MAX) return;
  struct statfs sf;
  if (fstatfs(fd, &sf)) return;
  /* ext4 and XFS: real extents; tmpfs would allocate (and zero) pages,
     btrfs's copy-on-write makes preallocation a cost */
  if (sf.f_type != 0xEF53 && sf.f_type != 0x58465342) return;
  int rc;
  do rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)n); while (rc && errno == EINTR);
}

int lt_write2(int fd, const void *a, size_t an, const void *b, size_t bn) {
  const char *pa = a, *pb = b;
  if (write_stopped(fd)) return -1;
  while (an && bn) {
    struct iovec v[2] = {{(void *)(uintptr_t)pa, an}, {(void *)(uintptr_t)pb, bn > MAX_IO ? MAX_IO : bn}};
    ssize_t w = writev(fd, v, 2);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EFAULT) break;   /* lt_write_all bounces the mapped bytes */
    if (w < 0) return -1;
    size_t k = (size_t)w;
    if (k >= an) { k -= an; pa += an; an = 0; pb += k; bn -= k; }
    else { pa += k; an -= k; }
  }
  if (an && lt_write_all(fd, pa, an)) return -1;
  return bn ? lt_write_all(fd, pb, bn) : 0;
}

int lt_write_full(int fd, const void *buf, size_t n, char *err) {
  if (lt_write_all(fd, buf, n) == 0) return 0;
  snprintf(err, LT_MSG, "write error: %s", strerror(errno));
  return -1;
}

void lt_byteswap(void *p, size_t n, size_t sz) {
  unsigned char *b = p;
  if (sz < 2) return;
  for (size_t i = 0; i < n; i++, b += sz)
    for (size_t j = 0; j < sz / 2; j++) {
      unsigned char c = b[j];
      b[j] = b[sz - 1 - j];
      b[sz - 1 - j] = c;
    }
}

/*
** crc32 of the zip records. zlib's table-driven crc32 runs at ~1-2 GB/s,
** which is a quarter of a save's time; on x86-64 with PCLMULQDQ the folding
** method of Gopal et al., "Fast CRC Computation for Generic Polynomials
** Using PCLMULQDQ Instruction" (Intel, 2009), as in Chromium's zlib
** crc32_simd.c, runs at memory speed. Same results as zlib's crc32.
*/
#ifdef LT_CLMUL
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc_fold(const unsigned char *buf, size_t len, uint32_t crc) {
  /* len >= 64 and a multiple of 16; crc in the non-inverted domain */
  static const uint64_t _Alignas(16) k1k2[] = {0x0154442bd4, 0x01c6e41596};
  static const uint64_t _Alignas(16) k3k4[] = {0x01751997d0, 0x00ccaa009e};
  static const uint64_t _Alignas(16) k5k0[] = {0x0163cd6124, 0x0000000000};
  static const uint64_t _Alignas(16) poly[] = {0x01db710641, 0x01f7011641};
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
  x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
  x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
  x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
  x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
  x0 = _mm_load_si128((const __m128i *)k1k2);
  buf += 64; len -= 64;
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    y6 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    y7 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    y8 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    buf += 64; len -= 64;
  }
  x0 = _mm_load_si128((const __m128i *)k3k4);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
  while (len >= 16) {
    x2 = _mm_loadu_si128((const __m128i *)buf);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    buf += 16; len -= 16;
  }
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64((const __m128i *)k5k0);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_load_si128((const __m128i *)poly);
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

#ifdef LT_CLMUL
static pthread_once_t clmul_once = PTHREAD_ONCE_INIT;
static int clmul_have;   /* written once, in clmul_check, before any read */
static void clmul_check(void) {
  __builtin_cpu_init();
  clmul_have = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
#endif

uint32_t lt_crc32(uint32_t crc, const void *data, size_t n) {
  const unsigned char *p = data;
#ifdef LT_CLMUL
  /* the CPU check runs once, under pthread_once: threads may make their
     first crc32 together (parallel loads) */
  pthread_once(&clmul_once, clmul_check);
  if (clmul_have && n >= 64) {
    size_t m = n & ~(size_t)15;
    crc = ~crc_fold(p, m, ~crc);
    p += m; n -= m;
  }
#endif
  return (uint32_t)crc32_z(crc, p, n);
}

/* ---- range reads -------------------------------------------------------------- */

#define READ_CHUNK ((size_t)64 << 20)   /* stored bytes read at once (crc, progress between) */
#define IN_CHUNK ((size_t)256 << 10)    /* compressed bytes read at once */
#define SKIP_CHUNK ((size_t)64 << 10)   /* inflated bytes before the range, thrown away */

static int stopped(char *err) {
  snprintf(err, LT_MSG, "stopped by the progress callback");
  return -1;
}

static int read_failed(const lt_range *r, size_t n, uint64_t off, char *err) {
  snprintf(err, LT_MSG, "entry '%s': cannot read %zu bytes at offset %llu: %s", r->name, n,
           (unsigned long long)off, errno ? strerror(errno) : "the file ends first");
  return -1;
}

static int crc_mismatch(const lt_range *r, uint32_t found, char *err) {
  snprintf(err, LT_MSG, "entry '%s': crc32 mismatch (expected %08x, found %08x)", r->name, r->crc,
           (unsigned)found);
  return -1;
}

/* a stored range: read in chunks, the crc checked over the whole record */
static int read_stored(int fd, const lt_range *r, uint64_t skip, void *dst, uint64_t n, int check_crc,
                       lt_progress_fn progress, void *ud, char *err) {
  check_crc = check_crc && skip == 0 && n == r->usize;
  uint32_t crc = 0;
  for (uint64_t done = 0; done < n;) {
    size_t k = n - done > READ_CHUNK ? READ_CHUNK : (size_t)(n - done);
    uint64_t off = r->off + skip + done;
    if (lt_pread_all(fd, (char *)dst + done, k, off, NULL)) return read_failed(r, k, off, err);
    if (check_crc) crc = lt_crc32(crc, (const char *)dst + done, k);
    done += k;
    if (progress && progress(ud, k)) return stopped(err);
  }
  if (check_crc && r->crc != 0 && crc != r->crc) return crc_mismatch(r, crc, err);
  return 0;
}

/* a deflated range: the compressed bytes streamed through inflate; the
   first skip bytes go to a scratch buffer, the next n to dst; read to the
   end, the stream's length and crc are checked */
static int read_deflated(int fd, const lt_range *r, uint64_t skip, void *dst, uint64_t n,
                         lt_progress_fn progress, void *ud, char *err) {
  uint64_t end = skip + n;
  int whole = end == r->usize;
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -MAX_WBITS) != Z_OK) { snprintf(err, LT_MSG, "inflate init failed"); return -1; }
  unsigned char *in = malloc(IN_CHUNK), *scratch = skip ? malloc(SKIP_CHUNK) : NULL;
  if (!in || (skip && !scratch)) {
    inflateEnd(&s); free(in); free(scratch);
    snprintf(err, LT_MSG, "out of memory");
    return -1;
  }
  uint64_t in_done = 0, out_done = 0;
  uint32_t crc = 0;
  int rc = Z_OK, failed = 0;
  while (rc != Z_STREAM_END && (whole || out_done < end)) {
    if (s.avail_in == 0) {
      size_t k = r->csize - in_done > IN_CHUNK ? IN_CHUNK : (size_t)(r->csize - in_done);
      if (k == 0) break;
      if (lt_pread_all(fd, in, k, r->off + in_done, NULL)) { failed = read_failed(r, k, r->off + in_done, err); break; }
      in_done += k;
      s.next_in = in;
      s.avail_in = (uInt)k;
    }
    unsigned char sink, *o;
    uint64_t room;
    if (out_done < skip) { o = scratch; room = skip - out_done > SKIP_CHUNK ? SKIP_CHUNK : skip - out_done; }
    else if (out_done < end) { o = (unsigned char *)dst + (out_done - skip); room = end - out_done; }
    else { o = &sink; room = 1; }   /* past the end: detect overlong data */
    if (room > (1u << 30)) room = 1u << 30;
    s.next_out = o;
    s.avail_out = (uInt)room;
    rc = inflate(&s, Z_NO_FLUSH);
    uint64_t got = room - s.avail_out;
    if (out_done >= end && got) { out_done++; break; }
    if (got) crc = lt_crc32(crc, o, (size_t)got);
    out_done += got;
    if (got && o != scratch && progress && progress(ud, got)) { failed = stopped(err); break; }
    if (rc != Z_OK && rc != Z_STREAM_END) break;
  }
  inflateEnd(&s);
  free(in);
  free(scratch);
  if (failed) return -1;
  if (whole ? (rc != Z_STREAM_END || out_done != r->usize) : out_done != end) {
    snprintf(err, LT_MSG, "entry '%s': corrupt deflated data (expected %llu bytes)", r->name,
             (unsigned long long)r->usize);
    return -1;
  }
  if (whole && crc != r->crc) return crc_mismatch(r, crc, err);
  return 0;
}

int lt_read_range(int fd, const lt_range *r, uint64_t skip, void *dst, uint64_t n, int check_crc,
                  lt_progress_fn progress, void *ud, char *err) {
  if (skip > r->usize || n > r->usize - skip) {
    snprintf(err, LT_MSG, "entry '%s': bytes %llu to %llu lie outside its %llu bytes", r->name,
             (unsigned long long)skip, (unsigned long long)(skip + n), (unsigned long long)r->usize);
    return -1;
  }
  if (r->method == 0) return read_stored(fd, r, skip, dst, n, check_crc, progress, ud, err);
  return read_deflated(fd, r, skip, dst, n, progress, ud, err);
}

/* ---- streamed tensor writes --------------------------------------------------- */

const char *lt_drop_pages(const lt_storage *s, const char *from, const char *to) {
  if (!s->mapped || to <= from) return from;
  long ps = sysconf(_SC_PAGESIZE);
  uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
  uintptr_t lo = ((uintptr_t)from + page - 1) / page * page, hi = (uintptr_t)to / page * page;
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);   /* advice: failure is harmless */
  return hi > (uintptr_t)from ? (const char *)hi : from;
}

int lt_cast_init(lt_cast *c, const lt_tensor *t, lt_dtype to, int release, char *scratch, size_t cap,
                 char *err) {
  memset(c, 0, sizeof *c);
  c->t = t;
  c->to = to;
  c->sz = lt_dtypes[t->dtype].size;
  c->osz = lt_dtypes[to].size;
  c->numel = lt_numel(t);
  c->contig = lt_is_contiguous(t);
  c->release = release && c->contig;
  if (c->numel == 0) return 0;
  size_t wide = c->sz > c->osz ? c->sz : c->osz;
  c->m = (scratch ? cap : LT_STREAM_CHUNK) / wide;
  if (c->contig) c->src = c->dropped = lt_data(t);
  else lt_iter_init(&c->it, t);
  if (scratch) {
    c->buf = scratch;
    c->gbuf = scratch + cap;
    return 0;
  }
  if ((uint64_t)c->numel < c->m) c->m = (size_t)c->numel;   /* small tensors: small buffers */
  c->own = 1;
  if (to != t->dtype && !(c->buf = malloc(c->m * c->osz))) goto nomem;
  if (!c->contig && !(c->gbuf = malloc(c->m * c->sz))) goto nomem;
  return 0;
nomem:
  lt_cast_free(c);
  snprintf(err, LT_MSG, "not enough memory");
  return -1;
}

size_t lt_cast_next(lt_cast *c, const char **out) {
  /* the chunk given last has been consumed: its whole pages can go */
  if (c->release && c->src)
    c->dropped = lt_drop_pages(c->t->storage, c->dropped, c->src + (size_t)c->el * c->sz);
  if (c->el >= c->numel) return 0;
  size_t k = (size_t)(c->numel - c->el) > c->m ? c->m : (size_t)(c->numel - c->el);
  const char *from;
  if (c->contig) from = c->src + (size_t)c->el * c->sz;
  else {
    for (size_t j = 0; j < k; j++) memcpy(c->gbuf + j * c->sz, lt_iter_next(&c->it), c->sz);
    from = c->gbuf;
  }
  if (c->to != c->t->dtype) { lt_convert(c->to, c->buf, c->t->dtype, from, k); from = c->buf; }
  c->el += (int64_t)k;
  *out = from;
  return k * c->osz;
}

void lt_cast_free(lt_cast *c) {
  if (c->own) { free(c->buf); free(c->gbuf); }
  c->buf = c->gbuf = NULL;
  c->own = 0;
}

int lt_write_elems(int fd, const lt_tensor *t, lt_dtype to, const lt_wstream *ws, char *err) {
  int64_t numel = lt_numel(t);
  if (numel == 0) return 0;
  if (ws && !ws->progress && !ws->release) ws = NULL;   /* one write when nothing listens */
  if (!ws && to == t->dtype && lt_is_contiguous(t))
    return lt_write_full(fd, lt_data(t), (size_t)numel * lt_dtypes[to].size, err);
  lt_cast c;
  if (lt_cast_init(&c, t, to, ws && ws->release, NULL, 0, err)) return -1;
  const char *p;
  size_t k;
  int rc = 0;
  while (!rc && (k = lt_cast_next(&c, &p))) {
    rc = lt_write_full(fd, p, k, err);
    if (!rc && ws && ws->progress && ws->progress(ws->ud, k)) rc = stopped(err);
  }
  lt_cast_free(&c);
  return rc;
}
