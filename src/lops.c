/*
** lops.c: the Lua binding of the math in ops.c: arithmetic and comparisons
** with NumPy broadcasting and PyTorch's type promotion, matmul, activations,
** reductions, cat/stack, and the functional ops nn layers call (linear,
** conv2d, pooling, batch_norm, layer_norm, embedding, dropout).
** Temporaries are tensors pushed on the Lua stack (GC-owned), so an error
** anywhere leaks nothing. Outputs are new contiguous tensors.
*/
#include <string.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include "lmath.h"

/* ---- arithmetic and comparisons ---------------------------------------- */

static int binop(lua_State *L, int op, const char *name) {
  lua_settop(L, 2);
  lm_check_operand(L, 1, name);
  lm_check_operand(L, 2, name);
  lt_tensor *ta = lm_testt(L, 1), *tb = lm_testt(L, 2);
  if (!ta && !tb) luaL_error(L, "bad argument #1 to '%s' (tensor expected, got %s)", name, luaL_typename(L, 1));
  lt_dtype cd;
  if (ta && tb) cd = lt_promote(ta->dtype, tb->dtype);
  else if (ta) cd = lm_scalar_promote(ta->dtype, lm_is_float_number(L, 2));
  else cd = lm_scalar_promote(tb->dtype, lm_is_float_number(L, 1));
  if (op == LT_OP_DIV && lm_kindof(cd) <= LT_KIND_INT) cd = LT_FLOAT32;
  if (op == LT_OP_POW && lm_kindof(cd) == LT_KIND_BOOL) cd = LT_INT64;
  if (op == LT_OP_SUB && cd == LT_BOOL)
    luaL_error(L, "bad argument #2 to '%s' (subtraction of bool tensors is not supported: use logical ops)", name);
  if ((op == LT_OP_MAX || op == LT_OP_MIN || op >= LT_OP_LT) && lm_kindof(cd) == LT_KIND_COMPLEX && op != LT_OP_EQ && op != LT_OP_NE)
    luaL_error(L, "bad argument #1 to '%s' (not supported for complex tensors)", name);
  lt_tensor A = ta ? *ta : *lm_push_scalar(L, 1, cd);
  lt_tensor B = tb ? *tb : *lm_push_scalar(L, 2, cd);
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(A.ndim, A.shape, B.ndim, B.shape, shape);
  if (nd < 0) lm_broadcast_error(L, 2, name, &A, &B);
  lt_tensor *out = lt_push_new(L, op >= LT_OP_EQ ? LT_BOOL : cd, nd, shape, 0);
  lt_tensor ea, eb;
  lt_expand_view(&A, nd, shape, &ea);
  lt_expand_view(&B, nd, shape, &eb);
  lt_binary(op, lm_domain_of(cd), &ea, &eb, out);
  return 1;
}

static int l_add(lua_State *L) { return binop(L, LT_OP_ADD, "add"); }
static int l_sub(lua_State *L) { return binop(L, LT_OP_SUB, "sub"); }
static int l_mul(lua_State *L) { return binop(L, LT_OP_MUL, "mul"); }
static int l_div(lua_State *L) { return binop(L, LT_OP_DIV, "div"); }
static int l_pow(lua_State *L) { return binop(L, LT_OP_POW, "pow"); }
static int l_eq(lua_State *L) { return binop(L, LT_OP_EQ, "eq"); }
static int l_ne(lua_State *L) { return binop(L, LT_OP_NE, "ne"); }
static int l_lt(lua_State *L) { return binop(L, LT_OP_LT, "lt"); }
static int l_le(lua_State *L) { return binop(L, LT_OP_LE, "le"); }
static int l_gt(lua_State *L) { return binop(L, LT_OP_GT, "gt"); }
static int l_ge(lua_State *L) { return binop(L, LT_OP_GE, "ge"); }
static int l_maximum(lua_State *L) { return binop(L, LT_OP_MAX, "maximum"); }
static int l_minimum(lua_State *L) { return binop(L, LT_OP_MIN, "minimum"); }

/* ---- unary ------------------------------------------------------------- */

static int unop_t(lua_State *L, lt_tensor *t, int op, const char *name) {
  int k = lm_kindof(t->dtype);
  lt_dtype od = t->dtype;
  int dom = lm_domain_of(od);
  if (op == LT_UN_NEG && k == LT_KIND_BOOL)
    luaL_error(L, "bad argument #1 to '%s' (negation of a bool tensor is not supported: use logical ops)", name);
  if (op >= LT_UN_EXP) {                   /* floating results */
    if (k <= LT_KIND_INT) { od = LT_FLOAT32; dom = LT_DOM_F64; }
  }
  if (k == LT_KIND_COMPLEX) {
    if (op == LT_UN_RELU || op >= LT_UN_GELU)
      luaL_error(L, "bad argument #1 to '%s' (not supported for complex tensors)", name);
    if (op == LT_UN_ABS) od = t->dtype == LT_COMPLEX64 ? LT_FLOAT32 : LT_FLOAT64;
  }
  lt_tensor *out = lt_push_new(L, od, t->ndim, t->shape, 0);
  lt_unary(op, dom, t, out);
  return 1;
}

static int unop(lua_State *L, int op, const char *name) {
  return unop_t(L, lm_checkt(L, 1), op, name);
}

static int l_neg(lua_State *L) { return unop(L, LT_UN_NEG, "neg"); }
static int l_abs(lua_State *L) { return unop(L, LT_UN_ABS, "abs"); }
static int l_relu(lua_State *L) { return unop(L, LT_UN_RELU, "relu"); }
static int l_exp(lua_State *L) { return unop(L, LT_UN_EXP, "exp"); }
static int l_log(lua_State *L) { return unop(L, LT_UN_LOG, "log"); }
static int l_sqrt(lua_State *L) { return unop(L, LT_UN_SQRT, "sqrt"); }
static int l_tanh(lua_State *L) { return unop(L, LT_UN_TANH, "tanh"); }
static int l_sigmoid(lua_State *L) { return unop(L, LT_UN_SIGMOID, "sigmoid"); }

