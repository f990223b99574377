/*
** storage.c: reference-counted byte storages (heap, file mapping, wrapped
** host memory) and read-only file mappings. Heap storages of 2 MiB and more
** are 2 MiB-aligned anonymous mappings advised for transparent huge pages:
** filling fresh memory costs mostly page faults, and huge pages cut them 512x.
** Freed big blocks up to 16 MiB are kept in a small cache (at most 32 blocks,
** 64 MiB in all) and handed out again for a request of exactly their length:
** a forward pass frees and allocates the same activation sizes over and
** over, and fresh anonymous memory costs a fault and a zeroed page each time.
** What streaming writers read and drop (deferred records) bypasses it.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include "lt.h"

#define BIG (2u << 20)
#define CACHE_SLOTS 32
#define CACHE_BLOCK ((size_t)16 << 20)   /* larger blocks are unmapped at once */
#define CACHE_BYTES ((size_t)64 << 20)

/* freed big blocks, oldest first; guarded by cache_mu (several lua_States
   in several threads share it) */
static struct { void *p; size_t len; } cache[CACHE_SLOTS];
static size_t cache_n, cache_bytes;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* a cached block of exactly len bytes, or NULL */
static void *cache_take(size_t len) {
  void *p = NULL;
  pthread_mutex_lock(&cache_mu);
  for (size_t i = cache_n; i-- > 0;) {
    if (cache[i].len == len) {
      p = cache[i].p;
      cache_bytes -= len;
      memmove(&cache[i], &cache[i + 1], (cache_n - i - 1) * sizeof cache[0]);
      cache_n--;
      break;
    }
  }
  pthread_mutex_unlock(&cache_mu);
  return p;
}

/* keep block p of len bytes for reuse, unmapping the oldest ones to make room */
static void cache_put(void *p, size_t len) {
  void *drop[CACHE_SLOTS];
  size_t dlen[CACHE_SLOTS], nd = 0;
  pthread_mutex_lock(&cache_mu);
  while (cache_n > 0 && (cache_n == CACHE_SLOTS || cache_bytes + len > CACHE_BYTES)) {
    drop[nd] = cache[0].p;
    dlen[nd++] = cache[0].len;
    cache_bytes -= cache[0].len;
    memmove(&cache[0], &cache[1], (cache_n - 1) * sizeof cache[0]);
    cache_n--;
  }
  cache[cache_n].p = p;
  cache[cache_n++].len = len;
  cache_bytes += len;
  pthread_mutex_unlock(&cache_mu);
  for (size_t i = 0; i < nd; i++) munmap(drop[i], dlen[i]);
}

static atomic_size_t live_bytes;

size_t lt_storage_live_bytes(void) { return atomic_load(&live_bytes); }

void lt_storage_count(size_t add, size_t sub) {
  if (add) atomic_fetch_add(&live_bytes, add);
  if (sub) atomic_fetch_sub(&live_bytes, sub);
}

static size_t page_round(size_t n) {
  long p = sysconf(_SC_PAGESIZE);
  size_t page = p > 0 ? (size_t)p : 4096;
  return (n + page - 1) & ~(page - 1);
}

