/*
** reduce.c: reductions, scans, sorting and softmax without Lua (reduce.h).
**
** A reduction splits the input's dims into kept and reduced ones: the kept
** dims, in order, index the output; for each output element the reduced
** dims are a strided sub-view (a block), read through lt_iter in chunks
** into a buffer of the compute domain, so any layout and dtype is reduced
** where it lies, and a reduction of every element holds no copy of it.
** Two-pass statistics (variance, logsumexp) simply read the block twice.
** Scans and sorts walk lines along one dim the same way.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reduce.h"

#define CH 256            /* elements per chunk */

enum { D_F, D_I, D_C };   /* compute domains: double, int64, complex double */

/* ---- chunked reads of a block ----------------------------------------- */

typedef struct reader {
  lt_iter it;
  lt_dtype dt;
  int64_t base;           /* block position of the chunk's first element */
  int64_t next;           /* of the one after it */
} reader;

static void rd_start(reader *rd, const lt_tensor *block) {
  lt_iter_init(&rd->it, block);
  rd->dt = block->dtype;
  rd->base = rd->next = 0;
}

static int rd_count(reader *rd) {
  int m = rd->it.left < CH ? (int)rd->it.left : CH;
  rd->base = rd->next;
  rd->next += m;
  return m;
}

/* the next chunk as doubles (complex: the real part); 0 at the end */
static int next_f(reader *rd, double *buf) {
  int m = rd_count(rd);
  switch (rd->dt) {
    case LT_FLOAT32:
      for (int i = 0; i < m; i++) { float f; memcpy(&f, lt_iter_next(&rd->it), 4); buf[i] = f; }
      break;
    case LT_FLOAT64:
      for (int i = 0; i < m; i++) memcpy(&buf[i], lt_iter_next(&rd->it), 8);
      break;
    default:
      for (int i = 0; i < m; i++) buf[i] = lt_get_f64(rd->dt, lt_iter_next(&rd->it));
  }
  return m;
}

static int next_i(reader *rd, int64_t *buf) {
  int m = rd_count(rd);
  if (rd->dt == LT_INT64)
    for (int i = 0; i < m; i++) memcpy(&buf[i], lt_iter_next(&rd->it), 8);
  else
    for (int i = 0; i < m; i++) buf[i] = lt_get_i64(rd->dt, lt_iter_next(&rd->it));
  return m;
}

/* pairs re, im */
static int next_c(reader *rd, double *buf) {
  int m = rd_count(rd);
  for (int i = 0; i < m; i++) lt_get_c128(rd->dt, lt_iter_next(&rd->it), buf + 2 * i);
  return m;
}

/* the next chunk of |x| (complex: the modulus) */
static int next_abs(reader *rd, int cplx, double *buf) {
  if (!cplx) {
    int m = next_f(rd, buf);
    for (int i = 0; i < m; i++) buf[i] = fabs(buf[i]);
    return m;
  }
  double c[2 * CH];
  int m = next_c(rd, c);
  for (int i = 0; i < m; i++) buf[i] = hypot(c[2 * i], c[2 * i + 1]);
  return m;
}

/* ---- compensated sums -------------------------------------------------- */

/* Neumaier's summation: s plus the lost low-order parts in c */
typedef struct ksum { double s, c; } ksum;

static inline void kadd(ksum *k, double x) {
  double t = k->s + x;
  if (fabs(k->s) >= fabs(x)) k->c += (k->s - t) + x;
  else k->c += (x - t) + k->s;
  k->s = t;
}

/* once the sum is inf or nan the compensation means nothing */
static inline double kval(const ksum *k) { return isfinite(k->s) ? k->s + k->c : k->s; }

/* ---- contiguous float32/float64 blocks, split over the pool ------------- */

/* The sum of a contiguous block: runs of SUM_RUN elements are added in
   double into eight lanes (the AVX2 copy keeps them in two registers; a
   float32 value converts to double exactly, and a run's rounding error is
   far below float32's), the runs' sums Neumaier-compensated as block_f's
   elements are. The block is cut into items of LT_PAR_ITEM elements for
   the pool, their sums combined in item order: the result does not depend
   on the number of threads. max/min keep eight lanes and a nan flag. */
#define SUM_RUN 1024

