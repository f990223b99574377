/*
** lmath.c: what the math bindings share (lops.c and the binding files of
** the other math families): argument checks, dtype domains and promotion of
** Lua numbers, temporaries pushed on the Lua stack (GC-owned, so an error
** anywhere leaks nothing), and matmul with broadcasting over OpenBLAS.
*/
#include <string.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include "lmath.h"

/* ---- helpers ----------------------------------------------------------- */

int lm_kindof(lt_dtype d) { return lt_dtypes[d].kind; }

void lm_no_cuda(lua_State *L, const lt_tensor *t) {
  if (t->storage->device == LT_CUDA)
    luaL_error(L, "CPU math on a CUDA tensor: move it with t:to('cpu') first");
}

lt_tensor *lm_checkt(lua_State *L, int i) {
  lt_tensor *t = lt_check(L, i);
  lm_no_cuda(L, t);
  return t;
}

lt_tensor *lm_testt(lua_State *L, int i) {
  lt_tensor *t = lt_test(L, i);
  if (t) lm_no_cuda(L, t);
  return t;
}

/* a tensor argument or nil */
lt_tensor *lm_optt(lua_State *L, int i) {
  if (lua_isnoneornil(L, i)) return NULL;
  return lm_checkt(L, i);
}

/* "{2, 3}" into buf */
const char *lm_shape_str(char *buf, size_t len, int nd, const int64_t *s) {
  size_t k = 0;
  k += (size_t)snprintf(buf, len, "{");
  for (int i = 0; i < nd && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, i ? ", %lld" : "%lld", (long long)s[i]);
  if (k < len) snprintf(buf + k, len - k, "}");
  return buf;
}

int lm_domain_of(lt_dtype d) {
  int k = lm_kindof(d);
  return k == LT_KIND_FLOAT ? LT_DOM_F64 : k == LT_KIND_COMPLEX ? LT_DOM_C128 : LT_DOM_I64;
}

lt_dtype lm_domain_dtype(int dom) {
  return dom == LT_DOM_F64 ? LT_FLOAT64 : dom == LT_DOM_I64 ? LT_INT64 : LT_COMPLEX128;
}

/* lt_promote, raising where PyTorch (>= 2.3) refuses: a uint16, uint32 or
   uint64 with a different non-floating dtype */
lt_dtype lm_promote(lua_State *L, lt_dtype a, lt_dtype b) {
  lt_dtype r = lt_promote(a, b);
  if (r == LT_NDTYPES)
    luaL_error(L, "promotion for uint16, uint32, uint64 types is not supported, attempted to promote %s and %s",
               lt_dtypes[a].name, lt_dtypes[b].name);
  return r;
}

/* a new contiguous copy of t in dtype dt, pushed */
lt_tensor *lm_push_copy(lua_State *L, const lt_tensor *t, lt_dtype dt) {
  lt_tensor *c = lt_push_new(L, dt, t->ndim, t->shape, 0);
  lt_copy(c, t);
  return c;
}

/* t itself when contiguous in dt, else a pushed copy */
lt_tensor *lm_contig(lua_State *L, lt_tensor *t, lt_dtype dt) {
  if (t->dtype == dt && lt_is_contiguous(t)) return t;
  return lm_push_copy(L, t, dt);
}

/* a pushed converted copy of the contiguous tensor src as dtype dt */
lt_tensor *lm_push_convert(lua_State *L, const lt_tensor *src, lt_dtype dt) {
  lt_tensor *o = lt_push_new(L, dt, src->ndim, src->shape, 0);
  lt_convert(dt, lt_data(o), src->dtype, lt_data(src), (size_t)lt_numel(src));
  return o;
}

int64_t lm_prod(const int64_t *s, int from, int to) {
  int64_t n = 1;
  for (int i = from; i < to; i++) n *= s[i];
  return n;
}

/* name: NULL for the name of the call (lt_argerror), else a fixed one
   (lt_argerror_in) */