static int l_gelu(lua_State *L) {
  static const char *const modes[] = {"none", "tanh", NULL};
  lt_tensor *t = lm_checkt(L, 1);
  int m = luaL_checkoption(L, 2, "none", modes);
  return unop_t(L, t, m ? LT_UN_GELU_TANH : LT_UN_GELU, "gelu");
}

static int l_unm(lua_State *L) { lua_settop(L, 1); return l_neg(L); }

/* ---- where, clamp, equal, allclose ------------------------------------- */

static int l_where(lua_State *L) {
  lua_settop(L, 3);
  lt_tensor *c = lm_checkt(L, 1);
  lm_check_operand(L, 2, "where");
  lm_check_operand(L, 3, "where");
  lt_tensor *ta = lm_testt(L, 2), *tb = lm_testt(L, 3);
  lt_dtype od;
  if (ta && tb) od = lt_promote(ta->dtype, tb->dtype);
  else if (ta) od = lm_scalar_promote(ta->dtype, lm_is_float_number(L, 3));
  else if (tb) od = lm_scalar_promote(tb->dtype, lm_is_float_number(L, 2));
  else od = (lm_is_float_number(L, 2) || lm_is_float_number(L, 3)) ? LT_FLOAT32 : LT_INT64;
  lt_tensor A = ta ? *ta : *lm_push_scalar(L, 2, od);
  lt_tensor B = tb ? *tb : *lm_push_scalar(L, 3, od);
  int64_t s1[LT_MAX_DIMS], s2[LT_MAX_DIMS];
  int n1 = lt_broadcast_shape(c->ndim, c->shape, A.ndim, A.shape, s1);
  if (n1 < 0) lm_broadcast_error(L, 2, "where", c, &A);
  int n2 = lt_broadcast_shape(n1, s1, B.ndim, B.shape, s2);
  if (n2 < 0) {
    lt_tensor tmp = A;
    tmp.ndim = n1;
    memcpy(tmp.shape, s1, sizeof s1);
    lm_broadcast_error(L, 3, "where", &tmp, &B);
  }
  lt_tensor *out = lt_push_new(L, od, n2, s2, 0);
  lt_tensor ec, ea, eb;
  lt_expand_view(c, n2, s2, &ec);
  lt_expand_view(&A, n2, s2, &ea);
  lt_expand_view(&B, n2, s2, &eb);
  lt_where(&ec, &ea, &eb, out);
  return 1;
}

static int l_clamp(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  int has_lo = !lua_isnoneornil(L, 2), has_hi = !lua_isnoneornil(L, 3);
  if (!has_lo && !has_hi) luaL_error(L, "bad argument #2 to 'clamp' (at least one of min and max must be given)");
  double lo = has_lo ? luaL_checknumber(L, 2) : 0, hi = has_hi ? luaL_checknumber(L, 3) : 0;
  lt_dtype od = t->dtype;
  if (lm_kindof(od) == LT_KIND_COMPLEX) luaL_error(L, "bad argument #1 to 'clamp' (not supported for complex tensors)");
  if (lm_kindof(od) <= LT_KIND_INT && ((has_lo && lm_is_float_number(L, 2)) || (has_hi && lm_is_float_number(L, 3))))
    od = LT_FLOAT32;
  int dom = lm_domain_of(od);
  int64_t ilo = has_lo && dom == LT_DOM_I64 ? luaL_checkinteger(L, 2) : 0;
  int64_t ihi = has_hi && dom == LT_DOM_I64 ? luaL_checkinteger(L, 3) : 0;
  lt_tensor *out = lt_push_new(L, od, t->ndim, t->shape, 0);
  lt_clamp(dom, t, has_lo, lo, ilo, has_hi, hi, ihi, out);
  return 1;
}

static int l_equal(lua_State *L) {
  lt_tensor *a = lm_checkt(L, 1), *b = lm_checkt(L, 2);
  int same = a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
  lua_pushboolean(L, same && lt_all_equal(a, b));
  return 1;
}

static int l_allclose(lua_State *L) {
  lt_tensor *a = lm_checkt(L, 1), *b = lm_checkt(L, 2);
  double rtol = luaL_optnumber(L, 3, 1e-5), atol = luaL_optnumber(L, 4, 1e-8);
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, shape);
  if (nd < 0) lm_broadcast_error(L, 2, "allclose", a, b);
  lt_tensor ea, eb;
  lt_expand_view(a, nd, shape, &ea);
  lt_expand_view(b, nd, shape, &eb);
  lua_pushboolean(L, lt_all_close(&ea, &eb, rtol, atol));
  return 1;
}

static int l_matmul(lua_State *L) {
  lt_tensor *a = lm_checkt(L, 1), *b = lm_checkt(L, 2);
  lm_matmul(L, a, b, "matmul");
  return 1;
}

/* ---- reductions -------------------------------------------------------- */