#define DEF_CONTIG(T, SUF)                                                                   \
  LT_VECTORIZE static ksum csum_##SUF(const T *x, int64_t n) {                                \
    ksum k = {0, 0};                                                                         \
    for (int64_t at = 0; at < n; at += SUM_RUN) {                                            \
      int64_t m = n - at < SUM_RUN ? n - at : SUM_RUN, j = 0;                                \
      const T *p = x + at;                                                                   \
      double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;                                         \
      for (; j + 8 <= m; j += 8)                                                             \
        for (int l = 0; l < 8; l++) a[l] += (double)p[j + l];                                \
      for (; j < m; j++) s += (double)p[j];                                                  \
      kadd(&k, s + (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))));     \
    }                                                                                        \
    return k;                                                                                \
  }                                                                                          \
  /* the largest (want_max) or smallest value of x[0..n), n > 0; *nan when one is nan */     \
  LT_VECTORIZE static T ext_##SUF(const T *x, int64_t n, int want_max, int *nan) {           \
    T v[8];                                                                                  \
    int bad = 0;                                                                             \
    for (int l = 0; l < 8; l++) v[l] = x[0];                                                 \
    int64_t j = 0;                                                                           \
    if (want_max)                                                                            \
      for (; j + 8 <= n; j += 8)                                                             \
        for (int l = 0; l < 8; l++) { T e = x[j + l]; bad |= e != e; v[l] = e > v[l] ? e : v[l]; } \
    else                                                                                     \
      for (; j + 8 <= n; j += 8)                                                             \
        for (int l = 0; l < 8; l++) { T e = x[j + l]; bad |= e != e; v[l] = e < v[l] ? e : v[l]; } \
    T r = v[0];                                                                              \
    for (int l = 1; l < 8; l++) r = want_max ? (v[l] > r ? v[l] : r) : (v[l] < r ? v[l] : r); \
    for (; j < n; j++) { T e = x[j]; bad |= e != e; r = want_max ? (e > r ? e : r) : (e < r ? e : r); } \
    *nan = bad;                                                                              \
    return r;                                                                                \
  }
DEF_CONTIG(float, f32)
DEF_CONTIG(double, f64)
#undef DEF_CONTIG

typedef struct contig_job {
  const void *x;
  int64_t n;
  int f64, op, want_max;
  ksum *sums;              /* per item */
  double *ext;
  int *nan;
} contig_job;

static void contig_item(void *ctx, int64_t i) {
  contig_job *c = ctx;
  int64_t at = i * LT_PAR_ITEM, m = c->n - at < LT_PAR_ITEM ? c->n - at : LT_PAR_ITEM;
  if (c->op == LT_RD_SUM || c->op == LT_RD_MEAN) {
    c->sums[i] = c->f64 ? csum_f64((const double *)c->x + at, m) : csum_f32((const float *)c->x + at, m);
  } else {
    c->ext[i] = c->f64 ? ext_f64((const double *)c->x + at, m, c->want_max, &c->nan[i])
                       : ext_f32((const float *)c->x + at, m, c->want_max, &c->nan[i]);
  }
}

/* sum, mean (the sum), amax, amin, max, min of a contiguous float32 or
   float64 block of n > 0 elements into *res; 0 when the fast path does not
   apply (other ops, an index wanted) */
static int block_contig(const lt_reduce_op *r, const lt_tensor *b, int64_t n, int want_index, double *res) {
  int op = r->op, sum = op == LT_RD_SUM || op == LT_RD_MEAN;
  int ext = op == LT_RD_AMAX || op == LT_RD_AMIN || op == LT_RD_MAX || op == LT_RD_MIN;
  if ((!sum && !(ext && !want_index)) || n <= 0 || !lt_is_contiguous(b)) return 0;
  if (b->dtype != LT_FLOAT32 && b->dtype != LT_FLOAT64) return 0;
  int64_t items = (n + LT_PAR_ITEM - 1) / LT_PAR_ITEM;
  ksum sums1[1];
  double ext1[1];
  int nan1[1];
  contig_job c = {lt_data(b), n, b->dtype == LT_FLOAT64, op, op == LT_RD_AMAX || op == LT_RD_MAX,
                  sums1, ext1, nan1};
  void *mem = NULL;
  if (items > 1) {
    mem = malloc((size_t)items * (sizeof(ksum) + sizeof(double) + sizeof(int)));
    if (!mem) return 0;
    c.sums = mem;
    c.ext = (double *)(c.sums + items);
    c.nan = (int *)(c.ext + items);
  }
  if (n >= LT_PAR_MIN) lt_parallel(items, contig_item, &c);
  else for (int64_t i = 0; i < items; i++) contig_item(&c, i);
  if (sum) {
    ksum k = {0, 0};
    for (int64_t i = 0; i < items; i++) { kadd(&k, c.sums[i].s); kadd(&k, c.sums[i].c); }
    *res = kval(&k);
  } else {
    double v = c.ext[0];
    int bad = 0;
    for (int64_t i = 0; i < items; i++) {
      bad |= c.nan[i];
      if (c.want_max ? c.ext[i] > v : c.ext[i] < v) v = c.ext[i];
    }
    *res = bad ? NAN : v;
  }
  free(mem);
  return 1;
}

