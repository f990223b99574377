/*
** t7.c: the Torch7 (.t7) reader (t7.h). Layout, from torch/torch7's
** File.lua (writeObject/readObject), generic/Tensor.c and generic/Storage.c
** (write/read), lib/TH/THDiskFile.c (binary and ascii primitives) and
** torch/tds's hash.lua and vec.lua (__write):
**
** Primitives, binary mode: int = int32, long = long_size bytes (8 on LP64
** Linux and macOS, 4 on Windows; torch.load's 'b32'/'b64' force one),
** double = float64, all in the writer's byte order (little-endian here).
** Ascii mode: every write call prints its elements ("%d", "%ld", "%.17g"
** for doubles, "%.9g" for floats and halves) separated by spaces and ends
** with "\n"; a read skips blanks before each number and, after the call,
** one "\n". Chars (strings, Byte and Char storages) are raw bytes either way.
**
** An object is an int32 type tag and its payload:
**   0 nil            nothing
**   1 number         a double (Lua integers are written as doubles)
**   2 string         int32 length, bytes
**   5 boolean        int32 1 (true) or 0 (false)
**   3 table          int32 index; for a new index int32 n, then n (key,
**                    value) objects in pairs() order
**   4 torch object   int32 index; for a new index a string "V <version>"
**                    then a string class name (a first string not starting
**                    with "V " is the class name of version 0), then the
**                    class payload
**   8 function       int32 index; for a new index int32 length, bytecode
**                    (string.dump), an upvalues object {{name=, id=,
**                    value=}, ...}; 7 the same with a plain upvalue list;
**                    6 (legacy) the same without an index
** Indices number the tables, torch objects and functions from 1, in the
** order they are first written; a known index is a back-reference, and an
** object is known before its payload is read (so cycles load). Writers
** only ever give a new object the next index: any other unknown index is a
** reference to something never written, an error.
** Class payloads:
**   torch.<T>Storage   long size, then size elements (T: Byte uint8, Char
**                      int8, Short int16, Int int32, Long long_size bytes,
**                      Float float32, Double float64, Half float16;
**                      torch.Cuda<T>Storage alike, CudaStorage float32)
**   torch.<T>Tensor    int32 nDimension, long size[n], long stride[n], long
**                      storageOffset + 1 (1-based), then the storage object
**                      (a storage, a back-reference or nil: an empty tensor)
**   tds.Hash           long n, then n (key, value) objects ("V 0")
**   tds.Vec            long n, then n objects ("V 0")
**   any other class    one table object: the object's fields (nn.Module's
**                      write and the default for Lua classes)
** There is no alignment and no padding.
**
** Every count, size, stride, offset, reference and name is checked against
** the bytes the file has, in memory bounded by the file's size (ascii
** storages take up to 4 bytes of values per byte of text) and time linear
** in it; nesting is limited to LT_T7_MAX_DEPTH.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "t7.h"

enum { TAG_NIL, TAG_NUMBER, TAG_STRING, TAG_TABLE, TAG_TORCH, TAG_BOOLEAN, TAG_FUNCTION,
       TAG_LEGACY_RECUR_FUNCTION, TAG_RECUR_FUNCTION };

/* ---- class names --------------------------------------------------------- */

static const struct { const char *t; lt_dtype dt; } TYPES[] = {
  {"Byte", LT_UINT8}, {"Char", LT_INT8}, {"Short", LT_INT16}, {"Int", LT_INT32},
  {"Long", LT_INT64}, {"Float", LT_FLOAT32}, {"Double", LT_FLOAT64}, {"Half", LT_FLOAT16},
};

int lt_t7_class_dtype(const char *name, size_t len, int *storage) {
  static const char pre[] = "torch.";
  if (len < sizeof pre - 1 || memcmp(name, pre, sizeof pre - 1) != 0) return -1;
  const char *p = name + sizeof pre - 1, *end = name + len;
  int cuda = (size_t)(end - p) >= 4 && memcmp(p, "Cuda", 4) == 0;
  if (cuda) p += 4;
  size_t rest = (size_t)(end - p);
  for (int kind = 0; kind < 2; kind++) {
    const char *suffix = kind ? "Storage" : "Tensor";
    size_t sl = strlen(suffix);
    if (rest < sl || memcmp(end - sl, suffix, sl) != 0) continue;
    size_t tl = rest - sl;
    if (cuda && tl == 0) { *storage = kind; return LT_FLOAT32; }   /* torch.CudaTensor */
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
      if (strlen(TYPES[i].t) == tl && memcmp(p, TYPES[i].t, tl) == 0) {
        *storage = kind;
        return (int)TYPES[i].dt;
      }
  }
  return -1;
}

