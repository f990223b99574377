/*
** ops.c: tensor math without Lua. Elementwise kernels (the unary and
** binary tables DEF_UNARY and DEF_BINARY, written once for float and once
** for double, and their integer and complex cases) run over strided,
** broadcast views in chunks: each chunk is read into a buffer of the compute
** domain (double, int64 or complex double), computed (in float for float
** results other than float64, as PyTorch's opmath), and converted into the
** contiguous output with lt_convert (so float16/bfloat16/float8 round back
** from float32 as c10 does). Contiguous float32 and float64 have plain
** loops the compiler vectorises. where and masked_fill select with bit
** masks. matmul and convolution go through OpenBLAS gemm; pooling and
** normalisation work on contiguous double buffers.
**
** OpenBLAS is opened on the first gemm (dlopen), not when ltorch loads: its
** start-up costs milliseconds and starts a thread pool whose threads spin
** for a while, taking a core from a script that only loads and saves.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <complex.h>
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "ops.h"

#define CH 256            /* elements per chunk of an elementwise kernel */

#define VECTORIZE LT_VECTORIZE   /* lt.h */

/* an element function inlined into each loop of its op, so the switch
   over ops folds away (GCC stops inlining a function this large) */
#if defined(__GNUC__)
#define ELEMENT static inline __attribute__((always_inline))
#else
#define ELEMENT static inline
#endif

static int kind(lt_dtype d) { return lt_dtypes[d].kind; }

/* ---- broadcasting ------------------------------------------------------ */

int lt_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t x = i < n - na ? 1 : sa[i - (n - na)];
    int64_t y = i < n - nb ? 1 : sb[i - (n - nb)];
    if (x == y || y == 1) out[i] = x;
    else if (x == 1) out[i] = y;
    else return -1;
  }
  return n;
}

void lt_expand_view(const lt_tensor *t, int ndim, const int64_t *shape, lt_tensor *out) {
  lt_tensor v = *t;
  int off = ndim - t->ndim;
  v.ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    v.shape[i] = shape[i];
    if (i < off) v.stride[i] = 0;
    else v.stride[i] = t->shape[i - off] == shape[i] ? t->stride[i - off] : 0;
  }
  *out = v;
}

/* ---- chunk loads ------------------------------------------------------- */

static void load_f64(lt_iter *it, lt_dtype dt, double *buf, int n) {
  switch (dt) {
    case LT_FLOAT32:
      for (int i = 0; i < n; i++) { float f; memcpy(&f, lt_iter_next(it), 4); buf[i] = f; }
      break;
    case LT_FLOAT64:
      for (int i = 0; i < n; i++) memcpy(&buf[i], lt_iter_next(it), 8);
      break;
    default:
      for (int i = 0; i < n; i++) buf[i] = lt_get_f64(dt, lt_iter_next(it));
  }
}

static void load_i64(lt_iter *it, lt_dtype dt, int64_t *buf, int n) {
  if (dt == LT_INT64) {
    for (int i = 0; i < n; i++) memcpy(&buf[i], lt_iter_next(it), 8);
    return;
  }
  for (int i = 0; i < n; i++) buf[i] = lt_get_i64(dt, lt_iter_next(it));
}

static void load_c128(lt_iter *it, lt_dtype dt, double *buf, int n) {
  for (int i = 0; i < n; i++) lt_get_c128(dt, lt_iter_next(it), buf + 2 * i);
}

/* ---- binary kernels ---------------------------------------------------- */

/* the comparison and logical cases of a switch over op, in any number
   type: 1 or 0 (nan is nonzero, as in PyTorch's logical ops) */
#define CMP_CASES(x, y)                              \
  case LT_OP_EQ: return (x) == (y);                  \
  case LT_OP_NE: return (x) != (y);                  \
  case LT_OP_LT: return (x) < (y);                   \
  case LT_OP_LE: return (x) <= (y);                  \
  case LT_OP_GT: return (x) > (y);                   \
  case LT_OP_GE: return (x) >= (y);                  \
  case LT_OP_AND: return ((x) != 0) && ((y) != 0);   \
  case LT_OP_OR: return ((x) != 0) || ((y) != 0);    \
  default: return ((x) != 0) != ((y) != 0);

/* The binary ops of a float type T, whose <math.h> functions end in S (f,
   or nothing for double), defined once for float and once for double, so
   that float32/float16/bfloat16 results come from float arithmetic as
   PyTorch's (opmath) do.
   floordiv_SUF: Python's floor division: the quotient is taken from fmod so
   that it stays exact where x / y would round up to an integer; a zero
   divisor gives IEEE's x / y; a zero quotient has the sign of x / y.
   rem_SUF: Python's remainder (the divisor's sign); -0.0 stays -0.0.
   maximum and minimum propagate nan and give x when x and y compare equal
   (so maximum(-0.0, 0.0) is -0.0, as std::max). */
#define DEF_BINARY(T, SUF, S)                                                      \
  static inline T floordiv_##SUF(T x, T y) {                                       \
    if (y == 0) return x / y;                                                      \
    T m = fmod##S(x, y), q = (x - m) / y;                                          \
    if (m != 0 && (y < 0) != (m < 0)) q -= 1;                                      \
    if (q == 0) return copysign##S((T)0, x / y);                                   \
    T f = floor##S(q);                                                             \
    return q - f > (T)0.5 ? f + 1 : f;                                             \
  }                                                                                \
  static inline T rem_##SUF(T x, T y) {                                            \
    T m = fmod##S(x, y);                                                           \
    return (m != 0 && (y < 0) != (m < 0)) ? m + y : m;                             \
  }                                                                                \
  ELEMENT T bin_##SUF(int op, T x, T y) {                                          \
    switch (op) {                                                                  \
      case LT_OP_ADD: return x + y;                                                \
      case LT_OP_SUB: return x - y;                                                \
      case LT_OP_MUL: return x * y;                                                \
      case LT_OP_DIV: return x / y;                                                \
      case LT_OP_POW: return pow##S(x, y);                                         \
      case LT_OP_MAX: return (isnan(x) || isnan(y)) ? (T)NAN : (x < y ? y : x);    \
      case LT_OP_MIN: return (isnan(x) || isnan(y)) ? (T)NAN : (y < x ? y : x);    \
      case LT_OP_ATAN2: return atan2##S(x, y);                                     \
      case LT_OP_REM: return rem_##SUF(x, y);                                      \
      case LT_OP_FLOORDIV: return floordiv_##SUF(x, y);                            \
      CMP_CASES(x, y)                                                              \
    }                                                                              \
  }                                                                                \
  /* o[i] = x[i] op y[i] for i < m: one loop per op */                             \
  VECTORIZE static void binary_##SUF(int op, const T *x, const T *y, T *o, int m) {  \
    switch (op) {                                                                  \
      BIN_LOOP(SUF, ADD) BIN_LOOP(SUF, SUB) BIN_LOOP(SUF, MUL) BIN_LOOP(SUF, DIV) \
      BIN_LOOP(SUF, POW) BIN_LOOP(SUF, MAX) BIN_LOOP(SUF, MIN) BIN_LOOP(SUF, ATAN2) \
      BIN_LOOP(SUF, REM) BIN_LOOP(SUF, FLOORDIV) BIN_LOOP(SUF, EQ) BIN_LOOP(SUF, NE) \
      BIN_LOOP(SUF, LT) BIN_LOOP(SUF, LE) BIN_LOOP(SUF, GT) BIN_LOOP(SUF, GE)   \
      BIN_LOOP(SUF, AND) BIN_LOOP(SUF, OR)                                      \
      default: for (int i = 0; i < m; i++) o[i] = bin_##SUF(LT_OP_XOR, x[i], y[i]); \
    }                                                                              \
  }
#define BIN_LOOP(SUF, OP) \
  case LT_OP_##OP: for (int i = 0; i < m; i++) o[i] = bin_##SUF(LT_OP_##OP, x[i], y[i]); break;
DEF_BINARY(float, f32, f)
DEF_BINARY(double, f64, )

/* integer power with wrap-around, as PyTorch's int pow */
static int64_t ipow(int64_t b, int64_t e) {
  if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)b;
  while (e) {
    if (e & 1) r *= x;
    x *= x;
    e >>= 1;
  }
  return (int64_t)r;
}

/* integer ops, wrapping as PyTorch's (INT64_MIN / -1 is INT64_MIN); a zero
   divisor of REM or FLOORDIV sets *zdiv */
static int64_t bin_i64(int op, int64_t x, int64_t y, int *zdiv) {
  switch (op) {
    case LT_OP_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
    case LT_OP_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
    case LT_OP_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
    case LT_OP_DIV: return y == 0 ? 0 : (y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y);
    case LT_OP_POW: return ipow(x, y);
    case LT_OP_MAX: return x > y ? x : y;
    case LT_OP_MIN: return x < y ? x : y;
    case LT_OP_ATAN2: return 0;            /* never: the binding computes it in float */
    case LT_OP_REM: {
      if (y == 0) { *zdiv = 1; return 0; }
      if (y == -1) return 0;
      int64_t r = x % y;
      return (r != 0 && (r < 0) != (y < 0)) ? r + y : r;
    }
    case LT_OP_FLOORDIV: {
      if (y == 0) { *zdiv = 1; return 0; }
      if (y == -1) return (int64_t)(0 - (uint64_t)x);
      int64_t q = x / y;
      return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }
    CMP_CASES(x, y)
  }
}

