/*
** ops.h: the tensor math of ops.c (no Lua). Elementwise kernels work on
** views already expanded to the output's shape and write a contiguous
** output; matmul, convolution, pooling and normalisation work on
** contiguous buffers that the binding (lops.c) prepares.
*/
#ifndef LT_OPS_H
#define LT_OPS_H

#include "lt.h"

/* compute domains of elementwise kernels */
enum { LT_DOM_F64, LT_DOM_I64, LT_DOM_C128 };

/* binary ops (arithmetic, then comparisons producing 0/1) */
enum {
  LT_OP_ADD, LT_OP_SUB, LT_OP_MUL, LT_OP_DIV, LT_OP_POW, LT_OP_MAX, LT_OP_MIN,
  LT_OP_EQ, LT_OP_NE, LT_OP_LT, LT_OP_LE, LT_OP_GT, LT_OP_GE
};

/* unary ops */
enum {
  LT_UN_NEG, LT_UN_ABS, LT_UN_RELU, LT_UN_EXP, LT_UN_LOG, LT_UN_SQRT,
  LT_UN_TANH, LT_UN_SIGMOID, LT_UN_GELU, LT_UN_GELU_TANH
};

/* the broadcast shape of two shapes into out; returns its rank or -1 */
int lt_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out);
/* a view of t expanded (stride 0) to a broadcast-compatible shape */
void lt_expand_view(const lt_tensor *t, int ndim, const int64_t *shape, lt_tensor *out);

/* out = a op b elementwise in domain dom; a, b have out's shape (expanded
   views); out is contiguous and may be the same memory as a */
void lt_binary(int op, int dom, const lt_tensor *a, const lt_tensor *b, lt_tensor *out);
/* out = op(a); same rules; param is unused so far */
void lt_unary(int op, int dom, const lt_tensor *a, lt_tensor *out);
/* out = cond ? a : b (all expanded to out's shape) */
void lt_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *out);
/* out = clamp(a, lo, hi); has_lo/has_hi say which bound applies */
void lt_clamp(int dom, const lt_tensor *a, int has_lo, double lo, int64_t ilo,
              int has_hi, double hi, int64_t ihi, lt_tensor *out);
/* 1 when a and b (expanded to one shape) hold equal values */
int lt_all_equal(const lt_tensor *a, const lt_tensor *b);
/* 1 when |a-b| <= atol + rtol*|b| everywhere (nan never close) */
int lt_all_close(const lt_tensor *a, const lt_tensor *b, double rtol, double atol);

/* row-major C[MxN] = op(A) op(B); dt is float32, float64, complex64,
   complex128 (OpenBLAS) or int64 (loops); trans flags say A is stored KxM
   and B is stored NxK */
void lt_gemm(lt_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
             const void *A, int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc);
/* open OpenBLAS once per process (thread-safe); lt_gemm of a floating or
   complex dtype needs it. 0, or -1 with err */
int lt_blas_load(char *err);

/* reductions over a contiguous (outer, n, inner) block */
enum { LT_RED_SUM, LT_RED_MEAN, LT_RED_MAX, LT_RED_MIN, LT_RED_ARGMAX, LT_RED_ARGMIN, LT_RED_STD };
/* f64 domain: values to out (outer*inner), indices (0-based) to idx when not NULL */
void lt_reduce_f64(int op, const double *x, int64_t outer, int64_t n, int64_t inner,
                   double *out, int64_t *idx, int unbiased);
/* a float reduction of every element of any view, streamed; index gets the
   0-based flat position for max/min/argmax/argmin */
double lt_reduce_all_f64(int op, const lt_tensor *t, int64_t *index, int unbiased);
void lt_reduce_i64(int op, const int64_t *x, int64_t outer, int64_t n, int64_t inner,
                   int64_t *out, int64_t *idx);
void lt_reduce_c128(int op, const double *x, int64_t outer, int64_t n, int64_t inner, double *out);
/* softmax (or log_softmax) along the middle dim of (outer, n, inner), in place */
void lt_softmax_f64(double *x, int64_t outer, int64_t n, int64_t inner, int log);

/* 2-D convolution, NCHW, float32 or float64 contiguous buffers. col has room
   for (C/groups*kh*kw) x (OH*OW) elements; bias may be NULL */
typedef struct lt_conv {
  int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, groups, OH, OW;
} lt_conv;
void lt_conv2d(lt_dtype dt, const lt_conv *p, const void *x, const void *w,
               const void *bias, void *col, void *y);

/* pooling over planes of H x W (f64, contiguous) */
typedef struct lt_pool {
  int64_t planes, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
  int count_include_pad;
} lt_pool;
enum { LT_POOL_MAX, LT_POOL_AVG, LT_POOL_ADAPTIVE_AVG };
/* float32 or float64 contiguous x and y */
void lt_pool2d(int kind, lt_dtype dt, const lt_pool *p, const void *x, void *y);
/* PyTorch's pooling output size; -1 when it would be below 1 */
int64_t lt_pool_out(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, int ceil_mode);

/* per-channel mean, biased and unbiased variance of x (N, C, S), float32
   or float64 contiguous */
void lt_batch_stats(lt_dtype dt, const void *x, int64_t N, int64_t C, int64_t S,
                    double *mean, double *var, double *uvar);
/* y = x * scale[c] + shift[c] over (N, C, S); y may be x */
void lt_channel_affine(lt_dtype dt, const void *x, void *y, int64_t N, int64_t C, int64_t S,
                       const double *scale, const double *shift);
/* layer norm of rows of n elements in place; w, b may be NULL */
void lt_layer_norm_f64(double *x, int64_t rows, int64_t n, const double *w,
                       const double *b, double eps);

/* one streaming pass over any view */
typedef struct lt_stats {
  double min, max, mean, std;
  int64_t nan, inf, numel, finite;
} lt_stats;
void lt_stats_of(const lt_tensor *t, lt_stats *s);

#endif