const char *lt_t7_class_name(lt_dtype dt, int storage) {
  static const char *const N[][2] = {
    {"torch.ByteTensor", "torch.ByteStorage"}, {"torch.CharTensor", "torch.CharStorage"},
    {"torch.ShortTensor", "torch.ShortStorage"}, {"torch.IntTensor", "torch.IntStorage"},
    {"torch.LongTensor", "torch.LongStorage"}, {"torch.FloatTensor", "torch.FloatStorage"},
    {"torch.DoubleTensor", "torch.DoubleStorage"}, {"torch.HalfTensor", "torch.HalfStorage"},
  };
  for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
    if (TYPES[i].dt == dt) return N[i][storage ? 1 : 0];
  return NULL;
}

/* ---- detection ----------------------------------------------------------- */

static int32_t le32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

int lt_t7_detect(const unsigned char *h, size_t n, uint64_t size, int *ascii) {
  *ascii = 0;
  if (n >= 4) {
    int32_t tag = le32(h);
    switch (tag) {
      case TAG_TABLE: case TAG_TORCH: case TAG_RECUR_FUNCTION: case TAG_LEGACY_RECUR_FUNCTION:
        /* the root is the first object: index 1; a torch object's first string is short */
        if (n < 12 || le32(h + 4) != 1) return 0;
        if (tag == TAG_TORCH) {
          int32_t sl = le32(h + 8);
          return sl > 0 && sl <= LT_T7_MAX_NAME && (n < 12 + 2 || (h[12] >= 0x21 && h[12] < 0x7f));
        }
        return le32(h + 8) >= 0;
      case TAG_NIL: return size == 4;
      case TAG_NUMBER: return size == 12;
      case TAG_BOOLEAN: return size == 8 && n >= 8 && (le32(h + 4) == 0 || le32(h + 4) == 1);
      case TAG_STRING: return n >= 8 && le32(h + 4) >= 0 && (uint64_t)le32(h + 4) + 8 == size;
      default: break;
    }
  }
  /* ascii: "<tag>\n<index>\n" for a table, object or function root */
  if (n >= 4 && (h[0] == '3' || h[0] == '4' || h[0] == '8') && h[1] == '\n' && h[2] == '1' && h[3] == '\n') {
    *ascii = 1;
    return 1;
  }
  return 0;
}

/* ---- the reader ------------------------------------------------------------ */

typedef struct rd {
  const unsigned char *p;
  size_t n, pos;
  int ascii, lsz;
  lt_t7_file *f;
  char *err;
  int failed, depth;
  char path[200];
  size_t plen;
  uint32_t *ids;            /* object index i -> node ids[i - 1] */
  size_t nids, capids;
  lt_t7_value *stack;       /* values of the containers being read */
  size_t nstack, capstack;
} rd;

static int fail(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd *r, const char *fmt, ...) {
  if (r->failed) return -1;
  r->failed = 1;
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(r->err, LT_MSG, "%s: %s (byte %zu)", r->plen ? r->path : "root", what, r->pos);
  return -1;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}
#define GROW(r, arr, n, cap, need) \
  (grow((void **)&(arr), &(cap), (need), sizeof *(arr)) ? fail((r), "out of memory") : 0)

static size_t left(const rd *r) { return r->n - r->pos; }

static int need(rd *r, size_t k, const char *what) {
  if (left(r) < k) return fail(r, "truncated: %s needs %zu bytes, the file has %zu left", what, k, left(r));
  return 0;
}

/* ascii: skip blanks */
static void blanks(rd *r) {
  while (r->pos < r->n && (r->p[r->pos] == ' ' || r->p[r->pos] == '\n' || r->p[r->pos] == '\t' ||
                           r->p[r->pos] == '\r'))
    r->pos++;
}

/* ascii: the end of a write call, one "\n" when there is one */
static void end_call(rd *r) {
  if (r->ascii && r->pos < r->n && r->p[r->pos] == '\n') r->pos++;
}

