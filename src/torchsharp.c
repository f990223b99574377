/*
** torchsharp.c: TorchSharp's .dat state-dict format (exportsd.py,
** TorchSharp's Module.save/load), scanned through rawio.c's reads.
**
** Layout, as TorchSharp's BinaryReader/BinaryWriter use it:
**   1. LEB128 count of entries (7 bits a byte, low first, at most 10 bytes)
**   2. per entry: LEB128 byte length + UTF-8 name (C#'s BinaryWriter
**      string); LEB128 dtype code (TorchSharp's ScalarType: 0 uint8, 1
**      int8, 2 int16, 3 int32, 4 int64, 5 float16, 6 float32, 7 float64,
**      9 complex64, 10 complex128, 11 bool, 15 bfloat16; exportsd.py
**      writes 4711 for a type it does not know); LEB128 ndim; LEB128
**      dims, outermost first; then numel * itemsize raw bytes, C order,
**      little-endian
**   3. nothing after the last entry
** There is no magic, header, alignment or sharing.
*/
#include <stdlib.h>
#include <string.h>
#include "fmt.h"

typedef struct ts_code { int code; lt_dtype dt; } ts_code;
static const ts_code TS_CODES[] = {
  {0, LT_UINT8}, {1, LT_INT8}, {2, LT_INT16}, {3, LT_INT32}, {4, LT_INT64},
  {5, LT_FLOAT16}, {6, LT_FLOAT32}, {7, LT_FLOAT64}, {9, LT_COMPLEX64},
  {10, LT_COMPLEX128}, {11, LT_BOOL}, {15, LT_BFLOAT16},
};
#define TS_NCODES (sizeof TS_CODES / sizeof TS_CODES[0])

int lt_ts_dtype_from_code(uint64_t code) {
  for (size_t i = 0; i < TS_NCODES; i++) if ((uint64_t)TS_CODES[i].code == code) return TS_CODES[i].dt;
  return -1;
}

int lt_ts_code(lt_dtype dt) {
  for (size_t i = 0; i < TS_NCODES; i++) if (TS_CODES[i].dt == dt) return TS_CODES[i].code;
  return -1;
}

size_t lt_leb128(uint64_t v, unsigned char *out) {
  size_t n = 0;
  do {
    unsigned char b = v & 0x7f;
    v >>= 7;
    out[n++] = v ? (unsigned char)(b | 0x80) : b;
  } while (v);
  return n;
}

/* a buffered sequential reader over fd */
typedef struct rd {
  int fd;
  uint64_t size, pos;        /* file size, next byte to consume */
  uint64_t bstart;           /* file offset of buf[0] */
  size_t blen;
  unsigned char buf[8192];
} rd;

static int rd_byte(rd *r, unsigned char *out, char *err) {
  if (r->pos >= r->size) {
    snprintf(err, LT_MSG, "truncated at byte %llu", (unsigned long long)r->pos);
    return -1;
  }
  if (r->pos < r->bstart || r->pos >= r->bstart + r->blen) {
    size_t want = sizeof r->buf;
    if (r->size - r->pos < want) want = (size_t)(r->size - r->pos);
    if (lt_pread_full(r->fd, r->buf, want, r->pos, err)) return -1;
    r->bstart = r->pos;
    r->blen = want;
  }
  *out = r->buf[r->pos - r->bstart];
  r->pos++;
  return 0;
}

static int rd_leb(rd *r, uint64_t *v, const char *what, char *err) {
  uint64_t res = 0;
  uint64_t at = r->pos;
  for (int i = 0; i < 10; i++) {
    unsigned char b;
    if (rd_byte(r, &b, err)) {
      snprintf(err, LT_MSG, "truncated LEB128 %s at byte %llu", what, (unsigned long long)at);
      return -1;
    }
    if (i == 9 && (b & 0x7e)) break;
    res |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) { *v = res; return 0; }
  }
  snprintf(err, LT_MSG, "bad LEB128 %s at byte %llu (more than 64 bits)", what, (unsigned long long)at);
  return -1;
}

void lt_ts_free(lt_ts_file *f) {
  for (size_t i = 0; i < f->n; i++) free(f->e[i].name);
  free(f->e);
  memset(f, 0, sizeof *f);
}

