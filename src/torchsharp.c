/*
** torchsharp.c: TorchSharp's .dat files, scanned through rawio.c's reads.
** TorchSharp files have no magic, header or version: a file is one of
** three layouts, told apart only by parsing it whole (lt_ts_scan,
** lt_ts_scan_tensor, lt_ts_scan_optim).
**
** Primitives (TorchSharp src/TorchSharp/Utils/LEB128Codec.cs and .NET's
** BinaryWriter):
**   LEB128   7 bits a byte, low first (LEB128Codec.Encode/Decode); at most
**            10 bytes here (64 bits)
**   string   BinaryWriter.Write(string): 7-bit encoded (= LEB128) UTF-8
**            byte length, then the bytes
**   f64, i64 BinaryWriter.Write(double / long): 8 bytes little-endian
**   bool     BinaryWriter.Write(bool): one byte, 0 or 1
**   tensor   TensorExtensionMethods.Save(Tensor, BinaryWriter): LEB128
**            dtype code (TorchSharp's ScalarType: 0 uint8, 1 int8, 2 int16,
**            3 int32, 4 int64, 5 float16, 6 float32, 7 float64, 9
**            complex64, 10 complex128, 11 bool, 15 bfloat16; exportsd.py
**            writes 4711 for a type it does not know); LEB128 ndim; LEB128
**            dims, outermost first; then numel * itemsize raw bytes, C
**            order, little-endian (Tensor.WriteBytesToStream)
**   tensor?  OptimizerState.SaveConditionalStateTensor: bool, then a
**            tensor when it is 1
**
** Layouts:
**   1. state dict (Module.save, exportsd.py save_state_dict): LEB128 count;
**      per entry a string name and a tensor
**   2. one tensor (Tensor.Save(path), exportsd.py write_tensor): a tensor
**   3. optimizer state (OptimizerHelper.save_state_dict, exportsd.py
**      save_sgd, save_adam, ...): string optimizer class name; LEB128
**      group count; LEB128 state count; per group the options of that
**      optimizer; per parameter (groups in order, their parameters in
**      order) its state: the fields in TS_LAYOUTS below
**   In every layout nothing follows the last field.
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
/* c10 ScalarType codes without an ltorch dtype, with their element sizes
   (c10/core/ScalarType.h): 8 ComplexHalf, 12 QInt8, 13 QUInt8, 14 QInt32,
   16 QUInt4x2, 17 QUInt2x4, 18-21 Bits1x8..Bits8, 22 Bits16, 25 and 26 the
   fnuz float8 kinds. A state dict's entry of these is skipped: keys can
   read the others */
static int ts_skip_size(uint64_t code) {
  switch (code) {
    case 8: case 14: return 4;
    case 22: return 2;
    case 12: case 13: case 16: case 17: case 18: case 19: case 20: case 21: case 25: case 26: return 1;
    default: return 0;
  }
}
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

