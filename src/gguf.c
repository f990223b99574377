/*
** gguf.c: the GGUF header reader (gguf.h). Layout, from ggml's docs/gguf.md
** and src/gguf.cpp (gguf_init_from_file_impl, gguf_write_to_buf), and for
** version 1 ggml's src/ggml.c of August 2023 (gguf_fread_str_v1):
**
**   char[4] "GGUF"; u32 version (1, 2, 3)
**   u64 tensor_count; u64 kv_count               (v1: u32 each)
**   kv_count x { string key; u32 value_type; value }
**   tensor_count x { string name; u32 n_dims (<= 4); u64 ne[n_dims]
**                    (v1: u32; innermost dim first); u32 ggml_type;
**                    u64 offset (from the data section, a multiple of the
**                    alignment) }
**   zeros to a multiple of the alignment (from the file start): the data
**   section, each tensor's bytes padded to the alignment
** string = u64 length (v1: u32) + bytes, no NUL. Values: u8 i8 u16 i16 u32
** i32 f32 bool(u8 0/1) string array(u32 elem_type, u64 count (v1: u32),
** elements) u64 i64 f64, codes 0..12 in that order. The alignment is the
** u32 value of general.alignment (a power of two), 32 by default.
** Everything is little-endian, except in files written on big-endian
** machines, which nothing marks: their version reads as 0x03000000 (ggml
** reads such a file as an endianness mismatch); there every number of the
** header and of plain tensor data is big-endian.
**
** Checks (the GGUF CVEs of 2024-26 are of these): the magic and version;
** every length, count and size against the bytes the file has, before
** anything is allocated for them; kv and tensor counts against the file
** size; value and element types; booleans; array nesting (at most
** LT_GGUF_MAX_DEPTH); keys and names (at most 65535 bytes, unique); n_dims;
** each ne (at least 1) and their product (no overflow); the ggml type (a
** known, not removed id) and ne[0] a multiple of its block size; the
** tensor's byte size; its offset aligned; offset + size inside the file.
** A file with no tensors may end before the padded data start (vocab-only
** files).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "gguf_quant.h"

static const char *const TYPE_NAMES[LT_GGUFV_NTYPES] = {
  "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
  "uint64", "int64", "float64",
};
static const unsigned SCALAR_SIZE[LT_GGUFV_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lt_gguf_type_name(int type) {
  return type >= 0 && type < LT_GGUFV_NTYPES ? TYPE_NAMES[type] : NULL;
}

int lt_gguf_type_from_name(const char *name) {
  for (int i = 0; i < LT_GGUFV_NTYPES; i++)
    if (strcmp(TYPE_NAMES[i], name) == 0) return i;
  return -1;
}

int lt_gguf_detect(const unsigned char *h, size_t n) {
  return n >= 4 && memcmp(h, "GGUF", 4) == 0;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct rd {
  const unsigned char *p;
  size_t n, pos;
  int be, v1;
  char *err;
} rd;

static int fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, LT_MSG, fmt, ap);
  va_end(ap);
  return -1;
}

static uint64_t get(const unsigned char *p, unsigned k, int be) {
  uint64_t x = 0;
  for (unsigned i = 0; i < k; i++) x |= (uint64_t)p[be ? k - 1 - i : i] << (8 * i);
  return x;
}

static size_t left(const rd *r) { return r->n - r->pos; }

static int u(rd *r, unsigned k, uint64_t *v, const char *what, const char *who) {
  if (left(r) < k)
    return fail(r, "%s: truncated: %s needs %u bytes at byte %zu, the file has %zu", who, what, k, r->pos, r->n);
  *v = get(r->p + r->pos, k, r->be);
  r->pos += k;
  return 0;
}

/* a count or length: u64, u32 in version 1 */
static int count(rd *r, uint64_t *v, const char *what, const char *who) {
  return u(r, r->v1 ? 4 : 8, v, what, who);
}

/* a string: its offset and length; bytes checked to be in the file */
static int str(rd *r, uint64_t *off, uint64_t *len, const char *what, const char *who) {
  if (count(r, len, what, who)) return -1;
  if (*len > left(r))
    return fail(r, "%s: truncated: %s of %llu bytes at byte %zu, the file has %zu", who, what,
                (unsigned long long)*len, r->pos, r->n);
  *off = r->pos;
  r->pos += (size_t)*len;
  return 0;
}