/* uint64's ops where int64's would differ past 2^63 (uint16 and uint32
   values are exact in int64, whose wrapped results they truncate): C's
   unsigned arithmetic, modulo 2^64; a zero divisor of REM or FLOORDIV sets
   *zdiv. Results are the bits of the uint64. */
static int64_t bin_u64(int op, uint64_t x, uint64_t y, int *zdiv) {
  switch (op) {
    case LT_OP_ADD: return (int64_t)(x + y);
    case LT_OP_SUB: return (int64_t)(x - y);
    case LT_OP_MUL: return (int64_t)(x * y);
    case LT_OP_POW: {
      uint64_t r = 1;
      for (; y; y >>= 1, x *= x) if (y & 1) r *= x;
      return (int64_t)r;
    }
    case LT_OP_MAX: return (int64_t)(x > y ? x : y);
    case LT_OP_MIN: return (int64_t)(x < y ? x : y);
    case LT_OP_DIV: case LT_OP_ATAN2: return 0;   /* never: computed in float */
    case LT_OP_REM: case LT_OP_FLOORDIV:
      if (y == 0) { *zdiv = 1; return 0; }
      return (int64_t)(op == LT_OP_REM ? x % y : x / y);
    CMP_CASES(x, y)
  }
}

static void bin_c128(int op, const double *x, const double *y, double *o) {
  double complex a = CMPLX(x[0], x[1]), b = CMPLX(y[0], y[1]), r;
  int nx = x[0] != 0 || x[1] != 0, ny = y[0] != 0 || y[1] != 0;
  switch (op) {
    case LT_OP_ADD: r = a + b; break;
    case LT_OP_SUB: r = a - b; break;
    case LT_OP_MUL: r = a * b; break;
    case LT_OP_DIV: r = a / b; break;
    case LT_OP_POW: r = cpow(a, b); break;
    case LT_OP_EQ: r = a == b; break;
    case LT_OP_NE: r = a != b; break;
    case LT_OP_AND: r = nx && ny; break;
    case LT_OP_OR: r = nx || ny; break;
    case LT_OP_XOR: r = nx != ny; break;
    default: r = bin_f64(op, x[0], y[0]); break;
  }
  o[0] = creal(r);
  o[1] = cimag(r);
}

/* an expanded view whose every stride is 0: one value for all */
static int is_scalar_view(const lt_tensor *t) {
  for (int i = 0; i < t->ndim; i++) if (t->stride[i] != 0 && t->shape[i] != 1) return 0;
  return 1;
}

/* z[i] = X op Y for i in [0, n), one loop for each arithmetic op (add,
   sub, mul, div): X and Y are expressions of the loop index i */
#define ARITH_LOOPS(op, n, z, X, Y)                                              \
  switch (op) {                                                                  \
    case LT_OP_ADD: for (int64_t i = 0; i < (n); i++) z[i] = (X) + (Y); break;   \
    case LT_OP_SUB: for (int64_t i = 0; i < (n); i++) z[i] = (X) - (Y); break;   \
    case LT_OP_MUL: for (int64_t i = 0; i < (n); i++) z[i] = (X) * (Y); break;   \
    default: for (int64_t i = 0; i < (n); i++) z[i] = (X) / (Y); break;          \
  }

/* The arithmetic of a float dtype DT (C type T) as plain loops the compiler
   vectorises, defined once for float32 and once for float64; each returns 0
   (doing nothing) when its case does not apply.
   fast_SUF: a contiguous, b contiguous or one value for all.
   rows_SUF: views whose innermost dims are contiguous or broadcast (stride 1
   or 0): a loop over rows, each row a plain loop. */
/* z[i] = X cmp Y for the six comparisons, into bytes 0/1 */
#define CMP_LOOPS(op, n, z, X, Y)                                                      \
  switch (op) {                                                                        \
    case LT_OP_EQ: for (int64_t i = 0; i < (n); i++) z[i] = (X) == (Y); break;         \
    case LT_OP_NE: for (int64_t i = 0; i < (n); i++) z[i] = (X) != (Y); break;         \
    case LT_OP_LT: for (int64_t i = 0; i < (n); i++) z[i] = (X) < (Y); break;          \
    case LT_OP_LE: for (int64_t i = 0; i < (n); i++) z[i] = (X) <= (Y); break;         \
    case LT_OP_GT: for (int64_t i = 0; i < (n); i++) z[i] = (X) > (Y); break;          \
    default: for (int64_t i = 0; i < (n); i++) z[i] = (X) >= (Y); break;               \
  }

/* a contiguous elementwise job, cut into items of LT_PAR_ITEM elements for
   the pool (pool.c) when it is big: x and out contiguous, y contiguous or
   one value (ys = 0) */
typedef struct ewjob {
  void (*run)(int op, const void *x, const void *y, int ys, void *o, int64_t at, int64_t n);
  int op, ys;
  const void *x, *y;
  void *o;
  int64_t n;
} ewjob;

static void ew_item(void *ctx, int64_t i) {
  ewjob *j = ctx;
  int64_t at = i * LT_PAR_ITEM, m = j->n - at < LT_PAR_ITEM ? j->n - at : LT_PAR_ITEM;
  j->run(j->op, j->x, j->y, j->ys, j->o, at, m);
}

static void ew_run(ewjob *j) {
  int64_t items = (j->n + LT_PAR_ITEM - 1) / LT_PAR_ITEM;
  if (j->n >= LT_PAR_MIN) lt_parallel(items, ew_item, j);
  else j->run(j->op, j->x, j->y, j->ys, j->o, 0, j->n);
}

#define DEF_ARITH(T, SUF, DT)                                                                    \
  VECTORIZE static void arith_##SUF(int op, const void *xv, const void *yv, int ys, void *ov,    \
                                    int64_t at, int64_t n) {                                     \
    const T *x = (const T *)xv + at;                                                             \
    T *o = (T *)ov + at;                                                                         \
    if (ys) {                                                                                    \
      const T *y = (const T *)yv + at;                                                           \
      ARITH_LOOPS(op, n, o, x[i], y[i]);                                                         \
    } else {                                                                                     \
      T y = *(const T *)yv;                                                                      \
      ARITH_LOOPS(op, n, o, x[i], y);                                                            \
    }                                                                                            \
  }                                                                                              \
  VECTORIZE static void cmp_##SUF(int op, const void *xv, const void *yv, int ys, void *ov,      \
                                  int64_t at, int64_t n) {                                       \
    const T *x = (const T *)xv + at;                                                             \
    uint8_t *o = (uint8_t *)ov + at;                                                             \
    if (ys) {                                                                                    \
      const T *y = (const T *)yv + at;                                                           \
      CMP_LOOPS(op, n, o, x[i], y[i]);                                                           \
    } else {                                                                                     \
      T y = *(const T *)yv;                                                                      \
      CMP_LOOPS(op, n, o, x[i], y);                                                              \
    }                                                                                            \
  }                                                                                              \
  static int fast_##SUF(int op, const lt_tensor *a, const lt_tensor *b, lt_tensor *out,          \
                        int64_t n) {                                                             \
    int cmp = op >= LT_OP_EQ && op <= LT_OP_GE;                                                  \
    if (a->dtype != DT || b->dtype != DT || !lt_is_contiguous(a) ||                              \
        !(cmp ? out->dtype == LT_BOOL : out->dtype == DT && op <= LT_OP_DIV))                    \
      return 0;                                                                                  \
    int ys = lt_is_contiguous(b);                                                                \
    if (!ys && !is_scalar_view(b)) return 0;                                                     \
    ewjob j = {cmp ? cmp_##SUF : arith_##SUF, op, ys, lt_data(a), lt_data(b), lt_data(out), n}; \
    ew_run(&j);                                                                                  \
    return 1;                                                                                    \
  }                                                                                              \
  VECTORIZE static int rows_##SUF(int op, const lt_tensor *a, const lt_tensor *b, lt_tensor *out, \
                                  int64_t n) {                                                   \
    int nd = out->ndim;                                                                          \
    if (a->dtype != DT || b->dtype != DT || out->dtype != DT || op > LT_OP_DIV || nd == 0)       \
      return 0;                                                                                  \
    int64_t L = out->shape[nd - 1], sa = a->stride[nd - 1], sb = b->stride[nd - 1];              \
    if (L < 8 || (sa != 0 && sa != 1) || (sb != 0 && sb != 1)) return 0;                        \
    const T *A = (const T *)lt_data(a), *B = (const T *)lt_data(b);                              \
    T *o = (T *)lt_data(out);                                                                    \
    int64_t idx[LT_MAX_DIMS] = {0}, oa = 0, ob = 0, rows = n / L;                                \
    for (int64_t r = 0; r < rows; r++) {                                                         \
      const T *x = A + oa, *y = B + ob;                                                          \
      T *z = o + r * L;                                                                          \
      if (sa && sb) {                                                                            \
        ARITH_LOOPS(op, L, z, x[i], y[i]);                                                       \
      } else if (sa) {                                                                           \
        T v = *y;                                                                                \
        ARITH_LOOPS(op, L, z, x[i], v);                                                          \
      } else if (sb) {                                                                           \
        T v = *x;                                                                                \
        ARITH_LOOPS(op, L, z, v, y[i]);                                                          \
      } else {                                                                                   \
        T v = (T)bin_f64(op, *x, *y);                                                            \
        for (int64_t i = 0; i < L; i++) z[i] = v;                                                \
      }                                                                                          \
      for (int d = nd - 2; d >= 0; d--) {       /* next row */                                   \
        oa += a->stride[d];                                                                      \
        ob += b->stride[d];                                                                      \
        if (++idx[d] < out->shape[d]) break;                                                     \
        oa -= a->stride[d] * out->shape[d];                                                      \
        ob -= b->stride[d] * out->shape[d];                                                      \
        idx[d] = 0;                                                                              \
      }                                                                                          \
    }                                                                                            \
    return 1;                                                                                    \
  }
