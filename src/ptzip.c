/*
** ptzip.c: the zip container of PyTorch checkpoints (torch.save's
** PyTorchStreamWriter), and the reader of NumPy's .npz archives.
**
** Why not libzip: torch.save aligns every record's data to 64 bytes with an
** "FB" extra field in the local header, and ltorch's mmap loading needs each
** record's absolute data offset to point tensors into the mapping. libzip
** can neither write that padding nor report data offsets, so this file reads
** and writes the (small) subset of zip that PyTorch uses itself. rawio.c
** does the reads, writes, crc32 and inflating.
**
** Layout written (and the subset read), per record:
**   1. local header: PK\3\4, version 0, flags 0x0808 (data descriptor, UTF-8
**      name; 0x0800 for an empty record), method 0, time/date 0, crc/sizes 0,
**      name, then (when the size or the header's offset needs ZIP64) a ZIP64
**      extra field (id 1, 16 bytes of sizes and/or 8 of offset, zeros), then
**      the extra field "FB" (id 0x4246) of 'Z' bytes padding the data to the
**      next multiple of 64 bytes from the start of the file
**   2. data (stored)
**   3. data descriptor PK\7\8 crc u32 csize u32 usize (not for empty records;
**      u64 sizes when a size needs ZIP64)
** then the central directory (PK\1\2 per record, a ZIP64 extra field when an
** offset or size needs one), the ZIP64 end record (PK\6\6), its locator
** (PK\6\7) and the end record (PK\5\6).
**
** The reader locates records through the central directory only (sizes in
** local headers are 0 because of the data descriptor), honours ZIP64 fields,
** and checks every offset and size against the file before use.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include "ptzip.h"
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void pz_close(pz_reader *z) {
  if (z->mem) lt_free_bytes(z->mem, z->mem_bytes);
  else { free(z->names); free(z->entries); free(z->hash); }
  z->mem = NULL;
  z->names = NULL;
  z->entries = NULL; z->hash = NULL; z->n = 0;
}

#define FAIL(...) do { snprintf(err, LT_MSG, __VA_ARGS__); goto fail; } while (0)

#define SPARSE ((uint64_t)64 << 10)   /* mean record spacing above which headers are read */
#define MANY 4096                      /* entries from which the directory takes huge pages */

/* the end records (1, 2): the directory's entry count, size and offset,
   checked to lie in the file. 0 ok; -1 with err */
static int end_records(const unsigned char *base, uint64_t fsize, uint64_t *count_out,
                       uint64_t *cd_size_out, uint64_t *cd_off_out, char *err) {
  if (fsize < 22) FAIL("not a zip archive: file of %llu bytes has no end record",
                       (unsigned long long)fsize);
  /* 1. the end record: within the last 22 + 65535 bytes */
  size_t tlen = fsize < 22 + 65535 ? (size_t)fsize : 22 + 65535;
  uint64_t tstart = fsize - tlen;
  const unsigned char *tl = base + tstart;
  ptrdiff_t eo = -1;
  for (ptrdiff_t i = (ptrdiff_t)tlen - 22; i >= 0; i--)
    if (tl[i] == 'P' && rd32(tl + i) == 0x06054b50 &&
        (size_t)i + 22 + rd16(tl + i + 20) == tlen) { eo = i; break; }
  if (eo < 0) FAIL("no zip end of central directory record (truncated, or not a zip archive)");
  const unsigned char *e = tl + eo;
  uint64_t eocd_pos = tstart + (uint64_t)eo;
  if (rd16(e + 4) != 0 || rd16(e + 6) != 0) FAIL("multi-disk archives are not supported");
  uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
  uint64_t cd_end_limit = eocd_pos;
  /* 2. the ZIP64 locator just before it, and the ZIP64 end record */
  if (eocd_pos >= 20 && eo >= 20 && rd32(e - 20) == 0x07064b50) {
    uint64_t z64 = rd64(e - 20 + 8);
    if (z64 > eocd_pos - 20 || eocd_pos - 20 - z64 < 56)
      FAIL("zip64 end record offset %llu is out of bounds", (unsigned long long)z64);
    const unsigned char *r = base + z64;
    if (rd32(r) != 0x06064b50) FAIL("bad zip64 end record signature at offset %llu", (unsigned long long)z64);
    count = rd64(r + 32);
    if (rd64(r + 24) != count) FAIL("zip64 end record: entry counts disagree");
    cd_size = rd64(r + 40);
    cd_off = rd64(r + 48);
    cd_end_limit = z64;
  } else if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    FAIL("end record needs a zip64 end record, which is missing");
  }
  /* no fixed entry limit (the writer has none): the count is bounded by the
     central directory, 46 bytes an entry at least, which lies in the file */
  if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off)
    FAIL("central directory (offset %llu, %llu bytes) lies outside the file",
         (unsigned long long)cd_off, (unsigned long long)cd_size);
  if (count > cd_size / 46) FAIL("central directory of %llu bytes is too small for %llu entries",
                                 (unsigned long long)cd_size, (unsigned long long)count);
  if (count >= UINT32_MAX / 2) FAIL("%llu entries exceed the limit of %u", (unsigned long long)count, UINT32_MAX / 2);
  *count_out = count;
  *cd_size_out = cd_size;
  *cd_off_out = cd_off;
  return 0;