/* skip (and check) one value of type t */
static int value(rd *r, int t, int depth, const char *who) {
  if (t < 0 || t >= LT_GGUFV_NTYPES) return fail(r, "%s: unknown value type %d", who, t);
  if (t == LT_GGUFV_STRING) {
    uint64_t off, len;
    return str(r, &off, &len, "string", who);
  }
  if (t == LT_GGUFV_ARRAY) {
    if (depth >= LT_GGUF_MAX_DEPTH) return fail(r, "%s: arrays nested deeper than %d", who, LT_GGUF_MAX_DEPTH);
    uint64_t et, n;
    if (u(r, 4, &et, "array type", who) || count(r, &n, "array count", who)) return -1;
    if (et >= LT_GGUFV_NTYPES) return fail(r, "%s: array of unknown element type %llu", who, (unsigned long long)et);
    /* every element takes a byte at least (a string or an array more) */
    unsigned min = et == LT_GGUFV_STRING ? (r->v1 ? 4 : 8) : et == LT_GGUFV_ARRAY ? (r->v1 ? 8 : 12)
                 : SCALAR_SIZE[et];
    if (n > left(r) / min)
      return fail(r, "%s: array of %llu %s elements at byte %zu, the file has %zu bytes left", who,
                  (unsigned long long)n, TYPE_NAMES[et], r->pos, left(r));
    if (et != LT_GGUFV_STRING && et != LT_GGUFV_ARRAY && et != LT_GGUFV_BOOL) {
      r->pos += (size_t)(n * min);
      return 0;
    }
    for (uint64_t i = 0; i < n; i++)
      if (value(r, (int)et, depth + 1, who)) return -1;
    return 0;
  }
  if (left(r) < SCALAR_SIZE[t])
    return fail(r, "%s: truncated: a %s value at byte %zu, the file has %zu", who, TYPE_NAMES[t], r->pos, r->n);
  if (t == LT_GGUFV_BOOL && r->p[r->pos] > 1)
    return fail(r, "%s: bool of value %u (0 or 1 expected)", who, r->p[r->pos]);
  r->pos += SCALAR_SIZE[t];
  return 0;
}

/* the printable form of a key or name for messages */
static void shown(const unsigned char *p, uint64_t len, char *out, size_t cap) {
  size_t k = 0;
  for (uint64_t i = 0; i < len && k + 5 < cap; i++) {
    unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') out[k++] = (char)c;
    else k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
  }
  if (len > 0 && k + 5 >= cap && k + 4 < cap) { memcpy(out + k, "...", 4); return; }
  out[k] = 0;
}

/* sort helper for duplicate checks: indices by (offset, length) bytes */
typedef struct { const unsigned char *s; uint64_t n; size_t i; } named;
static int by_name(const void *a, const void *b) {
  const named *x = a, *y = b;
  uint64_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, (size_t)m);
  if (c) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* the first name given twice, or -1 */
static long dup_name(named *v, size_t n) {
  qsort(v, n, sizeof *v, by_name);
  for (size_t i = 1; i < n; i++)
    if (v[i - 1].n == v[i].n && memcmp(v[i - 1].s, v[i].s, (size_t)v[i].n) == 0) return (long)v[i].i;
  return -1;
}