int lt_ts_scan(int fd, uint64_t size, lt_ts_file *f, char *err) {
  rd *r = calloc(1, sizeof *r);
  char sub[LT_MSG];
  memset(f, 0, sizeof *f);
  if (!r) { snprintf(err, LT_MSG, "not enough memory"); return -1; }
  r->fd = fd;
  r->size = size;
  uint64_t count;
  if (rd_leb(r, &count, "entry count", err)) goto fail;
  /* every entry takes at least 4 bytes: a bound on the count */
  if (count > LT_TS_MAX_TENSORS || count > size / 4 + 1) {
    snprintf(err, LT_MSG, "entry count %llu is more than the file can hold", (unsigned long long)count);
    goto fail;
  }
  f->e = calloc(count ? count : 1, sizeof *f->e);
  if (!f->e) { snprintf(err, LT_MSG, "not enough memory"); goto fail; }
  for (uint64_t i = 0; i < count; i++) {
    lt_ts_entry *e = &f->e[f->n];
    uint64_t len, code, nd;
    if (rd_leb(r, &len, "name length", sub)) goto entry_fail;
    if (len > LT_TS_MAX_NAME || len > size - r->pos) {
      snprintf(sub, LT_MSG, "name length %llu exceeds the file", (unsigned long long)len);
      goto entry_fail;
    }
    if (!(e->name = malloc(len + 1))) { snprintf(sub, LT_MSG, "not enough memory"); goto entry_fail; }
    for (uint64_t j = 0; j < len; j++)
      if (rd_byte(r, (unsigned char *)&e->name[j], sub)) { free(e->name); e->name = NULL; goto entry_fail; }
    e->name[len] = 0;
    if (memchr(e->name, 0, len)) {
      free(e->name); e->name = NULL;
      snprintf(sub, LT_MSG, "name holds a NUL byte");
      goto entry_fail;
    }
    f->n++;
    if (rd_leb(r, &code, "dtype", sub)) goto named_fail;
    int dt = lt_ts_dtype_from_code(code);
    if (dt < 0) {
      snprintf(sub, LT_MSG, "unsupported dtype code %llu%s", (unsigned long long)code,
               code == 4711 ? " (exportsd's fallback for unknown types)" : "");
      goto named_fail;
    }
    e->dtype = (lt_dtype)dt;
    if (rd_leb(r, &nd, "rank", sub)) goto named_fail;
    if (nd > LT_MAX_DIMS) {
      snprintf(sub, LT_MSG, "rank %llu exceeds the limit of %d", (unsigned long long)nd, LT_MAX_DIMS);
      goto named_fail;
    }
    e->ndim = (int)nd;
    for (int d = 0; d < e->ndim; d++) {
      uint64_t v;
      if (rd_leb(r, &v, "dimension", sub)) goto named_fail;
      if (v > (uint64_t)INT64_MAX) { snprintf(sub, LT_MSG, "dimension %d overflows", d + 1); goto named_fail; }
      e->shape[d] = (int64_t)v;
    }
    int64_t numel = lt_shape_numel(e->ndim, e->shape);
    uint64_t isz = lt_dtypes[e->dtype].size;
    if (numel < 0 || (uint64_t)numel > (uint64_t)INT64_MAX / isz) {
      snprintf(sub, LT_MSG, "shape overflows");
      goto named_fail;
    }
    e->nbytes = (uint64_t)numel * isz;
    e->data_off = r->pos;
    if (e->nbytes > size - r->pos) {
      snprintf(sub, LT_MSG, "truncated: expected %llu bytes of data at byte %llu, found %llu",
               (unsigned long long)e->nbytes, (unsigned long long)r->pos,
               (unsigned long long)(size - r->pos));
      goto named_fail;
    }
    r->pos += e->nbytes;
    for (size_t j = 0; j + 1 < f->n; j++)
      if (strcmp(f->e[j].name, e->name) == 0) {
        snprintf(sub, LT_MSG, "duplicate name");
        goto named_fail;
      }
    continue;
  named_fail:
    snprintf(err, LT_MSG, "entry %llu '%.200s': %.250s", (unsigned long long)i + 1, e->name, sub);
    goto fail;
  entry_fail:
    snprintf(err, LT_MSG, "entry %llu: %.400s", (unsigned long long)i + 1, sub);
    goto fail;
  }
  if (r->pos != size) {
    snprintf(err, LT_MSG, "%llu unexpected bytes after the last entry", (unsigned long long)(size - r->pos));
    goto fail;
  }
  free(r);
  return 0;
fail:
  free(r);
  lt_ts_free(f);
  return -1;
}
