/*
** safetensors.c: the safetensors header parser/validator and writer (the
** tensor bytes go through rawio.c's streamed writer).
**
** Layout, as the reference crate (Hugging Face's safetensors) reads and
** writes it:
**   1. u64 LE N: header length in bytes (at most LT_ST_MAX_HEADER)
**   2. N bytes: a UTF-8 JSON object starting with '{', maybe followed by
**      spaces (the writer pads N to a multiple of 8):
**      {"__metadata__": {str: str} (or null), name: {"dtype": "F32", "shape": [d0,
**      ...], "data_offsets": [begin, end]}, ...}; names unique, dims and
**      offsets non-negative integers
**   3. the data buffer: tensors back to back, row-major, little-endian;
**      offsets relative to its start, contiguous from 0 (no holes, no
**      overlaps), the buffer fully indexed; end - begin = numel * size
**   4. dtypes: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 C64
**      F64 I64 U64 (and F4, F6_*, F8_E8M0, which ltorch has no dtype for);
**      the reference writer orders tensors by this list's rank, descending,
**      then by name. C128 is R torch's, read only.
*/
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "fmt.h"

/* the reference crate's dtypes in its enum order (the writer sorts by it);
   lt is the ltorch dtype, -1 when there is none */
typedef struct st_type { const char *name; int bits; int lt; } st_type;
static const st_type ST_TYPES[] = {
  {"BOOL", 8, LT_BOOL}, {"F4", 4, -1}, {"F6_E2M3", 6, -1}, {"F6_E3M2", 6, -1},
  {"U8", 8, LT_UINT8}, {"I8", 8, LT_INT8}, {"F8_E5M2", 8, LT_FLOAT8_E5M2},
  {"F8_E4M3", 8, LT_FLOAT8_E4M3FN}, {"F8_E8M0", 8, -1}, {"I16", 16, LT_INT16},
  {"U16", 16, LT_UINT16}, {"F16", 16, LT_FLOAT16}, {"BF16", 16, LT_BFLOAT16},
  {"I32", 32, LT_INT32}, {"U32", 32, LT_UINT32}, {"F32", 32, LT_FLOAT32},
  {"C64", 64, LT_COMPLEX64}, {"F64", 64, LT_FLOAT64}, {"I64", 64, LT_INT64},
  {"U64", 64, LT_UINT64},
  {"C128", 128, LT_COMPLEX128},    /* R's safetensors writer; read only */
};
#define ST_NTYPES (sizeof ST_TYPES / sizeof ST_TYPES[0])

static int st_rank(lt_dtype dt) {
  for (size_t i = 0; i < ST_NTYPES; i++)
    if (ST_TYPES[i].lt == (int)dt) return (int)i;
  return -1;
}

const char *lt_st_dtype_name(lt_dtype dt) {
  if (dt == LT_COMPLEX128) return NULL;   /* no C128 in the reference crate */
  int r = st_rank(dt);
  return r < 0 ? NULL : ST_TYPES[r].name;
}

/* ---- reading ------------------------------------------------------------ */

/* a JSON number that is a non-negative integer below 2^53 */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
  *out = (uint64_t)d;
  return 1;
}

void lt_st_free(lt_st_header *h) {
  for (size_t i = 0; i < h->n; i++) free(h->e[i].name);
  free(h->e);
  for (size_t i = 0; i < h->nmeta; i++) { free(h->meta_key[i]); free(h->meta_val[i]); }
  free(h->meta_key);
  free(h->meta_val);
  memset(h, 0, sizeof *h);
}