int lt_gguf_parse(const unsigned char *buf, size_t len, lt_gguf_file *f, char *err) {
  memset(f, 0, sizeof *f);
  f->buf = buf;
  f->len = len;
  rd r = {.p = buf, .n = len, .err = err};
  named *names = NULL;
  if (len < 8 || memcmp(buf, "GGUF", 4) != 0) {
    if (len >= 4 && (memcmp(buf, "GGJT", 4) == 0 || memcmp(buf, "GGMF", 4) == 0 || memcmp(buf, "GGML", 4) == 0 ||
                     memcmp(buf, "tjgg", 4) == 0 || memcmp(buf, "fmgg", 4) == 0 || memcmp(buf, "lmgg", 4) == 0))
      return fail(&r, "a ggml file from before GGUF (magic %.4s): only GGUF files are read", (const char *)buf);
    return fail(&r, len < 8 ? "truncated: %zu bytes, a GGUF header needs 8 at least" : "not a GGUF file", len);
  }
  uint64_t v = get(buf + 4, 4, 0);
  if (v == 0 || v > 3) {
    uint64_t vb = get(buf + 4, 4, 1);
    if (vb >= 1 && vb <= 3) { r.be = 1; v = vb; }
    else return fail(&r, "GGUF version %llu (versions 1 to 3 are read)", (unsigned long long)v);
  }
  f->version = (uint32_t)v;
  f->big_endian = r.be;
  r.v1 = v == 1;
  r.pos = 8;
  uint64_t nt, nkv;
  if (count(&r, &nt, "tensor count", "header") || count(&r, &nkv, "metadata count", "header")) goto bad;
  /* a key/value takes 13 bytes at least, a tensor info 24 (v1: 9 and 16) */
  if (nkv > left(&r) / (r.v1 ? 9 : 13))
    { fail(&r, "header: %llu metadata entries, the file has %zu bytes left", (unsigned long long)nkv, left(&r)); goto bad; }
  if (nt > left(&r) / (r.v1 ? 16 : 24))
    { fail(&r, "header: %llu tensors, the file has %zu bytes left", (unsigned long long)nt, left(&r)); goto bad; }
  f->kv = calloc(nkv ? nkv : 1, sizeof *f->kv);
  f->t = calloc(nt ? nt : 1, sizeof *f->t);
  names = calloc((nkv > nt ? nkv : nt) + 1, sizeof *names);
  if (!f->kv || !f->t || !names) { fail(&r, "out of memory"); goto bad; }
  f->alignment = LT_GGUF_DEFAULT_ALIGNMENT;
  char who[160];
  for (uint64_t i = 0; i < nkv; i++) {
    lt_gguf_kv *kv = &f->kv[i];
    snprintf(who, sizeof who, "metadata entry %llu", (unsigned long long)i + 1);
    if (str(&r, &kv->key, &kv->key_len, "key", who)) goto bad;
    char k[96];
    shown(buf + kv->key, kv->key_len, k, sizeof k);
    snprintf(who, sizeof who, "key '%s'", k);
    if (kv->key_len == 0 || kv->key_len > LT_GGUF_MAX_NAME)
      { fail(&r, "metadata entry %llu: key of %llu bytes (1 to %d)", (unsigned long long)i + 1,
             (unsigned long long)kv->key_len, LT_GGUF_MAX_NAME); goto bad; }
    uint64_t t;
    if (u(&r, 4, &t, "value type", who)) goto bad;
    if (t >= LT_GGUFV_NTYPES) { fail(&r, "%s: unknown value type %llu", who, (unsigned long long)t); goto bad; }
    kv->type = (int)t;
    kv->value = r.pos;
    if (value(&r, (int)t, 0, who)) goto bad;
    if (kv->key_len == 17 && memcmp(buf + kv->key, "general.alignment", 17) == 0) {
      if (kv->type != LT_GGUFV_UINT32) { fail(&r, "%s: must be a uint32, got a %s", who, TYPE_NAMES[kv->type]); goto bad; }
      uint64_t a = get(buf + kv->value, 4, r.be);
      if (a == 0 || (a & (a - 1))) { fail(&r, "%s: %llu is not a power of two", who, (unsigned long long)a); goto bad; }
      f->alignment = (uint32_t)a;
    }
    names[i] = (named){buf + kv->key, kv->key_len, (size_t)i};
  }
  f->nkv = (size_t)nkv;
  long d = dup_name(names, f->nkv);
  if (d >= 0) {
    char k[96];
    shown(buf + f->kv[d].key, f->kv[d].key_len, k, sizeof k);
    fail(&r, "key '%s': given twice", k);
    goto bad;
  }
  for (uint64_t i = 0; i < nt; i++) {
    lt_gguf_tensor *t = &f->t[i];
    snprintf(who, sizeof who, "tensor %llu", (unsigned long long)i + 1);
    if (str(&r, &t->name, &t->name_len, "name", who)) goto bad;
    char nm[96];
    shown(buf + t->name, t->name_len, nm, sizeof nm);
    snprintf(who, sizeof who, "tensor '%s'", nm);
    if (t->name_len == 0 || t->name_len > LT_GGUF_MAX_NAME)
      { fail(&r, "tensor %llu: name of %llu bytes (1 to %d)", (unsigned long long)i + 1,
             (unsigned long long)t->name_len, LT_GGUF_MAX_NAME); goto bad; }
    uint64_t nd, ty, off;
    if (u(&r, 4, &nd, "n_dims", who)) goto bad;
    if (nd < 1 || nd > LT_GGUF_MAX_DIMS) { fail(&r, "%s: %llu dims (1 to %d)", who, (unsigned long long)nd, LT_GGUF_MAX_DIMS); goto bad; }
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (int j = 0; j < t->ndim; j++) {
      uint64_t ne;
      if (u(&r, r.v1 ? 4 : 8, &ne, "dim", who)) goto bad;
      if (ne == 0 || ne > (uint64_t)INT64_MAX)
        { fail(&r, "%s: dim %d is %lld (at least 1)", who, j + 1, (long long)ne); goto bad; }
      if (ne > (uint64_t)INT64_MAX / numel)
        { fail(&r, "%s: %d dims of more than %lld elements", who, t->ndim, (long long)INT64_MAX); goto bad; }
      numel *= ne;
      t->ne[j] = (int64_t)ne;
    }
    if (u(&r, 4, &ty, "type", who) || u(&r, 8, &off, "offset", who)) goto bad;
    const lt_gguf_type *q = lt_gguf_type_by_id((int)(ty > 1000 ? 1000 : ty));
    if (!q || q->removed) { fail(&r, "%s: unknown ggml type %llu", who, (unsigned long long)ty); goto bad; }
    t->type = (int)ty;
    if (t->ne[0] % q->block)
      { fail(&r, "%s: %s rows of %lld elements, not a multiple of its block of %d", who, q->name,
             (long long)t->ne[0], q->block); goto bad; }
    uint64_t blocks = numel / (uint64_t)q->block;
    if (blocks > UINT64_MAX / (uint64_t)q->bytes || blocks * (uint64_t)q->bytes > (uint64_t)len)
      { fail(&r, "%s: %llu elements of %s need more bytes than the file has (%zu)", who,
             (unsigned long long)numel, q->name, len); goto bad; }
    t->nbytes = blocks * (uint64_t)q->bytes;
    t->offset = off;
    names[i] = (named){buf + t->name, t->name_len, (size_t)i};
  }
  f->ntensors = (size_t)nt;
  f->header_end = r.pos;
  f->data_start = (r.pos + f->alignment - 1) / f->alignment * (uint64_t)f->alignment;
  d = dup_name(names, f->ntensors);
  if (d >= 0) {
    char nm[96];
    shown(buf + f->t[d].name, f->t[d].name_len, nm, sizeof nm);
    fail(&r, "tensor '%s': given twice", nm);
    goto bad;
  }
  for (size_t i = 0; i < f->ntensors; i++) {
    lt_gguf_tensor *t = &f->t[i];
    char nm[96];
    shown(buf + t->name, t->name_len, nm, sizeof nm);
    if (t->offset % f->alignment)
      { fail(&r, "tensor '%s': offset %llu is not a multiple of the alignment %u", nm,
             (unsigned long long)t->offset, f->alignment); goto bad; }
    if (t->offset > (uint64_t)len || f->data_start > (uint64_t)len - t->offset ||
        t->nbytes > (uint64_t)len - t->offset - f->data_start)
      { fail(&r, "tensor '%s': %llu bytes at byte %llu of the data (from byte %llu), past the end of the file (%zu bytes)",
             nm, (unsigned long long)t->nbytes, (unsigned long long)t->offset, (unsigned long long)f->data_start,
             len); goto bad; }
    t->data = f->data_start + t->offset;
  }
  free(names);
  return 0;
bad:
  free(names);
  lt_gguf_free(f);
  return -1;
}

