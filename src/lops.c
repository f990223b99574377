/*
** lops.c: the Lua binding of the math in ops.c: arithmetic, comparisons and
** logical ops with NumPy broadcasting and PyTorch's result_type, unary math
** and activations, where, masked_fill and clamp, matmul,
** cat/stack (reductions are in lreduce.c), and the functional ops nn layers call (linear,
** conv2d, pooling, batch_norm, layer_norm, embedding, dropout).
** Temporaries are tensors pushed on the Lua stack (GC-owned), so an error
** anywhere leaks nothing. Outputs are new contiguous tensors.
** Usage errors go through luaL_argerror (lt_argerror), which numbers the
** arguments as the call was written: t:add(u) names u #1, torch.add(t, u)
** #2; a metamethod's operands are #1 and #2 under the event's name (t + u
** 'add', -t 'unm', t % u 'mod', t // u 'idiv').
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include "lmath.h"

/* ---- PyTorch's type promotion ------------------------------------------ */

/* The dtype PyTorch's result_type gives for the operands at the stack
   indices args[0..n) (nil ones skipped): dimensioned tensors, 0-dim tensors
   and Lua values (integers int64, floats the default float32, booleans
   bool) each promote among themselves; a lower class decides only where it
   is of a higher category (bool < integer < floating < complex), so
   uint8 + torch.tensor(-1) is uint8 and float16 * 2.5 float16. */
#define RT_NONE (-1)
static int rt_promote(lua_State *L, int a, int b) {
  return a == RT_NONE ? b : b == RT_NONE ? a : (int)lm_promote(L, a, b);
}
static int rt_combine(lua_State *L, int hi, int lo) {
  if (hi == RT_NONE) return lo;
  if (lo == RT_NONE) return hi;
  int kh = lm_kindof(hi), kl = lm_kindof(lo);
  if (kh == LT_KIND_COMPLEX || (kh == LT_KIND_FLOAT && kl != LT_KIND_COMPLEX)) return hi;
  if (kh == LT_KIND_BOOL || kl >= LT_KIND_FLOAT) return (int)lm_promote(L, hi, lo);
  return hi;
}

static lt_dtype result_type(lua_State *L, const int *args, int n) {
  int dim = RT_NONE, zero = RT_NONE, wrapped = RT_NONE;
  for (int i = 0; i < n; i++) {
    lt_tensor *t = lm_testt(L, args[i]);
    if (t && t->ndim > 0) dim = rt_promote(L, dim, t->dtype);
    else if (t) zero = rt_promote(L, zero, t->dtype);
    else if (lua_isboolean(L, args[i])) wrapped = rt_promote(L, wrapped, LT_BOOL);
    else if (lua_isinteger(L, args[i])) wrapped = rt_promote(L, wrapped, LT_INT64);
    else if (lua_type(L, args[i]) == LUA_TNUMBER) wrapped = rt_promote(L, wrapped, LT_FLOAT32);
  }
  return (lt_dtype)rt_combine(L, dim, rt_combine(L, zero, wrapped));
}

/* does loading an element of dtype from into the compute domain give what
   converting it to dtype to first would (so no copy is needed)? */
static int loads_exact(lt_dtype from, lt_dtype to) {
  if (from == to || from == LT_BOOL) return 1;
  int small = from == LT_INT8 || from == LT_UINT8 || from == LT_FLOAT8_E4M3FN || from == LT_FLOAT8_E5M2;
  switch (to) {
    case LT_FLOAT64: case LT_COMPLEX128: return 1;
    case LT_COMPLEX64: if (from == LT_FLOAT32) return 1; /* fall through */
    case LT_FLOAT32:
      return small || from == LT_INT16 || from == LT_UINT16 || from == LT_FLOAT16 || from == LT_BFLOAT16;
    case LT_FLOAT16: case LT_BFLOAT16: return small;
    case LT_INT16: return from == LT_INT8 || from == LT_UINT8;
    case LT_INT32: return from == LT_INT8 || from == LT_UINT8 || from == LT_INT16;
    case LT_INT64: return lm_kindof(from) == LT_KIND_INT && from != LT_UINT64;
    default: return 0;
  }
}

/* The operand at idx as a view for an op computed in dtype cd. As PyTorch
   1.13's CPU kernels cast every input to the common dtype (numbers and
   0-dim tensors included: float16 + 0.1 adds float16(0.1)), a tensor whose
   values would change on that cast is converted (int64 to float32, a
   0-dim float64 to float16, -1 to uint8 ...) and a number becomes a 0-dim
   tensor of cd. Pushes what it makes. */
static lt_tensor operand(lua_State *L, int idx, lt_dtype cd) {
  lt_tensor *t = lm_testt(L, idx);
  if (!t) {
    lt_tensor *s = lt_push_new(L, cd, 0, NULL, 0);
    lt_to_elem(L, idx, cd, lt_data(s));
    return *s;
  }
  if (loads_exact(t->dtype, cd)) return *t;
  return *lm_push_copy(L, t, cd);
}

/* the largest finite value of a floating or complex dtype */
static double float_max(lt_dtype dt) {
  switch (dt) {
    case LT_FLOAT64: case LT_COMPLEX128: return 1.7976931348623157e308;
    case LT_FLOAT16: return 65504.0;
    case LT_BFLOAT16: return 3.3895313892515355e38;
    case LT_FLOAT8_E4M3FN: return 448.0;
    case LT_FLOAT8_E5M2: return 57344.0;
    default: return 3.4028234663852886e38;
  }
}

/* the Lua number or boolean at idx as an element of dt in p; raises as
   PyTorch where it does not fit: an integer dtype's range, or beyond a
   float dtype's largest finite value (inf and nan fit) */