DEF_ARITH(float, f32, LT_FLOAT32)
DEF_ARITH(double, f64, LT_FLOAT64)

int lt_binary(int op, int dom, const lt_tensor *a, const lt_tensor *b, lt_tensor *out) {
  int64_t n = lt_numel(out);
  if (n == 0) return LT_OK;
  if (dom == LT_DOM_F64 && (fast_f32(op, a, b, out, n) || rows_f32(op, a, b, out, n) ||
                            fast_f64(op, a, b, out, n) || rows_f64(op, a, b, out, n)))
    return LT_OK;
  lt_iter ia, ib;
  lt_iter_init(&ia, a);
  lt_iter_init(&ib, b);
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  int cmp = LT_OP_BOOL_RESULT(op), zdiv = 0;
  /* float results other than float64 are computed in float */
  int in_float = dom == LT_DOM_F64 && !cmp && out->dtype != LT_FLOAT64;
  /* uint64 operands (the binding casts both to it) compute unsigned */
  int u64 = a->dtype == LT_UINT64 || b->dtype == LT_UINT64;
  double fa[2 * CH], fb[2 * CH], fo[2 * CH];
  float ga[CH], gb[CH], go[CH];
  int64_t xa[CH], xb[CH], xo[CH];
  uint8_t bo[CH];
  for (int64_t done = 0; done < n;) {
    int m = n - done < CH ? (int)(n - done) : CH;
    /* the chunk's results in the domain's buffer, or in bo (bool results) */
    if (dom == LT_DOM_F64) {
      load_f64(&ia, a->dtype, fa, m);
      load_f64(&ib, b->dtype, fb, m);
      if (in_float) {
        for (int i = 0; i < m; i++) { ga[i] = (float)fa[i]; gb[i] = (float)fb[i]; }
        binary_f32(op, ga, gb, go, m);
        for (int i = 0; i < m; i++) fo[i] = go[i];
      } else {
        binary_f64(op, fa, fb, fo, m);
        if (cmp) for (int i = 0; i < m; i++) bo[i] = fo[i] != 0;
      }
    } else if (dom == LT_DOM_I64 && u64) {
      load_i64(&ia, a->dtype, xa, m);
      load_i64(&ib, b->dtype, xb, m);
      for (int i = 0; i < m; i++) xo[i] = bin_u64(op, (uint64_t)xa[i], (uint64_t)xb[i], &zdiv);
      if (cmp) for (int i = 0; i < m; i++) bo[i] = (uint8_t)xo[i];
    } else if (dom == LT_DOM_I64) {
      load_i64(&ia, a->dtype, xa, m);
      load_i64(&ib, b->dtype, xb, m);
      if (cmp) for (int i = 0; i < m; i++) bo[i] = (uint8_t)bin_i64(op, xa[i], xb[i], &zdiv);
      else for (int i = 0; i < m; i++) xo[i] = bin_i64(op, xa[i], xb[i], &zdiv);
    } else {
      load_c128(&ia, a->dtype, fa, m);
      load_c128(&ib, b->dtype, fb, m);
      for (int i = 0; i < m; i++) bin_c128(op, fa + 2 * i, fb + 2 * i, fo + 2 * i);
      if (cmp) for (int i = 0; i < m; i++) bo[i] = fo[2 * i] != 0;   /* the real part */
    }
    char *dst = o + (size_t)done * osz;
    if (cmp) {
      lt_convert(out->dtype, dst, LT_BOOL, bo, (size_t)m);
    } else if (dom == LT_DOM_I64) {
      lt_convert(out->dtype, dst, LT_INT64, xo, (size_t)m);
    } else {
      lt_convert(out->dtype, dst, dom == LT_DOM_F64 ? LT_FLOAT64 : LT_COMPLEX128, fo, (size_t)m);
    }
    done += m;
  }
  return zdiv ? LT_EZERODIV : LT_OK;
}

/* ---- unary kernels ----------------------------------------------------- */

#define SQRT1_2 0.70710678118654752440
#define SQRT2_PI 0.79788456080286535588
#define TWO_SQRTPI 1.12837916709551257390   /* 2 / sqrt(pi), erf's slope at 0 */

/* The inverse error function in double: Winitzki's closed form (relative
   error about 2e-3) refined by two Halley steps on f(x) = erf(x) - |y|,
   written as (1 - |y|) - erfc(x) past 0.5, where 1 - |y| is exact and erfc
   keeps its precision. erfinv(+-1) = +-inf, nan outside [-1, 1], -0.0 stays. */
static double erfinv(double y) {
  double ay = fabs(y);
  if (!(ay <= 1)) return NAN;
  if (ay == 1) return copysign(INFINITY, y);
  if (ay == 0) return y;
  const double a = 0.147;
  double l = log1p(-ay) + log1p(ay);          /* log(1 - y^2) */
  double t = 2 / (M_PI * a) + l / 2;
  double x = sqrt(sqrt(t * t - l / a) - t);
  for (int i = 0; i < 2; i++) {
    double f = ay > 0.5 ? (1 - ay) - erfc(x) : erf(x) - ay;
    double d = TWO_SQRTPI * exp(-x * x);      /* f'(x); f'' = -2x f' */
    x -= f / (d + x * f);
  }
  return copysign(x, y);
}

/* The unary ops of a float type T, whose <math.h> functions end in S (f,
   or nothing for double), defined once for float and once for double:
   un_SUF(op, x, pa, pb, pc) one element with the op's parameters already
   in T (see unary_SUF; erfinv computed in double for both);
   unary_SUF(op, p, x, o, n) a loop for each op over contiguous memory,
   which the compiler vectorises where it can. The formulas and their
   order of operations are PyTorch's, so float results agree bit for bit
   where the libm functions do; nan propagates through every activation. */