void lt_gguf_free(lt_gguf_file *f) {
  free(f->kv);
  free(f->t);
  f->kv = NULL;
  f->t = NULL;
  f->nkv = f->ntensors = 0;
}

/* ---- walking values --------------------------------------------------------- */

static uint64_t walk(const lt_gguf_file *f, int t, uint64_t at, const lt_gguf_visitor *v) {
  int be = f->big_endian;
  unsigned lw = f->version == 1 ? 4 : 8;
  const unsigned char *p = f->buf + at;
  switch (t) {
    case LT_GGUFV_STRING: {
      uint64_t n = get(p, lw, be);
      v->string(v->ud, (const char *)p + lw, n);
      return lw + n;
    }
    case LT_GGUFV_ARRAY: {
      int et = (int)get(p, 4, be);
      uint64_t n = get(p + 4, lw, be), k = 4 + lw;
      v->array_begin(v->ud, et, n);
      for (uint64_t i = 0; i < n; i++) k += walk(f, et, at + k, v);
      v->array_end(v->ud);
      return k;
    }
    case LT_GGUFV_BOOL: v->boolean(v->ud, p[0] != 0); return 1;
    case LT_GGUFV_FLOAT32: {
      uint32_t b = (uint32_t)get(p, 4, be);
      float x;
      memcpy(&x, &b, 4);
      v->real(v->ud, t, x);
      return 4;
    }
    case LT_GGUFV_FLOAT64: {
      uint64_t b = get(p, 8, be);
      double x;
      memcpy(&x, &b, 8);
      v->real(v->ud, t, x);
      return 8;
    }
    default: {
      unsigned k = SCALAR_SIZE[t];
      uint64_t x = get(p, k, be);
      int64_t s = (int64_t)x;
      if (t == LT_GGUFV_INT8) s = (int8_t)x;
      else if (t == LT_GGUFV_INT16) s = (int16_t)x;
      else if (t == LT_GGUFV_INT32) s = (int32_t)x;
      v->integer(v->ud, t, s, x);
      return k;
    }
  }
}

void lt_gguf_visit(const lt_gguf_file *f, int type, uint64_t at, const lt_gguf_visitor *v) {
  walk(f, type, at, v);
}

void lt_gguf_array_info(const lt_gguf_file *f, uint64_t at, int *elem_type, uint64_t *count_) {
  *elem_type = (int)get(f->buf + at, 4, f->big_endian);
  *count_ = get(f->buf + at + 4, f->version == 1 ? 4 : 8, f->big_endian);
}