static void fit_value(lua_State *L, int idx, int arg, lt_dtype dt, void *p) {
  int k = lm_kindof(dt), bad = 0;
  if (lua_type(L, idx) == LUA_TNUMBER && k == LT_KIND_INT) {
    static const double lo[] = {[LT_INT8] = -128.0, [LT_INT16] = -32768.0, [LT_INT32] = -2147483648.0,
                                [LT_INT64] = -9223372036854775808.0, [LT_UINT8] = 0,
                                [LT_UINT16] = 0, [LT_UINT32] = 0, [LT_UINT64] = 0};
    static const double hi[] = {[LT_INT8] = 127.0, [LT_INT16] = 32767.0, [LT_INT32] = 2147483647.0,
                                [LT_INT64] = 9223372036854775807.0, [LT_UINT8] = 255.0,
                                [LT_UINT16] = 65535.0, [LT_UINT32] = 4294967295.0,
                                [LT_UINT64] = 18446744073709551615.0};
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      bad = dt != LT_INT64 && ((double)v < lo[dt] || (double)v > hi[dt]);
    } else {
      double v = lua_tonumber(L, idx);
      bad = !(v >= lo[dt] && v < hi[dt] + 1);
    }
  } else if (lua_type(L, idx) == LUA_TNUMBER && k != LT_KIND_BOOL) {
    double v = lua_tonumber(L, idx);
    bad = isfinite(v) && fabs(v) > float_max(dt);
  }
  if (bad)
    lt_argerror(L, arg, "value %s cannot be converted to %s without overflow", luaL_tolstring(L, idx, NULL),
                lt_dtypes[dt].name);
  lt_to_elem(L, idx, dt, p);
}

/* ---- arithmetic, comparisons and logical ops ---------------------------- */

static void not_for(lua_State *L, int arg, const char *what) {
  lt_argerror(L, arg, "not supported for %s tensors", what);
}

/* a op b for two operands (tensors or numbers, one at least a tensor) at 1
   and 2, broadcast, in PyTorch's result dtype */
static int binop(lua_State *L, int op) {
  lua_settop(L, 2);
  lm_check_operand(L, 1, 1);
  lm_check_operand(L, 2, 2);
  lt_tensor *ta = lm_testt(L, 1), *tb = lm_testt(L, 2);
  if (!ta && !tb) lt_argerror(L, 1, "tensor expected, got %s", luaL_typename(L, 1));
  static const int args[2] = {1, 2};
  lt_dtype cd = result_type(L, args, 2);
  int k = lm_kindof(cd);
  if ((op == LT_OP_DIV || op == LT_OP_ATAN2) && k <= LT_KIND_INT) cd = LT_FLOAT32;
  if (op == LT_OP_SUB && cd == LT_BOOL)
    lt_argerror(L, 2, "subtraction of bool tensors is not supported: use logical ops");
  if ((op == LT_OP_POW || op == LT_OP_REM || op == LT_OP_FLOORDIV) && k == LT_KIND_BOOL)
    not_for(L, 1, "bool");
  if (k == LT_KIND_COMPLEX && op != LT_OP_EQ && op != LT_OP_NE && op > LT_OP_POW && op < LT_OP_AND)
    not_for(L, 1, "complex");
  if (op == LT_OP_POW && k == LT_KIND_INT && lua_isinteger(L, 2) && lua_tointeger(L, 2) < 0)
    lt_argerror(L, 2, "integers to negative integer powers are not allowed");
  if (op == LT_OP_POW && k >= LT_KIND_FLOAT && k != LT_KIND_COMPLEX && ta && lm_is_float_number(L, 2)) {
    double e = lua_tonumber(L, 2);   /* PyTorch's pow(t, 0.5) is sqrt: sqrt(-0.0) = -0.0 ... */
    if (e == 0.5 || e == -0.5) {
      lt_tensor x = operand(L, 1, cd);
      lt_tensor *out = lt_push_new(L, cd, x.ndim, x.shape, 0);
      lt_unary(e > 0 ? LT_UN_SQRT : LT_UN_RSQRT, LT_DOM_F64, &x, out);
      return 1;
    }
  }
  lt_tensor A = operand(L, 1, cd), B = operand(L, 2, cd);
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(A.ndim, A.shape, B.ndim, B.shape, shape);
  if (nd < 0) lm_broadcast_error(L, 2, &A, &B);
  lt_tensor *out = lt_push_new(L, LT_OP_BOOL_RESULT(op) ? LT_BOOL : cd, nd, shape, 0);
  lt_tensor ea, eb;
  lt_expand_view(&A, nd, shape, &ea);
  lt_expand_view(&B, nd, shape, &eb);
  if (lt_binary(op, lm_domain_of(cd), &ea, &eb, out) == LT_EZERODIV)
    lt_argerror(L, 2, "integer division by zero");
  return 1;
}

#define BINOP(NAME, OP) static int l_##NAME(lua_State *L) { return binop(L, OP); }
BINOP(add, LT_OP_ADD) BINOP(sub, LT_OP_SUB) BINOP(mul, LT_OP_MUL) BINOP(div, LT_OP_DIV)
BINOP(pow, LT_OP_POW) BINOP(maximum, LT_OP_MAX) BINOP(minimum, LT_OP_MIN)
BINOP(atan2, LT_OP_ATAN2) BINOP(remainder, LT_OP_REM) BINOP(floor_divide, LT_OP_FLOORDIV)
BINOP(eq, LT_OP_EQ) BINOP(ne, LT_OP_NE) BINOP(lt, LT_OP_LT) BINOP(le, LT_OP_LE)
BINOP(gt, LT_OP_GT) BINOP(ge, LT_OP_GE)
BINOP(logical_and, LT_OP_AND) BINOP(logical_or, LT_OP_OR) BINOP(logical_xor, LT_OP_XOR)

/* ---- unary ------------------------------------------------------------- */

/* what each unary op gives (R_FLOAT: integers and bool become float32;
   R_KEEP: the input's dtype; R_BOOL) and accepts besides floating dtypes */
