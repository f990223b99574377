/*
** shape.h: the indexing and shape kernels of shape.c (no Lua): gather and
** scatter along a dim, copies through per-dim index maps (index_select,
** flip, roll, tile, repeat_interleave), and the triangle masks of
** tril/triu. Indices inside are 0-based; the index tensors the user gives
** hold 1-based values, checked here, so that the binding (lshape.c) can
** name the first bad one without a second pass.
*/
#ifndef LT_SHAPE_H
#define LT_SHAPE_H

#include "lt.h"

/* Where an index check failed: the value as the user wrote it (1-based)
   and the 0-based dim it indexes, of size n. */
typedef struct lt_badindex {
  int64_t value;
  int dim;
  int64_t n;
} lt_badindex;

/* out[c] = in[c with c[dim] replaced by index[c] - 1], over every position
   c of index's shape. index is int64 of in's rank (any strides) and holds
   1-based values; out is contiguous, of index's shape and in's dtype; in
   has any strides and index's sizes do not exceed in's outside dim (the
   caller checks). 0, or -1 with *bad at the first value outside 1..n. */
int lt_gather_dim(lt_tensor *out, const lt_tensor *in, int dim, const lt_tensor *index,
                  lt_badindex *bad);

/* reductions of scatter */
enum { LT_SCATTER_SET, LT_SCATTER_ADD, LT_SCATTER_MUL };

/* out[c with c[dim] replaced by index[c] - 1] = src[c] (or combined with
   it by op) over every position c of index's shape, in row-major order (a
   repeated position keeps the last value written). out holds the input's
   values already and has any strides; src has out's dtype and index's rank
   (strides 0 for a scalar), and index's sizes do not exceed src's, nor
   out's outside dim. Returns as lt_gather_dim; on error out may be written
   in part (it is the caller's fresh copy). */
int lt_scatter_dim(lt_tensor *out, int dim, const lt_tensor *index, const lt_tensor *src,
                   int op, lt_badindex *bad);

/* out[k0, ..., kn] = in[m0[k0], ..., mn[kn]] where mi = maps[i] (0-based
   input indices, out->shape[i] of them; NULL: the identity, and then
   out->shape[i] == in->shape[i]). in and out have one rank and dtype; out
   is contiguous; in has any strides. Every map entry must be in range (the
   caller builds or checks them). */
void lt_remap(lt_tensor *out, const lt_tensor *in, const int64_t *const *maps);

/* zero the elements of the matrices in the last two dims of the
   contiguous t above diagonal k (upper = 0: tril keeps j - i <= k) or below
   it (upper = 1: triu keeps j - i >= k) */
void lt_tri_zero(lt_tensor *t, int64_t k, int upper);

#endif