void *lt_alloc_bytes(size_t n, int zero) {
  if (n == 0) n = 1;
  if (n >= BIG) {
    size_t len = page_round(n);
    void *c = len <= CACHE_BLOCK ? cache_take(len) : NULL;
    if (c) {
      if (zero) memset(c, 0, n);
      return c;
    }
    char *p = mmap(NULL, len + BIG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    /* trim to a 2 MiB-aligned region of len bytes */
    uintptr_t a = ((uintptr_t)p + BIG - 1) & ~(uintptr_t)(BIG - 1);
    size_t head = a - (uintptr_t)p, tail = BIG - head;
    if (head) munmap(p, head);
    if (tail) munmap((char *)a + len, tail);
#ifdef MADV_HUGEPAGE
    /* whole huge pages only: a last, partly used one would be resident in full */
    madvise((void *)a, n & ~(size_t)(BIG - 1), MADV_HUGEPAGE);
#endif
    return (void *)a;   /* anonymous memory is already zero */
  }
  void *p = NULL;
  size_t len = (n + LT_ALIGN - 1) & ~(size_t)(LT_ALIGN - 1);
  if (posix_memalign(&p, LT_ALIGN, len) != 0) return NULL;
  if (zero) memset(p, 0, n);
  return p;
}

size_t lt_huge_round(size_t n) {
  if (n < BIG / 2 || n > SIZE_MAX - BIG) return n;
  return (n + BIG - 1) & ~(size_t)(BIG - 1);
}

void lt_free_bytes(void *p, size_t n) {
  if (!p) return;
  if (n == 0) n = 1;
  if (n >= BIG) {
    size_t len = page_round(n);
    if (len <= CACHE_BLOCK) cache_put(p, len);
    else munmap(p, len);
  }
  else free(p);
}

void lt_free_bytes_now(void *p, size_t n) {
  if (!p) return;
  if (n == 0) n = 1;
  if (n >= BIG) munmap(p, page_round(n));
  else free(p);
}

static void heap_release(lt_storage *s) {
  lt_free_bytes(s->data, s->nbytes);
  atomic_fetch_sub(&live_bytes, s->nbytes);
}

static void inline_release(lt_storage *s) { atomic_fetch_sub(&live_bytes, s->nbytes); }

#define HDR (((sizeof(lt_storage) + LT_ALIGN - 1) / LT_ALIGN) * LT_ALIGN)
#define INLINE_MAX 4096   /* small storages: header and bytes in one allocation */

lt_storage *lt_storage_new(size_t nbytes, int zero) {
  if (nbytes <= INLINE_MAX) {
    /* a checkpoint of thousands of small tensors makes one malloc each, not two */
    void *p = NULL;
    if (posix_memalign(&p, LT_ALIGN, HDR + (nbytes ? nbytes : 1)) != 0) return NULL;
    lt_storage *s = p;
    memset(s, 0, sizeof *s);
    s->data = (char *)p + HDR;
    if (zero) memset(s->data, 0, nbytes);
    atomic_init(&s->refs, 1);
    s->nbytes = nbytes;
    s->release = inline_release;
    atomic_fetch_add(&live_bytes, nbytes);
    return s;
  }
  lt_storage *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->data = lt_alloc_bytes(nbytes, zero);
  if (!s->data) { free(s); return NULL; }
  atomic_init(&s->refs, 1);
  s->nbytes = nbytes;
  s->release = heap_release;
  atomic_fetch_add(&live_bytes, nbytes);
  return s;
}

lt_storage *lt_storage_wrap(void *data, size_t nbytes,
                            void (*release)(lt_storage *), void *ctx) {
  lt_storage *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  atomic_init(&s->refs, 1);
  s->data = data;
  s->nbytes = nbytes;
  s->release = release;
  s->ctx = ctx;
  return s;
}

void lt_storage_retain(lt_storage *s) { atomic_fetch_add(&s->refs, 1); }

void lt_storage_release(lt_storage *s) {
  if (!s) return;
  if (atomic_fetch_sub(&s->refs, 1) == 1) {
    if (s->release) s->release(s);
    free(s);
  }
}

/* ---- file mappings ------------------------------------------------------- */

lt_mapping *lt_map_file(int fd, size_t len, const char *path, char *err) {
  /* a file whose bytes are memory (a remote object fetched into it) */
  lt_mapping *m = lt_memfile_find(fd);
  if (m && m->len >= len) return m;
  lt_mapping_release(m);
  m = calloc(1, sizeof *m);
  if (!m) { snprintf(err, LT_MSG, "out of memory"); return NULL; }
  if (len == 0) {
    m->base = NULL;
  } else {
    /* private and writable: writes to a loaded tensor copy the page, never the file */
    m->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
      snprintf(err, LT_MSG, "cannot map file: %s", strerror(errno));
      free(m);
      return NULL;
    }
  }
  m->len = len;
  if (m->base) m->guard = lt_guard_add(m->base, len, path);
  atomic_init(&m->refs, 1);
  return m;
}