static int reduce(lua_State *L, int op, const char *name) {
  lt_tensor *t = lm_checkt(L, 1);
  int k = lm_kindof(t->dtype);
  if ((op == LT_RED_MAX || op == LT_RED_MIN) && lm_testt(L, 2)) {
    lua_settop(L, 2);
    return binop(L, op == LT_RED_MAX ? LT_OP_MAX : LT_OP_MIN, name);
  }
  int unbiased = 1, dimarg = 2;
  if (op == LT_RED_STD && lua_isboolean(L, 2)) { unbiased = lua_toboolean(L, 2); dimarg = 0; }
  int has_dim = dimarg && !lua_isnoneornil(L, dimarg);
  int keepdim = has_dim && lua_toboolean(L, 3);
  if (op == LT_RED_STD && has_dim && !lua_isnoneornil(L, 4)) unbiased = lua_toboolean(L, 4);
  if ((op == LT_RED_MEAN || op == LT_RED_STD) && k <= LT_KIND_INT)
    luaL_error(L, "bad argument #1 to '%s' (expected a floating point or complex tensor, got %s)",
               name, lt_dtypes[t->dtype].name);
  if (k == LT_KIND_COMPLEX && op != LT_RED_SUM && op != LT_RED_MEAN)
    luaL_error(L, "bad argument #1 to '%s' (not supported for complex tensors)", name);
  int64_t outer = 1, n = lt_numel(t), inner = 1, oshape[LT_MAX_DIMS];
  int ond = 0;
  if (has_dim) {
    int d = lt_check_dim(L, dimarg, luaL_checkinteger(L, dimarg), t->ndim);
    if (t->ndim > 0) {
      outer = lm_prod(t->shape, 0, d);
      n = t->shape[d];
      inner = lm_prod(t->shape, d + 1, t->ndim);
    }
    for (int i = 0; i < t->ndim; i++) {
      if (i != d) oshape[ond++] = t->shape[i];
      else if (keepdim) oshape[ond++] = 1;
    }
  }
  int isarg = op == LT_RED_ARGMAX || op == LT_RED_ARGMIN;
  int withidx = isarg || ((op == LT_RED_MAX || op == LT_RED_MIN) && has_dim);
  if (n == 0 && (op == LT_RED_MAX || op == LT_RED_MIN || isarg) && outer * inner > 0)
    luaL_error(L, "bad argument #1 to '%s' (cannot reduce an empty dimension: it has no identity)", name);
  int dom = lm_domain_of(t->dtype);
  lt_dtype ddt = lm_domain_dtype(dom);
  if (!has_dim && dom == LT_DOM_F64 && n > 0) {     /* streamed, no copy */
    int64_t at = 0;
    double v = lt_reduce_all_f64(op, t, &at, unbiased);
    if (isarg) {
      lt_tensor *r = lt_push_new(L, LT_INT64, 0, NULL, 0);
      *(int64_t *)lt_data(r) = at + 1;
    } else {
      lt_tensor *r = lt_push_new(L, t->dtype, 0, NULL, 0);
      lt_set_f64(t->dtype, lt_data(r), v);
    }
    return 1;
  }
  lt_tensor *x = lm_contig(L, t, ddt);
  lt_tensor *val = lt_push_new(L, ddt, ond, oshape, 0);
  int vi = lua_gettop(L), ii = 0;
  lt_tensor *idx = NULL;
  if (withidx) { idx = lt_push_new(L, LT_INT64, ond, oshape, 0); ii = lua_gettop(L); }
  int64_t *ip = idx ? (int64_t *)lt_data(idx) : NULL;
  if (dom == LT_DOM_F64)
    lt_reduce_f64(op, (const double *)lt_data(x), outer, n, inner, (double *)lt_data(val), ip, unbiased);
  else if (dom == LT_DOM_I64)
    lt_reduce_i64(op, (const int64_t *)lt_data(x), outer, n, inner, (int64_t *)lt_data(val), ip);
  else
    lt_reduce_c128(op, (const double *)lt_data(x), outer, n, inner, (double *)lt_data(val));
  if (ip) for (int64_t i = 0, m = lt_numel(idx); i < m; i++) ip[i] += 1;
  if (isarg) { lua_pushvalue(L, ii); return 1; }
  lt_dtype vdt = t->dtype;
  if (op == LT_RED_SUM && k <= LT_KIND_INT) vdt = LT_INT64;
  if (vdt != ddt) { lm_push_convert(L, val, vdt); vi = lua_gettop(L); }
  lua_pushvalue(L, vi);
  if (withidx) { lua_pushvalue(L, ii); return 2; }
  return 1;
}

static int l_sum(lua_State *L) { return reduce(L, LT_RED_SUM, "sum"); }
static int l_mean(lua_State *L) { return reduce(L, LT_RED_MEAN, "mean"); }
static int l_max(lua_State *L) { return reduce(L, LT_RED_MAX, "max"); }
static int l_min(lua_State *L) { return reduce(L, LT_RED_MIN, "min"); }
static int l_argmax(lua_State *L) { return reduce(L, LT_RED_ARGMAX, "argmax"); }
static int l_argmin(lua_State *L) { return reduce(L, LT_RED_ARGMIN, "argmin"); }
static int l_std(lua_State *L) { return reduce(L, LT_RED_STD, "std"); }

static int softmax(lua_State *L, int log_, const char *name) {
  lt_tensor *t = lm_checkt(L, 1);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  lt_dtype od = lm_kindof(t->dtype) == LT_KIND_FLOAT ? t->dtype : LT_FLOAT32;
  if (lm_kindof(t->dtype) == LT_KIND_COMPLEX) luaL_error(L, "bad argument #1 to '%s' (not supported for complex tensors)", name);
  int64_t outer = 1, n = 1, inner = 1;
  if (t->ndim > 0) {
    outer = lm_prod(t->shape, 0, d);
    n = t->shape[d];
    inner = lm_prod(t->shape, d + 1, t->ndim);
  }
  lt_tensor *x = lm_push_copy(L, t, LT_FLOAT64);
  lt_softmax_f64((double *)lt_data(x), outer, n, inner, log_);
  if (od != LT_FLOAT64) lm_push_convert(L, x, od);
  return 1;
}

static int l_softmax(lua_State *L) { return softmax(L, 0, "softmax"); }
static int l_log_softmax(lua_State *L) { return softmax(L, 1, "log_softmax"); }

/* ---- cat and stack ----------------------------------------------------- */

/* pushes the tensors of the list at index 1; returns their count and the
   stack index of the first */
static int list_tensors(lua_State *L, const char *name, int *first) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n <= 0) luaL_error(L, "bad argument #1 to '%s' (expected a non-empty list of tensors)", name);
  luaL_checkstack(L, n + 8, "too many tensors");
  *first = lua_gettop(L) + 1;
  for (int i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    lt_tensor *t = lt_test(L, -1);
    if (!t) luaL_error(L, "bad argument #1 to '%s' (element %d is not a tensor)", name, i);
    lm_no_cuda(L, t);
  }
  return n;
}