static int rd_bytes(rd *r, unsigned char *out, size_t n, const char *what, char *err) {
  uint64_t at = r->pos;
  if (r->size - r->pos < n) {
    snprintf(err, LT_MSG, "truncated %s at byte %llu", what, (unsigned long long)at);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (rd_byte(r, &out[i], err)) return -1;
  return 0;
}

/* a string (LEB128 byte length + bytes, no NUL) into a malloc'ed *out */
static int rd_string(rd *r, char **out, const char *what, char *err) {
  uint64_t len;
  char w[64];
  *out = NULL;
  snprintf(w, sizeof w, "%s length", what);
  if (rd_leb(r, &len, w, err)) return -1;
  if (len > LT_TS_MAX_NAME || len > r->size - r->pos) {
    snprintf(err, LT_MSG, "%s length %llu exceeds the file", what, (unsigned long long)len);
    return -1;
  }
  char *s = malloc(len + 1);
  if (!s) { snprintf(err, LT_MSG, "not enough memory"); return -1; }
  if (rd_bytes(r, (unsigned char *)s, (size_t)len, what, err)) { free(s); return -1; }
  s[len] = 0;
  if (memchr(s, 0, len)) {
    free(s);
    snprintf(err, LT_MSG, "%s holds a NUL byte", what);
    return -1;
  }
  *out = s;
  return 0;
}

/* one tensor record at r->pos into e (its name untouched); skips the data.
   A dtype code ltorch lacks but can skip sets e->unsupported (state dicts
   only: the other layouts refuse it, see rd_tensor_strict) */
static int rd_tensor(rd *r, lt_ts_entry *e, char *err) {
  uint64_t code, nd;
  if (rd_leb(r, &code, "dtype", err)) return -1;
  int dt = lt_ts_dtype_from_code(code);
  int skip = dt < 0 ? ts_skip_size(code) : 0;
  if (dt < 0 && !skip) {
    snprintf(err, LT_MSG, "unsupported dtype code %llu%s", (unsigned long long)code,
             code == 4711 ? " (exportsd's fallback for unknown types)" : "");
    return -1;
  }
  e->unsupported = skip ? (int)code : -1;
  e->dtype = skip ? LT_UINT8 : (lt_dtype)dt;
  if (rd_leb(r, &nd, "rank", err)) return -1;
  if (nd > LT_MAX_DIMS) {
    snprintf(err, LT_MSG, "rank %llu exceeds the limit of %d", (unsigned long long)nd, LT_MAX_DIMS);
    return -1;
  }
  e->ndim = (int)nd;
  for (int d = 0; d < e->ndim; d++) {
    uint64_t v;
    if (rd_leb(r, &v, "dimension", err)) return -1;
    if (v > (uint64_t)INT64_MAX) { snprintf(err, LT_MSG, "dimension %d overflows", d + 1); return -1; }
    e->shape[d] = (int64_t)v;
  }
  int64_t numel = lt_shape_numel(e->ndim, e->shape);
  uint64_t isz = skip ? (uint64_t)skip : lt_dtypes[e->dtype].size;
  if (numel < 0 || (uint64_t)numel > (uint64_t)INT64_MAX / isz) {
    snprintf(err, LT_MSG, "shape overflows");
    return -1;
  }
  e->nbytes = (uint64_t)numel * isz;
  e->data_off = r->pos;
  if (e->nbytes > r->size - r->pos) {
    snprintf(err, LT_MSG, "truncated: expected %llu bytes of data at byte %llu, found %llu",
             (unsigned long long)e->nbytes, (unsigned long long)r->pos,
             (unsigned long long)(r->size - r->pos));
    return -1;
  }
  r->pos += e->nbytes;
  return 0;
}

static int rd_trailing(const rd *r, const char *last, char *err) {
  if (r->pos == r->size) return 0;
  snprintf(err, LT_MSG, "%llu unexpected bytes after the last %s", (unsigned long long)(r->size - r->pos), last);
  return -1;
}

static rd *rd_new(int fd, uint64_t size, char *err) {
  rd *r = calloc(1, sizeof *r);
  if (!r) { snprintf(err, LT_MSG, "not enough memory"); return NULL; }
  r->fd = fd;
  r->size = size;
  return r;
}

void lt_ts_free(lt_ts_file *f) {
  for (size_t i = 0; i < f->n; i++) free(f->e[i].name);
  free(f->e);
  memset(f, 0, sizeof *f);
}

/* ---- 1. state dict ------------------------------------------------------- */

/* the duplicate-name check: the names sorted (ties by entry index), equal
   neighbours are duplicates; O(n log n), as gguf.c's dup_name */
typedef struct ts_named { const char *s; size_t i; } ts_named;
static int by_entry_name(const void *a, const void *b) {
  const ts_named *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* the first entry whose name an earlier entry has (its index), -1 for none,
   -2 (err set) when out of memory */
static long dup_entry(const lt_ts_file *f, char *err) {
  if (f->n < 2) return -1;
  ts_named *v = malloc(f->n * sizeof *v);
  if (!v) { snprintf(err, LT_MSG, "not enough memory"); return -2; }
  for (size_t i = 0; i < f->n; i++) v[i] = (ts_named){f->e[i].name, i};
  qsort(v, f->n, sizeof *v, by_entry_name);
  long first = -1;
  for (size_t i = 1; i < f->n; i++)
    if (strcmp(v[i - 1].s, v[i].s) == 0 && (first < 0 || (long)v[i].i < first)) first = (long)v[i].i;
  free(v);
  return first;
}

int lt_ts_scan(int fd, uint64_t size, lt_ts_file *f, char *err) {
  char sub[LT_MSG];
  memset(f, 0, sizeof *f);
  rd *r = rd_new(fd, size, err);
  if (!r) return -1;
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
    if (rd_string(r, &e->name, "name", sub)) {
      snprintf(err, LT_MSG, "entry %llu: %.400s", (unsigned long long)i + 1, sub);
      goto fail;
    }
    f->n++;
    if (rd_tensor(r, e, sub)) {
      snprintf(err, LT_MSG, "entry %llu '%.200s': %.250s", (unsigned long long)i + 1, e->name, sub);
      goto fail;
    }
  }
  long d = dup_entry(f, err);
  if (d == -2) goto fail;
  if (d >= 0) {
    snprintf(err, LT_MSG, "entry %ld '%.200s': duplicate name", d + 1, f->e[d].name);
    goto fail;
  }
  if (rd_trailing(r, "entry", err)) goto fail;
  free(r);
  return 0;
fail:
  free(r);
  lt_ts_free(f);
  return -1;
}

/* rd_tensor for the layouts whose tensors are all loaded: no skipping */
static int rd_tensor_strict(rd *r, lt_ts_entry *e, char *err) {
  if (rd_tensor(r, e, err)) return -1;
  if (e->unsupported >= 0) {
    snprintf(err, LT_MSG, "unsupported dtype code %d", e->unsupported);
    return -1;
  }
  return 0;
}

/* ---- 2. one tensor --------------------------------------------------------- */

int lt_ts_scan_tensor(int fd, uint64_t size, lt_ts_entry *e, char *err) {
  memset(e, 0, sizeof *e);
  rd *r = rd_new(fd, size, err);
  if (!r) return -1;
  int rc = rd_tensor_strict(r, e, err);
  if (!rc) rc = rd_trailing(r, "tensor", err);
  free(r);
  return rc;
}

/* ---- 3. optimizer state ---------------------------------------------------- */

#define F64(n) {n, LT_TS_F64}
#define BOOL(n) {n, LT_TS_BOOL}
#define I64(n) {n, LT_TS_I64}
#define TEN(n) {n, LT_TS_TENSOR}
#define OPT(n) {n, LT_TS_OPT_TENSOR}
#define LR F64("initial_lr"), F64("lr")   /* OptimizerOptions.SaveStateDict */
#define N(a) (int)(sizeof a / sizeof a[0])

/* each optimizer's Options.SaveStateDict and State.SaveStateDict, in
   TorchSharp src/TorchSharp/Optimizers/NAME.cs (and exportsd.py's save_NAME) */
static const lt_ts_field SGD_O[] = {LR, F64("momentum"), F64("dampening"), F64("weight_decay"),
  BOOL("nesterov"), BOOL("maximize")};
static const lt_ts_field SGD_S[] = {OPT("momentum_buffer")};
static const lt_ts_field ADAM_O[] = {LR, F64("beta1"), F64("beta2"), F64("eps"), F64("weight_decay"),
  BOOL("amsgrad"), BOOL("maximize")};
static const lt_ts_field ADAM_S[] = {I64("step"), TEN("exp_avg"), TEN("exp_avg_sq"), OPT("max_exp_avg_sq")};
static const lt_ts_field RMS_O[] = {LR, BOOL("maximize"), F64("momentum"), F64("alpha"), F64("eps"),
  F64("weight_decay"), BOOL("centered")};
static const lt_ts_field RMS_S[] = {I64("step"), TEN("square_avg"), OPT("momentum_buffer"), OPT("grad_avg")};
static const lt_ts_field ADAGRAD_O[] = {LR, F64("lr_decay"), F64("initial_accumulator_value"), F64("eps"),
  F64("weight_decay")};
static const lt_ts_field ADAGRAD_S[] = {I64("step"), TEN("sum")};
static const lt_ts_field ADADELTA_O[] = {LR, F64("rho"), F64("eps"), F64("weight_decay"), BOOL("maximize")};
static const lt_ts_field ADADELTA_S[] = {I64("step"), TEN("square_avg"), TEN("acc_delta")};
static const lt_ts_field BETAS_O[] = {LR, F64("beta1"), F64("beta2"), F64("eps"), F64("weight_decay")};
static const lt_ts_field ADAMAX_S[] = {I64("step"), TEN("exp_avg"), TEN("exp_inf")};
static const lt_ts_field NADAM_O[] = {LR, F64("beta1"), F64("beta2"), F64("eps"), F64("weight_decay"),
  F64("momentum_decay")};
static const lt_ts_field NADAM_S[] = {I64("step"), F64("mu_product"), TEN("exp_avg"), TEN("exp_avg_sq")};
static const lt_ts_field RADAM_S[] = {I64("step"), TEN("exp_avg"), TEN("exp_avg_sq")};
static const lt_ts_field ASGD_O[] = {LR, BOOL("maximize"), F64("lambd"), F64("alpha"), F64("weight_decay"),
  F64("t0")};
static const lt_ts_field ASGD_S[] = {I64("step"), F64("eta"), F64("mu"), TEN("ax")};
static const lt_ts_field RPROP_O[] = {LR, BOOL("maximize"), F64("etaminus"), F64("etaplus"), F64("min_step"),
  F64("max_step")};
static const lt_ts_field RPROP_S[] = {I64("step"), TEN("prev"), TEN("step_size")};

/* the names are the C# class names (GetType().Name), which exportsd.py writes too */
#define LAYOUT(name, o, s) {name, o, N(o), s, N(s)}
static const lt_ts_layout TS_LAYOUTS[] = {
  LAYOUT("SGD", SGD_O, SGD_S), LAYOUT("Adam", ADAM_O, ADAM_S), LAYOUT("AdamW", ADAM_O, ADAM_S),
  LAYOUT("RMSProp", RMS_O, RMS_S), LAYOUT("Adagrad", ADAGRAD_O, ADAGRAD_S),
  LAYOUT("Adadelta", ADADELTA_O, ADADELTA_S), LAYOUT("Adamax", BETAS_O, ADAMAX_S),
  LAYOUT("NAdam", NADAM_O, NADAM_S), LAYOUT("RAdam", BETAS_O, RADAM_S), LAYOUT("ASGD", ASGD_O, ASGD_S),
  LAYOUT("Rprop", RPROP_O, RPROP_S),
};

const lt_ts_layout *lt_ts_layouts(size_t *n) {
  *n = sizeof TS_LAYOUTS / sizeof TS_LAYOUTS[0];
  return TS_LAYOUTS;
}

void lt_ts_optim_free(lt_ts_optim *o) {
  free(o->v);
  lt_ts_free(&o->t);
  memset(o, 0, sizeof *o);
}

/* a tensor record appended to o->t, its index in *idx */
static int rd_state_tensor(rd *r, lt_ts_optim *o, int64_t *idx, char *err) {
  if (o->t.n >= o->tcap) {
    snprintf(err, LT_MSG, "more tensors than the file can hold");
    return -1;
  }
  lt_ts_entry *e = &o->t.e[o->t.n];
  memset(e, 0, sizeof *e);
  if (rd_tensor_strict(r, e, err)) return -1;
  *idx = (int64_t)o->t.n++;
  return 0;
}

/* one field into v; tensors are appended to o->t */
static int rd_field(rd *r, lt_ts_optim *o, const lt_ts_field *fd, lt_ts_value *v, char *err) {
  unsigned char b[8];
  v->tensor = -1;
  if (fd->kind == LT_TS_TENSOR) return rd_state_tensor(r, o, &v->tensor, err);
  if (fd->kind == LT_TS_F64 || fd->kind == LT_TS_I64) {
    if (rd_bytes(r, b, 8, fd->kind == LT_TS_F64 ? "f64" : "i64", err)) return -1;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
    if (fd->kind == LT_TS_F64) memcpy(&v->f, &u, sizeof v->f);
    else memcpy(&v->i, &u, sizeof v->i);
    return 0;
  }
  /* a bool, or the flag before a conditional tensor */
  if (rd_bytes(r, b, 1, "bool", err)) return -1;
  if (b[0] > 1) {
    snprintf(err, LT_MSG, "bool byte %u at byte %llu is neither 0 nor 1", b[0],
             (unsigned long long)(r->pos - 1));
    return -1;
  }
  v->b = b[0];
  if (fd->kind == LT_TS_OPT_TENSOR && b[0]) return rd_state_tensor(r, o, &v->tensor, err);
  return 0;
}

int lt_ts_scan_optim(int fd, uint64_t size, lt_ts_optim *o, char *err) {
  char *name = NULL, sub[LT_MSG];
  size_t nl;
  memset(o, 0, sizeof *o);
  rd *r = rd_new(fd, size, err);
  if (!r) return -1;
  if (rd_string(r, &name, "optimizer name", err)) goto fail;
  const lt_ts_layout *L = lt_ts_layouts(&nl);
  for (size_t i = 0; i < nl && !o->layout; i++)
    if (strcmp(L[i].name, name) == 0) o->layout = &L[i];
  if (!o->layout) {
    snprintf(err, LT_MSG, "optimizer '%.200s' is not one TorchSharp saves (SGD, Adam, AdamW, RMSProp, "
             "Adagrad, Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop)", name);
    goto fail;
  }
  free(name);
  name = NULL;
  const lt_ts_layout *ly = o->layout;
  if (rd_leb(r, &o->ngroups, "group count", err) || rd_leb(r, &o->nstates, "state count", err)) goto fail;
  /* a group takes at least 16 bytes (two f64), a state at least 1: bounds */
  uint64_t left = size - r->pos;
  if (o->ngroups > LT_TS_MAX_STATES || o->ngroups > left / 16) {
    snprintf(err, LT_MSG, "group count %llu is more than the file can hold", (unsigned long long)o->ngroups);
    goto fail;
  }
  if (o->nstates > LT_TS_MAX_STATES || o->nstates > left) {
    snprintf(err, LT_MSG, "state count %llu is more than the file can hold", (unsigned long long)o->nstates);
    goto fail;
  }
  /* every tensor takes at least 2 bytes (dtype, rank) */
  uint64_t nv = o->ngroups * (uint64_t)ly->noptions + o->nstates * (uint64_t)ly->nstate;
  o->tcap = (size_t)(o->nstates * (uint64_t)ly->nstate);
  if (o->tcap > left / 2 + 1) o->tcap = (size_t)(left / 2 + 1);
  o->v = calloc(nv ? nv : 1, sizeof *o->v);
  o->t.e = calloc(o->tcap ? o->tcap : 1, sizeof *o->t.e);
  if (!o->v || !o->t.e) { snprintf(err, LT_MSG, "not enough memory"); goto fail; }
  lt_ts_value *v = o->v;
  for (uint64_t g = 0; g < o->ngroups; g++)
    for (int k = 0; k < ly->noptions; k++, v++)
      if (rd_field(r, o, &ly->options[k], v, sub)) {
        snprintf(err, LT_MSG, "group %llu '%s': %.400s", (unsigned long long)g + 1, ly->options[k].name, sub);
        goto fail;
      }
  for (uint64_t s = 0; s < o->nstates; s++)
    for (int k = 0; k < ly->nstate; k++, v++)
      if (rd_field(r, o, &ly->state[k], v, sub)) {
        snprintf(err, LT_MSG, "state %llu '%s': %.400s", (unsigned long long)s + 1, ly->state[k].name, sub);
        goto fail;
      }
  if (rd_trailing(r, o->nstates ? "state" : "group", err)) goto fail;
  free(r);
  return 0;
fail:
  free(name);
  free(r);
  lt_ts_optim_free(o);
  return -1;
}
