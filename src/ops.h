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

/* binary ops: arithmetic (add, sub, mul, div first: the fast paths), then
   the ops producing bool (0/1): comparisons and logical ops. REM is Python's
   remainder (the divisor's sign), FLOORDIV floor division; both raise
   (lt_binary's status) on an integer zero divisor */
enum {
  LT_OP_ADD, LT_OP_SUB, LT_OP_MUL, LT_OP_DIV, LT_OP_POW, LT_OP_MAX, LT_OP_MIN,
  LT_OP_ATAN2, LT_OP_REM, LT_OP_FLOORDIV,
  LT_OP_EQ, LT_OP_NE, LT_OP_LT, LT_OP_LE, LT_OP_GT, LT_OP_GE,
  LT_OP_AND, LT_OP_OR, LT_OP_XOR
};
#define LT_OP_BOOL_RESULT(op) ((op) >= LT_OP_EQ)

/* unary ops. Parameters (lt_unparam) are: LEAKY_RELU a = slope; ELU a =
   alpha, b = scale, c = input scale; SOFTPLUS a = beta, b = threshold;
   ROUND_DEC a = decimals; NAN_TO_NUM a, b, c = the values for nan, +inf,
   -inf. ISINF ... LOGICAL_NOT write bool (0/1) */
enum {
  LT_UN_NEG, LT_UN_ABS, LT_UN_RELU, LT_UN_EXP, LT_UN_LOG, LT_UN_SQRT,
  LT_UN_TANH, LT_UN_SIGMOID, LT_UN_GELU, LT_UN_GELU_TANH,
  LT_UN_SIN, LT_UN_COS, LT_UN_TAN, LT_UN_ASIN, LT_UN_ACOS, LT_UN_ATAN,
  LT_UN_SINH, LT_UN_COSH, LT_UN_RSQRT, LT_UN_ERF, LT_UN_ERFINV,
  LT_UN_FLOOR, LT_UN_CEIL, LT_UN_ROUND, LT_UN_ROUND_DEC, LT_UN_TRUNC, LT_UN_SIGN,
  LT_UN_NAN_TO_NUM,
  LT_UN_SILU, LT_UN_MISH, LT_UN_HARDSWISH, LT_UN_HARDSIGMOID, LT_UN_RELU6,
  LT_UN_LEAKY_RELU, LT_UN_ELU, LT_UN_SOFTPLUS,
  LT_UN_ISINF, LT_UN_ISNAN, LT_UN_ISFINITE, LT_UN_LOGICAL_NOT,
  LT_UN_COUNT
};
#define LT_UN_BOOL_RESULT(op) ((op) >= LT_UN_ISINF && (op) <= LT_UN_LOGICAL_NOT)

/* the parameters of a unary op (unused ones ignored) */
typedef struct lt_unparam { double a, b, c; } lt_unparam;

/* lt_binary's status */
enum { LT_OK = 0, LT_EZERODIV = 1 };

/* the broadcast shape of two shapes into out; returns its rank or -1 */
int lt_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out);
/* a view of t expanded (stride 0) to a broadcast-compatible shape */
void lt_expand_view(const lt_tensor *t, int ndim, const int64_t *shape, lt_tensor *out);

/* out = a op b elementwise in domain dom; a, b have out's shape (expanded
   views); out is contiguous and may be the same memory as a. A float
   result other than float64 is computed in float (PyTorch's opmath for
   float32, float16, bfloat16), float64 in double. Returns LT_OK, or
   LT_EZERODIV when an integer REM or FLOORDIV met a zero divisor (out then
   holds garbage) */
int lt_binary(int op, int dom, const lt_tensor *a, const lt_tensor *b, lt_tensor *out);
/* out = op(a); same rules (dom is a's domain; out may be bool for the
   predicates); default parameters */
void lt_unary(int op, int dom, const lt_tensor *a, lt_tensor *out);
/* lt_unary with parameters p (NULL: the defaults of lt_unparam_default) */
void lt_unary_p(int op, int dom, const lt_unparam *p, const lt_tensor *a, lt_tensor *out);
/* PyTorch's default parameters of op */
lt_unparam lt_unparam_default(int op);
/* writes the element value (out's dtype) where mask (expanded to out's
   shape; bool or uint8) is nonzero; out is contiguous */
void lt_masked_fill(const lt_tensor *mask, const void *value, lt_tensor *out);
/* out = cond ? a : b (all expanded to out's shape) */
void lt_where(const lt_tensor *cond, const lt_tensor *a, const lt_tensor *b, lt_tensor *out);
/* out = clamp(a, lo, hi) = minimum(maximum(a, lo), hi): has_lo/has_hi say
   which bound applies; a nan (in a or a bound) gives nan, lo > hi gives hi */
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
/* the same as C += op(A) op(B) (BLAS with beta = 1: what C holds, e.g. a
   bias, is added without a pass of its own) */
void lt_gemm_acc(lt_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc);
/* open OpenBLAS once per process (thread-safe); lt_gemm of a floating or
   complex dtype needs it. 0, or -1 with err */
int lt_blas_load(char *err);

/* reductions, scans, sorting and softmax: reduce.h */

/* 2-D convolution, NCHW, float32 or float64 contiguous buffers. col has room
   for lt_conv2d_col_numel(p) elements (it may be NULL when that is 0); bias
   may be NULL. Depthwise convolutions (C == groups) run a direct kernel,
   1x1 stride-1 unpadded ones a gemm on the input, the rest im2col and one
   gemm per group of each image. */
typedef struct lt_conv {
  int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, groups, OH, OW;
} lt_conv;
void lt_conv2d(lt_dtype dt, const lt_conv *p, const void *x, const void *w,
               const void *bias, void *col, void *y);
/* the im2col scratch lt_conv2d needs: (C/groups*kh*kw) x (OH*OW) elements, or 0 */
int64_t lt_conv2d_col_numel(const lt_conv *p);
/* y[i][j] += bias[i] for the n rows of P elements of y (float32 or float64):
   the bias of n output channels, added after a convolution's gemm */
void lt_add_bias(lt_dtype dt, const void *bias, int64_t n, int64_t P, void *y);

/* F32(...) when the floating dtype dt is float32, else F64(...): the
   dispatch of a kernel written once for float and once for double */
#define LT_BY_FLOAT(dt, F32, F64, ...) ((dt) == LT_FLOAT32 ? F32(__VA_ARGS__) : F64(__VA_ARGS__))

/* pooling over planes of H x W (float32 or float64, contiguous) */
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
/* lt_layer_norm_f64's arithmetic from float32 x into float32 y (may be x) */
void lt_layer_norm_f32(const float *x, float *y, int64_t rows, int64_t n, const double *w,
                       const double *b, double eps);

/* one streaming pass over any view */
typedef struct lt_stats {
  double min, max, mean, std;
  int64_t nan, inf, numel, finite;
} lt_stats;
void lt_stats_of(const lt_tensor *t, lt_stats *s);

#endif