enum { R_FLOAT, R_KEEP, R_BOOL };
static const struct { unsigned char res, ints, bools, cplx; } uinfo[LT_UN_COUNT] = {
  [LT_UN_NEG] = {R_KEEP, 1, 0, 1},          [LT_UN_ABS] = {R_KEEP, 1, 0, 1},
  [LT_UN_RELU] = {R_KEEP, 1, 0, 0},         [LT_UN_EXP] = {R_FLOAT, 1, 1, 1},
  [LT_UN_LOG] = {R_FLOAT, 1, 1, 1},         [LT_UN_SQRT] = {R_FLOAT, 1, 1, 1},
  [LT_UN_TANH] = {R_FLOAT, 1, 1, 1},        [LT_UN_SIGMOID] = {R_FLOAT, 1, 1, 1},
  [LT_UN_GELU] = {R_KEEP, 0, 0, 0},         [LT_UN_GELU_TANH] = {R_KEEP, 0, 0, 0},
  [LT_UN_SIN] = {R_FLOAT, 1, 1, 1},         [LT_UN_COS] = {R_FLOAT, 1, 1, 1},
  [LT_UN_TAN] = {R_FLOAT, 1, 1, 1},         [LT_UN_ASIN] = {R_FLOAT, 1, 1, 1},
  [LT_UN_ACOS] = {R_FLOAT, 1, 1, 1},        [LT_UN_ATAN] = {R_FLOAT, 1, 1, 1},
  [LT_UN_SINH] = {R_FLOAT, 1, 1, 1},        [LT_UN_COSH] = {R_FLOAT, 1, 1, 1},
  [LT_UN_RSQRT] = {R_FLOAT, 1, 1, 1},       [LT_UN_ERF] = {R_FLOAT, 1, 1, 0},
  [LT_UN_ERFINV] = {R_FLOAT, 1, 1, 0},      [LT_UN_FLOOR] = {R_KEEP, 1, 0, 0},
  [LT_UN_CEIL] = {R_KEEP, 1, 0, 0},         [LT_UN_ROUND] = {R_KEEP, 1, 0, 0},
  [LT_UN_ROUND_DEC] = {R_KEEP, 0, 0, 0},    [LT_UN_TRUNC] = {R_KEEP, 1, 0, 0},
  [LT_UN_SIGN] = {R_KEEP, 1, 1, 0},         [LT_UN_NAN_TO_NUM] = {R_KEEP, 1, 1, 0},
  [LT_UN_SILU] = {R_KEEP, 0, 0, 1},         [LT_UN_MISH] = {R_KEEP, 0, 0, 0},
  [LT_UN_HARDSWISH] = {R_KEEP, 0, 0, 0},    [LT_UN_HARDSIGMOID] = {R_KEEP, 0, 0, 0},
  [LT_UN_RELU6] = {R_KEEP, 1, 0, 0},        [LT_UN_LEAKY_RELU] = {R_KEEP, 0, 0, 0},
  [LT_UN_ELU] = {R_KEEP, 0, 0, 0},          [LT_UN_SOFTPLUS] = {R_KEEP, 0, 0, 0},
  [LT_UN_ISINF] = {R_BOOL, 1, 1, 1},        [LT_UN_ISNAN] = {R_BOOL, 1, 1, 1},
  [LT_UN_ISFINITE] = {R_BOOL, 1, 1, 1},     [LT_UN_LOGICAL_NOT] = {R_BOOL, 1, 1, 1},
};

/* op(t) with parameters p (NULL: the defaults), pushed */
static lt_tensor *unop_t(lua_State *L, lt_tensor *t, int op, const lt_unparam *p) {
  int k = lm_kindof(t->dtype);
  if (op == LT_UN_NEG && k == LT_KIND_BOOL)
    lt_argerror(L, 1, "negation of a bool tensor is not supported: use logical ops");
  if ((k == LT_KIND_INT && !uinfo[op].ints) || (k == LT_KIND_BOOL && !uinfo[op].bools)) {
    if (uinfo[op].ints) not_for(L, 1, "bool");
    lt_argerror(L, 1, "expected a floating point%s tensor, got %s",
                uinfo[op].cplx ? " or complex" : "", lt_dtypes[t->dtype].name);
  }
  if (k == LT_KIND_COMPLEX && !uinfo[op].cplx) not_for(L, 1, "complex");
  lt_dtype od = t->dtype;
  if (uinfo[op].res == R_BOOL) od = LT_BOOL;
  else if (uinfo[op].res == R_FLOAT && k <= LT_KIND_INT) od = LT_FLOAT32;
  else if (op == LT_UN_ABS && k == LT_KIND_COMPLEX) od = t->dtype == LT_COMPLEX64 ? LT_FLOAT32 : LT_FLOAT64;
  lt_tensor *out = lt_push_new(L, od, t->ndim, t->shape, 0);
  lt_unary_p(op, lm_domain_of(od == LT_BOOL || k == LT_KIND_COMPLEX ? t->dtype : od), p, t, out);
  return out;
}

static int unop(lua_State *L, int op) {
  unop_t(L, lm_checkt(L, 1), op, NULL);
  return 1;
}

#define UNOP(NAME, OP) static int l_##NAME(lua_State *L) { return unop(L, OP); }
UNOP(neg, LT_UN_NEG) UNOP(abs, LT_UN_ABS) UNOP(relu, LT_UN_RELU) UNOP(exp, LT_UN_EXP)
UNOP(log, LT_UN_LOG) UNOP(sqrt, LT_UN_SQRT) UNOP(tanh, LT_UN_TANH) UNOP(sigmoid, LT_UN_SIGMOID)
UNOP(sin, LT_UN_SIN) UNOP(cos, LT_UN_COS) UNOP(tan, LT_UN_TAN) UNOP(asin, LT_UN_ASIN)
UNOP(acos, LT_UN_ACOS) UNOP(atan, LT_UN_ATAN) UNOP(sinh, LT_UN_SINH) UNOP(cosh, LT_UN_COSH)
UNOP(rsqrt, LT_UN_RSQRT) UNOP(erf, LT_UN_ERF) UNOP(erfinv, LT_UN_ERFINV)
UNOP(ceil, LT_UN_CEIL) UNOP(trunc, LT_UN_TRUNC) UNOP(sign, LT_UN_SIGN)
UNOP(logical_not, LT_UN_LOGICAL_NOT) UNOP(isinf, LT_UN_ISINF) UNOP(isnan, LT_UN_ISNAN)
UNOP(isfinite, LT_UN_ISFINITE) UNOP(silu, LT_UN_SILU) UNOP(mish, LT_UN_MISH)
UNOP(hardswish, LT_UN_HARDSWISH) UNOP(hardsigmoid, LT_UN_HARDSIGMOID) UNOP(relu6, LT_UN_RELU6)
static int l_floor_(lua_State *L) { return unop(L, LT_UN_FLOOR); }   /* l_floor is luaconf.h's */