#define DEF_UNARY(T, SUF, S)                                                               \
  ELEMENT T un_##SUF(int op, T x, T pa, T pb, T pc) {                                      \
    switch (op) {                                                                          \
      case LT_UN_NEG: return -x;                                                           \
      case LT_UN_ABS: return fabs##S(x);                                                   \
      case LT_UN_RELU: return x < 0 ? (T)0 : x;       /* nan and -0 stay, as PyTorch's */  \
      case LT_UN_EXP: return exp##S(x);                                                    \
      case LT_UN_LOG: return log##S(x);                                                    \
      case LT_UN_SQRT: return sqrt##S(x);                                                  \
      case LT_UN_TANH: return tanh##S(x);                                                  \
      case LT_UN_SIGMOID: return (T)1 / ((T)1 + exp##S(-x));                               \
      case LT_UN_GELU: return x * (T)0.5 * ((T)1 + erf##S(x * (T)SQRT1_2));                \
      case LT_UN_GELU_TANH:                                                                \
        return (T)0.5 * x * ((T)1 + tanh##S((T)SQRT2_PI * (x + (T)0.044715 * x * x * x))); \
      case LT_UN_SIN: return sin##S(x);                                                    \
      case LT_UN_COS: return cos##S(x);                                                    \
      case LT_UN_TAN: return tan##S(x);                                                    \
      case LT_UN_ASIN: return asin##S(x);                                                  \
      case LT_UN_ACOS: return acos##S(x);                                                  \
      case LT_UN_ATAN: return atan##S(x);                                                  \
      case LT_UN_SINH: return sinh##S(x);                                                  \
      case LT_UN_COSH: return cosh##S(x);                                                  \
      case LT_UN_RSQRT: return (T)1 / sqrt##S(x);                                          \
      case LT_UN_ERF: return erf##S(x);                                                    \
      case LT_UN_ERFINV: return (T)erfinv(x);                                              \
      case LT_UN_FLOOR: return floor##S(x);                                                \
      case LT_UN_CEIL: return ceil##S(x);                                                  \
      case LT_UN_ROUND: return nearbyint##S(x);       /* half to even */                   \
      case LT_UN_ROUND_DEC: /* pa: 1 or -1 (the sign of decimals), pb = 10^|decimals| */   \
        return pa > 0 ? nearbyint##S(x * pb) / pb : nearbyint##S(x / pb) * pb;             \
      case LT_UN_TRUNC: return trunc##S(x);                                                \
      case LT_UN_SIGN: return (T)((0 < x) - (x < 0));  /* sign(nan) = sign(-0) = 0 */      \
      case LT_UN_NAN_TO_NUM:                                                               \
        return isnan(x) ? pa : x == (T)INFINITY ? pb : x == -(T)INFINITY ? pc : x;         \
      case LT_UN_SILU: return x / ((T)1 + exp##S(-x));                                     \
      case LT_UN_MISH: return x * tanh##S(log1p##S(exp##S(x)));                            \
      case LT_UN_HARDSWISH: case LT_UN_HARDSIGMOID: {                                      \
        T c = x + (T)3;                               /* min(max(x + 3, 0), 6), nan kept */ \
        c = c < 0 ? (T)0 : c;                                                              \
        c = c > 6 ? (T)6 : c;                                                              \
        return op == LT_UN_HARDSWISH ? x * c / (T)6 : c / (T)6;                            \
      }                                                                                    \
      case LT_UN_RELU6: return x < 0 ? (T)0 : x > 6 ? (T)6 : x;                            \
      case LT_UN_LEAKY_RELU: return x > 0 ? x : x * pa;                                    \
      case LT_UN_ELU: /* pa = alpha * scale, pb = scale, pc = input scale */               \
        return x <= 0 ? (exp##S(x * pc) - (T)1) * pa : x * pb;                             \
      case LT_UN_SOFTPLUS: /* pa = beta, pb = threshold */                                 \
        return x * pa > pb ? x : log1p##S(exp##S(x * pa)) / pa;                            \
      default: return x;                                                                   \
    }                                                                                      \
  }                                                                                        \
  VECTORIZE static void unary_##SUF(int op, const lt_unparam *p, const T *x, T *o,        \
                                    int64_t n) {                                           \
    T pa = (T)p->a, pb = (T)p->b, pc = (T)p->c;                                            \
    if (op == LT_UN_ROUND_DEC) {                                                           \
      pa = p->a < 0 ? (T)-1 : (T)1;                                                        \
      pb = (T)pow(10.0, fabs(p->a));                                                       \
    } else if (op == LT_UN_ELU) {                                                          \
      pa = (T)p->a * (T)p->b;                                                              \
    }                                                                                      \
    switch (op) {                                                                          \
      UN_LOOP(SUF, NEG) UN_LOOP(SUF, ABS) UN_LOOP(SUF, RELU) UN_LOOP(SUF, EXP)                \
      UN_LOOP(SUF, LOG) UN_LOOP(SUF, SQRT) UN_LOOP(SUF, TANH) UN_LOOP(SUF, SIGMOID)           \
      UN_LOOP(SUF, GELU) UN_LOOP(SUF, GELU_TANH) UN_LOOP(SUF, SIN) UN_LOOP(SUF, COS)          \
      UN_LOOP(SUF, TAN) UN_LOOP(SUF, ASIN) UN_LOOP(SUF, ACOS) UN_LOOP(SUF, ATAN)              \
      UN_LOOP(SUF, SINH) UN_LOOP(SUF, COSH) UN_LOOP(SUF, RSQRT) UN_LOOP(SUF, ERF)             \
      UN_LOOP(SUF, ERFINV) UN_LOOP(SUF, FLOOR) UN_LOOP(SUF, CEIL) UN_LOOP(SUF, ROUND)         \
      UN_LOOP(SUF, ROUND_DEC) UN_LOOP(SUF, TRUNC) UN_LOOP(SUF, SIGN) UN_LOOP(SUF, NAN_TO_NUM) \
      UN_LOOP(SUF, SILU) UN_LOOP(SUF, MISH) UN_LOOP(SUF, HARDSWISH) UN_LOOP(SUF, HARDSIGMOID) \
      UN_LOOP(SUF, RELU6) UN_LOOP(SUF, LEAKY_RELU) UN_LOOP(SUF, ELU) UN_LOOP(SUF, SOFTPLUS)   \
      default: for (int64_t i = 0; i < n; i++) o[i] = x[i];                                \
    }                                                                                      \
  }
/* a case of unary_SUF: the loop of one op, its element function inlined */
#define UN_LOOP(SUF, OP) \
  case LT_UN_##OP: for (int64_t i = 0; i < n; i++) o[i] = un_##SUF(LT_UN_##OP, x[i], pa, pb, pc); break;
DEF_UNARY(float, f32, f)
DEF_UNARY(double, f64, )

lt_unparam lt_unparam_default(int op) {
  lt_unparam p = {0, 0, 0};
  switch (op) {
    case LT_UN_LEAKY_RELU: p.a = 0.01; break;
    case LT_UN_ELU: p.a = 1; p.b = 1; p.c = 1; break;
    case LT_UN_SOFTPLUS: p.a = 1; p.b = 20; break;
    case LT_UN_NAN_TO_NUM: p.b = INFINITY; p.c = -INFINITY; break;  /* the binding gives the dtype's limits */
    default: break;
  }
  return p;
}

/* the bool-valued ops (isinf, isnan, isfinite, logical_not) of a chunk of
   m elements of a, into bo (0/1) */
static void predicate_chunk(int op, lt_iter *it, lt_dtype dt, int m, uint8_t *bo, double *f, int64_t *x) {
  int k = kind(dt);
  if (k == LT_KIND_FLOAT) {
    load_f64(it, dt, f, m);
    for (int i = 0; i < m; i++)
      bo[i] = op == LT_UN_ISINF ? isinf(f[i]) != 0 : op == LT_UN_ISNAN ? isnan(f[i]) != 0
            : op == LT_UN_ISFINITE ? isfinite(f[i]) != 0 : f[i] == 0;
  } else if (k == LT_KIND_COMPLEX) {
    load_c128(it, dt, f, m);
    for (int i = 0; i < m; i++) {
      double re = f[2 * i], im = f[2 * i + 1];
      bo[i] = op == LT_UN_ISINF ? (isinf(re) || isinf(im)) : op == LT_UN_ISNAN ? (isnan(re) || isnan(im))
            : op == LT_UN_ISFINITE ? (isfinite(re) && isfinite(im)) : (re == 0 && im == 0);
    }
  } else {
    load_i64(it, dt, x, m);
    for (int i = 0; i < m; i++)
      bo[i] = op == LT_UN_ISFINITE ? 1 : op == LT_UN_LOGICAL_NOT ? x[i] == 0 : 0;
  }
}

/* one element of an integer op: sign, abs, neg, relu, relu6; the rounding
   ops and nan_to_num leave integers as they are */
static int64_t un_i64(int op, int64_t x) {
  uint64_t neg = 0 - (uint64_t)x;
  switch (op) {
    case LT_UN_NEG: return (int64_t)neg;
    case LT_UN_ABS: return x < 0 ? (int64_t)neg : x;
    case LT_UN_RELU: return x > 0 ? x : 0;
    case LT_UN_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case LT_UN_SIGN: return (x > 0) - (x < 0);
    default: return x;
  }
}

/* un_i64 for the bits of a uint64 (never negative) */
static int64_t un_u64(int op, int64_t x) {
  uint64_t u = (uint64_t)x;
  switch (op) {
    case LT_UN_NEG: return (int64_t)(0 - u);
    case LT_UN_RELU6: return u > 6 ? 6 : x;
    case LT_UN_SIGN: return u != 0;
    default: return x;
  }
}

/* one element of a complex op (those PyTorch has for complex) */
static double complex un_c128(int op, double complex z) {
  switch (op) {
    case LT_UN_NEG: return -z;
    case LT_UN_EXP: return cexp(z);
    case LT_UN_LOG: return clog(z);
    case LT_UN_SQRT: return csqrt(z);
    case LT_UN_TANH: return ctanh(z);
    case LT_UN_SIGMOID: return 1.0 / (1.0 + cexp(-z));
    case LT_UN_SIN: return csin(z);
    case LT_UN_COS: return ccos(z);
    case LT_UN_TAN: return ctan(z);
    case LT_UN_ASIN: return casin(z);
    case LT_UN_ACOS: return cacos(z);
    case LT_UN_ATAN: return catan(z);
    case LT_UN_SINH: return csinh(z);
    case LT_UN_COSH: return ccosh(z);
    case LT_UN_RSQRT: return z == 0 ? CMPLX(NAN, NAN) : 1.0 / csqrt(z);
    case LT_UN_SILU: return z / (1.0 + cexp(-z));
    default: return z;
  }
}

/* a contiguous float32/float64 unary op, cut into items for the pool
   (item -1: all of it in this thread) */
typedef struct unjob {
  int op;
  const lt_unparam *p;
  int f64;
  const void *x;
  void *o;
  int64_t n;
} unjob;

static void un_item(void *ctx, int64_t i) {
  unjob *j = ctx;
  int64_t at = i < 0 ? 0 : i * LT_PAR_ITEM, m = i < 0 ? j->n : (j->n - at < LT_PAR_ITEM ? j->n - at : LT_PAR_ITEM);
  if (j->f64) unary_f64(j->op, j->p, (const double *)j->x + at, (double *)j->o + at, m);
  else unary_f32(j->op, j->p, (const float *)j->x + at, (float *)j->o + at, m);
}

void lt_unary(int op, int dom, const lt_tensor *a, lt_tensor *out) {
  lt_unary_p(op, dom, NULL, a, out);
}

void lt_unary_p(int op, int dom, const lt_unparam *p, const lt_tensor *a, lt_tensor *out) {
  int64_t n = lt_numel(out);
  if (n == 0) return;
  lt_unparam def = lt_unparam_default(op);
  if (!p) p = &def;
  int pred = LT_UN_BOOL_RESULT(op);
  if (!pred && dom == LT_DOM_F64 && a->dtype == out->dtype && lt_is_contiguous(a) &&
      (a->dtype == LT_FLOAT32 || a->dtype == LT_FLOAT64)) {
    unjob j = {op, p, a->dtype == LT_FLOAT64, lt_data(a), lt_data(out), n};
    if (n >= LT_PAR_MIN) lt_parallel((n + LT_PAR_ITEM - 1) / LT_PAR_ITEM, un_item, &j);
    else un_item(&j, -1);
    return;
  }
  lt_iter ia;
  lt_iter_init(&ia, a);
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  double fa[2 * CH], fo[2 * CH];
  float ga[CH], go[CH];
  int64_t xa[CH];
  uint8_t bo[CH];
  /* float results other than float64 are computed in float, as PyTorch's */
  int in_float = dom == LT_DOM_F64 && out->dtype != LT_FLOAT64;
  for (int64_t done = 0; done < n;) {
    int m = n - done < CH ? (int)(n - done) : CH;
    lt_dtype rdt = LT_FLOAT64;              /* the results: fo as float64, or ... */
    const void *res = fo;
    if (pred) {
      predicate_chunk(op, &ia, a->dtype, m, bo, fa, xa);
      rdt = LT_BOOL;                        /* ... bo as bool */
      res = bo;
    } else if (dom == LT_DOM_F64 && in_float) {
      load_f64(&ia, a->dtype, fa, m);
      for (int i = 0; i < m; i++) ga[i] = (float)fa[i];
      unary_f32(op, p, ga, go, m);
      rdt = LT_FLOAT32;                     /* ... go as float32 */
      res = go;
    } else if (dom == LT_DOM_F64) {
      load_f64(&ia, a->dtype, fa, m);
      unary_f64(op, p, fa, fo, m);
    } else if (dom == LT_DOM_I64) {
      load_i64(&ia, a->dtype, xa, m);
      if (a->dtype == LT_UINT64) for (int i = 0; i < m; i++) xa[i] = un_u64(op, xa[i]);
      else for (int i = 0; i < m; i++) xa[i] = un_i64(op, xa[i]);
      rdt = LT_INT64;                       /* ... xa as int64 */
      res = xa;
    } else if (op == LT_UN_ABS) {
      load_c128(&ia, a->dtype, fa, m);
      for (int i = 0; i < m; i++) fo[i] = cabs(CMPLX(fa[2 * i], fa[2 * i + 1]));
    } else {
      load_c128(&ia, a->dtype, fa, m);
      for (int i = 0; i < m; i++) {
        double complex z = un_c128(op, CMPLX(fa[2 * i], fa[2 * i + 1]));
        fo[2 * i] = creal(z);
        fo[2 * i + 1] = cimag(z);
      }
      rdt = LT_COMPLEX128;                  /* ... fo as complex128 */
    }
    lt_convert(out->dtype, o + (size_t)done * osz, rdt, res, (size_t)m);
    done += m;
  }
}

/* how a view walks out's elements in a flat loop: 1 contiguous, 0 one
   value for all, -1 neither */
static int flat_step(const lt_tensor *t) {
  if (is_scalar_view(t)) return 0;
  return lt_is_contiguous(t) ? 1 : -1;
}

/* z[i] = c[i] ? x[i] : y[i] for an unsigned element type T, each view
   contiguous or one value (its step 1 or 0): a bit mask selects, so the
   loop has no branch (a random mask would mispredict half of them) */
#define SEL(T, c, x, y) ((T)(((x) & (T)(0 - (T)((c) != 0))) | ((y) & (T)~(T)(0 - (T)((c) != 0)))))
#define WHERE_FLAT(T)                                                                   \
  {                                                                                     \
    const T *x = (const T *)lt_data(a), *y = (const T *)lt_data(b);                     \
    T *z = (T *)o, vx = *x, vy = *y;                                                    \
    if (sc && sx && sy) for (int64_t i = 0; i < n; i++) z[i] = SEL(T, c[i], x[i], y[i]); \
    else if (sc && sx) for (int64_t i = 0; i < n; i++) z[i] = SEL(T, c[i], x[i], vy);    \
    else if (sc && sy) for (int64_t i = 0; i < n; i++) z[i] = SEL(T, c[i], vx, y[i]);    \
    else for (int64_t i = 0; i < n; i++) z[i] = SEL(T, c[i * sc], x[i * sx], y[i * sy]); \
    return;                                                                             \
  }

VECTORIZE void lt_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *out) {
  int64_t n = lt_numel(out);
  if (n == 0) return;
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  int64_t sc = flat_step(cond), sx = flat_step(a), sy = flat_step(b);
  if (lt_dtypes[cond->dtype].size == 1 && a->dtype == out->dtype && b->dtype == out->dtype &&
      sc >= 0 && sx >= 0 && sy >= 0) {
    const uint8_t *c = (const uint8_t *)lt_data(cond);
    switch (osz) {
      case 1: WHERE_FLAT(uint8_t)
      case 2: WHERE_FLAT(uint16_t)
      case 4: WHERE_FLAT(uint32_t)
      case 8: WHERE_FLAT(uint64_t)
      default: break;
    }
  }
  lt_iter ic, ia, ib;
  lt_iter_init(&ic, cond);
  lt_iter_init(&ia, a);
  lt_iter_init(&ib, b);
  int byte = lt_dtypes[cond->dtype].size == 1 && kind(cond->dtype) != LT_KIND_FLOAT;
  char e[16];
  for (int64_t i = 0; i < n; i++) {
    const char *pc = lt_iter_next(&ic), *pa = lt_iter_next(&ia), *pb = lt_iter_next(&ib);
    int take;
    if (byte) {
      take = *(const uint8_t *)pc != 0;
    } else {
      double c[2];
      lt_get_c128(cond->dtype, pc, c);
      take = c[0] != 0 || c[1] != 0;
    }
    const lt_tensor *src = take ? a : b;
    const char *p = take ? pa : pb;
    if (src->dtype == out->dtype) memcpy(e, p, osz);
    else lt_convert(out->dtype, e, src->dtype, p, 1);
    memcpy(o + (size_t)i * osz, e, osz);
  }
}

/* z[i] = m[i] ? v : z[i] for an element type T over a contiguous mask */
#define FILL_FLAT(T)                                                               \
  {                                                                                \
    T v, *z = (T *)o;                                                              \
    memcpy(&v, value, sizeof v);                                                   \
    for (int64_t i = 0; i < n; i++) z[i] = m[i] ? v : z[i];                        \
    return;                                                                        \
  }

VECTORIZE void lt_masked_fill(const lt_tensor *mask, const void *value, lt_tensor *out) {
  int64_t n = lt_numel(out);
  if (n == 0) return;
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  if (lt_is_contiguous(mask) && lt_dtypes[mask->dtype].size == 1) {
    const uint8_t *m = (const uint8_t *)lt_data(mask);
    switch (osz) {
      case 1: FILL_FLAT(uint8_t)
      case 2: FILL_FLAT(uint16_t)
      case 4: FILL_FLAT(uint32_t)
      case 8: FILL_FLAT(uint64_t)
      default:
        for (int64_t i = 0; i < n; i++) if (m[i]) memcpy(o + (size_t)i * osz, value, osz);
        return;
    }
  }
  lt_iter im;
  lt_iter_init(&im, mask);
  for (int64_t i = 0; i < n; i++)
    if (*(const uint8_t *)lt_iter_next(&im)) memcpy(o + (size_t)i * osz, value, osz);
}

void lt_clamp(int dom, const lt_tensor *a, int has_lo, double lo, int64_t ilo,
              int has_hi, double hi, int64_t ihi, lt_tensor *out) {
  int64_t n = lt_numel(out);
  if (n == 0) return;
  lt_iter ia;
  lt_iter_init(&ia, a);
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  double f[CH];
  int64_t x[CH];
  for (int64_t done = 0; done < n;) {
    int m = n - done < CH ? (int)(n - done) : CH;
    if (dom == LT_DOM_I64 && a->dtype == LT_UINT64) {   /* bounds fit uint64 */
      load_i64(&ia, a->dtype, x, m);
      for (int i = 0; i < m; i++) {
        if (has_lo && (uint64_t)x[i] < (uint64_t)ilo) x[i] = ilo;
        if (has_hi && (uint64_t)x[i] > (uint64_t)ihi) x[i] = ihi;
      }
    } else if (dom == LT_DOM_I64) {
      load_i64(&ia, a->dtype, x, m);
      for (int i = 0; i < m; i++) {
        if (has_lo && x[i] < ilo) x[i] = ilo;
        if (has_hi && x[i] > ihi) x[i] = ihi;
      }
    } else {
      load_f64(&ia, a->dtype, f, m);
      for (int i = 0; i < m; i++) {      /* minimum(maximum(x, lo), hi), nan propagating */
        if (has_lo) f[i] = (isnan(f[i]) || isnan(lo)) ? NAN : f[i] < lo ? lo : f[i];
        if (has_hi) f[i] = (isnan(f[i]) || isnan(hi)) ? NAN : hi < f[i] ? hi : f[i];
      }
    }
    lt_convert(out->dtype, o + (size_t)done * osz, dom == LT_DOM_I64 ? LT_INT64 : LT_FLOAT64,
               dom == LT_DOM_I64 ? (const void *)x : f, (size_t)m);
    done += m;
  }
}

/* ---- equality ---------------------------------------------------------- */

int lt_all_equal(const lt_tensor *a, const lt_tensor *b) {
  int64_t n = lt_numel(a);
  lt_iter ia, ib;
  lt_iter_init(&ia, a);
  lt_iter_init(&ib, b);
  int ints = kind(a->dtype) <= LT_KIND_INT && kind(b->dtype) <= LT_KIND_INT;
  int cplx = kind(a->dtype) == LT_KIND_COMPLEX || kind(b->dtype) == LT_KIND_COMPLEX;
  double fa[2 * CH], fb[2 * CH];
  int64_t xa[CH], xb[CH];
  for (int64_t done = 0; done < n;) {
    int m = n - done < CH ? (int)(n - done) : CH;
    if (ints) {
      load_i64(&ia, a->dtype, xa, m);
      load_i64(&ib, b->dtype, xb, m);
      for (int i = 0; i < m; i++) if (xa[i] != xb[i]) return 0;
    } else if (cplx) {
      load_c128(&ia, a->dtype, fa, m);
      load_c128(&ib, b->dtype, fb, m);
      for (int i = 0; i < 2 * m; i++) if (!(fa[i] == fb[i])) return 0;
    } else {
      load_f64(&ia, a->dtype, fa, m);
      load_f64(&ib, b->dtype, fb, m);
      for (int i = 0; i < m; i++) if (!(fa[i] == fb[i])) return 0;
    }
    done += m;
  }
  return 1;
}

static int close1(double x, double y, double rtol, double atol) {
  if (x == y) return 1;
  if (!isfinite(x) || !isfinite(y)) return 0;
  return fabs(x - y) <= atol + rtol * fabs(y);
}

int lt_all_close(const lt_tensor *a, const lt_tensor *b, double rtol, double atol) {
  int64_t n = lt_numel(a);
  lt_iter ia, ib;
  lt_iter_init(&ia, a);
  lt_iter_init(&ib, b);
  int cplx = kind(a->dtype) == LT_KIND_COMPLEX || kind(b->dtype) == LT_KIND_COMPLEX;
  double fa[2 * CH], fb[2 * CH];
  for (int64_t done = 0; done < n;) {
    int m = n - done < CH ? (int)(n - done) : CH;
    if (cplx) {
      load_c128(&ia, a->dtype, fa, m);
      load_c128(&ib, b->dtype, fb, m);
      for (int i = 0; i < m; i++) {
        double complex x = CMPLX(fa[2 * i], fa[2 * i + 1]), y = CMPLX(fb[2 * i], fb[2 * i + 1]);
        if (x == y) continue;
        if (!isfinite(cabs(x)) || !isfinite(cabs(y)) || !(cabs(x - y) <= atol + rtol * cabs(y))) return 0;
      }
    } else {
      load_f64(&ia, a->dtype, fa, m);
      load_f64(&ib, b->dtype, fb, m);
      for (int i = 0; i < m; i++) if (!close1(fa[i], fb[i], rtol, atol)) return 0;
    }
    done += m;
  }
  return 1;
}

/* ---- gemm -------------------------------------------------------------- */

#define BLAS_LIB "libopenblas.so.0"

static struct {
  __typeof__(cblas_sgemm) *sgemm;
  __typeof__(cblas_dgemm) *dgemm;
  __typeof__(cblas_cgemm) *cgemm;
  __typeof__(cblas_zgemm) *zgemm;
  char err[LT_MSG];
} blas;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void *blas_sym(void *h, const char *name) {
  void *f = dlsym(h, name);
  if (!f && !blas.err[0]) snprintf(blas.err, sizeof blas.err, "%s has no %s", BLAS_LIB, name);
  return f;
}

/* OpenBLAS picks its kernels when it loads, from the CPU's model number;
   a model newer than its table gets the generic SSE3 ones ("Prescott"):
   Debian 12's 0.3.21 on a 5th-generation Xeon (model 207) ran ResNet-18's
   forward 2.7x slower than with its AVX-512 kernels. On Intel CPUs the
   choice is made here from the features the CPU reports, as OpenBLAS
   would for a model it knows, unless OPENBLAS_CORETYPE is set already.
   (Before the library loads, while no other thread reads the
   environment: the first gemm, under pthread_once.) */
static void blas_coretype(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (getenv("OPENBLAS_CORETYPE")) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_is("intel")) return;
  const char *core = NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    core = "SkylakeX";   /* Cooperlake's sgemm is SkylakeX's; 0.3.21 cannot be told "Cooperlake" */
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    core = "Haswell";
  if (core) setenv("OPENBLAS_CORETYPE", core, 0);
#endif
}

static void blas_open(void) {
  blas_coretype();
  void *h = dlopen(BLAS_LIB, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(blas.err, sizeof blas.err, "cannot load OpenBLAS: %s (install libopenblas0)", e ? e : BLAS_LIB);
    return;
  }
  /* dlsym returns void *; a function pointer is stored through memcpy (ISO C) */
  void *f;
  f = blas_sym(h, "cblas_sgemm"); memcpy(&blas.sgemm, &f, sizeof f);
  f = blas_sym(h, "cblas_dgemm"); memcpy(&blas.dgemm, &f, sizeof f);
  f = blas_sym(h, "cblas_cgemm"); memcpy(&blas.cgemm, &f, sizeof f);
  f = blas_sym(h, "cblas_zgemm"); memcpy(&blas.zgemm, &f, sizeof f);
}

int lt_blas_load(char *err) {
  pthread_once(&blas_once, blas_open);
  if (blas.err[0]) { snprintf(err, LT_MSG, "%s", blas.err); return -1; }
  return 0;
}

/* C = A B (acc 0) or C += A B (acc 1) */
static void gemm(lt_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K, const void *A,
                 int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc, int acc) {
  size_t isz = lt_dtypes[dt].size;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!acc)
      for (int64_t i = 0; i < M; i++) memset((char *)C + (size_t)(i * ldc) * isz, 0, (size_t)N * isz);
    return;
  }
  enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  switch (dt) {
    case LT_FLOAT32:
      blas.sgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)N, (blasint)K, 1.0f, A,
                  (blasint)lda, B, (blasint)ldb, acc ? 1.0f : 0.0f, C, (blasint)ldc);
      break;
    case LT_FLOAT64:
      blas.dgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)N, (blasint)K, 1.0, A,
                  (blasint)lda, B, (blasint)ldb, acc ? 1.0 : 0.0, C, (blasint)ldc);
      break;
    case LT_COMPLEX64: {
      const float one[2] = {1, 0}, zero[2] = {0, 0};
      blas.cgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)N, (blasint)K, one, A,
                  (blasint)lda, B, (blasint)ldb, acc ? one : zero, C, (blasint)ldc);
      break;
    }
    case LT_COMPLEX128: {
      const double one[2] = {1, 0}, zero[2] = {0, 0};
      blas.zgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)N, (blasint)K, one, A,
                  (blasint)lda, B, (blasint)ldb, acc ? one : zero, C, (blasint)ldc);
      break;
    }
    default: {   /* int64, wrapping as PyTorch's integer matmul */
      const int64_t *a = A, *b = B;
      int64_t *c = C;
      for (int64_t i = 0; i < M; i++) {
        if (!acc)
          for (int64_t j = 0; j < N; j++) c[i * ldc + j] = 0;
        for (int64_t k = 0; k < K; k++) {
          uint64_t x = (uint64_t)(ta ? a[k * lda + i] : a[i * lda + k]);
          for (int64_t j = 0; j < N; j++) {
            uint64_t y = (uint64_t)(tb ? b[j * ldb + k] : b[k * ldb + j]);
            c[i * ldc + j] = (int64_t)((uint64_t)c[i * ldc + j] + x * y);
          }
        }
      }
    }
  }
}