static int by_begin(const void *a, const void *b) {
  const lt_st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* parse one tensor entry; 0 ok */
static int parse_entry(const cJSON *node, const char *name, lt_st_entry *e, char *err) {
  if (!cJSON_IsObject(node)) {
    snprintf(err, LT_MSG, "tensor '%s': expected an object", name);
    return -1;
  }
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(node, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(node, "shape");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(node, "data_offsets");
  if (!cJSON_IsString(dt)) { snprintf(err, LT_MSG, "tensor '%s': missing or non-string 'dtype'", name); return -1; }
  if (!cJSON_IsArray(sh)) { snprintf(err, LT_MSG, "tensor '%s': missing or non-array 'shape'", name); return -1; }
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
    snprintf(err, LT_MSG, "tensor '%s': 'data_offsets' must be an array of two integers", name);
    return -1;
  }
  size_t ti = ST_NTYPES;
  for (size_t i = 0; i < ST_NTYPES; i++)
    if (strcmp(ST_TYPES[i].name, dt->valuestring) == 0) { ti = i; break; }
  if (ti == ST_NTYPES) {
    snprintf(err, LT_MSG, "tensor '%s': unknown dtype '%.40s'", name, dt->valuestring);
    return -1;
  }
  if (ST_TYPES[ti].lt < 0) {
    /* kept, checked like any other, refused only if it is loaded: a file's
       other tensors stay readable (keys selects around it) */
    e->dtype = LT_UINT8;
    e->unsupported = ST_TYPES[ti].name;
  } else e->dtype = (lt_dtype)ST_TYPES[ti].lt;
  int nd = cJSON_GetArraySize(sh);
  if (nd > LT_MAX_DIMS) {
    snprintf(err, LT_MSG, "tensor '%s': rank %d exceeds the limit of %d", name, nd, LT_MAX_DIMS);
    return -1;
  }
  e->ndim = nd;
  uint64_t numel = 1;
  int over = 0;
  for (int i = 0; i < nd; i++) {
    uint64_t d;
    if (!json_uint(cJSON_GetArrayItem(sh, i), &d)) {
      snprintf(err, LT_MSG, "tensor '%s': shape[%d] is not a non-negative integer", name, i + 1);
      return -1;
    }
    e->shape[i] = (int64_t)d;
    if (d && numel > UINT64_MAX / d) over = 1;
    else numel *= d;
  }
  uint64_t bits = (uint64_t)ST_TYPES[ti].bits;
  /* lt_shape_numel also refuses a zero-element shape whose strides overflow */
  if (over || numel > (uint64_t)INT64_MAX / bits || lt_shape_numel(nd, e->shape) < 0) {
    snprintf(err, LT_MSG, "tensor '%s': shape overflows", name);
    return -1;
  }
  if (numel * bits % 8) {
    snprintf(err, LT_MSG, "tensor '%s': %llu elements of %s do not fill whole bytes", name,
             (unsigned long long)numel, ST_TYPES[ti].name);
    return -1;
  }
  if (!json_uint(cJSON_GetArrayItem(off, 0), &e->begin) || !json_uint(cJSON_GetArrayItem(off, 1), &e->end)) {
    snprintf(err, LT_MSG, "tensor '%s': 'data_offsets' must be an array of two integers", name);
    return -1;
  }
  if (e->end < e->begin) {
    snprintf(err, LT_MSG, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
             (unsigned long long)e->begin, (unsigned long long)e->end);
    return -1;
  }
  if (e->end - e->begin != numel * bits / 8) {
    snprintf(err, LT_MSG, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, its shape and dtype %s need %llu",
             name, (unsigned long long)e->begin, (unsigned long long)e->end,
             (unsigned long long)(e->end - e->begin), ST_TYPES[ti].name,
             (unsigned long long)(numel * bits / 8));
    return -1;
  }
  return 0;
}

/*
** The header is read one top-level member at a time: a scan finds each
** key and the extent of its value, and cJSON parses those two pieces alone
** and is freed before the next. A whole-header cJSON tree costs about 700
** bytes per tensor (eight nodes and their strings), 1 GiB for a
** million-tensor header; the pieces cost one entry's tree at a time, and
** what stays per tensor is its lt_st_entry and name.
*/
static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* the end of the JSON string at p ('"'), or NULL when it does not end */
static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') { p++; continue; }
    if (*p == '"') return p + 1;
  }
  return NULL;
}

/* the end of the JSON value at p: strings skipped whole, brackets counted
   (cJSON checks the piece's grammar and nesting afterwards); NULL when the
   text ends first */