fail:
  return -1;
}

/* a central entry's ZIP64 extra field (id 1), within the extra fields
   [x, xe): the values present, in order usize, csize, offset, replace
   those that are 0xFFFFFFFF. 0 ok; -1: an overrun (what says which) */
static int zip64_fields(const unsigned char *x, const unsigned char *xe, uint64_t *usize, uint64_t *csize,
                        uint64_t *loff, const char **what) {
  while (xe - x >= 4) {
    unsigned id = rd16(x), len = rd16(x + 2);
    if ((size_t)(xe - x - 4) < len) { *what = "extra field overruns"; return -1; }
    if (id == 1) {
      const unsigned char *q = x + 4, *qe = q + len;
      *what = "short zip64 field";
      if (*usize == 0xFFFFFFFF) { if (qe - q < 8) return -1; *usize = rd64(q); q += 8; }
      if (*csize == 0xFFFFFFFF) { if (qe - q < 8) return -1; *csize = rd64(q); q += 8; }
      if (*loff == 0xFFFFFFFF) { if (qe - q < 8) return -1; *loff = rd64(q); }
    }
    x += 4 + len;
  }
  return 0;
}

int pz_peek_first(const void *map, uint64_t fsize, pz_entry *e, uint64_t *count) {
  const unsigned char *base = map;
  char err[LT_MSG];
  uint64_t cd_size, cd_off;
  if (end_records(base, fsize, count, &cd_size, &cd_off, err) || *count == 0 || cd_size < 46) return -1;
  const unsigned char *c = base + cd_off;
  size_t nl = rd16(c + 28), xl = rd16(c + 30);
  if (rd32(c) != 0x02014b50 || nl == 0 || nl > PZ_MAX_NAME || cd_size - 46 < nl + xl) return -1;
  uint64_t usize = rd32(c + 24), csize = rd32(c + 20), loff = rd32(c + 42);
  const char *what;
  if (zip64_fields(c + 46 + nl, c + 46 + nl + xl, &usize, &csize, &loff, &what)) return -1;
  if (loff > cd_off || cd_off - loff < 30 + nl || rd32(base + loff) != 0x04034b50) return -1;
  uint64_t doff = loff + 30 + rd16(base + loff + 26) + rd16(base + loff + 28);
  if (doff > cd_off || usize > cd_off - doff) return -1;
  memcpy(e->name, c + 46, nl);
  e->name[nl] = 0;
  e->name_len = nl;
  e->method = rd16(c + 10);
  e->crc = rd32(c + 16);
  e->csize = csize;
  e->usize = usize;
  e->data_off = doff;
  return 0;
}