static int l_cat(lua_State *L) {
  lua_Integer dimv = luaL_optinteger(L, 2, 1);
  lua_settop(L, 1);
  int first, n = list_tensors(L, "cat", &first);
  const lt_tensor *ref = NULL;
  lt_dtype od = lt_check(L, first)->dtype;
  for (int i = 0; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    od = lt_promote(od, t->dtype);
    if (!ref && !(t->ndim == 1 && t->shape[0] == 0)) ref = t;
  }
  if (!ref) { lt_push_new(L, od, 1, (int64_t[]){0}, 0); return 1; }
  if (ref->ndim == 0) luaL_error(L, "bad argument #1 to 'cat' (0-dim tensors cannot be concatenated)");
  int d = lt_check_dim(L, 2, dimv, ref->ndim);
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, ref->shape, sizeof shape);
  shape[d] = 0;
  for (int i = 0; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    if (t->ndim == 1 && t->shape[0] == 0) continue;
    int ok = t->ndim == ref->ndim;
    for (int j = 0; ok && j < t->ndim; j++) if (j != d && t->shape[j] != ref->shape[j]) ok = 0;
    if (!ok) {
      char s1[256], s2[256];
      luaL_error(L, "bad argument #1 to 'cat' (sizes must match except in dim %d: tensor 1 has %s, tensor %d has %s)",
                 d + 1, lm_shape_str(s1, sizeof s1, ref->ndim, ref->shape), i + 1,
                 lm_shape_str(s2, sizeof s2, t->ndim, t->shape));
    }
    shape[d] += t->shape[d];
  }
  lt_tensor *out = lt_push_new(L, od, ref->ndim, shape, 0);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    if (t->ndim == 1 && t->shape[0] == 0) continue;
    lt_tensor v = *out;
    v.offset += at * out->stride[d];
    v.shape[d] = t->shape[d];
    lt_copy(&v, t);
    at += t->shape[d];
  }
  return 1;
}

static int l_stack(lua_State *L) {
  lua_Integer dimv = luaL_optinteger(L, 2, 1);
  lua_settop(L, 1);
  int first, n = list_tensors(L, "stack", &first);
  lt_tensor *ref = lt_check(L, first);
  lt_dtype od = ref->dtype;
  if (ref->ndim >= LT_MAX_DIMS) luaL_error(L, "bad argument #1 to 'stack' (rank exceeds the limit of %d)", LT_MAX_DIMS);
  for (int i = 1; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    od = lt_promote(od, t->dtype);
    if (t->ndim != ref->ndim || memcmp(t->shape, ref->shape, sizeof(int64_t) * (size_t)t->ndim) != 0) {
      char s1[256], s2[256];
      luaL_error(L, "bad argument #1 to 'stack' (all tensors must have the same shape: tensor 1 has %s, tensor %d has %s)",
                 lm_shape_str(s1, sizeof s1, ref->ndim, ref->shape), i + 1, lm_shape_str(s2, sizeof s2, t->ndim, t->shape));
    }
  }
  int d = lt_check_dim(L, 2, dimv, ref->ndim + 1);
  int64_t shape[LT_MAX_DIMS];
  for (int i = 0, j = 0; i <= ref->ndim; i++) shape[i] = i == d ? n : ref->shape[j++];
  lt_tensor *out = lt_push_new(L, od, ref->ndim + 1, shape, 0);
  for (int i = 0; i < n; i++) {
    lt_tensor v = *out;
    v.offset += i * out->stride[d];
    for (int k = d; k < out->ndim - 1; k++) { v.shape[k] = out->shape[k + 1]; v.stride[k] = out->stride[k + 1]; }
    v.ndim = out->ndim - 1;
    lt_copy(&v, lt_check(L, first + i));
  }
  return 1;
}

/* ---- functional: linear and conv2d ------------------------------------- */

static int l_linear(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1), *w = lm_checkt(L, 2), *bias = lm_optt(L, 3);
  if (w->ndim != 2) luaL_error(L, "bad argument #2 to 'linear' (weight must be 2-D, got %d-D)", w->ndim);
  lt_tensor wt = *w;
  wt.shape[0] = w->shape[1]; wt.shape[1] = w->shape[0];
  wt.stride[0] = w->stride[1]; wt.stride[1] = w->stride[0];
  lt_tensor *out = lm_matmul(L, x, &wt, "linear");
  if (!bias) return 1;
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(out->ndim, out->shape, bias->ndim, bias->shape, shape);
  if (nd != out->ndim || memcmp(shape, out->shape, sizeof(int64_t) * (size_t)nd) != 0) {
    char s1[256], s2[256];
    luaL_error(L, "bad argument #3 to 'linear' (bias of shape %s does not fit the output of shape %s)",
               lm_shape_str(s1, sizeof s1, bias->ndim, bias->shape), lm_shape_str(s2, sizeof s2, out->ndim, out->shape));
  }
  int64_t N = out->ndim ? out->shape[out->ndim - 1] : 1;
  if (out->dtype == LT_FLOAT32 && bias->dtype == LT_FLOAT32 && bias->ndim == 1 &&
      bias->stride[0] == 1 && bias->shape[0] == N) {
    float *o = (float *)lt_data(out);
    const float *bp = (const float *)lt_data(bias);
    int64_t rows = N ? lt_numel(out) / N : 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < N; j++) o[r * N + j] += bp[j];
    return 1;
  }
  lt_tensor eb;
  lt_expand_view(bias, out->ndim, out->shape, &eb);
  lt_binary(LT_OP_ADD, lm_domain_of(out->dtype), out, &eb, out);
  return 1;
}