/* ascii: the next number's text into buf (NUL-terminated) */
static int token(rd *r, char *buf, size_t cap, const char *what) {
  blanks(r);
  size_t k = 0;
  while (r->pos + k < r->n && k + 1 < cap) {
    unsigned char c = r->p[r->pos + k];
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') break;
    buf[k++] = (char)c;
  }
  if (k == 0) return fail(r, "truncated: expected %s", what);
  if (k + 1 == cap) return fail(r, "%s too long", what);
  buf[k] = 0;
  r->pos += k;
  return 0;
}

/* ascii: an integer token */
static int atoken(rd *r, int64_t *v, const char *what) {
  char buf[32];
  if (token(r, buf, sizeof buf, what)) return -1;
  char *e;
  long long x = strtoll(buf, &e, 10);
  if (*e || e == buf) return fail(r, "%s \"%s\" is not an integer", what, buf);
  *v = (int64_t)x;
  return 0;
}

/* ascii: a floating token */
static int ftoken(rd *r, double *v, const char *what) {
  char buf[64];
  if (token(r, buf, sizeof buf, what)) return -1;
  char *e;
  double x = strtod(buf, &e);
  if (*e || e == buf) return fail(r, "%s \"%s\" is not a number", what, buf);
  *v = x;
  return 0;
}

static int rd_int(rd *r, int32_t *v, const char *what) {
  if (r->ascii) {
    int64_t x;
    if (atoken(r, &x, what)) return -1;
    if (x < INT32_MIN || x > INT32_MAX) return fail(r, "%s %lld does not fit an int", what, (long long)x);
    end_call(r);
    *v = (int32_t)x;
    return 0;
  }
  if (need(r, 4, what)) return -1;
  *v = le32(r->p + r->pos);
  r->pos += 4;
  return 0;
}

/* n longs into v (one write call) */
static int rd_longs(rd *r, int64_t *v, int n, const char *what) {
  if (r->ascii) {
    for (int i = 0; i < n; i++)
      if (atoken(r, &v[i], what)) return -1;
    if (n > 0) end_call(r);
    return 0;
  }
  if (need(r, (size_t)n * (size_t)r->lsz, what)) return -1;
  for (int i = 0; i < n; i++) {
    const unsigned char *q = r->p + r->pos;
    if (r->lsz == 4) {
      v[i] = le32(q);
    } else {
      uint64_t x = 0;
      for (int b = 7; b >= 0; b--) x = x << 8 | q[b];
      v[i] = (int64_t)x;
    }
    r->pos += (size_t)r->lsz;
  }
  return 0;
}

static int rd_double(rd *r, double *v, const char *what) {
  if (r->ascii) {
    if (ftoken(r, v, what)) return -1;
    end_call(r);
    return 0;
  }
  if (need(r, 8, what)) return -1;
  memcpy(v, r->p + r->pos, 8);
  r->pos += 8;
  return 0;
}

/* len raw bytes (a string, bytecode) appended to the pool */
static int rd_chars(rd *r, int32_t len, uint64_t *off, const char *what) {
  if (len < 0) return fail(r, "%s of negative length %d", what, (int)len);
  if (need(r, (size_t)len, what)) return -1;
  *off = r->f->pool.n;
  lt_buf_put(&r->f->pool, r->p + r->pos, (size_t)len);
  if (r->f->pool.oom) return fail(r, "out of memory");
  r->pos += (size_t)len;
  if (len > 0) end_call(r);
  return 0;
}

static int rd_string(rd *r, uint64_t *off, uint64_t *len, const char *what) {
  int32_t n;
  if (rd_int(r, &n, what)) return -1;
  if (rd_chars(r, n, off, what)) return -1;
  *len = (uint64_t)n;
  return 0;
}

/* ---- paths ----------------------------------------------------------------- */

