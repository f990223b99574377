/*
** reduce.h: reductions, scans, sorting and softmax (reduce.c, no Lua).
** Every kernel reads any strided view of any dtype as it lies (no copy)
** and writes a contiguous output; the binding (lreduce.c) checks the
** arguments, picks result dtypes and shapes and allocates.
**
** Compute domains: float dtypes in double (sums Neumaier-compensated, so a
** float32 sum is the exact sum rounded once), bool and integer dtypes in
** int64 (exact, wrapping as PyTorch's), complex in pairs of doubles.
*/
#ifndef LT_REDUCE_H
#define LT_REDUCE_H

#include "lt.h"

/* what lt_reduce computes over each reduced block */
enum {
  LT_RD_SUM,
  LT_RD_MEAN,                    /* the sum rounded to out's dtype, then divided by n:
                                    PyTorch's CPU mean (sum, then div_) */
  LT_RD_PROD,
  LT_RD_VAR, LT_RD_STD,          /* divided by max(0, n - correction) */
  LT_RD_NORM,                    /* vector p-norm: p = inf, -inf, 0, 1, 2 or any */
  LT_RD_ANY, LT_RD_ALL,          /* 1 or 0 */
  LT_RD_AMAX, LT_RD_AMIN,        /* nan propagates */
  LT_RD_LOGSUMEXP,               /* in double for every real dtype */
  LT_RD_MAX, LT_RD_MIN           /* value and index: the first nan, else the first of ties */
};

typedef struct lt_reduce_op {
  int op;              /* LT_RD_* */
  double p;            /* LT_RD_NORM: the order */
  double correction;   /* LT_RD_VAR, LT_RD_STD: 1 is Bessel's correction */
} lt_reduce_op;

/* Reduce t over the dims whose bit is set in mask (bit d: 0-based dim d; a
   0-dim t is one block of one element). The kept dims, in order, index the
   blocks: out holds one value per block, contiguous, stored into out's
   dtype (a float result into an integer dtype truncates, into bool is
   nonzero; a complex result into a real dtype keeps the real part). idx,
   for LT_RD_MAX and LT_RD_MIN only (else NULL), gets each block's 0-based
   row-major position of the max or min within the block. The domain is
   t's kind (LT_RD_LOGSUMEXP: double; LT_RD_MEAN, VAR, STD, NORM of an
   integer t: double). LT_RD_AMAX, AMIN, MAX and MIN need non-empty
   blocks: the caller checks. */
void lt_reduce(const lt_reduce_op *r, const lt_tensor *t, uint32_t mask, lt_tensor *out,
               lt_tensor *idx);

/* running sum or product along 0-based dim d */
enum { LT_SCAN_CUMSUM, LT_SCAN_CUMPROD };
/* out (contiguous, t's shape) = the scan of t along d, computed in the
   domain of out's kind (float: double, as PyTorch's CPU cumsum; bool and
   integers: int64, wrapping; complex: pairs of doubles) */
void lt_scan(int op, const lt_tensor *t, int d, lt_tensor *out);

/* a sort key: the element's value in its domain and its 0-based position */
typedef struct lt_sortkey {
  union { double f; int64_t i; } v;
  int64_t at;
} lt_sortkey;

/* Sort every line of t along 0-based dim d, stably (equal keys keep their
   order, descending too; nan is larger than every number), and write the
   first k of each sorted line (k <= t's size at d): vals (contiguous, t's
   shape with k at d, t's dtype: the elements copied as they are; NULL when
   not wanted) and idx (that shape, int64: 0-based positions along d).
   work has room for 2 * (t's size at d) keys. A 0-dim t is one line of one.
   Complex dtypes are not sortable: the caller checks. */
void lt_sort(const lt_tensor *t, int d, int descending, int64_t k, lt_tensor *vals,
             lt_tensor *idx, lt_sortkey *work);

/* softmax (or log_softmax) along the middle dim of a contiguous (outer, n,
   inner) block of doubles, in place; nan propagates, -inf everywhere gives
   nan as PyTorch */
void lt_softmax_f64(double *x, int64_t outer, int64_t n, int64_t inner, int log);
/* the same over float32 (float16 and bfloat16 go through it): one exp per
   element, sums in double; buf is scratch room for 2 n floats */
void lt_softmax_f32(float *x, int64_t outer, int64_t n, int64_t inner, int log, float *buf);
/* x[k] = exp(x[k] - sub) for k < n, in place, within about 1 ulp of expf;
   0 below e^-87, nan stays nan */
void lt_exp_f32(float *x, int64_t n, float sub);

#endif