static const char *skip_value(const char *p, const char *end) {
  size_t depth = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      if (!(p = skip_string(p, end))) return NULL;
      if (depth == 0) return p;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') {
      if (depth == 0) return p;       /* the end of a bare scalar's container */
      if (--depth == 0) return p + 1;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
      return p;                       /* the end of a number or literal */
    }
    p++;
  }
  return depth == 0 ? p : NULL;
}

/* cJSON over [p, q) exactly; NULL with *bad at the failing byte */
static cJSON *parse_piece(const char *p, const char *q, const char **bad) {
  const char *e = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(q - p), &e, 0);
  if (v && e != q) { cJSON_Delete(v); v = NULL; }
  if (!v) *bad = e && e >= p && e <= q ? e : p;
  return v;
}

static int add_meta(lt_st_header *h, const cJSON *meta, char *err) {
  size_t nm = (size_t)cJSON_GetArraySize(meta);
  if (nm > LT_ST_MAX_META) {
    snprintf(err, LT_MSG, "'__metadata__' has %zu entries, more than the limit of %u", nm, LT_ST_MAX_META);
    return -1;
  }
  h->meta_key = calloc(nm ? nm : 1, sizeof(char *));
  h->meta_val = calloc(nm ? nm : 1, sizeof(char *));
  if (!h->meta_key || !h->meta_val) { snprintf(err, LT_MSG, "not enough memory for the header"); return -1; }
  for (const cJSON *c = meta->child; c; c = c->next) {
    if (!cJSON_IsString(c)) {
      snprintf(err, LT_MSG, "'__metadata__' value of '%s' is not a string", c->string);
      return -1;
    }
    h->meta_key[h->nmeta] = dupstr(c->string);
    h->meta_val[h->nmeta] = dupstr(c->valuestring);
    h->nmeta++;
    if (!h->meta_key[h->nmeta - 1] || !h->meta_val[h->nmeta - 1]) {
      snprintf(err, LT_MSG, "not enough memory for the header");
      return -1;
    }
  }
  /* duplicate keys: sorted copies, equal neighbours (not each against every other) */
  if (h->nmeta > 1) {
    char **keys = malloc(h->nmeta * sizeof *keys);
    if (!keys) { snprintf(err, LT_MSG, "not enough memory for the header"); return -1; }
    memcpy(keys, h->meta_key, h->nmeta * sizeof *keys);
    qsort(keys, h->nmeta, sizeof *keys, by_name);
    for (size_t i = 1; i < h->nmeta; i++)
      if (strcmp(keys[i - 1], keys[i]) == 0) {
        snprintf(err, LT_MSG, "'__metadata__': duplicate key '%s'", keys[i]);
        free(keys);
        return -1;
      }
    free(keys);
  }
  return 0;
}