static int alpha(char c) { return c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

static int is_ident(const char *s, size_t n) {
  if (n == 0 || n > 64 || !alpha(s[0])) return 0;
  for (size_t i = 1; i < n; i++)
    if (!alpha(s[i]) && !(s[i] >= '0' && s[i] <= '9')) return 0;
  return 1;
}

/* append the place of the value under key k to the path; returns the old
   length, to restore */
static size_t push_key(rd *r, const lt_t7_value *k) {
  size_t old = r->plen, cap = sizeof r->path;
  char c[96];
  switch (k->kind) {
    case LT_T7_STRING: {
      const char *s = r->f->pool.p + k->s.off;
      size_t n = (size_t)k->s.len;
      if (is_ident(s, n)) snprintf(c, sizeof c, "%s%.*s", old ? "." : "", (int)n, s);
      else snprintf(c, sizeof c, "[\"%.*s\"]", (int)(n > 40 ? 40 : n), s);
      break;
    }
    case LT_T7_NUMBER:
      if (k->num == floor(k->num) && fabs(k->num) < 1e15) snprintf(c, sizeof c, "[%.0f]", k->num);
      else snprintf(c, sizeof c, "[%.17g]", k->num);
      break;
    case LT_T7_BOOLEAN: snprintf(c, sizeof c, "[%s]", k->b ? "true" : "false"); break;
    default: snprintf(c, sizeof c, "[%s]", "table"); break;
  }
  for (char *q = c; *q; q++) if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
  size_t cl = strlen(c);
  if (old + cl + 4 < cap) {
    memcpy(r->path + old, c, cl + 1);
    r->plen = old + cl;
  } else if (old + 4 < cap && strcmp(r->path + old - (old >= 3 ? 3 : 0), "...") != 0) {
    memcpy(r->path + old, "...", 4);
    r->plen = old + 3;
  }
  return old;
}

static size_t push_text(rd *r, const char *s) {
  size_t old = r->plen, sl = strlen(s);
  if (old + sl + 1 < sizeof r->path) {
    memcpy(r->path + old, s, sl + 1);
    r->plen = old + sl;
  }
  return old;
}

static void pop_path(rd *r, size_t old) {
  r->plen = old;
  r->path[old] = 0;
}

/* ---- objects ----------------------------------------------------------------- */

static int rd_value(rd *r, lt_t7_value *v);

/* node id's class name, copied (the pool moves as it grows) */
typedef struct { char s[80]; } clsname;
static clsname cls_of(const rd *r, uint32_t id) {
  clsname c;
  const lt_t7_node *nd = &r->f->nodes[id];
  snprintf(c.s, sizeof c.s, "%.*s", (int)(nd->name_len < 79 ? nd->name_len : 79), r->f->pool.p + nd->name);
  return c;
}

static int new_node(rd *r, int kind, int tag, int32_t index, uint64_t at, uint32_t *id) {
  lt_t7_file *f = r->f;
  if (GROW(r, f->nodes, f->nnodes, f->capnodes, f->nnodes + 1)) return -1;
  lt_t7_node *nd = &f->nodes[f->nnodes];
  memset(nd, 0, sizeof *nd);
  nd->kind = (uint8_t)kind;
  nd->tag = (uint8_t)tag;
  nd->index = index;
  nd->at = at;
  nd->storage = LT_T7_NONE;
  *id = (uint32_t)f->nnodes++;
  if (index > 0) {
    if (GROW(r, r->ids, r->nids, r->capids, r->nids + 1)) return -1;
    r->ids[r->nids++] = *id;
  }
  return 0;
}

static int push_value(rd *r, const lt_t7_value *v) {
  if (GROW(r, r->stack, r->nstack, r->capstack, r->nstack + 1)) return -1;
  r->stack[r->nstack++] = *v;
  return 0;
}

/* move the top k stacked values into items; returns their first slot */
static int settle(rd *r, size_t k, size_t *first) {
  lt_t7_file *f = r->f;
  if (GROW(r, f->items, f->nitems, f->capitems, f->nitems + k)) return -1;
  *first = f->nitems;
  if (k == 0) return 0;   /* an empty table: items and the stack may not exist yet */
  memcpy(f->items + f->nitems, r->stack + r->nstack - k, k * sizeof *f->items);
  f->nitems += k;
  r->nstack -= k;
  return 0;
}

/* n (key, value) pairs onto the stack; pairs with a nil value are dropped
   (a Lua table cannot hold them); returns the pairs kept */
static int rd_pairs(rd *r, int64_t n, size_t *kept) {
  /* each pair takes two tags at least */
  if (n < 0) return fail(r, "table of %lld pairs", (long long)n);
  if ((uint64_t)n > left(r) / (r->ascii ? 4 : 8))
    return fail(r, "table of %lld pairs, the file has %zu bytes left", (long long)n, left(r));
  *kept = 0;
  for (int64_t i = 0; i < n; i++) {
    lt_t7_value k, v;
    size_t old = push_text(r, "(key)");
    int rc = rd_value(r, &k);
    pop_path(r, old);
    if (rc) return -1;
    if (k.kind == LT_T7_NIL) return fail(r, "table key %lld is nil", (long long)i + 1);
    if (k.kind == LT_T7_NUMBER && k.num != k.num) return fail(r, "table key %lld is nan", (long long)i + 1);
    old = push_key(r, &k);
    rc = rd_value(r, &v);
    pop_path(r, old);
    if (rc) return -1;
    if (v.kind == LT_T7_NIL) continue;
    if (push_value(r, &k) || push_value(r, &v)) return -1;
    (*kept)++;
  }
  return 0;
}

static int rd_storage(rd *r, uint32_t id) {
  int64_t count;
  if (rd_longs(r, &count, 1, "storage size")) return -1;
  lt_t7_node *nd = &r->f->nodes[id];
  lt_dtype dt = (lt_dtype)nd->dtype;
  int esize = dt == LT_INT64 ? r->lsz : (int)lt_dtypes[dt].size;
  clsname c = cls_of(r, id);
  const char *cls = c.s;
  int cl = (int)strlen(cls);
  if (count < 0) return fail(r, "%.*s of negative size %lld", cl, cls, (long long)count);
  if (!r->ascii) {
    if ((uint64_t)count > left(r) / (uint64_t)esize)
      return fail(r, "%.*s of %lld elements needs %llu bytes, the file has %zu left", cl, cls,
                  (long long)count, (unsigned long long)count * (unsigned long long)esize, left(r));
    nd = &r->f->nodes[id];
    nd->count = count;
    nd->esize = esize;
    nd->data = r->pos;
    r->pos += (size_t)count * (size_t)esize;
    return 0;
  }
  /* ascii: raw bytes for Byte and Char, else one number each (at least two
     characters: a digit and a blank) */
  int raw = lt_dtypes[dt].size == 1;
  if ((uint64_t)count > (raw ? left(r) : left(r) / 2 + 1))
    return fail(r, "%.*s of %lld elements, the file has %zu bytes left", cl, cls, (long long)count, left(r));
  size_t isz = lt_dtypes[dt].size;
  lt_buf *pool = &r->f->pool;
  uint64_t off = pool->n;
  if (raw) {
    lt_buf_put(pool, r->p + r->pos, (size_t)count);
    r->pos += (size_t)count;
  } else {
    for (int64_t i = 0; i < count && !pool->oom; i++) {
      unsigned char e[8];
      if (lt_dtypes[dt].kind == LT_KIND_FLOAT) {
        double x;
        if (ftoken(r, &x, "storage element")) return -1;
        if (dt == LT_FLOAT64) memcpy(e, &x, 8);
        else if (dt == LT_FLOAT32) { float g = (float)x; memcpy(e, &g, 4); }
        else { uint16_t h = lt_float_to_half((float)x); memcpy(e, &h, 2); }
      } else {
        int64_t x;
        if (atoken(r, &x, "storage element")) return -1;
        int64_t lo = dt == LT_INT16 ? INT16_MIN : dt == LT_INT32 ? INT32_MIN : INT64_MIN;
        int64_t hi = dt == LT_INT16 ? INT16_MAX : dt == LT_INT32 ? INT32_MAX : INT64_MAX;
        if (x < lo || x > hi) return fail(r, "storage element %lld out of range of %.*s", (long long)x, cl, cls);
        if (dt == LT_INT16) { int16_t y = (int16_t)x; memcpy(e, &y, 2); }
        else if (dt == LT_INT32) { int32_t y = (int32_t)x; memcpy(e, &y, 4); }
        else memcpy(e, &x, 8);
      }
      lt_buf_put(pool, e, isz);
    }
  }
  if (pool->oom) return fail(r, "out of memory");
  if (count > 0) end_call(r);
  nd = &r->f->nodes[id];
  nd->count = count;
  nd->esize = (int)isz;
  nd->data = off;
  return 0;
}

static int rd_tensor(rd *r, uint32_t id) {
  lt_t7_file *f = r->f;
  int32_t nd32;
  if (rd_int(r, &nd32, "tensor rank")) return -1;
  clsname c = cls_of(r, id);
  const char *cls = c.s;
  int cl = (int)strlen(cls);
  if (nd32 < 0 || nd32 > LT_MAX_DIMS)
    return fail(r, "%.*s of %d dims (at most %d)", cl, cls, (int)nd32, LT_MAX_DIMS);
  int nd = nd32;
  int64_t dims[2 * LT_MAX_DIMS], off1;
  if (rd_longs(r, dims, nd, "tensor size") || rd_longs(r, dims + nd, nd, "tensor stride") ||
      rd_longs(r, &off1, 1, "tensor offset"))
    return -1;
  int64_t numel = 1, last = 0;   /* the highest element the view reaches */
  for (int d = 0; d < nd; d++) {
    if (dims[d] < 0) return fail(r, "%.*s of negative size %lld in dim %d", cl, cls, (long long)dims[d], d + 1);
    if (dims[nd + d] < 0)
      return fail(r, "%.*s of negative stride %lld in dim %d", cl, cls, (long long)dims[nd + d], d + 1);
  }
  for (int d = 0; d < nd; d++) {
    if (dims[d] == 0) { numel = 0; break; }
    if (numel > INT64_MAX / dims[d]) return fail(r, "%.*s of too many elements", cl, cls);
    numel *= dims[d];
  }
  if (nd == 0) numel = 0;   /* Torch7's 0-dim tensor is empty */
  for (int d = 0; numel > 0 && d < nd; d++) {
    __int128 reach = (__int128)(dims[d] - 1) * dims[nd + d];
    if (reach > INT64_MAX - last) return fail(r, "%.*s view out of range", cl, cls);
    last += (int64_t)reach;
  }
  if (off1 < 1) return fail(r, "%.*s storage offset %lld (1-based: at least 1)", cl, cls, (long long)off1);
  lt_t7_value sv;
  size_t old = push_text(r, ".storage");
  int rc = rd_value(r, &sv);
  pop_path(r, old);
  if (rc) return -1;
  uint32_t st = LT_T7_NONE;
  if (sv.kind == LT_T7_NODE && f->nodes[sv.node].kind == LT_T7_STORAGE) {
    st = sv.node;
    const lt_t7_node *s = &f->nodes[st];
    if (s->dtype != f->nodes[id].dtype) return fail(r, "%.*s over a %s", cl, cls, cls_of(r, st).s);
    if (numel > 0 && (off1 - 1 > s->count || last >= s->count - (off1 - 1)))
      return fail(r, "storage of %lld elements, view needs %llu", (long long)s->count,
                  (unsigned long long)(off1 - 1) + (unsigned long long)last + 1u);   /* < 2^64 */
  } else if (sv.kind != LT_T7_NIL) {
    return fail(r, "%.*s storage expected, got %s", cl, cls,
                sv.kind == LT_T7_NODE ? (f->nodes[sv.node].kind == LT_T7_TABLE ? "a table" : "an object")
                : sv.kind == LT_T7_STRING ? "a string" : sv.kind == LT_T7_NUMBER ? "a number" : "a boolean");
  } else if (numel > 0) {
    return fail(r, "%.*s of %lld elements without a storage", cl, cls, (long long)numel);
  }
  if (GROW(r, f->dims, f->ndims, f->capdims, f->ndims + (size_t)(2 * nd))) return -1;
  lt_t7_node *t = &f->nodes[id];
  t->ndim = nd;
  t->first_dim = f->ndims;
  if (nd > 0) memcpy(f->dims + f->ndims, dims, sizeof(int64_t) * (size_t)(2 * nd));
  f->ndims += (size_t)(2 * nd);
  t->offset = off1 - 1;
  t->storage = st;
  return 0;
}

static int check_name(rd *r, uint64_t off, uint64_t len) {
  const char *s = r->f->pool.p + off;
  if (len == 0) return fail(r, "empty class name");
  if (len > LT_T7_MAX_NAME) return fail(r, "class name of %llu bytes (at most %d)", (unsigned long long)len, LT_T7_MAX_NAME);
  for (uint64_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e) {
      char shown[64];
      size_t k = 0;
      for (uint64_t j = 0; j < len && k + 5 < sizeof shown; j++) {
        unsigned char d = (unsigned char)s[j];
        if (d >= 0x21 && d <= 0x7e && d != '\\') shown[k++] = (char)d;
        else k += (size_t)snprintf(shown + k, sizeof shown - k, "\\%u", d);
      }
      shown[k] = 0;
      return fail(r, "bad class name \"%s\" (byte %llu is not a printable character)", shown,
                  (unsigned long long)i + 1);
    }
  }
  return 0;
}