void lm_need_floating(lua_State *L, lt_dtype dt, int arg, const char *name) {
  if (lm_kindof(dt) != LT_KIND_FLOAT)
    lt_argerror_in(L, arg, name, "expected a floating point tensor, got %s", lt_dtypes[dt].name);
}

/* dtype of a tensor of dtype t combined with a Lua number (PyTorch: a
   float with an integral tensor gives the default float32; an integer
   keeps the tensor's dtype, bool becoming int64) */
lt_dtype lm_scalar_promote(lt_dtype t, int isfloat) {
  int k = lm_kindof(t);
  if (isfloat) return k <= LT_KIND_INT ? LT_FLOAT32 : t;
  return k == LT_KIND_BOOL ? LT_INT64 : t;
}

int lm_is_float_number(lua_State *L, int i) {
  return lua_type(L, i) == LUA_TNUMBER && !lua_isinteger(L, i);
}

/* push a 0-dim tensor holding the Lua number at idx for compute dtype cd:
   float32 for float32/16/bfloat16/float8 (PyTorch's opmath), else the
   domain's dtype */
lt_tensor *lm_push_scalar(lua_State *L, int idx, lt_dtype cd) {
  int dom = lm_domain_of(cd);
  lt_dtype sd = dom == LT_DOM_F64 ? (cd == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32) : lm_domain_dtype(dom);
  lt_tensor *s = lt_push_new(L, sd, 0, NULL, 0);
  lt_to_elem(L, idx, sd, lt_data(s));
  return s;
}

/* the tensor, number or boolean at stack index i; arg: its argument number
   for luaL_argerror (i itself, unless the function moved its arguments) */
void lm_check_operand(lua_State *L, int i, int arg) {
  int ty = lua_type(L, i);
  if (ty != LUA_TNUMBER && ty != LUA_TBOOLEAN && !lt_test(L, i)) {
    if (ty == LUA_TUSERDATA && luaL_testudata(L, i, LT_TENSOR_MT)) lt_check(L, i);
    lt_argerror(L, arg, "tensor or number expected, got %s", luaL_typename(L, i));
  }
}

void lm_broadcast_error(lua_State *L, int arg, const lt_tensor *a, const lt_tensor *b) {
  char sa[256], sb[256];
  lt_argerror(L, arg, "shapes %s and %s cannot be broadcast",
              lm_shape_str(sa, sizeof sa, a->ndim, a->shape), lm_shape_str(sb, sizeof sb, b->ndim, b->shape));
}

/* ---- matmul ------------------------------------------------------------ */

/* OpenBLAS for a gemm in dtype gd (integer gemms are plain loops) */
void lm_need_blas(lua_State *L, lt_dtype gd) {
  char err[LT_MSG];
  if (gd != LT_INT64 && lt_blas_load(err)) luaL_error(L, "%s", err);
}

void lm_conv_check_groups(lua_State *L, const lt_tensor *x, const lt_tensor *w, const lt_conv *p) {
  char s1[256], s2[256];
  if (w->shape[1] * p->groups != p->C)
    lt_argerror(L, 1, "input %s has %d channels, weight %s with groups %d expects %d",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)p->C,
                lm_shape_str(s2, sizeof s2, w->ndim, w->shape), (int)p->groups,
                (int)(w->shape[1] * p->groups));
  if (p->O % p->groups)
    lt_argerror(L, 7, "%d output channels are not divisible by groups %d", (int)p->O, (int)p->groups);
}

lt_dtype lm_conv_dtypes(lua_State *L, const lt_tensor *x, const lt_tensor *w, const lt_tensor *bias,
                        const lt_conv *p, lt_dtype *gd) {
  lt_dtype od = lm_promote(L, x->dtype, w->dtype);
  lm_need_floating(L, od, 1, NULL);
  if (bias && lt_numel(bias) != p->O)
    lt_argerror(L, 3, "bias has %d elements, expected %d", (int)lt_numel(bias), (int)p->O);
  *gd = od == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  lm_need_blas(L, *gd);
  return od;
}