int pz_open(pz_reader *z, int fd, uint64_t fsize, const void *map, char *err) {
  const unsigned char *base = map;
  memset(z, 0, sizeof *z);
  z->fd = fd;
  z->file_size = fsize;
  uint64_t count, cd_size, cd_off;
  if (end_records(base, fsize, &count, &cd_size, &cd_off, err)) goto fail;
  /* 3. the central directory */
  const unsigned char *cdp = base + cd_off;
  /* Local headers are read from the mapping when records are small and their
     headers close together (one fault maps many), and with pread when they
     are far apart, so an mmap open keeps no pages of tensor data resident. */
  int sparse = count && cd_off / count >= SPARSE;
  z->sparse = sparse;
  z->in_order = 1;
  unsigned char hdr[30 + PZ_MAX_NAME];
  z->hcap = 16;
  while (z->hcap <= 2 * count) z->hcap *= 2;
  size_t ebytes = (count ? count : 1) * sizeof *z->entries, hbytes = z->hcap * sizeof *z->hash;
  if (count >= MANY) {
    /* a big directory: the index, the entries and the names (in the order
       they are filled) in one block of huge pages. 20,000 entries touch
       1.9 MB of it: one fault, not 450 of 4 KiB */
    z->mem_bytes = lt_huge_round(hbytes + ebytes + (size_t)cd_size + 1);
    if (!(z->mem = lt_alloc_bytes(z->mem_bytes, 0))) FAIL("out of memory");
    z->hash = z->mem;
    memset(z->hash, 0, hbytes);
    z->entries = (pz_entry *)((char *)z->mem + hbytes);
    z->names = (char *)z->entries + ebytes;
  } else {
    z->entries = malloc(ebytes);
    z->hash = calloc(z->hcap, sizeof *z->hash);
    z->names = malloc(cd_size + 1);
    if (!z->entries || !z->hash || !z->names) FAIL("out of memory");
  }
  size_t names_used = 0;
  size_t p = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (cd_size - p < 46 || rd32(cdp + p) != 0x02014b50)
      FAIL("central directory entry %llu: bad signature", (unsigned long long)i);
    const unsigned char *c = cdp + p;
    unsigned flags = rd16(c + 8), method = rd16(c + 10);
    size_t nl = rd16(c + 28), xl = rd16(c + 30), cl = rd16(c + 32);
    if (cd_size - p - 46 < nl + xl + cl) FAIL("central directory entry %llu overruns the directory", (unsigned long long)i);
    pz_entry *en = &z->entries[z->n];
    en->name = z->names + names_used;     /* names fit: each is < its 46-byte record */
    names_used += nl + 1;
    memcpy(en->name, c + 46, nl);
    en->name[nl] = 0;
    en->name_len = nl;
    z->n++;
    if (nl == 0 || memchr(en->name, 0, nl)) FAIL("central directory entry %llu: bad name", (unsigned long long)i);
    if (flags & 1) FAIL("entry '%s': encrypted entries are not supported", en->name);
    if (method != 0 && method != 8) FAIL("entry '%s': compression method %u is not supported", en->name, method);
    en->method = (int)method;
    en->crc = rd32(c + 16);
    en->csize = rd32(c + 20);
    en->usize = rd32(c + 24);
    uint64_t loff = rd32(c + 42);
    const char *what;
    if (zip64_fields(c + 46 + nl, c + 46 + nl + xl, &en->usize, &en->csize, &loff, &what))
      FAIL("entry '%s': %s", en->name, what);
    if (method == 8 && en->usize / 1032 > en->csize + 1)   /* deflate's best ratio is 1032:1 */
      FAIL("entry '%s': %llu bytes cannot inflate to %llu (a zip bomb?)", en->name,
           (unsigned long long)en->csize, (unsigned long long)en->usize);
    if (method == 0 && en->csize != en->usize)
      FAIL("entry '%s': stored entry with compressed size %llu but size %llu", en->name,
           (unsigned long long)en->csize, (unsigned long long)en->usize);
    /* the local header (one read with the name): name must match, data must
       lie before the directory */
    if (nl > PZ_MAX_NAME) FAIL("entry name of %zu bytes exceeds the limit of %d", nl, PZ_MAX_NAME);
    if (loff > cd_off || cd_off - loff < 30 + nl)
      FAIL("entry '%s': bad local header at offset %llu", en->name, (unsigned long long)loff);
    /* headers are read through a window of the file: one read serves the
       many headers of an archive of small records */
    const unsigned char *lh = base + loff;
    if (sparse) {   /* one small read: touching the mapping would map 64 KiB around it */
      if (lt_pread_all(fd, hdr, 30 + nl, loff, NULL)) FAIL("entry '%s': cannot read its local header: %s", en->name,
                                                  errno ? strerror(errno) : "the file ends first");
      lh = hdr;
    }
    if (rd32(lh) != 0x04034b50)
      FAIL("entry '%s': bad local header at offset %llu", en->name, (unsigned long long)loff);
    size_t lnl = rd16(lh + 26), lxl = rd16(lh + 28);
    if (lnl != nl) FAIL("entry '%s': local header name length %zu, central %zu", en->name, lnl, nl);
    uint64_t doff = loff + 30 + lnl + lxl;
    if (doff > cd_off || en->csize > cd_off - doff)
      FAIL("entry '%s': data (offset %llu, %llu bytes) overruns the central directory at %llu",
           en->name, (unsigned long long)doff, (unsigned long long)en->csize, (unsigned long long)cd_off);
    if (memcmp(lh + 30, en->name, nl))
      FAIL("entry '%s': local header name differs from the central directory", en->name);
    unsigned lflags = rd16(lh + 6);
    uint32_t lcs = rd32(lh + 18), lus = rd32(lh + 22);
    if (!(lflags & 8) && lcs != 0xFFFFFFFF && lus != 0xFFFFFFFF &&
        (lcs != en->csize || lus != en->usize))
      FAIL("entry '%s': local header sizes %u/%u differ from the central directory's %llu/%llu",
           en->name, lcs, lus, (unsigned long long)en->csize, (unsigned long long)en->usize);
    en->data_off = doff;
    if (z->n > 1 && doff < en[-1].data_off) z->in_order = 0;
    p += 46 + nl + xl + cl;
  }
  /* index by name; a repeated name is an error. Slots fetched ahead (lt.h) */
  lt_ahead ah = {.slots = (const char *)z->hash, .size = sizeof *z->hash, .mask = z->hcap - 1};
  for (size_t i = 0; i < LT_AHEAD && i < z->n; i++) lt_ahead_key(&ah, i, z->entries[i].name, z->entries[i].name_len);
  for (size_t i = 0; i < z->n; i++) {
    const pz_entry *x = &z->entries[i];
    uint64_t h = lt_ahead_hash(&ah, i);
    if (i + LT_AHEAD < z->n) lt_ahead_key(&ah, i + LT_AHEAD, x[LT_AHEAD].name, x[LT_AHEAD].name_len);
    uint32_t hh = (uint32_t)(h >> 32);
    size_t j = h & (z->hcap - 1);
    while (z->hash[j].i) {
      const pz_entry *o = &z->entries[z->hash[j].i - 1];
      if (z->hash[j].h == hh && o->name_len == x->name_len && !memcmp(o->name, x->name, x->name_len))
        FAIL("duplicate entry '%s'", x->name);
      j = (j + 1) & (z->hcap - 1);
    }
    z->hash[j].h = hh;
    z->hash[j].i = (uint32_t)i + 1;
  }
  return 0;