/* Sums over leading dims of a contiguous tensor (x:sum(1) of a matrix):
   R rows of K contiguous columns. Reading each column as a strided block
   misses the cache on every element; instead rows are added into K
   compensated double accumulators, CB columns at a time (an item for the
   pool), so each pass is a contiguous, vectorised row segment. */
#define CB 2048

typedef struct cols_job {
  const void *x;
  int f64;
  int64_t R, K;
  double *s, *c;           /* K sums and their compensations */
} cols_job;

/* float32 columns: plain double sums (a float32 value is exact in double,
   and R additions lose some R * 2^-53, far below float32's rounding);
   float64 columns: compensated, as block_f is */
LT_VECTORIZE static void cols_f32(const float *x, int64_t R, int64_t K, int64_t c0, int64_t m,
                                  double *s, double *c) {
  for (int64_t j = 0; j < m; j++) s[j] = c[j] = 0;
  for (int64_t r = 0; r < R; r++) {
    const float *row = x + r * K + c0;
    for (int64_t j = 0; j < m; j++) s[j] += (double)row[j];
  }
}

LT_VECTORIZE static void cols_f64(const double *x, int64_t R, int64_t K, int64_t c0, int64_t m,
                                  double *s, double *c) {
  for (int64_t j = 0; j < m; j++) s[j] = c[j] = 0;
  for (int64_t r = 0; r < R; r++) {
    const double *row = x + r * K + c0;
    for (int64_t j = 0; j < m; j++) {
      double v = row[j], t = s[j] + v;
      c[j] += fabs(s[j]) >= fabs(v) ? (s[j] - t) + v : (v - t) + s[j];
      s[j] = t;
    }
  }
}

static void cols_item(void *ctx, int64_t i) {
  cols_job *j = ctx;
  int64_t c0 = i * CB, m = j->K - c0 < CB ? j->K - c0 : CB;
  if (j->f64) cols_f64((const double *)j->x, j->R, j->K, c0, m, j->s + c0, j->c + c0);
  else cols_f32((const float *)j->x, j->R, j->K, c0, m, j->s + c0, j->c + c0);
}

/* sum or mean of t (contiguous float32/float64) over its first k dims
   (mask = 2^k - 1, 0 < k < ndim) into out; 0 when that is not the case */
static int reduce_leading(const lt_reduce_op *r, const lt_tensor *t, uint32_t mask, lt_tensor *out) {
  if ((r->op != LT_RD_SUM && r->op != LT_RD_MEAN) || (t->dtype != LT_FLOAT32 && t->dtype != LT_FLOAT64) ||
      !lt_is_contiguous(t) || !lt_is_contiguous(out))
    return 0;
  int k = 0;
  while (k < t->ndim && (mask & (1u << k))) k++;
  if (k == 0 || k == t->ndim || mask != (1u << k) - 1) return 0;
  int64_t R = 1, K = 1;
  for (int d = 0; d < k; d++) R *= t->shape[d];
  for (int d = k; d < t->ndim; d++) K *= t->shape[d];
  if (R <= 1 || K < 8 || lt_numel(out) != K) return 0;
  double *mem = malloc((size_t)K * 2 * sizeof(double));
  if (!mem) return 0;
  cols_job j = {lt_data(t), t->dtype == LT_FLOAT64, R, K, mem, mem + K};
  int64_t items = (K + CB - 1) / CB;
  if (R * K >= LT_PAR_MIN) lt_parallel(items, cols_item, &j);
  else for (int64_t i = 0; i < items; i++) cols_item(&j, i);
  char *o = lt_data(out);
  size_t osz = lt_dtypes[out->dtype].size;
  for (int64_t c = 0; c < K; c++) {
    double v = isfinite(j.s[c]) ? j.s[c] + j.c[c] : j.s[c];
    char *dst = o + (size_t)c * osz;
    if (r->op == LT_RD_MEAN) {          /* the sum rounded to out's dtype, then divided */
      lt_set_f64(out->dtype, dst, v);
      v = lt_get_f64(out->dtype, dst) / (double)R;
    }
    lt_set_f64(out->dtype, dst, v);
  }
  free(mem);
  return 1;
}

/* ---- one block in each domain ------------------------------------------ */

/* the float reductions of one block of n elements: res[0] (res[1] for a
   complex result) and *at (max/min) */