lt_dtype lm_gemm_dtype(lt_dtype od) {
  switch (lm_kindof(od)) {
    case LT_KIND_FLOAT: return od == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
    case LT_KIND_COMPLEX: return od;
    default: return LT_INT64;
  }
}

/* can BLAS read the R x C matrices in the last two dims of t as they are?
   sets *trans (stored transposed) and *ld */
int lm_blas_ok(const lt_tensor *t, int64_t R, int64_t C, int *trans, int64_t *ld) {
  int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
  int64_t r1 = R > 1 ? R : 1, c1 = C > 1 ? C : 1;
  if (R == 1) sr = c1;
  if (C == 1) sc = 1;
  if (sc == 1 && sr >= c1 && sr < INT_MAX) { *trans = 0; *ld = sr; return 1; }
  if (R == 1 && C == 1) { *trans = 0; *ld = 1; return 1; }
  if (sr == 1 && sc >= r1 && sc < INT_MAX) { *trans = 1; *ld = sc; return 1; }
  return 0;
}

/* pushes a @ b; a and b are views whose storages stay alive on the stack;
   errors name a argument arg and b arg + 1. With bias (or NULL) of the
   result's dtype, contiguous and 1-D of the result's last size, and *added
   set, the result's rows start as bias and the gemm adds to them (beta = 1:
   no pass of its own over the result); *added says whether that was done */