void lt_gemm(lt_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
             const void *A, int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc) {
  gemm(dt, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, 0);
}

void lt_gemm_acc(lt_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc) {
  gemm(dt, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, 1);
}

/* ---- convolution ------------------------------------------------------- */

/* the output columns o in [*lo, *hi) whose input index o * s + off falls
   in [0, n); the others read padding */
static void conv_span(int64_t on, int64_t n, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
  int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t b = n - off <= 0 ? 0 : (n - off - 1) / s + 1;
  if (a > on) a = on;
  if (b > on) b = on;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* im2col of one group of one image: rows (c, ki, kj), columns (oh, ow).
   Each column row is padding zeros around a copy of an input row (a
   memcpy at stride 1), so there is no bounds test per element. */
#define DEF_IM2COL(T, NAME)                                                        \
  VECTORIZE static void NAME(const lt_conv *p, int64_t C, const T *x, T *col) {    \
    int64_t P = p->OH * p->OW, OW = p->OW, sw = p->sw;                             \
    for (int64_t kj = 0; kj < p->kw; kj++) {                                       \
      int64_t off = kj * p->dw - p->pw, lo, hi;                                    \
      conv_span(OW, p->W, sw, off, &lo, &hi);                                      \
      for (int64_t c = 0; c < C; c++)                                              \
        for (int64_t ki = 0; ki < p->kh; ki++) {                                   \
          T *dst = col + ((c * p->kh + ki) * p->kw + kj) * P;                      \
          for (int64_t oh = 0; oh < p->OH; oh++) {                                 \
            int64_t ih = oh * p->sh - p->ph + ki * p->dh;                          \
            T *d = dst + oh * OW;                                                  \
            if (ih < 0 || ih >= p->H) {                                            \
              memset(d, 0, (size_t)OW * sizeof(T));                                \
              continue;                                                            \
            }                                                                      \
            const T *row = x + (c * p->H + ih) * p->W + off;                       \
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;                         \
            if (sw == 1) memcpy(d + lo, row + lo, (size_t)(hi - lo) * sizeof(T)); \
            else for (int64_t ow = lo; ow < hi; ow++) d[ow] = row[ow * sw];        \
            for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0;                        \
          }                                                                        \
        }                                                                          \
    }                                                                              \
  }
DEF_IM2COL(float, im2col_f32)
DEF_IM2COL(double, im2col_f64)

/* a depthwise convolution (one input channel per group) computed directly:
   each output row starts at the bias and gains one scaled input row per
   tap, over the columns that tap does not read from the padding */
#define DEF_DEPTHWISE(T, NAME)                                                     \
  VECTORIZE static void NAME(const lt_conv *p, const T *x, const T *w,             \
                             const T *bias, T *y) {                                \
    int64_t Og = p->O / p->groups, OW = p->OW, sw = p->sw;                         \
    for (int64_t n = 0; n < p->N; n++)                                             \
      for (int64_t o = 0; o < p->O; o++) {                                         \
        const T *xp = x + (n * p->C + o / Og) * p->H * p->W;                       \
        const T *wp = w + o * p->kh * p->kw;                                       \
        T *yp = y + (n * p->O + o) * p->OH * OW, b = bias ? bias[o] : 0;           \
        for (int64_t oh = 0; oh < p->OH; oh++) {                                   \
          T *yr = yp + oh * OW;                                                    \
          for (int64_t ow = 0; ow < OW; ow++) yr[ow] = b;                          \
          for (int64_t ki = 0; ki < p->kh; ki++) {                                 \
            int64_t ih = oh * p->sh - p->ph + ki * p->dh;                          \
            if (ih < 0 || ih >= p->H) continue;                                    \
            const T *xr = xp + ih * p->W - p->pw, *wr = wp + ki * p->kw;           \
            int64_t a = 0, z = 0, dw = p->dw;                                      \
            if (p->kw == 3) {   /* the columns all three taps read: one pass */    \
              int64_t l2, h2;                                                      \
              conv_span(OW, p->W, sw, -p->pw, &a, &h2);                            \
              conv_span(OW, p->W, sw, 2 * dw - p->pw, &l2, &z);                    \
              if (l2 > a) a = l2;                                                  \
              if (z < a) z = a;                                                    \
              T w0 = wr[0], w1 = wr[1], w2 = wr[2];                                \
              if (sw == 1)                                                         \
                for (int64_t ow = a; ow < z; ow++)                                 \
                  yr[ow] += w0 * xr[ow] + w1 * xr[ow + dw] + w2 * xr[ow + 2 * dw]; \
              else                                                                 \
                for (int64_t ow = a; ow < z; ow++)                                 \
                  yr[ow] += w0 * xr[ow * sw] + w1 * xr[ow * sw + dw]               \
                            + w2 * xr[ow * sw + 2 * dw];                           \
            }                                                                      \
            for (int64_t kj = 0; kj < p->kw; kj++) {   /* one tap at a time */     \
              int64_t off = kj * dw, lo, hi;                                       \
              conv_span(OW, p->W, sw, off - p->pw, &lo, &hi);                      \
              T wv = wr[kj];                                                       \
              for (int64_t ow = lo; ow < hi; ow++) {                               \
                if (ow == a && z > a) { ow = z - 1; continue; }   /* done above */ \
                yr[ow] += wv * xr[ow * sw + off];                                  \
              }                                                                    \
            }                                                                      \
          }                                                                        \
        }                                                                          \
      }                                                                            \
  }
DEF_DEPTHWISE(float, depthwise_f32)
DEF_DEPTHWISE(double, depthwise_f64)

/* 1x1, stride 1, no padding: the input of a group is already its column
   matrix */
static int conv_is_pointwise(const lt_conv *p) {
  return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 && p->pw == 0;
}

int64_t lt_conv2d_col_numel(const lt_conv *p) {
  if (p->C == p->groups || conv_is_pointwise(p)) return 0;
  return (p->C / p->groups) * p->kh * p->kw * p->OH * p->OW;
}

#define DEF_ADD_BIAS(T, NAME)                                                      \
  static void NAME(const T *bias, int64_t n, int64_t P, T *y) {                    \
    for (int64_t c = 0; c < n; c++)                                                \
      for (int64_t i = 0; i < P; i++) y[c * P + i] += bias[c];                     \
  }
DEF_ADD_BIAS(float, add_bias_f32)
DEF_ADD_BIAS(double, add_bias_f64)

void lt_add_bias(lt_dtype dt, const void *bias, int64_t n, int64_t P, void *y) {
  LT_BY_FLOAT(dt, add_bias_f32, add_bias_f64, bias, n, P, y);
}

void lt_conv2d(lt_dtype dt, const lt_conv *p, const void *x, const void *w,
               const void *bias, void *col, void *y) {
  int64_t Cg = p->C / p->groups, Og = p->O / p->groups, Kc = Cg * p->kh * p->kw;
  int64_t P = p->OH * p->OW;
  size_t isz = lt_dtypes[dt].size;
  if (Cg == 1) {        /* depthwise: no im2col, no gemm per channel */
    if (dt == LT_FLOAT32) depthwise_f32(p, x, w, bias, y);
    else depthwise_f64(p, x, w, bias, y);
    return;
  }
  int direct = conv_is_pointwise(p);
  for (int64_t n = 0; n < p->N; n++) {
    for (int64_t g = 0; g < p->groups; g++) {
      const char *xg = (const char *)x + (size_t)((n * p->C + g * Cg) * p->H * p->W) * isz;
      const void *cp = xg;
      if (!direct) {
        if (dt == LT_FLOAT32) im2col_f32(p, Cg, (const float *)xg, col);
        else im2col_f64(p, Cg, (const double *)xg, col);
        cp = col;
      }
      char *yg = (char *)y + (size_t)((n * p->O + g * Og) * P) * isz;
      lt_gemm(dt, 0, 0, Og, P, Kc, (const char *)w + (size_t)(g * Og * Kc) * isz, Kc,
              cp, P, yg, P);
      if (bias) lt_add_bias(dt, (const char *)bias + (size_t)(g * Og) * isz, Og, P, yg);
    }
  }
}

/* ---- pooling ----------------------------------------------------------- */

int64_t lt_pool_out(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, int ceil_mode) {
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t q = num >= 0 ? num / stride : -((-num + stride - 1) / stride);
  int64_t out = q + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) out--;
  return out < 1 ? -1 : out;
}