int lt_st_parse(const char *json, size_t len, uint64_t data_len, lt_st_header *h, char *err) {
  memset(h, 0, sizeof *h);
  if (len == 0 || json[0] != '{') {
    snprintf(err, LT_MSG, "header does not start with '{'");
    return -1;
  }
  if (!lt_utf8_valid(json, len)) {
    snprintf(err, LT_MSG, "header is not valid UTF-8");
    return -1;
  }
  const char *end = json + len, *p = skip_ws(json + 1, end), *bad = NULL;
  cJSON *key = NULL, *val = NULL;
  size_t cap = 0;
  int seen_meta = 0;
  if (p < end && *p == '}') p++;
  else for (;;) {
    /* "key" : value */
    if (p >= end || *p != '"') { bad = p; goto syntax; }
    const char *q = skip_string(p, end);
    if (!q) { bad = end; goto syntax; }
    if (!(key = parse_piece(p, q, &bad))) goto syntax;
    p = skip_ws(q, end);
    if (p >= end || *p != ':') { bad = p; goto syntax; }
    p = skip_ws(p + 1, end);
    q = skip_value(p, end);
    if (!q || q == p) { bad = q ? q : end; goto syntax; }
    if (!(val = parse_piece(p, q, &bad))) goto syntax;
    const char *name = key->valuestring;
    if (strcmp(name, "__metadata__") == 0) {
      if (seen_meta) { snprintf(err, LT_MSG, "duplicate key '__metadata__'"); goto fail; }
      seen_meta = 1;
      /* null: no metadata (MLX writes it; the reference crate's Option reads it so) */
      if (!cJSON_IsNull(val)) {
        if (!cJSON_IsObject(val)) { snprintf(err, LT_MSG, "'__metadata__' is not an object"); goto fail; }
        if (add_meta(h, val, err)) goto fail;
      }
    } else {
      if (h->n == cap) {
        size_t nc = cap ? cap * 2 : 64;
        lt_st_entry *ne = realloc(h->e, nc * sizeof *ne);
        if (!ne) goto nomem;
        h->e = ne;
        cap = nc;
      }
      lt_st_entry *e = &h->e[h->n];
      memset(e, 0, sizeof *e);
      if (parse_entry(val, name, e, err)) goto fail;
      if (!(e->name = dupstr(name))) goto nomem;
      h->n++;
    }
    cJSON_Delete(key); key = NULL;
    cJSON_Delete(val); val = NULL;
    p = skip_ws(q, end);
    if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
    if (p < end && *p == '}') { p++; break; }
    bad = p;
    goto syntax;
  }
  p = skip_ws(p, end);
  if (p < end) {
    snprintf(err, LT_MSG, "header has text after the JSON object (at byte %zu)", (size_t)(p - json));
    goto fail;
  }
  if (!h->e && !(h->e = calloc(1, sizeof *h->e))) goto nomem;
  /* duplicate names (cJSON keeps them all) */
  if (h->n > 1) {
    char **names = malloc(h->n * sizeof *names);
    if (!names) goto nomem;
    for (size_t i = 0; i < h->n; i++) names[i] = h->e[i].name;
    qsort(names, h->n, sizeof *names, by_name);
    for (size_t i = 1; i < h->n; i++)
      if (strcmp(names[i - 1], names[i]) == 0) {
        snprintf(err, LT_MSG, "duplicate tensor name '%s'", names[i]);
        free(names);
        goto fail;
      }
    free(names);
  }
  /* offsets: contiguous from 0, no holes or overlaps, buffer fully indexed */
  qsort(h->e, h->n, sizeof *h->e, by_begin);
  uint64_t at = 0;
  for (size_t i = 0; i < h->n; i++) {
    if (h->e[i].begin != at) {
      snprintf(err, LT_MSG, "tensor '%s': data_offsets begin at %llu, expected %llu (%s)",
               h->e[i].name, (unsigned long long)h->e[i].begin, (unsigned long long)at,
               h->e[i].begin > at ? "a hole before it" : "it overlaps the previous tensor");
      goto fail;
    }
    at = h->e[i].end;
  }
  if (at != data_len) {
    snprintf(err, LT_MSG, "tensors index %llu bytes of data, the file holds %llu after the header",
             (unsigned long long)at, (unsigned long long)data_len);
    goto fail;
  }
  return 0;
syntax:
  snprintf(err, LT_MSG, "header is not valid JSON (at byte %zu)", (size_t)(bad - json));
  goto fail;
nomem:
  snprintf(err, LT_MSG, "not enough memory for the header");
fail:
  cJSON_Delete(key);
  cJSON_Delete(val);
  lt_st_free(h);
  return -1;
}

/* ---- writing ------------------------------------------------------------- */

#define ST_SMALL ((size_t)64 << 10)    /* tensors this small are gathered */
#define ST_GATHER ((size_t)256 << 10)  /* bytes gathered per write */

typedef struct st_item { const char *name; const lt_tensor *t; lt_dtype dt; int rank; } st_item;

static int by_dtype_name(const void *a, const void *b) {
  const st_item *x = a, *y = b;
  if (x->rank != y->rank) return x->rank > y->rank ? -1 : 1;
  return strcmp(x->name, y->name);
}

