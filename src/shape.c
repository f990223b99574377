/*
** shape.c: the indexing and shape kernels (shape.h): gather and scatter
** along a dim, copies through per-dim index maps, triangle masks. Every
** kernel walks its positions row by row (the last dim innermost) and
** computes element offsets from the views' strides, so inputs of any
** strides are read in place. No Lua here: the binding (lshape.c) checks
** arguments, makes the outputs and turns a bad index into an error.
*/
#include <string.h>
#include "shape.h"

/* the next position of c over shape[0..last) (the row index, the last dim
   left out); 0 when every row has been visited */
static int next_row(int64_t *c, const int64_t *shape, int last) {
  for (int d = last - 1; d >= 0; d--) {
    if (++c[d] < shape[d]) return 1;
    c[d] = 0;
  }
  return 0;
}

static int badindex(lt_badindex *bad, int64_t v, int dim, int64_t n) {
  bad->value = v;
  bad->dim = dim;
  bad->n = n;
  return -1;
}

/* ---- gather ------------------------------------------------------------ */

/* the element offset in t of row c (its dims before last), dim skip left
   out (-1: none) */
static int64_t row_offset(const lt_tensor *t, const int64_t *c, int last, int skip) {
  int64_t off = 0;
  for (int d = 0; d < last; d++)
    if (d != skip) off += c[d] * t->stride[d];
  return off;
}

/* the element offset in t, from its row's, of column k of a row of the
   index whose value there is v (1-based, along dim) */
static inline int64_t index_offset(const lt_tensor *t, int dim, int last, int64_t k, int64_t v) {
  return dim == last ? (v - 1) * t->stride[last] : k * t->stride[last] + (v - 1) * t->stride[dim];
}

int lt_gather_dim(lt_tensor *out, const lt_tensor *in, int dim, const lt_tensor *index,
                  lt_badindex *bad) {
  int nd = index->ndim;
  size_t isz = lt_dtypes[in->dtype].size;
  if (lt_numel(index) == 0) return 0;
  const int64_t *ip = (const int64_t *)lt_data(index);
  const char *xp = lt_data(in);
  char *o = lt_data(out);
  if (nd == 0) {                       /* a 0-dim input and index */
    if (ip[0] != 1) return badindex(bad, ip[0], 0, 1);
    lt_copy_elem(o, xp, isz);
    return 0;
  }
  int last = nd - 1;
  int64_t n = in->shape[dim], c[LT_MAX_DIMS] = {0};
  int64_t rowlen = index->shape[last], istr = index->stride[last];
  do {
    int64_t ioff = row_offset(index, c, last, -1), xoff = row_offset(in, c, last, dim);
    for (int64_t k = 0; k < rowlen; k++) {
      int64_t v = ip[ioff + k * istr];
      if (v < 1 || v > n) return badindex(bad, v, dim, n);
      int64_t x = xoff + index_offset(in, dim, last, k, v);
      lt_copy_elem(o, xp + x * (int64_t)isz, isz);
      o += isz;
    }
  } while (next_row(c, index->shape, last));
  return 0;
}

/* ---- scatter ----------------------------------------------------------- */

/* *d = *d op *s for one element of dt (op add or multiply): floating kinds
   through double (exact for float32 and narrower: one rounding, as their
   own arithmetic), integers with wrap-around, bool as or / and */
static void combine(lt_dtype dt, int op, char *d, const char *s) {
  switch (lt_dtypes[dt].kind) {
    case LT_KIND_FLOAT: {
      double a = lt_get_f64(dt, d), b = lt_get_f64(dt, s);
      lt_set_f64(dt, d, op == LT_SCATTER_ADD ? a + b : a * b);
      break;
    }
    case LT_KIND_COMPLEX: {
      double a[2], b[2], r[2];
      lt_get_c128(dt, d, a);
      lt_get_c128(dt, s, b);
      if (op == LT_SCATTER_ADD) { r[0] = a[0] + b[0]; r[1] = a[1] + b[1]; }
      else { r[0] = a[0] * b[0] - a[1] * b[1]; r[1] = a[0] * b[1] + a[1] * b[0]; }
      lt_set_c128(dt, d, r);
      break;
    }
    default: {
      uint64_t a = (uint64_t)lt_get_i64(dt, d), b = (uint64_t)lt_get_i64(dt, s);
      lt_set_i64(dt, d, (int64_t)(op == LT_SCATTER_ADD ? a + b : a * b));
      break;
    }
  }
}