fail:
  pz_close(z);
  return -1;
}

const pz_entry *pz_find(const pz_reader *z, const char *name) {
  if (!z->hash) return NULL;
  size_t n = strlen(name);
  uint64_t h = lt_hash_bytes(name, n);
  uint32_t hh = (uint32_t)(h >> 32);
  size_t j = h & (z->hcap - 1);
  while (z->hash[j].i) {
    if (z->hash[j].h == hh) {   /* the hash first: a miss never touches an entry */
      const pz_entry *e = &z->entries[z->hash[j].i - 1];
      if (e->name_len == n && !memcmp(e->name, name, n)) return e;
    }
    j = (j + 1) & (z->hcap - 1);
  }
  return NULL;
}

/* an entry's bytes as rawio's range reader sees them */
static lt_range entry_range(const pz_entry *e) {
  lt_range r = {e->name, e->data_off, e->csize, e->usize, e->crc, e->method};
  return r;
}

int pz_read(const pz_reader *z, const pz_entry *e, void *dst, int check_crc,
            lt_progress_fn progress, void *ud, char *err) {
  return pz_read_range(z->fd, e, 0, dst, e->usize, check_crc, progress, ud, err);
}

int pz_read_range(int fd, const pz_entry *e, uint64_t skip, void *dst, uint64_t n, int check_crc,
                  lt_progress_fn progress, void *ud, char *err) {
  lt_range r = entry_range(e);
  return lt_read_range(fd, &r, skip, dst, n, check_crc, progress, ud, err);
}