int lt_st_write_as(int fd, size_t n, const char *const *names, const lt_tensor *const *ts,
                   const lt_dtype *out, size_t nmeta, const char *const *keys,
                   const char *const *vals, const lt_wstream *ws, char *err) {
  st_item *items = calloc(n ? n : 1, sizeof *items);
  lt_buf b = {0}, g = {0};
  int rc = -1;
  if (!items) { snprintf(err, LT_MSG, "not enough memory"); return -1; }
  for (size_t i = 0; i < n; i++) {
    lt_dtype dt = out ? out[i] : ts[i]->dtype;
    const char *dn = lt_st_dtype_name(dt);
    if (!dn) {
      snprintf(err, LT_MSG, "tensor '%s': dtype %s cannot be stored in safetensors (.pt can)",
               names[i], lt_dtypes[dt].name);
      goto done;
    }
    items[i].name = names[i];
    items[i].t = ts[i];
    items[i].dt = dt;
    items[i].rank = st_rank(dt);
  }
  qsort(items, n, sizeof *items, by_dtype_name);
  lt_buf_puts(&b, "{");
  if (nmeta) {
    lt_buf_puts(&b, "\"__metadata__\":{");
    for (size_t i = 0; i < nmeta; i++) {
      if (i) lt_buf_puts(&b, ",");
      lt_buf_json_string(&b, keys[i], strlen(keys[i]));
      lt_buf_puts(&b, ":");
      lt_buf_json_string(&b, vals[i], strlen(vals[i]));
    }
    lt_buf_puts(&b, "}");
  }
  uint64_t off = 0;
  char num[64];
  for (size_t i = 0; i < n; i++) {
    const lt_tensor *t = items[i].t;
    if (nmeta || i) lt_buf_puts(&b, ",");
    lt_buf_json_string(&b, items[i].name, strlen(items[i].name));
    lt_buf_puts(&b, ":{\"dtype\":\"");
    lt_buf_puts(&b, lt_st_dtype_name(items[i].dt));
    lt_buf_puts(&b, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
      lt_buf_puts(&b, num);
    }
    uint64_t nb = (uint64_t)lt_numel(t) * lt_dtypes[items[i].dt].size;
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
             (unsigned long long)(off + nb));
    lt_buf_puts(&b, num);
    off += nb;
  }
  lt_buf_puts(&b, "}");
  lt_buf_put(&b, "        ", (8 - b.n % 8) % 8);   /* spaces to a multiple of 8 */
  if (b.oom) { snprintf(err, LT_MSG, "not enough memory for the header"); goto done; }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.n >> (8 * i));
  /* the header and the small tensors after it gathered into big writes
     (20,000 small tensors: a few system calls, not 20,000); a copy from
     a mapping cut short faults in this thread, as a read of it does */
  lt_buf_put(&g, len8, 8);
  lt_buf_put(&g, b.p, b.n);
  int gather = !ws || (!ws->progress && !ws->release);
  for (size_t i = 0; i < n; i++) {
    const lt_tensor *t = items[i].t;
    size_t nb = (size_t)lt_numel(t) * lt_dtypes[items[i].dt].size;
    if (gather && nb <= ST_SMALL && items[i].dt == t->dtype && lt_is_contiguous(t) && t->storage->device == LT_CPU) {
      if (nb && lt_storage_fill(t->storage, err)) goto done;
      if (g.n + nb > ST_GATHER) {
        if (g.oom) { snprintf(err, LT_MSG, "not enough memory"); goto done; }
        if (lt_write_full(fd, g.p, g.n, err)) goto done;
        g.n = 0;
      }
      if (nb) lt_buf_put(&g, lt_data(t), nb);
      continue;
    }
    if (g.oom) { snprintf(err, LT_MSG, "not enough memory"); goto done; }
    if (g.n && lt_write_full(fd, g.p, g.n, err)) goto done;
    g.n = 0;
    if (lt_write_tensor_as(fd, t, items[i].dt, ws, err)) goto done;
  }
  if (g.oom) { snprintf(err, LT_MSG, "not enough memory"); goto done; }
  if (g.n && lt_write_full(fd, g.p, g.n, err)) goto done;
  rc = 0;
done:
  free(items);
  lt_buf_free(&b);
  lt_buf_free(&g);
  return rc;
}