static int l_unm(lua_State *L) { lua_settop(L, 1); return l_neg(L); }

/* gelu(x [, approximate = "none" | "tanh"]) */
static int l_gelu(lua_State *L) {
  static const char *const modes[] = {"none", "tanh", NULL};
  lt_tensor *t = lm_checkt(L, 1);
  int m = luaL_checkoption(L, 2, "none", modes);
  unop_t(L, t, m ? LT_UN_GELU_TANH : LT_UN_GELU, NULL);
  return 1;
}

/* leaky_relu(x [, negative_slope = 0.01]) */
static int l_leaky_relu(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lt_unparam p = {luaL_optnumber(L, 2, 0.01), 0, 0};
  unop_t(L, t, LT_UN_LEAKY_RELU, &p);
  return 1;
}

/* elu(x [, alpha = 1]) */
static int l_elu(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lt_unparam p = {luaL_optnumber(L, 2, 1.0), 1, 1};
  unop_t(L, t, LT_UN_ELU, &p);
  return 1;
}

/* softplus(x [, beta = 1 [, threshold = 20]]) */
static int l_softplus(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lt_unparam p = {luaL_optnumber(L, 2, 1.0), luaL_optnumber(L, 3, 20.0), 0};
  unop_t(L, t, LT_UN_SOFTPLUS, &p);
  return 1;
}

/* round(x [, decimals | {decimals = n}]): half to even. With decimals,
   float32 and float64 compute in their own type as PyTorch; float16 and
   bfloat16 round after each step (x * 10^d, round, / 10^d) as PyTorch's
   kernel does in those types */
static int l_round(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer dec = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "decimals");
    dec = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "decimals") != 0)
        lt_argerror(L, 2, "unknown option '%s': the only option is 'decimals'",
                    luaL_tolstring(L, -1, NULL));
    }
  } else if (!lua_isnoneornil(L, 2)) {
    dec = luaL_checkinteger(L, 2);
  }
  if (dec == 0) { unop_t(L, t, LT_UN_ROUND, NULL); return 1; }
  if (lm_kindof(t->dtype) != LT_KIND_FLOAT) {
    unop_t(L, t, LT_UN_ROUND_DEC, NULL);   /* raises the dtype error */
    return 1;
  }
  if (t->dtype != LT_FLOAT16 && t->dtype != LT_BFLOAT16) {
    lt_unparam p = {(double)dec, 0, 0};
    unop_t(L, t, LT_UN_ROUND_DEC, &p);
    return 1;
  }
  lt_tensor *ten = lt_push_new(L, t->dtype, 0, NULL, 0);
  lt_set_f64(t->dtype, lt_data(ten), pow(10.0, fabs((double)dec)));
  lt_tensor e;
  lt_expand_view(ten, t->ndim, t->shape, &e);
  lt_tensor *out = lt_push_new(L, t->dtype, t->ndim, t->shape, 0);
  lt_binary(dec > 0 ? LT_OP_MUL : LT_OP_DIV, LT_DOM_F64, t, &e, out);
  lt_unary(LT_UN_ROUND, LT_DOM_F64, out, out);
  lt_binary(dec > 0 ? LT_OP_DIV : LT_OP_MUL, LT_DOM_F64, out, &e, out);
  return 1;
}

/* nan_to_num(x [, nan = 0 [, posinf [, neginf]]]): the infinities default
   to the dtype's largest and lowest finite values; integers and bool are
   copied */
static int l_nan_to_num(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  double mx = float_max(t->dtype);
  lt_unparam p = {luaL_optnumber(L, 2, 0.0), luaL_optnumber(L, 3, mx), luaL_optnumber(L, 4, -mx)};
  unop_t(L, t, LT_UN_NAN_TO_NUM, &p);
  return 1;
}

/* ---- where, masked_fill, clamp, equal, allclose ------------------------ */

/* the broadcast shape of n views into shape; raises naming the argument
   (args[i]) that does not fit; returns the rank */
static int broadcast_all(lua_State *L, lt_tensor *v, const int *args, int n, int64_t *shape) {
  int nd = 0;
  for (int i = 0; i < n; i++) {
    int64_t s[LT_MAX_DIMS];
    int r = lt_broadcast_shape(nd, shape, v[i].ndim, v[i].shape, s);
    if (r < 0) {
      lt_tensor so = v[i];
      so.ndim = nd;
      memcpy(so.shape, shape, sizeof(int64_t) * (size_t)nd);
      lm_broadcast_error(L, args[i], &so, &v[i]);
    }
    nd = r;
    memcpy(shape, s, sizeof(int64_t) * (size_t)nd);
  }
  return nd;
}

/* the condition tensor at arg of where/masked_fill: bool (or uint8, which
   PyTorch 1.13 still accepts) */
static lt_tensor *check_mask(lua_State *L, int arg, const char *what) {
  lt_tensor *c = lt_test(L, arg);
  if (!c) lt_argerror(L, arg, "%s tensor expected, got %s", what, luaL_typename(L, arg));
  lm_no_cuda(L, c);
  if (c->dtype != LT_BOOL && c->dtype != LT_UINT8)
    lt_argerror(L, arg, "expected a bool %s tensor, got %s", what, lt_dtypes[c->dtype].name);
  return c;
}