/* ---- writer -------------------------------------------------------------- */

static void wr16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, v & 0xFFFF); wr16(p + 2, v >> 16); }
static void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

void pz_writer_init(pz_writer *w, int fd) { memset(w, 0, sizeof *w); w->fd = fd; }

void pz_writer_free(pz_writer *w) {
  free(w->entries);
  lt_buf_free(&w->names);
  free(w->buf);
  w->entries = NULL; w->n = w->cap = 0;
  w->buf = NULL; w->bn = 0;
}

#define WBUF ((size_t)256 << 10)   /* the gathering buffer */
#define DIRECT ((size_t)64 << 10)  /* pieces this big go straight to write(2) */
#define CRC_PAR ((size_t)1 << 20)  /* pieces this big: crc and write at once (pool.c) */

static int write_failed(pz_writer *w, char *err) {
  snprintf(err, LT_MSG, "write failed: %s", strerror(errno));
  w->failed = 1;
  return -1;
}

/* the buffered bytes, then n at p (n may be 0), in one writev */
static int flush_with(pz_writer *w, const void *p, size_t n, char *err) {
  if (lt_write2(w->fd, w->buf, w->bn, p, n)) { w->bn = 0; return write_failed(w, err); }
  w->bn = 0;
  return 0;
}

/* n bytes at p, at the archive's end: small pieces gathered in w->buf
   (headers, descriptors, the central directory, small records), big ones
   written with what is gathered before them in one system call */
static int write_all(pz_writer *w, const void *buf, size_t n, char *err) {
  if (!w->buf && !(w->buf = malloc(WBUF))) {   /* no buffer: every piece a write */
    if (lt_write_all(w->fd, buf, n)) return write_failed(w, err);
    w->pos += n;
    return 0;
  }
  w->pos += n;
  if (n <= WBUF - w->bn) {
    memcpy(w->buf + w->bn, buf, n);
    w->bn += n;
    return 0;
  }
  if (n >= DIRECT) return flush_with(w, buf, n, err);
  if (flush_with(w, NULL, 0, err)) return -1;
  memcpy(w->buf, buf, n);
  w->bn = n;
  return 0;
}