/* The pooling kernels for float and double: one plane of H x W into one of
   OH x OW each (max, average, adaptive average); pool_SUF runs a kind over
   every plane. */
#define DEF_POOLS(T, SUF)                                                            \
  /* taps in PyTorch's order (rows, then columns; a nan sticks), each over   \
     the output columns it reads inside the input: no test per element */    \
  VECTORIZE static void max_pool_##SUF(const lt_pool *p, const T *xp, T *yp) {       \
    int64_t OW = p->OW, sw = p->sw;                                                  \
    for (int64_t oh = 0; oh < p->OH; oh++) {                                         \
      T *yr = yp + oh * OW;                                                          \
      for (int64_t ow = 0; ow < OW; ow++) yr[ow] = -INFINITY;                        \
      for (int64_t ki = 0; ki < p->kh; ki++) {                                       \
        int64_t ih = oh * p->sh - p->ph + ki * p->dh;                                \
        if (ih < 0 || ih >= p->H) continue;                                          \
        for (int64_t kj = 0; kj < p->kw; kj++) {                                     \
          int64_t off = kj * p->dw - p->pw, lo, hi;                                  \
          conv_span(OW, p->W, sw, off, &lo, &hi);                                    \
          const T *xr = xp + ih * p->W + off;                                        \
          for (int64_t ow = lo; ow < hi; ow++) {                                     \
            T v = xr[ow * sw], m = yr[ow];                                           \
            yr[ow] = (v > m || v != v) ? v : m;                                      \
          }                                                                          \
        }                                                                            \
      }                                                                              \
    }                                                                                \
  }                                                                                  \
  static void avg_pool_##SUF(const lt_pool *p, const T *xp, T *yp) {                 \
    for (int64_t oh = 0; oh < p->OH; oh++)                                           \
      for (int64_t ow = 0; ow < p->OW; ow++) {                                       \
        int64_t hs = oh * p->sh - p->ph, ws = ow * p->sw - p->pw;                    \
        int64_t he = hs + p->kh < p->H + p->ph ? hs + p->kh : p->H + p->ph;          \
        int64_t we = ws + p->kw < p->W + p->pw ? ws + p->kw : p->W + p->pw;          \
        int64_t pool = (he - hs) * (we - ws);                                        \
        if (hs < 0) hs = 0;                                                          \
        if (ws < 0) ws = 0;                                                          \
        if (he > p->H) he = p->H;                                                    \
        if (we > p->W) we = p->W;                                                    \
        if (hs >= he || ws >= we) { yp[oh * p->OW + ow] = 0; continue; }             \
        double s = 0;                                                                \
        for (int64_t ih = hs; ih < he; ih++)                                         \
          for (int64_t iw = ws; iw < we; iw++) s += xp[ih * p->W + iw];              \
        int64_t div = p->count_include_pad ? pool : (he - hs) * (we - ws);           \
        yp[oh * p->OW + ow] = (T)(s / (double)div);                                  \
      }                                                                              \
  }                                                                                  \
  static void adaptive_avg_##SUF(const lt_pool *p, const T *xp, T *yp) {             \
    for (int64_t oh = 0; oh < p->OH; oh++) {                                         \
      int64_t hs = oh * p->H / p->OH, he = ((oh + 1) * p->H + p->OH - 1) / p->OH;    \
      for (int64_t ow = 0; ow < p->OW; ow++) {                                       \
        int64_t ws = ow * p->W / p->OW;                                              \
        int64_t we = ((ow + 1) * p->W + p->OW - 1) / p->OW;                          \
        double s = 0;                                                                \
        for (int64_t ih = hs; ih < he; ih++)                                         \
          for (int64_t iw = ws; iw < we; iw++) s += xp[ih * p->W + iw];              \
        yp[oh * p->OW + ow] = (T)(s / (double)((he - hs) * (we - ws)));              \
      }                                                                              \
    }                                                                                \
  }                                                                                  \
  static void pool_##SUF(int kind_, const lt_pool *p, const T *x, T *y) {            \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                     \
      const T *xp = x + pl * p->H * p->W;                                            \
      T *yp = y + pl * p->OH * p->OW;                                                \
      if (kind_ == LT_POOL_MAX) max_pool_##SUF(p, xp, yp);                           \
      else if (kind_ == LT_POOL_AVG) avg_pool_##SUF(p, xp, yp);                      \
      else adaptive_avg_##SUF(p, xp, yp);                                            \
    }                                                                                \
  }