/* where(cond, a, b) with cond, a and b the arguments at stack indices
   at[0..3): a where cond, else b, broadcast; a and b tensors or numbers */
static int where_at(lua_State *L, const int at[3]) {
  lua_settop(L, 3);
  lt_tensor *c = check_mask(L, at[0], "condition");
  lm_check_operand(L, at[1], at[1]);
  lm_check_operand(L, at[2], at[2]);
  lt_dtype od = result_type(L, at + 1, 2);
  lt_tensor v[3] = {*c, operand(L, at[1], od), operand(L, at[2], od)};
  int64_t shape[LT_MAX_DIMS];
  int nd = broadcast_all(L, v, at, 3, shape);
  lt_tensor *out = lt_push_new(L, od, nd, shape, 0);
  lt_tensor ec, ea, eb;
  lt_expand_view(&v[0], nd, shape, &ec);
  lt_expand_view(&v[1], nd, shape, &ea);
  lt_expand_view(&v[2], nd, shape, &eb);
  lt_where(&ec, &ea, &eb, out);
  return 1;
}

static int l_where(lua_State *L) {
  static const int at[3] = {1, 2, 3};
  return where_at(L, at);
}

/* t:where(cond, other): torch.where(cond, t, other), the arguments left
   where they are so that errors number them as the call was written */
static int l_where_method(lua_State *L) {
  static const int at[3] = {2, 1, 3};
  return where_at(L, at);
}

/* masked_fill(t, mask, value): t with value where mask (bool, broadcast
   with t) is true; value a number, boolean or 0-dim tensor, converted to
   t's dtype (an error when it does not fit) */
static int l_masked_fill(lua_State *L) {
  lua_settop(L, 3);
  lt_tensor *t = lm_checkt(L, 1);
  lt_tensor *m = check_mask(L, 2, "mask");
  lt_tensor *vt = lm_testt(L, 3);
  if (vt) {
    if (vt->ndim != 0)
      lt_argerror(L, 3, "expected a 0-dim value tensor, got %d dims", vt->ndim);
    if (lm_kindof(vt->dtype) == LT_KIND_COMPLEX && lm_kindof(t->dtype) != LT_KIND_COMPLEX)
      not_for(L, 3, "complex value");
    lt_push_elem(L, vt->dtype, lt_data(vt));
    lua_replace(L, 3);
  } else if (lua_type(L, 3) != LUA_TNUMBER && !lua_isboolean(L, 3)) {
    lt_argerror(L, 3, "number, boolean or 0-dim tensor expected, got %s",
                luaL_typename(L, 3));
  }
  char elem[16];
  if (lua_istable(L, 3)) lt_to_elem(L, 3, t->dtype, elem);   /* a complex value */
  else fit_value(L, 3, 3, t->dtype, elem);
  static const int args[2] = {1, 2};
  lt_tensor v[2] = {*t, *m};
  int64_t shape[LT_MAX_DIMS];
  int nd = broadcast_all(L, v, args, 2, shape);
  lt_tensor *out = lt_push_new(L, t->dtype, nd, shape, 0);
  lt_tensor et, em;
  lt_expand_view(t, nd, shape, &et);
  lt_expand_view(m, nd, shape, &em);
  lt_copy(out, &et);
  lt_masked_fill(&em, elem, out);
  return 1;
}

/* clamp(t, min, max): either bound nil; numbers or tensors (broadcast).
   The dtype is PyTorch's result type of all three; number bounds must fit
   in it; a nan bound gives nan; min > max gives max */
static int l_clamp(lua_State *L) {
  lua_settop(L, 3);
  lt_tensor *t = lm_checkt(L, 1);
  int has_lo = !lua_isnil(L, 2), has_hi = !lua_isnil(L, 3);
  if (!has_lo && !has_hi) lt_argerror(L, 2, "at least one of min and max must be given");
  for (int i = 2; i <= 3; i++) if (!lua_isnil(L, i)) lm_check_operand(L, i, i);
  static const int args[3] = {1, 2, 3};
  lt_dtype od = result_type(L, args, 3);
  if (lm_kindof(od) == LT_KIND_COMPLEX) not_for(L, 1, "complex");
  int dom = lm_domain_of(od);
  lt_tensor x = operand(L, 1, od);
  if (!lm_testt(L, 2) && !lm_testt(L, 3)) {        /* number bounds */
    char e[16];
    double lo = 0, hi = 0;
    int64_t ilo = 0, ihi = 0;
    for (int i = 2; i <= 3; i++) {
      if (lua_isnil(L, i)) continue;
      fit_value(L, i, i, od, e);
      double f = lt_get_f64(od, e);
      int64_t n = dom == LT_DOM_I64 ? lt_get_i64(od, e) : 0;
      if (i == 2) { lo = f; ilo = n; } else { hi = f; ihi = n; }
    }
    lt_tensor *out = lt_push_new(L, od, t->ndim, t->shape, 0);
    lt_clamp(dom, &x, has_lo, lo, ilo, has_hi, hi, ihi, out);
    return 1;
  }
  /* tensor bounds: minimum(maximum(t, min), max), both propagating nan */
  lt_tensor v[3];
  int ids[3], n = 0;
  v[n] = x; ids[n++] = 1;
  for (int i = 2; i <= 3; i++) if (!lua_isnil(L, i)) { v[n] = operand(L, i, od); ids[n++] = i; }
  int64_t shape[LT_MAX_DIMS];
  int nd = broadcast_all(L, v, ids, n, shape);
  lt_tensor *out = lt_push_new(L, od, nd, shape, 0);
  lt_tensor ex, eb;
  lt_expand_view(&v[0], nd, shape, &ex);
  lt_copy(out, &ex);
  for (int j = 1; j < n; j++) {
    lt_expand_view(&v[j], nd, shape, &eb);
    lt_binary(ids[j] == 2 ? LT_OP_MAX : LT_OP_MIN, dom, out, &eb, out);
  }
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
  if (nd < 0) lm_broadcast_error(L, 2, a, b);
  lt_tensor ea, eb;
  lt_expand_view(a, nd, shape, &ea);
  lt_expand_view(b, nd, shape, &eb);
  lua_pushboolean(L, lt_all_close(&ea, &eb, rtol, atol));
  return 1;
}