/* a number or {h, w} at arg, each >= lo */
static void pair(lua_State *L, int arg, lua_Integer def, lua_Integer lo, const char *name,
                 const char *what, int64_t out[2]) {
  if (lua_isnoneornil(L, arg)) { out[0] = out[1] = def; }
  else if (lua_istable(L, arg)) {
    lua_Integer n = luaL_len(L, arg);
    if (n == 1 || n == 2) {
      for (int i = 0; i < 2; i++) {
        lua_geti(L, arg, n == 1 ? 1 : i + 1);
        int ok;
        out[i] = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) luaL_error(L, "bad argument #%d to '%s' (%s must be integers)", arg, name, what);
      }
    } else {
      luaL_error(L, "bad argument #%d to '%s' (%s must be a number or {h, w})", arg, name, what);
    }
  } else {
    int ok;
    out[0] = out[1] = lua_tointegerx(L, arg, &ok);
    if (!ok) luaL_error(L, "bad argument #%d to '%s' (%s must be a number or {h, w})", arg, name, what);
  }
  if (out[0] < lo || out[1] < lo)
    luaL_error(L, "bad argument #%d to '%s' (%s must be at least %d, got {%I, %I})", arg, name, what,
               (int)lo, (lua_Integer)out[0], (lua_Integer)out[1]);
  if (out[0] > INT_MAX || out[1] > INT_MAX)
    luaL_error(L, "bad argument #%d to '%s' (%s must be at most %d, got {%I, %I})", arg, name, what,
               INT_MAX, (lua_Integer)out[0], (lua_Integer)out[1]);
}

static int l_conv2d(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1), *w = lm_checkt(L, 2), *bias = lm_optt(L, 3);
  char s1[256], s2[256];
  int64_t st[2], pd[2] = {0, 0}, dl[2];
  pair(L, 4, 1, 1, "conv2d", "stride", st);
  pair(L, 6, 1, 1, "conv2d", "dilation", dl);
  if (lua_type(L, 5) == LUA_TSTRING) {
    const char *mode = lua_tostring(L, 5);
    if (strcmp(mode, "valid") == 0) pd[0] = pd[1] = 0;
    else if (strcmp(mode, "same") == 0 && w->ndim == 4) {
      for (int i = 0; i < 2; i++) {
        int64_t tot = dl[i] * (w->shape[2 + i] - 1);
        if (tot % 2 || st[i] != 1)
          luaL_error(L, "bad argument #5 to 'conv2d' (padding 'same' needs stride 1 and an even total padding)");
        pd[i] = tot / 2;
      }
    } else luaL_error(L, "bad argument #5 to 'conv2d' (padding must be a number, {h, w}, 'valid' or 'same')");
  } else {
    pair(L, 5, 0, 0, "conv2d", "padding", pd);
  }
  lua_Integer groups = luaL_optinteger(L, 7, 1);
  if (groups < 1) luaL_error(L, "bad argument #7 to 'conv2d' (groups must be positive)");
  if (x->ndim != 3 && x->ndim != 4)
    luaL_error(L, "bad argument #1 to 'conv2d' (expected a 3-D or 4-D input, got %d-D)", x->ndim);
  if (w->ndim != 4)
    luaL_error(L, "bad argument #2 to 'conv2d' (expected a 4-D weight, got %d-D)", w->ndim);
  int batched = x->ndim == 4;
  lt_conv p;
  p.N = batched ? x->shape[0] : 1;
  p.C = x->shape[batched]; p.H = x->shape[batched + 1]; p.W = x->shape[batched + 2];
  p.O = w->shape[0]; p.kh = w->shape[2]; p.kw = w->shape[3];
  p.sh = st[0]; p.sw = st[1]; p.ph = pd[0]; p.pw = pd[1]; p.dh = dl[0]; p.dw = dl[1];
  p.groups = groups;
  if (w->shape[1] * groups != p.C)
    luaL_error(L, "bad argument #1 to 'conv2d' (input %s has %d channels, weight %s with groups %d expects %d)",
               lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)p.C,
               lm_shape_str(s2, sizeof s2, w->ndim, w->shape), (int)groups, (int)(w->shape[1] * groups));
  if (p.O % groups)
    luaL_error(L, "bad argument #7 to 'conv2d' (%d output channels are not divisible by groups %d)", (int)p.O, (int)groups);
  int64_t eh = p.dh * (p.kh - 1) + 1, ew = p.dw * (p.kw - 1) + 1;
  if (p.H + 2 * p.ph < eh || p.W + 2 * p.pw < ew)
    luaL_error(L, "bad argument #1 to 'conv2d' (input %s (with padding) is smaller than the kernel %dx%d)",
               lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)eh, (int)ew);
  p.OH = (p.H + 2 * p.ph - eh) / p.sh + 1;
  p.OW = (p.W + 2 * p.pw - ew) / p.sw + 1;
  lt_dtype od = lt_promote(x->dtype, w->dtype);
  lm_need_floating(L, od, 1, "conv2d");
  if (bias && lt_numel(bias) != p.O)
    luaL_error(L, "bad argument #3 to 'conv2d' (bias has %d elements, expected %d)", (int)lt_numel(bias), (int)p.O);
  lt_dtype gd = od == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  lm_need_blas(L, gd);
  int64_t Kc = (p.C / groups) * p.kh * p.kw;
  int64_t P = lt_shape_numel(2, (int64_t[]){p.OH, p.OW});
  if (Kc >= INT_MAX || P < 0 || P >= INT_MAX || p.O >= INT_MAX || lt_shape_numel(2, (int64_t[]){Kc, P}) < 0)
    luaL_error(L, "bad argument #1 to 'conv2d' (sizes exceed the BLAS limit of 2^31-1)");
  lt_tensor *xc = lm_contig(L, x, gd), *wc = lm_contig(L, w, gd), *bc = bias ? lm_contig(L, bias, gd) : NULL;
  int64_t ncol = Kc * P;
  lt_tensor *col = lt_push_new(L, gd, 1, &ncol, 0);
  int64_t oshape[4] = {p.N, p.O, p.OH, p.OW};
  lt_tensor *y = lt_push_new(L, gd, 4, oshape, 0);
  lt_conv2d(gd, &p, lt_data(xc), lt_data(wc), bc ? lt_data(bc) : NULL, lt_data(col), lt_data(y));
  if (od != gd) y = lm_push_convert(L, y, od);
  if (!batched) {       /* drop the batch dim */
    lt_tensor v = *y;
    v.ndim = 3;
    for (int i = 0; i < 3; i++) { v.shape[i] = y->shape[i + 1]; v.stride[i] = y->stride[i + 1]; }
    lt_push_view(L, &v);
  }
  return 1;
}