static int rd_torch(rd *r, int32_t index, uint64_t at, uint32_t *out) {
  lt_t7_file *f = r->f;
  uint64_t voff, vlen, noff, nlen;
  if (rd_string(r, &voff, &vlen, "class version")) return -1;
  double version = 0;
  const char *vs = f->pool.p + voff;
  if (vlen >= 2 && vs[0] == 'V' && vs[1] == ' ') {
    char buf[32];
    if (vlen - 2 >= sizeof buf) return fail(r, "bad class version \"%.*s\"", 20, vs);
    memcpy(buf, vs + 2, (size_t)vlen - 2);
    buf[vlen - 2] = 0;
    char *e;
    version = strtod(buf, &e);
    if (*e || e == buf || version != version) return fail(r, "bad class version \"%.*s\"", (int)vlen, vs);
    if (rd_string(r, &noff, &nlen, "class name")) return -1;
  } else {
    noff = voff;   /* written before versions: the string is the class name */
    nlen = vlen;
  }
  if (check_name(r, noff, nlen)) return -1;
  char name[LT_T7_MAX_NAME + 1];
  memcpy(name, f->pool.p + noff, (size_t)nlen);
  name[nlen] = 0;
  int storage = 0;
  int dt = lt_t7_class_dtype(name, (size_t)nlen, &storage);
  int kind = dt >= 0 ? (storage ? LT_T7_STORAGE : LT_T7_TENSOR)
           : (nlen == 8 && memcmp(name, "tds.Hash", 8) == 0) || (nlen == 8 && memcmp(name, "tds_hash", 8) == 0)
             ? LT_T7_HASH
           : (nlen == 7 && memcmp(name, "tds.Vec", 7) == 0) ? LT_T7_VEC : LT_T7_OBJECT;
  uint32_t id;
  if (new_node(r, kind, TAG_TORCH, index, at, &id)) return -1;
  lt_t7_node *nd = &f->nodes[id];
  nd->version = version;
  nd->name = noff;
  nd->name_len = nlen;
  nd->dtype = dt;
  *out = id;
  switch (kind) {
    case LT_T7_STORAGE: return rd_storage(r, id);
    case LT_T7_TENSOR: return rd_tensor(r, id);
    case LT_T7_HASH: case LT_T7_VEC: {
      int64_t n;
      if (rd_longs(r, &n, 1, "tds size")) return -1;
      if (n < 0 || (uint64_t)n > left(r) / (r->ascii ? 2 : 4))
        return fail(r, "%.*s of %lld entries, the file has %zu bytes left", (int)nlen, name, (long long)n, left(r));
      size_t kept = 0, base = r->nstack;
      if (kind == LT_T7_HASH) {
        if (rd_pairs(r, n, &kept)) return -1;
      } else {
        for (int64_t i = 0; i < n; i++) {
          lt_t7_value v;
          lt_t7_value k = {.kind = LT_T7_NUMBER, .num = (double)(i + 1)};
          size_t old = push_key(r, &k);
          int rc = rd_value(r, &v);
          pop_path(r, old);
          if (rc || push_value(r, &v)) return -1;
        }
        kept = (size_t)n;
      }
      size_t first;
      if (settle(r, r->nstack - base, &first)) return -1;
      f->nodes[id].first = first;
      f->nodes[id].n = kept;
      return 0;
    }
    default: {
      /* the fields, as one table object */
      lt_t7_value v;
      if (rd_value(r, &v) || push_value(r, &v)) return -1;
      size_t first;
      if (settle(r, 1, &first)) return -1;
      f->nodes[id].first = first;
      f->nodes[id].n = 1;
      return 0;
    }
  }
}