int pz_record_begin(pz_writer *w, const char *name, uint64_t size, char *err) {
  size_t nl = strlen(name);
  if (nl == 0 || nl > PZ_MAX_NAME) { snprintf(err, LT_MSG, "bad entry name"); return -1; }
  if (w->n == w->cap) {
    size_t nc = w->cap ? w->cap * 2 : 16;
    pz_wentry *ne = realloc(w->entries, nc * sizeof *ne);
    if (!ne) { snprintf(err, LT_MSG, "out of memory"); return -1; }
    w->entries = ne; w->cap = nc;
  }
  size_t at = w->names.n;
  lt_buf_put(&w->names, name, nl + 1);
  if (w->names.oom) { snprintf(err, LT_MSG, "out of memory"); return -1; }
  pz_wentry *e = &w->entries[w->n];
  e->name = at;
  e->name_len = (uint16_t)nl;
  w->n++;
  e->hdr_off = w->pos;
  e->size = size;
  e->crc = 0;
  w->left = size;
  /* padding as PyTorch computes it (layout, 1.): the data starts at the
     next multiple of 64 after the header and a 4-byte "FB" field header */
  uint64_t start = w->pos + 30 + nl + 4;
  if (size >= 0xFFFFFFFF || w->pos >= 0xFFFFFFFF) start += 4 + (size >= 0xFFFFFFFF ? 16 : 0) + (w->pos >= 0xFFFFFFFF ? 8 : 0);
  size_t pad = (size_t)((PZ_ALIGN - start % PZ_ALIGN) % PZ_ALIGN);
  unsigned char hdr[30 + PZ_MAX_NAME + 4 + 4 + 24 + PZ_ALIGN];
  size_t xl = 0;
  unsigned char *x = hdr + 30 + nl;
  if (size >= 0xFFFFFFFF || w->pos >= 0xFFFFFFFF) {
    size_t zl = (size >= 0xFFFFFFFF ? 16 : 0) + (w->pos >= 0xFFFFFFFF ? 8 : 0);
    wr16(x, 1); wr16(x + 2, (unsigned)zl);
    memset(x + 4, 0, zl);
    xl += 4 + zl;
  }
  wr16(x + xl, 0x4246); wr16(x + xl + 2, (unsigned)pad);   /* "FB" */
  memset(x + xl + 4, 'Z', pad);
  xl += 4 + pad;
  wr32(hdr, 0x04034b50);
  wr16(hdr + 4, 0);
  wr16(hdr + 6, size ? 0x0808 : 0x0800);
  memset(hdr + 8, 0, 18);
  wr16(hdr + 26, (unsigned)nl);
  wr16(hdr + 28, (unsigned)xl);
  memcpy(hdr + 30, name, nl);
  return write_all(w, hdr, 30 + nl + xl, err);
}

typedef struct crc_write {
  pz_writer *w;
  const void *p;
  size_t n;
  uint32_t crc;
  int rc;
  char *err;
} crc_write;

static void crc_write_item(void *ctx, int64_t i) {
  crc_write *c = ctx;
  if (i == 0) c->rc = write_all(c->w, c->p, c->n, c->err);
  else c->crc = lt_crc32(c->crc, c->p, c->n);
}

int pz_record_data(pz_writer *w, const void *p, size_t n, char *err) {
  pz_wentry *e = &w->entries[w->n - 1];
  if (n > w->left) {
    snprintf(err, LT_MSG, "entry '%s': more data than the %llu bytes declared", pz_wentry_name(w, e),
             (unsigned long long)e->size);
    return -1;
  }
  w->left -= n;
  if (w->crc_thread && n >= CRC_PAR) {
    /* the crc and the write at once, on the pool's threads (the caller's
       included: with no worker free it does both) */
    crc_write c = {w, p, n, e->crc, 0, err};
    lt_parallel(2, crc_write_item, &c);
    e->crc = c.crc;
    return c.rc;
  }
  e->crc = lt_crc32(e->crc, p, n);
  return write_all(w, p, n, err);
}

int pz_record_end(pz_writer *w, char *err) {
  pz_wentry *e = &w->entries[w->n - 1];
  uint64_t size = e->size;
  if (w->left) {
    snprintf(err, LT_MSG, "entry '%s': %llu of its %llu bytes were written", pz_wentry_name(w, e),
             (unsigned long long)(size - w->left), (unsigned long long)size);
    return -1;
  }
  if (!size) return 0;
  unsigned char dd[24];
  wr32(dd, 0x08074b50);
  wr32(dd + 4, e->crc);
  size_t dl = 16;
  if (size >= 0xFFFFFFFF) { wr64(dd + 8, size); wr64(dd + 16, size); dl = 24; }
  else { wr32(dd + 8, (uint32_t)size); wr32(dd + 12, (uint32_t)size); }
  return write_all(w, dd, dl, err);
}