/* ---- functional: pooling ----------------------------------------------- */

/* checks a 3-D or 4-D floating input; fills planes, H, W */
static void pool_input(lua_State *L, lt_tensor *x, const char *name, lt_pool *p) {
  if (x->ndim != 3 && x->ndim != 4)
    luaL_error(L, "bad argument #1 to '%s' (expected a 3-D or 4-D input, got %d-D)", name, x->ndim);
  lm_need_floating(L, x->dtype, 1, name);
  p->H = x->shape[x->ndim - 2];
  p->W = x->shape[x->ndim - 1];
  p->planes = lm_prod(x->shape, 0, x->ndim - 2);
}

/* runs a pooling kernel in float32 (float64 for float64 input) and pushes
   the result in x's dtype */
static void pool_run(lua_State *L, lt_tensor *x, lt_pool *p, int kind) {
  int64_t shape[4];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 2] = p->OH;
  shape[x->ndim - 1] = p->OW;
  lt_dtype gd = x->dtype == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  lt_tensor *xc = lm_contig(L, x, gd);
  lt_tensor *y = lt_push_new(L, gd, x->ndim, shape, 0);
  lt_pool2d(kind, gd, p, lt_data(xc), lt_data(y));
  if (x->dtype != gd) lm_push_convert(L, y, x->dtype);
}

static void pool_geometry(lua_State *L, lt_tensor *x, lt_pool *p, const char *name, int ceil_mode) {
  char s1[256];
  if (p->ph * 2 > p->kh || p->pw * 2 > p->kw)
    luaL_error(L, "bad argument #4 to '%s' (padding {%d, %d} must be at most half of the kernel {%d, %d})",
               name, (int)p->ph, (int)p->pw, (int)p->kh, (int)p->kw);
  p->OH = lt_pool_out(p->H, p->kh, p->ph, p->sh, p->dh, ceil_mode);
  p->OW = lt_pool_out(p->W, p->kw, p->pw, p->sw, p->dw, ceil_mode);
  if (p->OH < 1 || p->OW < 1)
    luaL_error(L, "bad argument #1 to '%s' (input %s is too small for the kernel {%d, %d})", name,
               lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)p->kh, (int)p->kw);
}

/* max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) and
   avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad): a
   stride of nil or {} is the kernel's */
static int pool2d(lua_State *L, int kind, const char *name) {
  lt_tensor *x = lm_checkt(L, 1);
  lt_pool p;
  int64_t k[2], s[2], pd[2], dl[2] = {1, 1};
  int max = kind == LT_POOL_MAX;
  pool_input(L, x, name, &p);
  pair(L, 2, 1, 1, name, "kernel size", k);
  if (lua_isnoneornil(L, 3) || (lua_istable(L, 3) && luaL_len(L, 3) == 0)) { s[0] = k[0]; s[1] = k[1]; }
  else pair(L, 3, 1, 1, name, "stride", s);
  pair(L, 4, 0, 0, name, "padding", pd);
  if (max) pair(L, 5, 1, 1, name, "dilation", dl);
  p.kh = k[0]; p.kw = k[1]; p.sh = s[0]; p.sw = s[1]; p.ph = pd[0]; p.pw = pd[1];
  p.dh = dl[0]; p.dw = dl[1];
  p.count_include_pad = max || lua_isnoneornil(L, 6) || lua_toboolean(L, 6);
  pool_geometry(L, x, &p, name, lua_toboolean(L, max ? 6 : 5));
  pool_run(L, x, &p, kind);
  return 1;
}

static int l_max_pool2d(lua_State *L) { return pool2d(L, LT_POOL_MAX, "max_pool2d"); }
static int l_avg_pool2d(lua_State *L) { return pool2d(L, LT_POOL_AVG, "avg_pool2d"); }

static int l_adaptive_avg_pool2d(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1);
  lt_pool p;
  char s1[256];
  memset(&p, 0, sizeof p);
  pool_input(L, x, "adaptive_avg_pool2d", &p);
  int64_t o[2];
  if (lua_istable(L, 2) && luaL_len(L, 2) == 2) {   /* nil/torch.null keeps that size */
    for (int i = 0; i < 2; i++) {
      lua_geti(L, 2, i + 1);
      o[i] = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (i ? p.W : p.H);
      lua_pop(L, 1);
    }
  } else {
    pair(L, 2, 1, 0, "adaptive_avg_pool2d", "output size", o);
  }
  if (o[0] < 0 || o[1] < 0)
    luaL_error(L, "bad argument #2 to 'adaptive_avg_pool2d' (output size must not be negative)");
  if (p.H == 0 || p.W == 0)
    luaL_error(L, "bad argument #1 to 'adaptive_avg_pool2d' (input %s has empty spatial dims)",
               lm_shape_str(s1, sizeof s1, x->ndim, x->shape));
  p.OH = o[0];
  p.OW = o[1];
  pool_run(L, x, &p, LT_POOL_ADAPTIVE_AVG);
  return 1;
}

/* ---- functional: normalisation ----------------------------------------- */