static int l_matmul(lua_State *L) {
  lt_tensor *a = lm_checkt(L, 1), *b = lm_checkt(L, 2);
  lm_matmul(L, a, b, 1);
  return 1;
}

/* ---- cat and stack ----------------------------------------------------- */

/* pushes the tensors of the list at index 1; returns their count and the
   stack index of the first */
static int list_tensors(lua_State *L, int *first) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n <= 0) lt_argerror(L, 1, "expected a non-empty list of tensors");
  luaL_checkstack(L, n + 8, "too many tensors");
  *first = lua_gettop(L) + 1;
  for (int i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    lt_tensor *t = lt_test(L, -1);
    if (!t) lt_argerror(L, 1, "element %d is not a tensor", i);
    lm_no_cuda(L, t);
  }
  return n;
}

static int l_cat(lua_State *L) {
  lua_Integer dimv = luaL_optinteger(L, 2, 1);
  lua_settop(L, 1);
  int first, n = list_tensors(L, &first);
  const lt_tensor *ref = NULL;
  lt_dtype od = lt_check(L, first)->dtype;
  for (int i = 0; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    od = lm_promote(L, od, t->dtype);
    if (!ref && !(t->ndim == 1 && t->shape[0] == 0)) ref = t;
  }
  if (!ref) { lt_push_new(L, od, 1, (int64_t[]){0}, 0); return 1; }
  if (ref->ndim == 0) lt_argerror(L, 1, "0-dim tensors cannot be concatenated");
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
      lt_argerror(L, 1, "sizes must match except in dim %d: tensor 1 has %s, tensor %d has %s",
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
  int first, n = list_tensors(L, &first);
  lt_tensor *ref = lt_check(L, first);
  lt_dtype od = ref->dtype;
  if (ref->ndim >= LT_MAX_DIMS) lt_argerror(L, 1, "rank exceeds the limit of %d", LT_MAX_DIMS);
  for (int i = 1; i < n; i++) {
    lt_tensor *t = lt_check(L, first + i);
    od = lm_promote(L, od, t->dtype);
    if (t->ndim != ref->ndim || memcmp(t->shape, ref->shape, sizeof(int64_t) * (size_t)t->ndim) != 0) {
      char s1[256], s2[256];
      lt_argerror(L, 1, "all tensors must have the same shape: tensor 1 has %s, tensor %d has %s",
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
  if (w->ndim != 2) lt_argerror(L, 2, "weight must be 2-D, got %d-D", w->ndim);
  lt_tensor wt = *w;
  wt.shape[0] = w->shape[1]; wt.shape[1] = w->shape[0];
  wt.stride[0] = w->stride[1]; wt.stride[1] = w->stride[0];
  int added;
  lt_tensor *out = lm_matmul_bias(L, x, &wt, 1, bias, &added);
  if (!bias || added) return 1;
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(out->ndim, out->shape, bias->ndim, bias->shape, shape);
  if (nd != out->ndim || memcmp(shape, out->shape, sizeof(int64_t) * (size_t)nd) != 0) {
    char s1[256], s2[256];
    lt_argerror(L, 3, "bias of shape %s does not fit the output of shape %s",
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
static void pair(lua_State *L, int arg, lua_Integer def, lua_Integer lo, const char *what, int64_t out[2]) {
  if (lua_isnoneornil(L, arg)) { out[0] = out[1] = def; }
  else if (lua_istable(L, arg)) {
    lua_Integer n = luaL_len(L, arg);
    if (n == 1 || n == 2) {
      for (int i = 0; i < 2; i++) {
        lua_geti(L, arg, n == 1 ? 1 : i + 1);
        int ok;
        out[i] = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) lt_argerror(L, arg, "%s must be integers", what);
      }
    } else {
      lt_argerror(L, arg, "%s must be a number or {h, w}", what);
    }
  } else {
    int ok;
    out[0] = out[1] = lua_tointegerx(L, arg, &ok);
    if (!ok) lt_argerror(L, arg, "%s must be a number or {h, w}", what);
  }
  if (out[0] < lo || out[1] < lo)
    lt_argerror(L, arg, "%s must be at least %d, got {%lld, %lld}", what,
                (int)lo, (lua_Integer)out[0], (lua_Integer)out[1]);
  if (out[0] > INT_MAX || out[1] > INT_MAX)
    lt_argerror(L, arg, "%s must be at most %d, got {%lld, %lld}", what,
                INT_MAX, (lua_Integer)out[0], (lua_Integer)out[1]);
}

static int l_conv2d(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1), *w = lm_checkt(L, 2), *bias = lm_optt(L, 3);
  char s1[256];
  int64_t st[2], pd[2] = {0, 0}, dl[2];
  pair(L, 4, 1, 1, "stride", st);
  pair(L, 6, 1, 1, "dilation", dl);
  if (lua_type(L, 5) == LUA_TSTRING) {
    const char *mode = lua_tostring(L, 5);
    if (strcmp(mode, "valid") == 0) pd[0] = pd[1] = 0;
    else if (strcmp(mode, "same") == 0 && w->ndim == 4) {
      for (int i = 0; i < 2; i++) {
        int64_t tot = dl[i] * (w->shape[2 + i] - 1);
        if (tot % 2 || st[i] != 1)
          lt_argerror(L, 5, "padding 'same' needs stride 1 and an even total padding");
        pd[i] = tot / 2;
      }
    } else lt_argerror(L, 5, "padding must be a number, {h, w}, 'valid' or 'same'");
  } else {
    pair(L, 5, 0, 0, "padding", pd);
  }
  lua_Integer groups = luaL_optinteger(L, 7, 1);
  if (groups < 1) lt_argerror(L, 7, "groups must be positive");
  if (x->ndim != 3 && x->ndim != 4)
    lt_argerror(L, 1, "expected a 3-D or 4-D input, got %d-D", x->ndim);
  if (w->ndim != 4)
    lt_argerror(L, 2, "expected a 4-D weight, got %d-D", w->ndim);
  int batched = x->ndim == 4;
  lt_conv p;
  p.N = batched ? x->shape[0] : 1;
  p.C = x->shape[batched]; p.H = x->shape[batched + 1]; p.W = x->shape[batched + 2];
  p.O = w->shape[0]; p.kh = w->shape[2]; p.kw = w->shape[3];
  p.sh = st[0]; p.sw = st[1]; p.ph = pd[0]; p.pw = pd[1]; p.dh = dl[0]; p.dw = dl[1];
  p.groups = groups;
  lm_conv_check_groups(L, x, w, &p);
  int64_t eh = p.dh * (p.kh - 1) + 1, ew = p.dw * (p.kw - 1) + 1;
  if (p.H + 2 * p.ph < eh || p.W + 2 * p.pw < ew)
    lt_argerror(L, 1, "input %s (with padding) is smaller than the kernel %dx%d",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)eh, (int)ew);
  p.OH = (p.H + 2 * p.ph - eh) / p.sh + 1;
  p.OW = (p.W + 2 * p.pw - ew) / p.sw + 1;
  lt_dtype gd, od = lm_conv_dtypes(L, x, w, bias, &p, &gd);
  int64_t Kc = (p.C / groups) * p.kh * p.kw;
  int64_t P = lt_shape_numel(2, (int64_t[]){p.OH, p.OW});
  if (Kc >= INT_MAX || P < 0 || P >= INT_MAX || p.O >= INT_MAX || lt_shape_numel(2, (int64_t[]){Kc, P}) < 0)
    lt_argerror(L, 1, "sizes exceed the BLAS limit of 2^31-1");
  lt_tensor *xc = lm_contig(L, x, gd), *wc = lm_contig(L, w, gd), *bc = bias ? lm_contig(L, bias, gd) : NULL;
  int64_t oshape[4] = {p.N, p.O, p.OH, p.OW};
  lt_tensor *y = lt_push_new(L, gd, 4, oshape, 0);
  /* the im2col scratch is plain malloc memory, taken after the last call
     that can raise and freed before the next: malloc hands the same pages
     to the next convolution, where a fresh mapping would fault them in */
  size_t ncol = (size_t)lt_conv2d_col_numel(&p);
  void *col = NULL;
  if (ncol && !(col = malloc(ncol * lt_dtypes[gd].size)))
    luaL_error(L, "not enough memory for a convolution scratch of %I bytes",
               (lua_Integer)(ncol * lt_dtypes[gd].size));
  lt_conv2d(gd, &p, lt_data(xc), lt_data(wc), bc ? lt_data(bc) : NULL, col, lt_data(y));
  free(col);
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
static void pool_input(lua_State *L, lt_tensor *x, lt_pool *p) {
  if (x->ndim != 3 && x->ndim != 4)
    lt_argerror(L, 1, "expected a 3-D or 4-D input, got %d-D", x->ndim);
  lm_need_floating(L, x->dtype, 1, NULL);
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

static void pool_geometry(lua_State *L, lt_tensor *x, lt_pool *p, int ceil_mode) {
  char s1[256];
  if (p->ph * 2 > p->kh || p->pw * 2 > p->kw)
    lt_argerror(L, 4, "padding {%d, %d} must be at most half of the kernel {%d, %d}", (int)p->ph, (int)p->pw,
                (int)p->kh, (int)p->kw);
  p->OH = lt_pool_out(p->H, p->kh, p->ph, p->sh, p->dh, ceil_mode);
  p->OW = lt_pool_out(p->W, p->kw, p->pw, p->sw, p->dw, ceil_mode);
  if (p->OH < 1 || p->OW < 1)
    lt_argerror(L, 1, "input %s is too small for the kernel {%d, %d}",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)p->kh, (int)p->kw);
}

/* max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) and
   avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad): a
   stride of nil or {} is the kernel's */
static int pool2d(lua_State *L, int kind) {
  lt_tensor *x = lm_checkt(L, 1);
  lt_pool p;
  int64_t k[2], s[2], pd[2], dl[2] = {1, 1};
  int max = kind == LT_POOL_MAX;
  pool_input(L, x, &p);
  pair(L, 2, 1, 1, "kernel size", k);
  if (lua_isnoneornil(L, 3) || (lua_istable(L, 3) && luaL_len(L, 3) == 0)) { s[0] = k[0]; s[1] = k[1]; }
  else pair(L, 3, 1, 1, "stride", s);
  pair(L, 4, 0, 0, "padding", pd);
  if (max) pair(L, 5, 1, 1, "dilation", dl);
  p.kh = k[0]; p.kw = k[1]; p.sh = s[0]; p.sw = s[1]; p.ph = pd[0]; p.pw = pd[1];
  p.dh = dl[0]; p.dw = dl[1];
  p.count_include_pad = max || lua_isnoneornil(L, 6) || lua_toboolean(L, 6);
  pool_geometry(L, x, &p, lua_toboolean(L, max ? 6 : 5));
  pool_run(L, x, &p, kind);
  return 1;
}

static int l_max_pool2d(lua_State *L) { return pool2d(L, LT_POOL_MAX); }
static int l_avg_pool2d(lua_State *L) { return pool2d(L, LT_POOL_AVG); }

static int l_adaptive_avg_pool2d(lua_State *L) {
  lt_tensor *x = lm_checkt(L, 1);
  lt_pool p;
  char s1[256];
  memset(&p, 0, sizeof p);
  pool_input(L, x, &p);
  int64_t o[2];
  if (lua_istable(L, 2) && luaL_len(L, 2) == 2) {   /* nil/torch.null keeps that size */
    for (int i = 0; i < 2; i++) {
      lua_geti(L, 2, i + 1);
      o[i] = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (i ? p.W : p.H);
      lua_pop(L, 1);
    }
  } else {
    pair(L, 2, 1, 0, "output size", o);
  }
  if (o[0] < 0 || o[1] < 0)
    lt_argerror(L, 2, "output size must not be negative");
  if (p.H == 0 || p.W == 0)
    lt_argerror(L, 1, "input %s has empty spatial dims",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape));
  p.OH = o[0];
  p.OW = o[1];
  pool_run(L, x, &p, LT_POOL_ADAPTIVE_AVG);
  return 1;
}

/* ---- functional: normalisation ----------------------------------------- */

/* a contiguous double copy of a per-channel tensor with n elements, or NULL */
static double *per_channel(lua_State *L, int arg, int64_t n, const char *what) {
  lt_tensor *t = lm_optt(L, arg);
  if (!t) return NULL;
  if (lt_numel(t) != n)
    lt_argerror(L, arg, "%s has %d elements, expected %d", what,
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
  if (x->ndim < 2) lt_argerror(L, 1, "expected at least a 2-D input, got %d-D", x->ndim);
  lm_need_floating(L, x->dtype, 1, NULL);
  int64_t N = x->shape[0], C = x->shape[1], S = lm_prod(x->shape, 2, x->ndim);
  if (!training && (!rm || !rv))
    lt_argerror(L, 2, "running_mean and running_var are needed when not training");
  if (training && N * S <= 1)
    lt_argerror(L, 1, "expected more than 1 value per channel when training, got input %s",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape));
  double *m64 = per_channel(L, 2, C, "running_mean");
  double *v64 = per_channel(L, 3, C, "running_var");
  double *w64 = per_channel(L, 4, C, "weight");
  double *b64 = per_channel(L, 5, C, "bias");
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
  lm_need_floating(L, x->dtype, 1, NULL);
  int ok = k >= 1 && k <= x->ndim;
  for (int i = 0; ok && i < k; i++) if (ns[i] != x->shape[x->ndim - k + i]) ok = 0;
  if (!ok)
    lt_argerror(L, 2, "normalized shape %s does not match the last dims of input %s",
                lm_shape_str(s1, sizeof s1, k, ns), lm_shape_str(s2, sizeof s2, x->ndim, x->shape));
  int64_t n = lm_prod(ns, 0, k), rows = lm_prod(x->shape, 0, x->ndim - k);
  double eps = luaL_optnumber(L, 5, 1e-5);
  double *w = per_channel(L, 3, n, "weight");
  double *b = per_channel(L, 4, n, "bias");
  if (x->dtype == LT_FLOAT32) {   /* float32 in and out, sums in double */
    lt_tensor *xf = lm_contig(L, x, LT_FLOAT32);
    lt_tensor *y = lt_push_new(L, LT_FLOAT32, x->ndim, x->shape, 0);
    lt_layer_norm_f32((const float *)lt_data(xf), (float *)lt_data(y), rows, n, w, b, eps);
    return 1;
  }
  lt_tensor *xc = lm_push_copy(L, x, LT_FLOAT64);
  lt_layer_norm_f64((double *)lt_data(xc), rows, n, w, b, eps);
  if (x->dtype != LT_FLOAT64) lm_push_convert(L, xc, x->dtype);
  return 1;
}

/* ---- functional: embedding, dropout ------------------------------------ */

/* embedding(weight, indices): rows of weight at 1-based indices */
static int l_embedding(lua_State *L) {
  lt_tensor *w = lm_checkt(L, 1), *ix = lm_checkt(L, 2);
  if (w->ndim != 2) lt_argerror(L, 1, "weight must be 2-D, got %d-D", w->ndim);
  if (lm_kindof(ix->dtype) != LT_KIND_INT)
    lt_argerror(L, 2, "expected an integer tensor of indices, got %s", lt_dtypes[ix->dtype].name);
  if (ix->ndim >= LT_MAX_DIMS) lt_argerror(L, 2, "rank exceeds the limit of %d", LT_MAX_DIMS);
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
      lt_argerror(L, 2, "index %lld out of range for %lld embeddings",
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
    lt_argerror(L, 2, "probability must be between 0 and 1, got %.14g", p);
  if (!training || p == 0) { lua_settop(L, 1); return 1; }
  lm_need_floating(L, x->dtype, 1, NULL);
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
  {"equal", l_equal}, {"allclose", l_allclose},
  /* elementwise math (docs/api.md "Elementwise math") */
  {"sin", l_sin}, {"cos", l_cos}, {"tan", l_tan}, {"asin", l_asin}, {"acos", l_acos},
  {"atan", l_atan}, {"sinh", l_sinh}, {"cosh", l_cosh}, {"rsqrt", l_rsqrt}, {"erf", l_erf},
  {"erfinv", l_erfinv}, {"floor", l_floor_}, {"ceil", l_ceil}, {"round", l_round},
  {"trunc", l_trunc}, {"sign", l_sign}, {"nan_to_num", l_nan_to_num},
  {"logical_not", l_logical_not}, {"isinf", l_isinf}, {"isnan", l_isnan}, {"isfinite", l_isfinite},
  {"atan2", l_atan2}, {"remainder", l_remainder}, {"floor_divide", l_floor_divide},
  {"logical_and", l_logical_and}, {"logical_or", l_logical_or}, {"logical_xor", l_logical_xor},
  {"masked_fill", l_masked_fill},
  {"silu", l_silu}, {"leaky_relu", l_leaky_relu}, {"elu", l_elu}, {"softplus", l_softplus},
  {"hardswish", l_hardswish}, {"hardsigmoid", l_hardsigmoid}, {"mish", l_mish}, {"relu6", l_relu6},
  {NULL, NULL}
};

/* tensor methods only: t:where(cond, other) is torch.where(cond, t, other) */
static const luaL_Reg methods[] = {
  {"where", l_where_method},
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
  {"__pow", l_pow}, {"__unm", l_unm}, {"__mod", l_remainder}, {"__idiv", l_floor_divide},
  {NULL, NULL}
};

const lt_binding lt_ops_binding = {funcs, methods, both, metamethods, NULL};