lt_mapping *lt_map_memory(size_t len, char *err) {
  lt_mapping *m = calloc(1, sizeof *m);
  if (!m) { snprintf(err, LT_MSG, "out of memory"); return NULL; }
  m->anon = 1;
  m->len = len;
  atomic_init(&m->refs, 1);
  if (len == 0) return m;
  /* aligned to a huge page (a 2 MiB margin, trimmed), so the kernel can
     back it with huge pages: a quarter of the page-fault work */
  const size_t H = (size_t)2 << 20;
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  size_t span = (len + pg - 1) / pg * pg;
  char *p = mmap(NULL, span + H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    snprintf(err, LT_MSG, "cannot allocate %zu bytes: %s", len, strerror(errno));
    free(m);
    return NULL;
  }
  char *a = (char *)(((uintptr_t)p + H - 1) / H * H);
  if (a > p) munmap(p, (size_t)(a - p));
  if (a + span < p + span + H) munmap(a + span, (size_t)(p + span + H - (a + span)));
#ifdef MADV_HUGEPAGE
  madvise(a, span, MADV_HUGEPAGE);
#endif
  m->base = a;
  return m;
}

/* ---- sets of objects by file ------------------------------------------------ */

struct lt_fileset_item { dev_t dev; ino_t ino; void *obj; };

int lt_fileset_add(lt_fileset *set, dev_t dev, ino_t ino, void *obj) {
  int rc = 0;
  pthread_mutex_lock(&set->mu);
  if (set->n == set->cap) {
    size_t c = set->cap ? set->cap * 2 : 4;
    struct lt_fileset_item *g = realloc(set->v, c * sizeof *g);
    if (g) { set->v = g; set->cap = c; }
  }
  if (set->n < set->cap) {
    set->v[set->n++] = (struct lt_fileset_item){dev, ino, obj};
    atomic_store(&set->count, set->n);
  } else {
    rc = -1;
  }
  pthread_mutex_unlock(&set->mu);
  return rc;
}

int lt_fileset_remove(lt_fileset *set, const void *obj) {
  int found = 0;
  pthread_mutex_lock(&set->mu);
  for (size_t i = 0; i < set->n; i++)
    if (set->v[i].obj == obj) { set->v[i] = set->v[--set->n]; found = 1; break; }
  atomic_store(&set->count, set->n);
  pthread_mutex_unlock(&set->mu);
  return found;
}

void *lt_fileset_find(lt_fileset *set, int fd, int (*retain)(void *obj)) {
  struct stat sb;
  if (atomic_load(&set->count) == 0 || fstat(fd, &sb)) return NULL;
  void *obj = NULL;
  pthread_mutex_lock(&set->mu);
  for (size_t i = 0; i < set->n; i++)
    if (set->v[i].dev == sb.st_dev && set->v[i].ino == sb.st_ino) {
      if (retain(set->v[i].obj)) obj = set->v[i].obj;
      break;
    }
  pthread_mutex_unlock(&set->mu);
  return obj;
}

/* ---- files whose bytes are memory --------------------------------------- */

static lt_fileset memfiles = LT_FILESET_INIT;

/* the set holds a reference of each mapping in it: never at 0 there */
static int mapping_retain(void *m) {
  atomic_fetch_add(&((lt_mapping *)m)->refs, 1);
  return 1;
}

int lt_memfile_add(int fd, lt_mapping *m) {
  struct stat sb;
  if (fstat(fd, &sb)) return -1;
  (void)mapping_retain(m);
  if (lt_fileset_add(&memfiles, sb.st_dev, sb.st_ino, m) == 0) return 0;
  lt_mapping_release(m);
  return -1;
}

void lt_memfile_remove(lt_mapping *m) {
  if (lt_fileset_remove(&memfiles, m)) lt_mapping_release(m);
}

lt_mapping *lt_memfile_find(int fd) {
  return lt_fileset_find(&memfiles, fd, mapping_retain);
}

void lt_mapping_release(lt_mapping *m) {
  if (!m) return;
  if (atomic_fetch_sub(&m->refs, 1) == 1) {
    lt_guard_remove(m->guard);   /* before the range can be mapped again */
    if (m->base) munmap(m->base, m->len);
    free(m);
  }
}

static void mapping_storage_release(lt_storage *s) { lt_mapping_release(s->ctx); }

lt_storage *lt_storage_from_mapping(lt_mapping *m, size_t off, size_t n) {
  lt_storage *s = lt_storage_wrap((char *)m->base + off, n, mapping_storage_release, m);
  if (!s) return NULL;
  atomic_fetch_add(&m->refs, 1);
  s->mapped = !m->anon;
  return s;
}