static int rd_function(rd *r, int tag, int32_t index, uint64_t at, uint32_t *out) {
  lt_t7_file *f = r->f;
  uint32_t id;
  if (new_node(r, LT_T7_FUNCTION, tag, index, at, &id)) return -1;
  uint64_t off, len;
  if (rd_string(r, &off, &len, "function bytecode")) return -1;
  f->nodes[id].name = off;
  f->nodes[id].name_len = len;
  lt_t7_value v;
  size_t old = push_text(r, "(upvalues)");
  int rc = rd_value(r, &v);
  pop_path(r, old);
  if (rc || push_value(r, &v)) return -1;
  size_t first;
  if (settle(r, 1, &first)) return -1;
  f->nodes[id].first = first;
  f->nodes[id].n = 1;
  *out = id;
  return 0;
}

static const char *kind_name(int kind) {
  switch (kind) {
    case LT_T7_TABLE: return "a table";
    case LT_T7_FUNCTION: return "a function";
    default: return "a torch object";
  }
}

static int rd_value(rd *r, lt_t7_value *v) {
  memset(v, 0, sizeof *v);
  uint64_t at = r->pos;
  int32_t tag;
  if (rd_int(r, &tag, "object type")) return -1;
  switch (tag) {
    case TAG_NIL: v->kind = LT_T7_NIL; return 0;
    case TAG_NUMBER: v->kind = LT_T7_NUMBER; return rd_double(r, &v->num, "number");
    case TAG_BOOLEAN: {
      int32_t b;
      if (rd_int(r, &b, "boolean")) return -1;
      if (b != 0 && b != 1) return fail(r, "boolean of value %d (0 or 1 expected)", (int)b);
      v->kind = LT_T7_BOOLEAN;
      v->b = (uint8_t)b;
      return 0;
    }
    case TAG_STRING:
      v->kind = LT_T7_STRING;
      return rd_string(r, &v->s.off, &v->s.len, "string");
    case TAG_TABLE: case TAG_TORCH: case TAG_RECUR_FUNCTION: case TAG_LEGACY_RECUR_FUNCTION:
    case TAG_FUNCTION: {
      int32_t index = 0;
      if (tag != TAG_FUNCTION) {
        if (rd_int(r, &index, "object index")) return -1;
        if (index < 1) return fail(r, "object index %d (indices start at 1)", (int)index);
        if ((size_t)index <= r->nids) {   /* a back-reference */
          uint32_t id = r->ids[index - 1];
          int want = tag == TAG_TABLE ? LT_T7_TABLE : tag == TAG_TORCH ? -1 : LT_T7_FUNCTION;
          int k = r->f->nodes[id].kind;
          if ((want == -1 && (k == LT_T7_TABLE || k == LT_T7_FUNCTION)) || (want >= 0 && k != want))
            return fail(r, "reference to object %d, %s, as %s", (int)index, kind_name(k),
                        tag == TAG_TABLE ? "a table" : tag == TAG_TORCH ? "a torch object" : "a function");
          v->kind = LT_T7_NODE;
          v->node = id;
          return 0;
        }
        if ((size_t)index != r->nids + 1)
          return fail(r, "reference to object %d, which the file does not define before it (%zu so far)",
                      (int)index, r->nids);
      }
      if (r->depth >= LT_T7_MAX_DEPTH) return fail(r, "objects nested deeper than %d", LT_T7_MAX_DEPTH);
      r->depth++;
      uint32_t id = 0;
      int rc;
      if (tag == TAG_TABLE) {
        rc = new_node(r, LT_T7_TABLE, tag, index, at, &id);
        int32_t n;
        size_t kept = 0, base = r->nstack, first = 0;
        if (!rc) rc = rd_int(r, &n, "table size");
        if (!rc) rc = rd_pairs(r, n, &kept);
        if (!rc) rc = settle(r, r->nstack - base, &first);
        if (!rc) { r->f->nodes[id].first = first; r->f->nodes[id].n = kept; }
      } else if (tag == TAG_TORCH) {
        rc = rd_torch(r, index, at, &id);
      } else {
        rc = rd_function(r, tag, index, at, &id);
      }
      r->depth--;
      if (rc) return -1;
      v->kind = LT_T7_NODE;
      v->node = id;
      return 0;
    }
    default:
      r->pos = (size_t)at;
      return fail(r, "unknown object type %d", (int)tag);
  }
}

int lt_t7_parse(const unsigned char *buf, size_t len, int long_size, int ascii, lt_t7_file *f,
                char *err) {
  memset(f, 0, sizeof *f);
  f->ascii = ascii;
  f->long_size = long_size;
  rd r = {.p = buf, .n = len, .ascii = ascii, .lsz = long_size, .f = f, .err = err};
  r.path[0] = 0;
  lt_buf_put(&f->pool, "", 1);   /* offset 0 is never a string: the pool is never NULL */
  int rc = rd_value(&r, &f->root);
  if (!rc) {
    if (ascii) blanks(&r);
    if (r.pos != r.n) rc = fail(&r, "%zu bytes after the root object", r.n - r.pos);
  }
  free(r.ids);
  free(r.stack);
  if (rc) {
    lt_t7_free(f);
    return -1;
  }
  return 0;
}

void lt_t7_free(lt_t7_file *f) {
  free(f->nodes);
  free(f->items);
  free(f->dims);
  free(f->pool.p);
  memset(f, 0, sizeof *f);
}