lt_tensor *lm_matmul_bias(lua_State *L, const lt_tensor *a0, const lt_tensor *b0, int arg,
                          const lt_tensor *bias, int *added) {
  char s1[256], s2[256];
  if (a0->ndim == 0 || b0->ndim == 0)
    lt_argerror(L, a0->ndim == 0 ? arg : arg + 1, "both arguments to matmul need to be at least 1-D, got 0-D");
  lt_tensor a = *a0, b = *b0;
  if (a.ndim == 1) {
    a.ndim = 2;
    a.shape[1] = a.shape[0]; a.stride[1] = a.stride[0];
    a.shape[0] = 1; a.stride[0] = 0;
  }
  if (b.ndim == 1) {
    b.ndim = 2;
    b.shape[1] = 1; b.stride[1] = 1;
  }
  int64_t M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1];
  int64_t K2 = b.shape[b.ndim - 2], N = b.shape[b.ndim - 1];
  if (K != K2)
    lt_argerror(L, arg + 1, "size mismatch: %s @ %s",
                lm_shape_str(s1, sizeof s1, a0->ndim, a0->shape), lm_shape_str(s2, sizeof s2, b0->ndim, b0->shape));
  int ba = a.ndim - 2, bb = b.ndim - 2;
  int64_t bs[LT_MAX_DIMS + 2];
  int nbd = lt_broadcast_shape(ba, a.shape, bb, b.shape, bs);
  if (nbd < 0)
    lt_argerror(L, arg + 1, "batch shapes %s and %s cannot be broadcast",
                lm_shape_str(s1, sizeof s1, ba, a.shape), lm_shape_str(s2, sizeof s2, bb, b.shape));
  if (M >= INT_MAX || N >= INT_MAX || K >= INT_MAX)
    lt_argerror(L, arg, "matrix sizes exceed the BLAS limit of 2^31-1");
  int64_t oshape[LT_MAX_DIMS + 2];
  int ond = nbd;
  memcpy(oshape, bs, sizeof(int64_t) * (size_t)nbd);
  if (a0->ndim > 1) oshape[ond++] = M;
  if (b0->ndim > 1) oshape[ond++] = N;
  if (ond > LT_MAX_DIMS) lt_argerror(L, arg, "rank exceeds the limit of %d", LT_MAX_DIMS);
  lt_dtype od = lm_promote(L, a.dtype, b.dtype), gd = lm_gemm_dtype(od);
  lm_need_blas(L, gd);
  int ta, tb;
  int64_t lda, ldb;
  if (a.dtype != gd || !lm_blas_ok(&a, M, K, &ta, &lda)) {
    a = *lm_push_copy(L, &a, gd);
    lm_blas_ok(&a, M, K, &ta, &lda);
  }
  if (b.dtype != gd || !lm_blas_ok(&b, K, N, &tb, &ldb)) {
    b = *lm_push_copy(L, &b, gd);
    lm_blas_ok(&b, K, N, &tb, &ldb);
  }
  /* a 2-D b against a batched a whose rows do not fold into one matrix (a
     transposed or strided view, e.g. a batch_first input seen sequence
     first): one contiguous copy of a gives a single gemm, instead of one
     small gemm per batch element that each packs all of b again */
  if (bb == 0 && ba > 0 && lm_prod(a.shape, 0, ba) > 1 &&
      (ta || !lt_is_contiguous(&a) || lda != (K > 1 ? K : 1))) {
    a = *lm_push_copy(L, &a, gd);
    lm_blas_ok(&a, M, K, &ta, &lda);
  }
  lt_tensor *out = lt_push_new(L, od, ond, oshape, 0);
  lt_tensor *res = od == gd ? out : lt_push_new(L, gd, ond, oshape, 0);
  size_t isz = lt_dtypes[gd].size;
  int64_t nb = lm_prod(bs, 0, nbd), ldc = N > 1 ? N : 1;
  char *pc = lt_data(res);
  int acc = 0;
  if (added) {
    *added = 0;
    if (bias && res == out && bias->dtype == gd && (gd == LT_FLOAT32 || gd == LT_FLOAT64) &&
        bias->ndim == 1 && bias->shape[0] == N && bias->stride[0] == 1 && ond >= 1 && oshape[ond - 1] == N) {
      const char *bp = lt_data(bias);
      for (int64_t r = 0, rows = nb * M; r < rows; r++) memcpy(pc + (size_t)(r * N) * isz, bp, (size_t)N * isz);
      acc = *added = 1;
    }
  }
  void (*mm)(lt_dtype, int, int, int64_t, int64_t, int64_t, const void *, int64_t, const void *, int64_t,
             void *, int64_t) = acc ? lt_gemm_acc : lt_gemm;
  if (bb == 0 && !ta && lt_is_contiguous(&a) && lda == (K > 1 ? K : 1)) {
    /* fold a's batch dims into its rows: one gemm */
    mm(gd, 0, tb, nb * M, N, K, lt_data(&a), lda, lt_data(&b), ldb, pc, ldc);
  } else {
    for (int64_t i = 0; i < nb; i++) {
      int64_t rem = i, oa = 0, ob = 0;
      for (int d = nbd - 1; d >= 0; d--) {
        int64_t ix = rem % bs[d];
        rem /= bs[d];
        int ja = d - (nbd - ba), jb = d - (nbd - bb);
        if (ja >= 0 && a.shape[ja] != 1) oa += ix * a.stride[ja];
        if (jb >= 0 && b.shape[jb] != 1) ob += ix * b.stride[jb];
      }
      mm(gd, ta, tb, M, N, K, lt_data(&a) + oa * (int64_t)isz, lda,
         lt_data(&b) + ob * (int64_t)isz, ldb, pc + (size_t)(i * M * N) * isz, ldc);
    }
  }
  if (res != out) {
    lt_convert(od, lt_data(out), gd, lt_data(res), (size_t)lt_numel(out));
    lua_pop(L, 1);
  }
  return out;
}

lt_tensor *lm_matmul(lua_State *L, const lt_tensor *a0, const lt_tensor *b0, int arg) {
  return lm_matmul_bias(L, a0, b0, arg, NULL, NULL);
}