DEF_POOLS(float, f32)
DEF_POOLS(double, f64)

void lt_pool2d(int kind_, lt_dtype dt, const lt_pool *p, const void *x, void *y) {
  if (dt == LT_FLOAT32) pool_f32(kind_, p, x, y);
  else pool_f64(kind_, p, x, y);
}

/* ---- normalisation ----------------------------------------------------- */

static inline double getv(lt_dtype dt, const void *x, int64_t i) {
  return dt == LT_FLOAT32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

void lt_batch_stats(lt_dtype dt, const void *x, int64_t N, int64_t C, int64_t S,
                    double *mean, double *var, double *uvar) {
  int64_t cnt = N * S;
  for (int64_t c = 0; c < C; c++) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = 0, o = (n * C + c) * S; i < S; i++) s += getv(dt, x, o + i);
    double m = cnt ? s / (double)cnt : NAN;
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = 0, o = (n * C + c) * S; i < S; i++) { double d = getv(dt, x, o + i) - m; ss += d * d; }
    mean[c] = m;
    var[c] = cnt ? ss / (double)cnt : NAN;
    uvar[c] = cnt > 1 ? ss / (double)(cnt - 1) : NAN;
  }
}

VECTORIZE void lt_channel_affine(lt_dtype dt, const void *x, void *y, int64_t N, int64_t C, int64_t S,
                       const double *scale, const double *shift) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      int64_t o = (n * C + c) * S;
      if (dt == LT_FLOAT32) {
        const float *xp = (const float *)x + o;
        float *yp = (float *)y + o, a = (float)scale[c], b = (float)shift[c];
        for (int64_t i = 0; i < S; i++) yp[i] = xp[i] * a + b;
      } else {
        const double *xp = (const double *)x + o;
        double *yp = (double *)y + o, a = scale[c], b = shift[c];
        for (int64_t i = 0; i < S; i++) yp[i] = xp[i] * a + b;
      }
    }
}