static void block_f(const lt_reduce_op *r, const lt_tensor *b, int64_t n, double *res, int64_t *at) {
  reader rd;
  double buf[CH];
  int m;
  rd_start(&rd, b);
  switch (r->op) {
    case LT_RD_SUM: case LT_RD_MEAN: {
      ksum k = {0, 0};
      while ((m = next_f(&rd, buf)) > 0) for (int i = 0; i < m; i++) kadd(&k, buf[i]);
      *res = kval(&k);          /* MEAN: lt_reduce divides (PyTorch's rounding) */
      return;
    }
    case LT_RD_PROD: {
      double p = 1;
      while ((m = next_f(&rd, buf)) > 0) for (int i = 0; i < m; i++) p *= buf[i];
      *res = p;
      return;
    }
    case LT_RD_VAR: case LT_RD_STD: {
      ksum k = {0, 0}, q = {0, 0};
      while ((m = next_f(&rd, buf)) > 0) for (int i = 0; i < m; i++) kadd(&k, buf[i]);
      double mean = kval(&k) / (double)n;
      rd_start(&rd, b);
      while ((m = next_f(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) { double d = buf[i] - mean; kadd(&q, d * d); }
      double div = (double)n - r->correction;
      double v = kval(&q) / (div > 0 ? div : 0);
      *res = r->op == LT_RD_STD ? sqrt(v) : v;
      return;
    }
    case LT_RD_ANY: case LT_RD_ALL: {
      int any = r->op == LT_RD_ANY, v = !any;
      while (v != any && (m = next_f(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) if ((buf[i] != 0) == any) { v = any; break; }
      *res = v;
      return;
    }
    case LT_RD_LOGSUMEXP: {
      double mx = -INFINITY;
      ksum k = {0, 0};
      while ((m = next_f(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) if (buf[i] > mx || isnan(buf[i])) mx = buf[i];
      if (isinf(mx)) mx = 0;   /* PyTorch's shift: none for an infinite max */
      rd_start(&rd, b);
      while ((m = next_f(&rd, buf)) > 0) for (int i = 0; i < m; i++) kadd(&k, exp(buf[i] - mx));
      *res = log(kval(&k)) + mx;
      return;
    }
    default: {   /* amax amin max min: the first nan, else the first of ties */
      int want_max = r->op == LT_RD_AMAX || r->op == LT_RD_MAX, found = 0;
      double best = 0;
      int64_t bi = 0;
      while (!found && (m = next_f(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) {
          double v = buf[i];
          if (isnan(v)) { best = v; bi = rd.base + i; found = 1; break; }
          if ((rd.base == 0 && i == 0) || (want_max ? v > best : v < best)) { best = v; bi = rd.base + i; }
        }
      *res = best;
      if (at) *at = bi;
    }
  }
}

/* the vector p-norm of a real or complex block; 0 for an empty one */
static double block_norm(const lt_tensor *b, int64_t n, double p, int cplx) {
  reader rd;
  double buf[CH];
  int m;
  if (n == 0) return 0;
  rd_start(&rd, b);
  if (isinf(p)) {
    double best = p > 0 ? 0 : INFINITY;
    while ((m = next_abs(&rd, cplx, buf)) > 0)
      for (int i = 0; i < m; i++) {
        if (isnan(buf[i])) return buf[i];
        if (p > 0 ? buf[i] > best : buf[i] < best) best = buf[i];
      }
    return best;
  }
  ksum k = {0, 0};
  while ((m = next_abs(&rd, cplx, buf)) > 0)
    for (int i = 0; i < m; i++) {
      double a = buf[i];
      if (p == 0) kadd(&k, a != 0);
      else if (p == 1) kadd(&k, a);
      else if (p == 2) kadd(&k, a * a);
      else kadd(&k, pow(a, p));
    }
  double s = kval(&k);
  if (p == 0 || p == 1) return s;
  if (p == 2) return sqrt(s);
  return pow(s, 1.0 / p);
}

/* the integer reductions of one block (sum prod any all amax amin max min) */
static int64_t block_i(const lt_reduce_op *r, const lt_tensor *b, int64_t *at) {
  reader rd;
  int64_t buf[CH];
  int m;
  rd_start(&rd, b);
  switch (r->op) {
    case LT_RD_SUM: {
      uint64_t s = 0;
      while ((m = next_i(&rd, buf)) > 0) for (int i = 0; i < m; i++) s += (uint64_t)buf[i];
      return (int64_t)s;
    }
    case LT_RD_PROD: {
      uint64_t p = 1;
      while ((m = next_i(&rd, buf)) > 0) for (int i = 0; i < m; i++) p *= (uint64_t)buf[i];
      return (int64_t)p;
    }
    case LT_RD_ANY: case LT_RD_ALL: {
      int any = r->op == LT_RD_ANY, v = !any;
      while (v != any && (m = next_i(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) if ((buf[i] != 0) == any) { v = any; break; }
      return v;
    }
    default: {
      int want_max = r->op == LT_RD_AMAX || r->op == LT_RD_MAX;
      int64_t best = 0, bi = 0;
      while ((m = next_i(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) {
          int64_t v = buf[i];
          if ((rd.base == 0 && i == 0) || (want_max ? v > best : v < best)) { best = v; bi = rd.base + i; }
        }
      if (at) *at = bi;
      return best;
    }
  }
}

/* the complex reductions of one block: sum mean prod (complex results),
   var std (real), any all */
static void block_c(const lt_reduce_op *r, const lt_tensor *b, int64_t n, double *res) {
  reader rd;
  double buf[2 * CH];
  int m;
  rd_start(&rd, b);
  res[1] = 0;
  switch (r->op) {
    case LT_RD_PROD: {
      double re = 1, im = 0;
      while ((m = next_c(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) {
          double a = buf[2 * i], c = buf[2 * i + 1], t = re * a - im * c;
          im = re * c + im * a;
          re = t;
        }
      res[0] = re;
      res[1] = im;
      return;
    }
    case LT_RD_ANY: case LT_RD_ALL: {
      int any = r->op == LT_RD_ANY, v = !any;
      while (v != any && (m = next_c(&rd, buf)) > 0)
        for (int i = 0; i < m; i++)
          if ((buf[2 * i] != 0 || buf[2 * i + 1] != 0) == any) { v = any; break; }
      res[0] = v;
      return;
    }
    default: {   /* sum mean var std */
      ksum kr = {0, 0}, ki = {0, 0};
      while ((m = next_c(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) { kadd(&kr, buf[2 * i]); kadd(&ki, buf[2 * i + 1]); }
      double sr = kval(&kr), si = kval(&ki);
      if (r->op == LT_RD_SUM || r->op == LT_RD_MEAN) { res[0] = sr; res[1] = si; return; }
      double mr = sr / (double)n, mi = si / (double)n;
      ksum q = {0, 0};
      rd_start(&rd, b);
      while ((m = next_c(&rd, buf)) > 0)
        for (int i = 0; i < m; i++) {
          double dr = buf[2 * i] - mr, di = buf[2 * i + 1] - mi;
          kadd(&q, dr * dr + di * di);
        }
      double div = (double)n - r->correction;
      double v = kval(&q) / (div > 0 ? div : 0);
      res[0] = r->op == LT_RD_STD ? sqrt(v) : v;
    }
  }
}

/* ---- the reduction driver ---------------------------------------------- */

void lt_reduce(const lt_reduce_op *r, const lt_tensor *t, uint32_t mask, lt_tensor *out,
               lt_tensor *idx) {
  /* the block view (reduced dims) and the kept dims' shape and strides */
  lt_tensor b = *t;
  int64_t ks[LT_MAX_DIMS], kst[LT_MAX_DIMS], ki[LT_MAX_DIMS];
  int nk = 0;
  b.ndim = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (mask & (1u << d)) {
      b.shape[b.ndim] = t->shape[d];
      b.stride[b.ndim++] = t->stride[d];
    } else {
      ks[nk] = t->shape[d];
      kst[nk] = t->stride[d];
      ki[nk++] = 0;
    }
  }
  int64_t n = lt_numel(&b), rows = lt_numel(out);
  if (!idx && reduce_leading(r, t, mask, out)) return;
  int kind = lt_dtypes[t->dtype].kind, op = r->op;
  int dom = kind == LT_KIND_COMPLEX ? D_C : kind == LT_KIND_FLOAT ? D_F : D_I;
  if (op == LT_RD_LOGSUMEXP) dom = D_F;
  if (dom == D_I && (op == LT_RD_MEAN || op == LT_RD_VAR || op == LT_RD_STD || op == LT_RD_NORM)) dom = D_F;
  size_t osz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  int64_t *ix = idx ? (int64_t *)lt_data(idx) : NULL;
  int64_t base = t->offset;
  for (int64_t row = 0; row < rows; row++) {
    b.offset = base;
    char *dst = o + (size_t)row * osz;
    int64_t at = 0;
    if (op == LT_RD_NORM) {
      lt_set_f64(out->dtype, dst, block_norm(&b, n, r->p, dom == D_C));
    } else if (dom == D_I) {
      lt_set_i64(out->dtype, dst, block_i(r, &b, &at));
    } else if (dom == D_C) {
      double v[2];
      block_c(r, &b, n, v);
      if (op == LT_RD_MEAN) {      /* the sum rounded to out's dtype, then divided */
        lt_set_c128(out->dtype, dst, v);
        lt_get_c128(out->dtype, dst, v);
        v[0] /= (double)n;
        v[1] /= (double)n;
      }
      lt_set_c128(out->dtype, dst, v);
    } else {
      double v;
      if (!block_contig(r, &b, n, ix != NULL, &v)) block_f(r, &b, n, &v, &at);
      if (op == LT_RD_MEAN) {
        lt_set_f64(out->dtype, dst, v);
        v = lt_get_f64(out->dtype, dst) / (double)n;
      }
      lt_set_f64(out->dtype, dst, v);
    }
    if (ix) ix[row] = at;
    for (int d = nk - 1; d >= 0; d--) {     /* the next block */
      base += kst[d];
      if (++ki[d] < ks[d]) break;
      base -= kst[d] * ks[d];
      ki[d] = 0;
    }
  }
}

/* ---- lines along one dim ----------------------------------------------- */

/* The lines of t along dim d: t's other dims walked in row-major order,
   each line's offset in t (elements) and in a contiguous tensor of shape
   oshape (t's shape with osize at d). */
typedef struct lines {
  int nd;
  int64_t shape[LT_MAX_DIMS], st[LT_MAX_DIMS], ost[LT_MAX_DIMS], i[LT_MAX_DIMS];
  int64_t toff, ooff, count;
  int64_t n, step, ostep;     /* the line's length and strides along d */
} lines;

static void lines_init(lines *ls, const lt_tensor *t, int d, int64_t osize) {
  int64_t oshape[LT_MAX_DIMS], ostride[LT_MAX_DIMS];
  memset(ls, 0, sizeof *ls);
  if (t->ndim == 0) { ls->n = 1; ls->count = 1; ls->toff = t->offset; return; }
  memcpy(oshape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  oshape[d] = osize;
  lt_contiguous_strides(t->ndim, oshape, ostride);
  ls->count = 1;
  for (int k = 0; k < t->ndim; k++) {
    if (k == d) continue;
    ls->shape[ls->nd] = t->shape[k];
    ls->st[ls->nd] = t->stride[k];
    ls->ost[ls->nd++] = ostride[k];
    ls->count *= t->shape[k];
  }
  ls->n = t->shape[d];
  ls->step = t->stride[d];
  ls->ostep = ostride[d];
  ls->toff = t->offset;
}

static void lines_next(lines *ls) {
  for (int k = ls->nd - 1; k >= 0; k--) {
    ls->toff += ls->st[k];
    ls->ooff += ls->ost[k];
    if (++ls->i[k] < ls->shape[k]) return;
    ls->toff -= ls->st[k] * ls->shape[k];
    ls->ooff -= ls->ost[k] * ls->shape[k];
    ls->i[k] = 0;
  }
}

/* ---- scans ------------------------------------------------------------- */

void lt_scan(int op, const lt_tensor *t, int d, lt_tensor *out) {
  lines ls;
  lines_init(&ls, t, d, t->ndim ? t->shape[d] : 1);
  size_t isz = lt_dtypes[t->dtype].size, osz = lt_dtypes[out->dtype].size;
  const char *src = (const char *)t->storage->data;
  char *dst = (char *)out->storage->data + out->offset * (int64_t)osz;
  int kind = lt_dtypes[out->dtype].kind, prod = op == LT_SCAN_CUMPROD;
  if (lt_numel(out) == 0) return;
  for (int64_t l = 0; l < ls.count; l++, lines_next(&ls)) {
    double f = prod, c[2] = {prod, 0};
    uint64_t iv = (uint64_t)prod;
    for (int64_t j = 0; j < ls.n; j++) {
      const char *p = src + (size_t)(ls.toff + j * ls.step) * isz;
      char *q = dst + (size_t)(ls.ooff + j * ls.ostep) * osz;
      if (kind == LT_KIND_COMPLEX) {
        double x[2];
        lt_get_c128(t->dtype, p, x);
        if (prod) {
          double re = c[0] * x[0] - c[1] * x[1];
          c[1] = c[0] * x[1] + c[1] * x[0];
          c[0] = re;
        } else {
          c[0] += x[0];
          c[1] += x[1];
        }
        lt_set_c128(out->dtype, q, c);
      } else if (kind == LT_KIND_FLOAT) {
        double x = lt_get_f64(t->dtype, p);
        f = prod ? f * x : f + x;
        lt_set_f64(out->dtype, q, f);
      } else {
        uint64_t x = (uint64_t)lt_get_i64(t->dtype, p);
        iv = prod ? iv * x : iv + x;
        lt_set_i64(out->dtype, q, (int64_t)iv);
      }
    }
  }
}

/* ---- sorting ----------------------------------------------------------- */

typedef int (*before_fn)(const lt_sortkey *a, const lt_sortkey *b);

/* a goes strictly before b: nan is the largest value */
static int asc_f(const lt_sortkey *a, const lt_sortkey *b) {
  return a->v.f < b->v.f || (isnan(b->v.f) && !isnan(a->v.f));
}
static int desc_f(const lt_sortkey *a, const lt_sortkey *b) {
  return a->v.f > b->v.f || (isnan(a->v.f) && !isnan(b->v.f));
}
static int asc_i(const lt_sortkey *a, const lt_sortkey *b) { return a->v.i < b->v.i; }
static int desc_i(const lt_sortkey *a, const lt_sortkey *b) { return a->v.i > b->v.i; }

/* stable merge sort of a[0..n) with tmp[0..n): insertion-sorted runs of
   RUN, then bottom-up merges that take from the right run only when its
   key goes strictly before the left's. The result is in a. */
#define RUN 16
static void merge_sort(lt_sortkey *a, lt_sortkey *tmp, int64_t n, before_fn before) {
  for (int64_t s = 0; s < n; s += RUN) {
    int64_t e = s + RUN < n ? s + RUN : n;
    for (int64_t i = s + 1; i < e; i++) {
      lt_sortkey k = a[i];
      int64_t j = i;
      while (j > s && before(&k, &a[j - 1])) { a[j] = a[j - 1]; j--; }
      a[j] = k;
    }
  }
  lt_sortkey *src = a, *dst = tmp;
  for (int64_t w = RUN; w < n; w *= 2) {
    for (int64_t s = 0; s < n; s += 2 * w) {
      int64_t mid = s + w < n ? s + w : n, e = s + 2 * w < n ? s + 2 * w : n;
      int64_t i = s, j = mid, k = s;
      while (i < mid && j < e) dst[k++] = before(&src[j], &src[i]) ? src[j++] : src[i++];
      while (i < mid) dst[k++] = src[i++];
      while (j < e) dst[k++] = src[j++];
    }
    lt_sortkey *x = src;
    src = dst;
    dst = x;
  }
  if (src != a) memcpy(a, src, sizeof *a * (size_t)n);
}

void lt_sort(const lt_tensor *t, int d, int descending, int64_t k, lt_tensor *vals,
             lt_tensor *idx, lt_sortkey *work) {
  lines ls;
  lines_init(&ls, t, d, k);
  if (lt_numel(idx) == 0) return;
  int kind = lt_dtypes[t->dtype].kind;
  int isf = kind == LT_KIND_FLOAT;
  before_fn before = isf ? (descending ? desc_f : asc_f) : (descending ? desc_i : asc_i);
  size_t isz = lt_dtypes[t->dtype].size;
  const char *src = (const char *)t->storage->data;
  int64_t *ip = (int64_t *)lt_data(idx);
  char *vp = vals ? lt_data(vals) : NULL;
  for (int64_t l = 0; l < ls.count; l++, lines_next(&ls)) {
    for (int64_t j = 0; j < ls.n; j++) {
      const char *p = src + (size_t)(ls.toff + j * ls.step) * isz;
      if (isf) work[j].v.f = lt_get_f64(t->dtype, p);
      else work[j].v.i = lt_get_i64(t->dtype, p);
      work[j].at = j;
    }
    merge_sort(work, work + ls.n, ls.n, before);
    for (int64_t j = 0; j < k; j++) {
      int64_t o = ls.ooff + j * ls.ostep;
      ip[o] = work[j].at;
      if (vp) memcpy(vp + (size_t)o * isz, src + (size_t)(ls.toff + work[j].at * ls.step) * isz, isz);
    }
  }
}

/* ---- softmax ----------------------------------------------------------- */

void lt_softmax_f64(double *x, int64_t outer, int64_t n, int64_t inner, int log_) {
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      double *p = x + o * n * inner + i;
      double mx = -INFINITY, s = 0;
      for (int64_t k = 0; k < n; k++) if (p[k * inner] > mx || isnan(p[k * inner])) mx = p[k * inner];
      if (isinf(mx) && mx < 0) mx = 0;
      for (int64_t k = 0; k < n; k++) s += exp(p[k * inner] - mx);
      double ls = log(s);
      for (int64_t k = 0; k < n; k++)
        p[k * inner] = log_ ? p[k * inner] - mx - ls : exp(p[k * inner] - mx) / s;
    }
  }
}

/* exp(x[k] - sub) for k < 8, in place, by x = n ln2 + r (|r| <= ln2 / 2)
   and a degree-7 Taylor polynomial of e^r (truncation under 6e-9 relative),
   scaled by 2^n built in the exponent bits: about 1 ulp from expf. Eight
   lanes at a time in vector types (selects by masks, no branches): one AVX
   register in LT_VECTORIZE's AVX2 copy, two SSE ones otherwise. Results
   below e^-87 (float's normal range) are 0; nan stays nan. */
typedef float lt_v8f __attribute__((vector_size(32)));   /* GCC/clang vector types */
typedef int32_t lt_v8i __attribute__((vector_size(32)));
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void exp8(float *x, float sub) {
  lt_v8f v;
  memcpy(&v, x, sizeof v);
  v = v - sub;
  const lt_v8f magic = (lt_v8f){0} + 12582912.0f;   /* 1.5 * 2^23: rounds to an integer */
  lt_v8i big = v > 88.0f;                             /* lanes of -1 where true */
  v = (lt_v8f)(((lt_v8i)v & ~big) | ((lt_v8i)((lt_v8f){0} + 88.0f) & big));
  lt_v8f t = v * 1.44269504f + magic;
  lt_v8f n = t - magic;
  lt_v8f r = (v - n * 0.693145752f) - n * 1.42860677e-6f;   /* ln2 split hi + lo */
  lt_v8i e = ((lt_v8i)t - (lt_v8i)magic + 127) << 23;       /* 2^n's bits */
  lt_v8f p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
             r * (1.0f / 720 + r * (1.0f / 5040)))))));
  p = p * (lt_v8f)e;
  p = (lt_v8f)((lt_v8i)p & ~(v < -87.0f));
  memcpy(x, &p, sizeof p);
}

ALWAYS_INLINE void exp_line(float *x, int64_t n, float sub) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) exp8(x + k, sub);
  if (k < n) {
    float tail[8] = {0};
    memcpy(tail, x + k, (size_t)(n - k) * sizeof *x);
    exp8(tail, sub);
    memcpy(x + k, tail, (size_t)(n - k) * sizeof *x);
  }
}

LT_VECTORIZE void lt_exp_f32(float *x, int64_t n, float sub) { exp_line(x, n, sub); }

/* the largest of x[0 .. n) (-inf for none), nan when any is nan: eight
   lanes of maxima and of nan flags, by masks */
ALWAYS_INLINE float max_f32(const float *x, int64_t n) {
  lt_v8f mv = (lt_v8f){0} - INFINITY;
  lt_v8i nan = {0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    lt_v8f v;
    memcpy(&v, x + k, sizeof v);
    lt_v8i gt = v > mv;
    mv = (lt_v8f)(((lt_v8i)v & gt) | ((lt_v8i)mv & ~gt));
    nan |= v != v;
  }
  float mx = -INFINITY;
  int isnan_ = 0;
  for (int j = 0; j < 8; j++) {
    mx = mv[j] > mx ? mv[j] : mx;
    isnan_ |= nan[j] != 0;
  }
  for (; k < n; k++) {
    mx = x[k] > mx ? x[k] : mx;
    isnan_ |= x[k] != x[k];
  }
  return isnan_ ? NAN : mx;
}

/* the sum of x[0 .. n) in double, in four interleaved partial sums */
ALWAYS_INLINE double sum_f32(const float *x, int64_t n) {
  double a[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int j = 0; j < 4; j++) a[j] += x[k + j];
  for (; k < n; k++) a[0] += x[k];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/* The float32 kernel: one exp per element, kept in x between the passes;
   the sum, the log and the division in double, so each result is rounded
   once from the float32 exp. buf has room for 2 n floats: a line with
   inner > 1 is gathered into its first half and scattered back, and
   log_softmax keeps the exps in its second. */
LT_VECTORIZE void lt_softmax_f32(float *x, int64_t outer, int64_t n, int64_t inner, int log_,
                                 float *buf) {
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      float *line = x + o * n * inner + i, *p = line;
      if (inner > 1) {
        p = buf;
        for (int64_t k = 0; k < n; k++) p[k] = line[k * inner];
      }
      float mx = max_f32(p, n);
      if (isinf(mx) && mx < 0) mx = 0;
      double s = 0;
      if (log_) {
        float *e = buf + n;
        memcpy(e, p, (size_t)n * sizeof *e);
        exp_line(e, n, mx);
        s = sum_f32(e, n);
        double ls = log(s);
        for (int64_t k = 0; k < n; k++) p[k] = (float)((double)p[k] - mx - ls);
      } else {
        exp_line(p, n, mx);
        s = sum_f32(p, n);
        double inv = 1.0 / s;
        for (int64_t k = 0; k < n; k++) p[k] = (float)(p[k] * inv);
      }
      if (inner > 1)
        for (int64_t k = 0; k < n; k++) line[k * inner] = p[k];
    }
  }
}