int lt_scatter_dim(lt_tensor *out, int dim, const lt_tensor *index, const lt_tensor *src,
                   int op, lt_badindex *bad) {
  int nd = index->ndim;
  size_t isz = lt_dtypes[out->dtype].size;
  if (lt_numel(index) == 0) return 0;
  const int64_t *ip = (const int64_t *)lt_data(index);
  const char *sp = lt_data(src);
  char *op_ = lt_data(out);
  if (nd == 0) {
    if (ip[0] != 1) return badindex(bad, ip[0], 0, 1);
    if (op == LT_SCATTER_SET) lt_copy_elem(op_, sp, isz);
    else combine(out->dtype, op, op_, sp);
    return 0;
  }
  int last = nd - 1;
  int64_t n = out->shape[dim], c[LT_MAX_DIMS] = {0};
  int64_t rowlen = index->shape[last];
  int64_t istr = index->stride[last], sstr = src->stride[last];
  do {
    int64_t ioff = row_offset(index, c, last, -1), soff = row_offset(src, c, last, -1);
    int64_t ooff = row_offset(out, c, last, dim);
    for (int64_t k = 0; k < rowlen; k++) {
      int64_t v = ip[ioff + k * istr];
      if (v < 1 || v > n) return badindex(bad, v, dim, n);
      int64_t o = ooff + index_offset(out, dim, last, k, v);
      char *dp = op_ + o * (int64_t)isz;
      const char *s = sp + (soff + k * sstr) * (int64_t)isz;
      if (op == LT_SCATTER_SET) lt_copy_elem(dp, s, isz);
      else combine(out->dtype, op, dp, s);
    }
  } while (next_row(c, index->shape, last));
  return 0;
}

/* ---- copies through index maps ----------------------------------------- */

void lt_remap(lt_tensor *out, const lt_tensor *in, const int64_t *const *maps) {
  int nd = out->ndim;
  size_t isz = lt_dtypes[in->dtype].size;
  if (lt_numel(out) == 0) return;
  const char *xp = lt_data(in);
  char *o = lt_data(out);
  if (nd == 0) { lt_copy_elem(o, xp, isz); return; }
  int last = nd - 1;
  int64_t c[LT_MAX_DIMS] = {0};
  int64_t rowlen = out->shape[last], xstr = in->stride[last];
  const int64_t *m = maps[last];
  do {
    int64_t xoff = 0;
    for (int d = 0; d < last; d++) xoff += (maps[d] ? maps[d][c[d]] : c[d]) * in->stride[d];
    const char *row = xp + xoff * (int64_t)isz;
    if (m) {
      for (int64_t k = 0; k < rowlen; k++, o += isz) lt_copy_elem(o, row + m[k] * xstr * (int64_t)isz, isz);
    } else if (xstr == 1) {
      memcpy(o, row, (size_t)rowlen * isz);
      o += (size_t)rowlen * isz;
    } else {
      for (int64_t k = 0; k < rowlen; k++, o += isz) lt_copy_elem(o, row + k * xstr * (int64_t)isz, isz);
    }
  } while (next_row(c, out->shape, last));
}

/* ---- triangles --------------------------------------------------------- */

void lt_tri_zero(lt_tensor *t, int64_t k, int upper) {
  int nd = t->ndim;
  int64_t R = t->shape[nd - 2], C = t->shape[nd - 1];
  if (R == 0 || C == 0) return;
  int64_t mats = lt_numel(t) / (R * C);
  size_t isz = lt_dtypes[t->dtype].size;
  /* beyond +-(R + C) every diagonal offset has the same effect */
  if (k > R + C) k = R + C;
  if (k < -(R + C)) k = -(R + C);
  char *p = lt_data(t);
  for (int64_t b = 0; b < mats; b++) {
    for (int64_t i = 0; i < R; i++, p += (size_t)C * isz) {
      int64_t lo, hi;                  /* the zeroed columns [lo, hi) */
      if (upper) { lo = 0; hi = i + k; }
      else { lo = i + k + 1; hi = C; }
      if (lo < 0) lo = 0;
      if (hi > C) hi = C;
      if (hi > lo) memset(p + (size_t)lo * isz, 0, (size_t)(hi - lo) * isz);
    }
  }
}