void lt_layer_norm_f64(double *x, int64_t rows, int64_t n, const double *w,
                       const double *b, double eps) {
  for (int64_t r = 0; r < rows; r++) {
    double *p = x + r * n, s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += p[i];
    double m = n ? s / (double)n : 0;
    for (int64_t i = 0; i < n; i++) { double d = p[i] - m; ss += d * d; }
    double inv = 1.0 / sqrt((n ? ss / (double)n : 0) + eps);
    for (int64_t i = 0; i < n; i++)
      p[i] = (p[i] - m) * inv * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
  }
}

/* sum of p[i] (and of (p[i] - m)^2) in double in four interleaved partial
   sums, which the vectoriser turns into one vector of doubles */
static inline __attribute__((always_inline)) double ln_sum(const float *p, int64_t n, int sq, double m) {
  double a[4] = {0, 0, 0, 0};
  int64_t i = 0;
  if (sq) {
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; j++) { double d = p[i + j] - m; a[j] += d * d; }
    for (; i < n; i++) { double d = p[i] - m; a[0] += d * d; }
  } else {
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; j++) a[j] += p[i + j];
    for (; i < n; i++) a[0] += p[i];
  }
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/* the same from float32 x into float32 y (x and y may be the same): the
   arithmetic of lt_layer_norm_f64 on the widened values, except that each
   sum is taken in four partial sums, and the results rounded to float32 */
VECTORIZE void lt_layer_norm_f32(const float *x, float *y, int64_t rows, int64_t n, const double *w,
                                 const double *b, double eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *p = x + r * n;
    float *q = y + r * n;
    double m = n ? ln_sum(p, n, 0, 0) / (double)n : 0;
    double inv = 1.0 / sqrt((n ? ln_sum(p, n, 1, m) / (double)n : 0) + eps);
    if (w && b) {
      for (int64_t i = 0; i < n; i++) q[i] = (float)((p[i] - m) * inv * w[i] + b[i]);
    } else {
      for (int64_t i = 0; i < n; i++)
        q[i] = (float)((p[i] - m) * inv * (w ? w[i] : 1.0) + (b ? b[i] : 0.0));
    }
  }
}

/* ---- statistics -------------------------------------------------------- */

/* min, max, mean and (unbiased) std over the finite values; nan and inf
   counted apart; complex values by magnitude */
void lt_stats_of(const lt_tensor *t, lt_stats *s) {
  memset(s, 0, sizeof *s);
  s->numel = lt_numel(t);
  s->min = INFINITY;
  s->max = -INFINITY;
  lt_iter it;
  lt_iter_init(&it, t);
  double mean = 0, m2 = 0, buf[2 * CH];
  int cplx = kind(t->dtype) == LT_KIND_COMPLEX;
  while (it.left > 0) {
    int m = it.left < CH ? (int)it.left : CH;
    if (cplx) {
      load_c128(&it, t->dtype, buf, m);
      for (int i = 0; i < m; i++) buf[i] = hypot(buf[2 * i], buf[2 * i + 1]);
    } else {
      load_f64(&it, t->dtype, buf, m);
    }
    for (int i = 0; i < m; i++) {
      double v = buf[i];
      if (isnan(v)) { s->nan++; continue; }
      if (isinf(v)) { s->inf++; continue; }
      s->finite++;
      if (v < s->min) s->min = v;
      if (v > s->max) s->max = v;
      double d = v - mean;
      mean += d / (double)s->finite;
      m2 += d * (v - mean);
    }
  }
  s->mean = s->finite ? mean : NAN;
  s->std = s->finite > 1 ? sqrt(m2 / (double)(s->finite - 1)) : NAN;
}