#define CHUNK ((size_t)64 << 20)   /* bytes written between progress reports */

int pz_write_entry(pz_writer *w, const char *name, const void *data, uint64_t size,
                   lt_progress_fn progress, void *ud, char *err) {
  if (pz_record_begin(w, name, size, err)) return -1;
  const char *p = data;
  for (uint64_t done = 0; done < size;) {
    size_t n = size - done > CHUNK ? CHUNK : (size_t)(size - done);
    if (pz_record_data(w, p + done, n, err)) return -1;
    done += n;
    if (progress && progress(ud, n)) {
      snprintf(err, LT_MSG, "stopped by the progress callback");
      return -1;
    }
  }
  return pz_record_end(w, err);
}

int pz_write_finish(pz_writer *w, char *err) {
  uint64_t cd_off = w->pos;
  for (size_t i = 0; i < w->n; i++) {
    pz_wentry *e = &w->entries[i];
    size_t nl = e->name_len;
    unsigned char c[46 + PZ_MAX_NAME + 28];
    int bigs = e->size >= 0xFFFFFFFF, bigo = e->hdr_off >= 0xFFFFFFFF;
    size_t xl = 0;
    wr32(c, 0x02014b50);
    wr16(c + 4, 0); wr16(c + 6, 0);
    wr16(c + 8, e->size ? 0x0808 : 0x0800);
    wr16(c + 10, 0); wr16(c + 12, 0); wr16(c + 14, 0);
    wr32(c + 16, e->crc);
    wr32(c + 20, bigs ? 0xFFFFFFFF : (uint32_t)e->size);
    wr32(c + 24, bigs ? 0xFFFFFFFF : (uint32_t)e->size);
    wr16(c + 28, (unsigned)nl);
    wr16(c + 32, 0); wr16(c + 34, 0); wr16(c + 36, 0);
    wr32(c + 38, 0);
    wr32(c + 42, bigo ? 0xFFFFFFFF : (uint32_t)e->hdr_off);
    memcpy(c + 46, pz_wentry_name(w, e), nl);
    if (bigs || bigo) {
      unsigned char *x = c + 46 + nl;
      size_t zl = (bigs ? 16 : 0) + (bigo ? 8 : 0), q = 4;
      wr16(x, 1); wr16(x + 2, (unsigned)zl);
      if (bigs) { wr64(x + q, e->size); wr64(x + q + 8, e->size); q += 16; }
      if (bigo) wr64(x + q, e->hdr_off);
      xl = 4 + zl;
    }
    wr16(c + 30, (unsigned)xl);
    if (write_all(w, c, 46 + nl + xl, err)) return -1;
  }
  uint64_t cd_size = w->pos - cd_off, z64 = w->pos;
  unsigned char t[56 + 20 + 22];
  wr32(t, 0x06064b50);
  wr64(t + 4, 44);
  wr16(t + 12, 0x031E); wr16(t + 14, 45);
  wr32(t + 16, 0); wr32(t + 20, 0);
  wr64(t + 24, w->n); wr64(t + 32, w->n);
  wr64(t + 40, cd_size); wr64(t + 48, cd_off);
  unsigned char *l = t + 56;
  wr32(l, 0x07064b50); wr32(l + 4, 0); wr64(l + 8, z64); wr32(l + 16, 1);
  unsigned char *d = l + 20;
  wr32(d, 0x06054b50); wr16(d + 4, 0); wr16(d + 6, 0);
  unsigned n16 = w->n >= 0xFFFF ? 0xFFFF : (unsigned)w->n;
  wr16(d + 8, n16); wr16(d + 10, n16);
  wr32(d + 12, cd_size >= 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t)cd_size);
  wr32(d + 16, cd_off >= 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t)cd_off);
  wr16(d + 20, 0);
  if (write_all(w, t, sizeof t, err)) return -1;
  return w->bn ? flush_with(w, NULL, 0, err) : 0;
}
