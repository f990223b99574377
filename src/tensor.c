/*
** tensor.c: strided views. Shape arithmetic, extent checks, element
** iteration, and copies between views of any strides and dtypes.
*/
#include <string.h>
#include <stdio.h>
#include "lt.h"

/* the product of the dims; -1 for a negative dim, and when the product
   overflows int64, counting a 0 dim as 1 there: a zero-element shape such as
   {0, 2^62, 4} has contiguous strides (products of the inner dims, 0 read as
   1) past int64, and is refused as any overflowing shape is */
int64_t lt_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1, reach = 1;
  int zero = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] == 0) { zero = 1; continue; }
    if (reach > INT64_MAX / shape[i]) return -1;
    reach *= shape[i];
  }
  n = zero ? 0 : reach;
  return n;
}

/* t's shape is valid (lt_shape_numel >= 0): no overflow; a 0 dim anywhere
   gives 0 */
int64_t lt_numel(const lt_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) if (t->shape[i] == 0) return 0;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

void lt_storage_tensor(lt_tensor *t, lt_storage *s, lt_dtype dt) {
  memset(t, 0, sizeof *t);
  t->storage = s;
  t->dtype = dt;
  t->ndim = 1;
  t->shape[0] = (int64_t)(s->nbytes / lt_dtypes[dt].size);
  t->stride[0] = 1;
}

/* strides[i] = the product of the dims after i (a 0 dim counted as 1). A
   shape lt_shape_numel accepts never overflows here; any other saturates at
   INT64_MAX (no signed overflow) */
void lt_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    if (i == 0) break;
    int64_t d = shape[i] > 0 ? shape[i] : 1;
    if (__builtin_mul_overflow(s, d, &s)) s = INT64_MAX;
  }
}

int lt_is_contiguous(const lt_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (t->shape[i] == 0) return 1;
    if (t->stride[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

/*
** Every element of t must lie inside a storage of storage_bytes bytes.
** Checks rank, negative sizes, and overflow of offset + sum((n-1)*|stride|)
** by division, before anything is indexed. Returns 0 or -1 with err set.
*/
int lt_check_extent(const lt_tensor *t, size_t storage_bytes, char *err) {
  size_t isz = lt_dtypes[t->dtype].size;
  if (t->ndim < 0 || t->ndim > LT_MAX_DIMS) {
    snprintf(err, LT_MSG, "rank %d exceeds the limit of %d", t->ndim, LT_MAX_DIMS);
    return -1;
  }
  if (lt_shape_numel(t->ndim, t->shape) < 0) {
    snprintf(err, LT_MSG, "negative or overflowing size");
    return -1;
  }
  if (t->offset < 0) {
    snprintf(err, LT_MSG, "negative storage offset %lld", (long long)t->offset);
    return -1;
  }
  int64_t lo = t->offset, hi = t->offset;   /* element index range touched */
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 0) return 0;         /* empty: touches nothing */
    int64_t st = t->stride[i], n1 = t->shape[i] - 1;
    if (st == INT64_MIN) goto overflow;
    int64_t a = st < 0 ? -st : st;
    if (n1 > 0 && a > INT64_MAX / n1) goto overflow;
    int64_t span = a * n1;
    if (st < 0) { if (lo < INT64_MIN + span) goto overflow; lo -= span; }
    else { if (hi > INT64_MAX - span) goto overflow; hi += span; }
  }
  if (lo < 0) {
    snprintf(err, LT_MSG, "negative stride reaches before the storage");
    return -1;
  }
  if ((uint64_t)hi >= (uint64_t)(INT64_MAX / (int64_t)isz) ||
      (uint64_t)(hi + 1) * isz > storage_bytes) {
    snprintf(err, LT_MSG, "view needs %llu bytes of storage, storage has %zu",
             (unsigned long long)(hi + 1) * isz, storage_bytes);
    return -1;
  }
  return 0;
overflow:
  snprintf(err, LT_MSG, "overflowing strides");
  return -1;
}

/* Iteration over a view in row-major order, merging contiguous dims. */
void lt_iter_init(lt_iter *it, const lt_tensor *t) {
  size_t isz = lt_dtypes[t->dtype].size;
  int n = 0;
  it->left = lt_numel(t);
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 1) continue;
    if (n > 0 && it->stride[n - 1] == t->stride[i] * t->shape[i] * (int64_t)isz) {
      it->shape[n - 1] *= t->shape[i];
      it->stride[n - 1] = t->stride[i] * (int64_t)isz;
      continue;
    }
    it->shape[n] = t->shape[i];
    it->stride[n] = t->stride[i] * (int64_t)isz;
    it->idx[n] = 0;
    n++;
  }
  it->ndim = n;
  it->p = it->left > 0 ? lt_data(t) : NULL;
}

/* contiguous run of the innermost dim: fast inner loops step by rows */
void lt_gather(void *out, const lt_tensor *t) {
  size_t isz = lt_dtypes[t->dtype].size;
  int64_t n = lt_numel(t);
  if (n == 0) return;
  if (lt_is_contiguous(t)) { memcpy(out, lt_data(t), (size_t)n * isz); return; }
  lt_iter it;
  lt_iter_init(&it, t);
  char *o = out;
  if (it.ndim > 0 && it.stride[it.ndim - 1] == (int64_t)isz) {
    /* copy whole inner rows */
    int64_t row = it.shape[it.ndim - 1];
    size_t rb = (size_t)row * isz;
    while (it.left > 0) {
      memcpy(o, it.p, rb);
      o += rb;
      it.idx[it.ndim - 1] = row - 1;
      it.p += it.stride[it.ndim - 1] * (row - 1);
      it.left -= row - 1;
      lt_iter_next(&it);
    }
    return;
  }
  switch (isz) {
    case 1: while (it.left > 0) { *o = *lt_iter_next(&it); o++; } break;
    case 2: while (it.left > 0) { memcpy(o, lt_iter_next(&it), 2); o += 2; } break;
    case 4: while (it.left > 0) { memcpy(o, lt_iter_next(&it), 4); o += 4; } break;
    case 8: while (it.left > 0) { memcpy(o, lt_iter_next(&it), 8); o += 8; } break;
    default: while (it.left > 0) { memcpy(o, lt_iter_next(&it), isz); o += isz; } break;
  }
}

/*
** dst and src have the same shape. Overlap between them is the caller's
** business (copy through a temporary when they share storage).
*/
void lt_copy(lt_tensor *dst, const lt_tensor *src) {
  int64_t n = lt_numel(src);
  if (n == 0) return;
  if (lt_is_contiguous(dst) && lt_is_contiguous(src)) {
    lt_convert(dst->dtype, lt_data(dst), src->dtype, lt_data(src), (size_t)n);
    return;
  }
  if (lt_is_contiguous(dst) && dst->dtype == src->dtype) {
    lt_gather(lt_data(dst), src);
    return;
  }
  lt_iter a, b;
  lt_iter_init(&a, dst);
  lt_iter_init(&b, src);
  size_t isz = lt_dtypes[src->dtype].size;
  if (dst->dtype == src->dtype) {
    while (a.left > 0) memcpy(lt_iter_next(&a), lt_iter_next(&b), isz);
  } else {
    while (a.left > 0) lt_convert(dst->dtype, lt_iter_next(&a), src->dtype, lt_iter_next(&b), 1);
  }
}