/* a contiguous double copy of a per-channel tensor with n elements, or NULL */
static double *per_channel(lua_State *L, int arg, int64_t n, const char *name, const char *what) {
  lt_tensor *t = lm_optt(L, arg);
  if (!t) return NULL;
  if (lt_numel(t) != n)
    luaL_error(L, "bad argument #%d to '%s' (%s has %d elements, expected %d)", arg, name, what,
               (int)lt_numel(t), (int)n);
  return (double *)lt_data(lm_push_copy(L, t, LT_FLOAT64));
}

/* batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps) */
static int l_batch_norm(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1);
  lt_tensor *rm = lm_optt(L, 2), *rv = lm_optt(L, 3);
  int training = lua_toboolean(L, 6);
  double momentum = luaL_optnumber(L, 7, 0.1), eps = luaL_optnumber(L, 8, 1e-5);
  char s1[256];
  if (x->ndim < 2) luaL_error(L, "bad argument #1 to 'batch_norm' (expected at least a 2-D input, got %d-D)", x->ndim);
  lm_need_floating(L, x->dtype, 1, "batch_norm");
  int64_t N = x->shape[0], C = x->shape[1], S = lm_prod(x->shape, 2, x->ndim);
  if (!training && (!rm || !rv))
    luaL_error(L, "bad argument #2 to 'batch_norm' (running_mean and running_var are needed when not training)");
  if (training && N * S <= 1)
    luaL_error(L, "bad argument #1 to 'batch_norm' (expected more than 1 value per channel when training, got input %s)",
               lm_shape_str(s1, sizeof s1, x->ndim, x->shape));
  double *m64 = per_channel(L, 2, C, "batch_norm", "running_mean");
  double *v64 = per_channel(L, 3, C, "batch_norm", "running_var");
  double *w64 = per_channel(L, 4, C, "batch_norm", "weight");
  double *b64 = per_channel(L, 5, C, "batch_norm", "bias");
  lt_dtype gd = x->dtype == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  lt_tensor *xc = lm_contig(L, x, gd);
  int64_t five = 5 * C;
  double *st = (double *)lt_data(lt_push_new(L, LT_FLOAT64, 1, &five, 0));
  double *mean = st, *var = st + C, *uvar = st + 2 * C, *scale = st + 3 * C, *shift = st + 4 * C;
  if (training) {
    lt_batch_stats(gd, lt_data(xc), N, C, S, mean, var, uvar);
    for (int pass = 0; pass < 2; pass++) {   /* update the running stats in place */
      lt_tensor *r = pass ? rv : rm;
      double *r64 = pass ? v64 : m64;
      const double *cur = pass ? uvar : mean;
      if (!r) continue;
      for (int64_t c = 0; c < C; c++) r64[c] = (1 - momentum) * r64[c] + momentum * cur[c];
      /* r's shape over the updated doubles, copied back into r */
      lt_tensor *tmp = lt_push_new(L, LT_FLOAT64, r->ndim, r->shape, 0);
      memcpy(lt_data(tmp), r64, (size_t)C * sizeof(double));
      lt_copy(r, tmp);
      lua_pop(L, 1);
    }
  } else {
    memcpy(mean, m64, (size_t)C * sizeof(double));
    memcpy(var, v64, (size_t)C * sizeof(double));
  }
  for (int64_t c = 0; c < C; c++) {
    scale[c] = (w64 ? w64[c] : 1.0) / sqrt(var[c] + eps);
    shift[c] = (b64 ? b64[c] : 0.0) - mean[c] * scale[c];
  }
  lt_tensor *y = lt_push_new(L, gd, x->ndim, x->shape, 0);
  lt_channel_affine(gd, lt_data(xc), lt_data(y), N, C, S, scale, shift);
  if (x->dtype != gd) lm_push_convert(L, y, x->dtype);
  return 1;
}

/* layer_norm(x, normalized_shape, weight, bias, eps) */
static int l_layer_norm(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1);
  char s1[256], s2[256];
  int64_t ns[LT_MAX_DIMS];
  int k;
  if (lua_isnumber(L, 2)) { ns[0] = luaL_checkinteger(L, 2); k = 1; }
  else k = lt_check_sizes(L, 2, ns);
  lm_need_floating(L, x->dtype, 1, "layer_norm");
  int ok = k >= 1 && k <= x->ndim;
  for (int i = 0; ok && i < k; i++) if (ns[i] != x->shape[x->ndim - k + i]) ok = 0;
  if (!ok)
    luaL_error(L, "bad argument #2 to 'layer_norm' (normalized shape %s does not match the last dims of input %s)",
               lm_shape_str(s1, sizeof s1, k, ns), lm_shape_str(s2, sizeof s2, x->ndim, x->shape));
  int64_t n = lm_prod(ns, 0, k), rows = lm_prod(x->shape, 0, x->ndim - k);
  double eps = luaL_optnumber(L, 5, 1e-5);
  double *w = per_channel(L, 3, n, "layer_norm", "weight");
  double *b = per_channel(L, 4, n, "layer_norm", "bias");
  lt_tensor *xc = lm_push_copy(L, x, LT_FLOAT64);
  lt_layer_norm_f64((double *)lt_data(xc), rows, n, w, b, eps);
  if (x->dtype != LT_FLOAT64) lm_push_convert(L, xc, x->dtype);
  return 1;
}

/* ---- functional: embedding, dropout ------------------------------------ */

/* embedding(weight, indices): rows of weight at 1-based indices */
static int l_embedding(lua_State *L) {
  lt_tensor *w = lm_checkt(L, 1), *ix = lm_checkt(L, 2);
  if (w->ndim != 2) luaL_error(L, "bad argument #1 to 'embedding' (weight must be 2-D, got %d-D)", w->ndim);
  if (lm_kindof(ix->dtype) != LT_KIND_INT)
    luaL_error(L, "bad argument #2 to 'embedding' (expected an integer tensor of indices, got %s)", lt_dtypes[ix->dtype].name);
  if (ix->ndim >= LT_MAX_DIMS) luaL_error(L, "bad argument #2 to 'embedding' (rank exceeds the limit of %d)", LT_MAX_DIMS);
  int64_t V = w->shape[0], D = w->shape[1], shape[LT_MAX_DIMS];
  memcpy(shape, ix->shape, sizeof(int64_t) * (size_t)ix->ndim);
  shape[ix->ndim] = D;
  lt_tensor *out = lt_push_new(L, w->dtype, ix->ndim + 1, shape, 0);
  size_t isz = lt_dtypes[w->dtype].size;
  int64_t n = lt_numel(ix);
  lt_iter it;
  lt_iter_init(&it, ix);
  int wc = lt_is_contiguous(w);
  for (int64_t k = 0; k < n; k++) {
    int64_t v = lt_get_i64(ix->dtype, lt_iter_next(&it));
    if (v < 1 || v > V)
      luaL_error(L, "bad argument #2 to 'embedding' (index %I out of range for %I embeddings)",
                 (lua_Integer)v, (lua_Integer)V);
    char *dst = lt_data(out) + (size_t)(k * D) * isz;
    if (wc) { memcpy(dst, lt_data(w) + (size_t)((v - 1) * D) * isz, (size_t)D * isz); continue; }
    lt_tensor row = *w, o = *out;
    row.ndim = 1; row.offset += (v - 1) * w->stride[0]; row.shape[0] = D; row.stride[0] = w->stride[1];
    o.ndim = 1; o.offset = k * D; o.shape[0] = D; o.stride[0] = 1;
    lt_copy(&o, &row);
  }
  return 1;
}

/* dropout(x, p = 0.5, training = true): x itself when not training */
static int l_dropout(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1);
  double p = luaL_optnumber(L, 2, 0.5);
  int training = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  if (!(p >= 0 && p <= 1))
    luaL_error(L, "bad argument #2 to 'dropout' (probability must be between 0 and 1, got %f)", p);
  if (!training || p == 0) { lua_settop(L, 1); return 1; }
  lm_need_floating(L, x->dtype, 1, "dropout");
  lt_tensor *out = lt_push_new(L, x->dtype, x->ndim, x->shape, 1);
  if (p == 1) return 1;
  lt_copy(out, x);
  int64_t n = lt_numel(out);
  size_t isz = lt_dtypes[out->dtype].size;
  char *o = lt_data(out);
  double scale = 1.0 / (1.0 - p);
  if (out->dtype == LT_FLOAT32) {
    float *f = (float *)o, fs = (float)scale;
    for (int64_t i = 0; i < n; i++) f[i] = lt_rand_uniform(L) < p ? 0.0f : f[i] * fs;
  } else {
    for (int64_t i = 0; i < n; i++) {
      char *e = o + (size_t)i * isz;
      lt_set_f64(out->dtype, e, lt_rand_uniform(L) < p ? 0.0 : lt_get_f64(out->dtype, e) * scale);
    }
  }
  return 1;
}

/* ---- statistics for inspect -------------------------------------------- */

/* _stats(t): one pass over t; a tensor still in its file (deferred) is read
   for it and freed after, so inspect --stats holds one tensor at a time */
static int l_stats(lua_State *L) {
  int in_file = lt_storage_pending(lt_check_meta(L, 1)->storage);
  lt_tensor *t = lm_checkt(L, 1);
  lt_stats s;
  lt_stats_of(t, &s);
  if (in_file) lt_storage_evict(t->storage);
  lua_createtable(L, 0, 7);
  if (s.finite) {
    lua_pushnumber(L, s.min); lua_setfield(L, -2, "min");
    lua_pushnumber(L, s.max); lua_setfield(L, -2, "max");
    lua_pushnumber(L, s.mean); lua_setfield(L, -2, "mean");
  }
  if (s.finite > 1) { lua_pushnumber(L, s.std); lua_setfield(L, -2, "std"); }
  lua_pushinteger(L, s.nan); lua_setfield(L, -2, "nan");
  lua_pushinteger(L, s.inf); lua_setfield(L, -2, "inf");
  lua_pushinteger(L, s.numel); lua_setfield(L, -2, "numel");
  return 1;
}

/* ---- registration ------------------------------------------------------ */

/* both module functions and tensor methods */
static const luaL_Reg both[] = {
  {"add", l_add}, {"sub", l_sub}, {"mul", l_mul}, {"div", l_div}, {"neg", l_neg}, {"pow", l_pow},
  {"eq", l_eq}, {"ne", l_ne}, {"lt", l_lt}, {"le", l_le}, {"gt", l_gt}, {"ge", l_ge},
  {"maximum", l_maximum}, {"minimum", l_minimum},
  {"clamp", l_clamp}, {"matmul", l_matmul},
  {"exp", l_exp}, {"log", l_log}, {"sqrt", l_sqrt}, {"abs", l_abs}, {"tanh", l_tanh},
  {"sigmoid", l_sigmoid}, {"relu", l_relu}, {"gelu", l_gelu},
  {"softmax", l_softmax}, {"log_softmax", l_log_softmax},
  {"sum", l_sum}, {"mean", l_mean}, {"max", l_max}, {"min", l_min},
  {"argmax", l_argmax}, {"argmin", l_argmin}, {"std", l_std},
  {"equal", l_equal}, {"allclose", l_allclose},
  {NULL, NULL}
};

/* module functions only */
static const luaL_Reg funcs[] = {
  {"where", l_where}, {"cat", l_cat}, {"stack", l_stack},
  {"linear", l_linear}, {"conv2d", l_conv2d}, {"max_pool2d", l_max_pool2d},
  {"avg_pool2d", l_avg_pool2d}, {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
  {"batch_norm", l_batch_norm}, {"layer_norm", l_layer_norm},
  {"embedding", l_embedding}, {"dropout", l_dropout},
  {"_stats", l_stats},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul}, {"__div", l_div},
  {"__pow", l_pow}, {"__unm", l_unm},
  {NULL, NULL}
};

const lt_binding lt_ops_binding = {funcs, NULL, both, metamethods, NULL};
