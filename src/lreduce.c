/*
** lreduce.c: the Lua binding of reductions (sum mean prod var std norm any
** all amax amin logsumexp max min argmax argmin), scans (cumsum cumprod),
** sorting (sort argsort topk) and softmax/log_softmax; the kernels are in
** reduce.c.
**
** Every function takes PyTorch's positional arguments in PyTorch's order
** after the tensor, then an optional trailing table of keyword options
** (string keys: any argument's name, and the keyword-only ones):
** x:sum(2, true), x:sum({1, 3}, {keepdim = true, dtype = "float64"}),
** x:var({dim = 2, correction = 0}). Dims are 1-based, negative from the
** end; a dim argument of the reductions may be a list of dims. Indices
** that come back are 1-based. Errors count the tensor as argument #1 of
** torch.X(t, ...); in t:X(...) it is self (luaL_argerror's rule), so the
** first argument after it is #1.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
#include "lmath.h"
#include "reduce.h"

/* ---- arguments --------------------------------------------------------- */

#define MAXARGS 8

/* One call's arguments by name: names[0..npos) are positional (stack
   indices 2...), the rest keyword-only; at[j] is the stack index of the
   value of names[j] (0: not given, or nil), argn[j] its argument number
   (0: given in the options table) */
typedef struct callargs {
  const char *fn;
  const char *const *names;
  int npos, nnames;
  int at[MAXARGS], argn[MAXARGS];
} callargs;

/* a table without a metatable whose keys are all strings (or none) */
static int is_options(lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TTABLE || lua_getmetatable(L, i)) {
    if (lua_type(L, i) == LUA_TTABLE) lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, i)) {
    int str = lua_type(L, -2) == LUA_TSTRING;
    lua_pop(L, 1);
    if (!str) { lua_pop(L, 1); return 0; }
  }
  return 1;
}

static int find_name(const callargs *c, const char *k) {
  for (int j = 0; j < c->nnames; j++) if (strcmp(c->names[j], k) == 0) return j;
  return -1;
}

/* the first n names, "dim, keepdim, dtype", into buf */
static const char *name_list(const callargs *c, int n, char *buf, size_t len) {
  size_t k = 0;
  buf[0] = '\0';
  for (int j = 0; j < n && k < len; j++)
    k += (size_t)snprintf(buf + k, len - k, j ? ", %s" : "%s", c->names[j]);
  return buf;
}

/* parse the call's arguments after the tensor at 1 into c (names: NULL
   terminated; the first npos positional). Option values are pushed. */
static void parse(lua_State *L, callargs *c, const char *fn, const char *const *names, int npos) {
  char list[256];
  c->fn = fn;
  c->names = names;
  c->npos = npos;
  for (c->nnames = 0; names[c->nnames]; c->nnames++) {}
  memset(c->at, 0, sizeof c->at);
  memset(c->argn, 0, sizeof c->argn);
  int top = lua_gettop(L), opts = 0;
  if (top >= 2 && is_options(L, top)) opts = top--;
  if (top - 1 > npos) {
    if (npos == 0)
      lt_argerror(L, npos + 2, "no arguments expected after the tensor but an options table: %s",
                  name_list(c, c->nnames, list, sizeof list));
    /* counted as the argument numbers are: t:std(...) has no input before dim */
    int self = lt_argnum(L, 1) == 0;
    lt_argerror(L, npos + 2, "at most %d arguments expected: %s%s", npos + 1 - self, self ? "" : "input, ",
                name_list(c, npos, list, sizeof list));
  }
  for (int i = 2; i <= top; i++)
    if (!lua_isnil(L, i)) { c->at[i - 2] = i; c->argn[i - 2] = i; }
  if (!opts) return;
  /* check every key (the first unknown one in byte order is reported) */
  const char *bad = NULL;
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    const char *k = lua_tostring(L, -2);
    int j = find_name(c, k);
    if (j < 0 && (!bad || strcmp(k, bad) < 0)) bad = k;
    if (j >= 0 && c->at[j])
      luaL_error(L, "bad option '%s' to '%s' (given twice: as argument #%d and as an option)", k, fn,
                 lt_argnum(L, c->argn[j]));
    lua_pop(L, 1);
  }
  if (bad) luaL_error(L, "bad option '%s' to '%s' (valid options: %s)", bad, fn, name_list(c, c->nnames, list, sizeof list));
  for (int j = 0; j < c->nnames; j++) {
    lua_getfield(L, opts, names[j]);
    if (lua_isnil(L, -1)) lua_pop(L, 1);
    else c->at[j] = lua_gettop(L);
  }
}

/* raise "bad argument #N to 'fn' (msg)" (luaL_argerror: a method call does
   not count self) or "bad option 'name' to 'fn' (msg)"; an absent positional
   argument is named by its position. fmt is printf's (lt_pushvf) */
static int arg_error(lua_State *L, const callargs *c, int j, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int arg_error(lua_State *L, const callargs *c, int j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = lt_pushvf(L, fmt, ap);
  va_end(ap);
  int n = c->argn[j] ? c->argn[j] : !c->at[j] && j < c->npos ? j + 2 : 0;
  if (n) return luaL_argerror(L, n, msg);
  return luaL_error(L, "bad option '%s' to '%s' (%s)", c->names[j], c->fn, msg);
}

static const char *type_of(lua_State *L, const callargs *c, int j) {
  return c->at[j] ? luaL_typename(L, c->at[j]) : "no value";
}

static int has(const callargs *c, int j) { return j >= 0 && c->at[j] != 0; }

static int get_bool(lua_State *L, const callargs *c, int j, int def) {
  if (!has(c, j)) return def;
  if (!lua_isboolean(L, c->at[j])) arg_error(L, c, j, "boolean expected, got %s", type_of(L, c, j));
  return lua_toboolean(L, c->at[j]);
}

static lua_Integer get_int(lua_State *L, const callargs *c, int j) {
  int ok = 0;
  lua_Integer v = has(c, j) ? lua_tointegerx(L, c->at[j], &ok) : 0;
  if (!ok) {
    if (has(c, j) && lua_type(L, c->at[j]) == LUA_TNUMBER) arg_error(L, c, j, "number has no integer representation");
    arg_error(L, c, j, "integer expected, got %s", type_of(L, c, j));
  }
  return v;
}

static lt_dtype get_dtype(lua_State *L, const callargs *c, int j) {
  if (lua_type(L, c->at[j]) != LUA_TSTRING) arg_error(L, c, j, "dtype name expected, got %s", type_of(L, c, j));
  const char *name = lua_tostring(L, c->at[j]);
  int d = lt_dtype_from_name(name);
  if (d < 0) arg_error(L, c, j, "unknown dtype '%s'", name);
  return (lt_dtype)d;
}

/* a dim (1-based, negative from the end) of a rank-ndim tensor, 0-based */
static int check_dim(lua_State *L, const callargs *c, int j, lua_Integer d, int ndim) {
  int n = ndim > 0 ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    arg_error(L, c, j, "dimension %lld out of range (expected 1 to %d, or -%d to -1)", d, n, n);
  return (int)(d > 0 ? d - 1 : n + d);
}

/* one dim argument (an integer) as a 0-based dim; def when absent (-1:
   required) */
static int get_dim(lua_State *L, const callargs *c, int j, int ndim, int def) {
  if (!has(c, j) && def >= 0) return def;
  return check_dim(L, c, j, get_int(L, c, j), ndim);
}

/* a dim argument that may be a list of dims: the mask of dims reduced
   (0-dim tensors: bit 0). An absent dim, or an empty list, is every dim */
static uint32_t get_dims(lua_State *L, const callargs *c, int j, int ndim) {
  uint32_t all = ndim ? (uint32_t)((1ull << ndim) - 1) : 1u;
  if (!has(c, j)) return all;
  int i = c->at[j];
  if (lua_type(L, i) == LUA_TNUMBER) return 1u << check_dim(L, c, j, get_int(L, c, j), ndim);
  if (lua_type(L, i) != LUA_TTABLE || lt_test(L, i))
    arg_error(L, c, j, "integer or list of integers expected, got %s", luaL_typename(L, i));
  lua_Integer len = luaL_len(L, i), count = 0;
  lua_pushnil(L);
  while (lua_next(L, i)) { count++; lua_pop(L, 1); }
  if (count != len) arg_error(L, c, j, "a list of dims holds integers only: give options in a table of their own");
  if (len == 0) return all;
  uint32_t mask = 0;
  for (lua_Integer k = 1; k <= len; k++) {
    lua_geti(L, i, k);
    int ok;
    lua_Integer d = lua_tointegerx(L, -1, &ok);
    if (!ok) arg_error(L, c, j, "list of dims must hold integers, got %s at %lld", luaL_typename(L, -1), k);
    lua_pop(L, 1);
    int dd = check_dim(L, c, j, d, ndim);
    if (mask & (1u << dd)) arg_error(L, c, j, "dim %d appears multiple times in the list of dims", dd + 1);
    mask |= 1u << dd;
  }
  return mask;
}

/* the output shape of a reduction over mask; returns its rank */
static int reduced_shape(const lt_tensor *t, uint32_t mask, int keepdim, int64_t *shape) {
  int nd = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (!(mask & (1u << d))) shape[nd++] = t->shape[d];
    else if (keepdim) shape[nd++] = 1;
  }
  return nd;
}

/* a reduced dim of size 0 (or an empty tensor without a dim) is an error
   for reductions without an identity */
static void need_nonempty(lua_State *L, const callargs *c, int jdim, const lt_tensor *t, uint32_t mask) {
  if (!has(c, jdim)) {
    if (lt_numel(t) == 0)
      lt_argerror(L, 1, "expected a dim to reduce for an empty tensor: %s has no identity", c->fn);
    return;
  }
  for (int d = 0; d < t->ndim; d++)
    if ((mask & (1u << d)) && t->shape[d] == 0)
      arg_error(L, c, jdim, "dimension %d has size 0: %s has no identity", d + 1, c->fn);
}

static void no_complex(lua_State *L, const lt_tensor *t) {
  if (lm_kindof(t->dtype) == LT_KIND_COMPLEX)
    lt_argerror(L, 1, "not supported for complex tensors");
}

static void need_float_or_complex(lua_State *L, lt_dtype dt) {
  if (lm_kindof(dt) <= LT_KIND_INT)
    lt_argerror(L, 1, "expected a floating point or complex tensor, got %s", lt_dtypes[dt].name);
}

/* the real dtype of a complex one (var, std, norm results) */
static lt_dtype real_of(lt_dtype dt) {
  return dt == LT_COMPLEX64 ? LT_FLOAT32 : dt == LT_COMPLEX128 ? LT_FLOAT64 : dt;
}

/* t converted to dtype dt (a pushed copy) when dt differs */
static lt_tensor *cast_to(lua_State *L, lt_tensor *t, lt_dtype dt) {
  return t->dtype == dt ? t : lm_push_copy(L, t, dt);
}

/* ---- reductions -------------------------------------------------------- */

static const char *const N_SUM[] = {"dim", "keepdim", "dtype", NULL};
static const char *const N_DIMKEEP[] = {"dim", "keepdim", NULL};
static const char *const N_VAR[] = {"dim", "unbiased", "keepdim", "correction", NULL};
static const char *const N_VAR_U[] = {"unbiased", "dim", "keepdim", "correction", NULL};
static const char *const N_NORM[] = {"p", "dim", "keepdim", "dtype", NULL};

/* the reductions of values: sum mean prod var std norm any all amax amin
   logsumexp */
static int reduce(lua_State *L, int op, const char *fn) {
  lt_tensor *t = lm_checkt(L, 1);
  callargs c;
  lt_reduce_op r = {op, 2, 1};
  int jdim = 0, jkeep = 1, jdtype = -1;
  switch (op) {
    case LT_RD_SUM: case LT_RD_MEAN: case LT_RD_PROD:
      parse(L, &c, fn, N_SUM, 2);
      jdtype = 2;
      break;
    case LT_RD_VAR: case LT_RD_STD: {
      int ubool = lua_isboolean(L, 2);   /* var(input, unbiased) */
      parse(L, &c, fn, ubool ? N_VAR_U : N_VAR, ubool ? 1 : 3);
      int ju = ubool ? 0 : 1;
      jdim = ubool ? 1 : 0;
      jkeep = 2;
      if (has(&c, ju) && has(&c, 3))
        arg_error(L, &c, 3, "give unbiased or correction, not both");
      if (has(&c, 3)) {
        if (lua_type(L, c.at[3]) != LUA_TNUMBER) arg_error(L, &c, 3, "number expected, got %s", type_of(L, &c, 3));
        r.correction = lua_tonumber(L, c.at[3]);
      } else {
        r.correction = get_bool(L, &c, ju, 1) ? 1 : 0;
      }
      break;
    }
    case LT_RD_NORM:
      parse(L, &c, fn, N_NORM, 4);
      jdim = 1;
      jkeep = 2;
      jdtype = 3;
      if (has(&c, 0)) {
        int i = c.at[0];
        if (lua_type(L, i) == LUA_TNUMBER) r.p = lua_tonumber(L, i);
        else if (lua_type(L, i) == LUA_TSTRING) {
          const char *s = lua_tostring(L, i);
          if (strcmp(s, "fro") == 0) r.p = 2;
          else if (strcmp(s, "inf") == 0) r.p = INFINITY;
          else if (strcmp(s, "-inf") == 0) r.p = -INFINITY;
          else if (strcmp(s, "nuc") == 0) arg_error(L, &c, 0, "the nuclear norm is not supported");
          else arg_error(L, &c, 0, "p must be a number, 'fro', 'inf' or '-inf', got '%s'", s);
        } else {
          arg_error(L, &c, 0, "number or string expected, got %s", type_of(L, &c, 0));
        }
        if (isnan(r.p)) arg_error(L, &c, 0, "p must not be nan");
      }
      break;
    default:
      parse(L, &c, fn, N_DIMKEEP, 2);
  }
  int keepdim = get_bool(L, &c, jkeep, 0);
  uint32_t mask = get_dims(L, &c, jdim, t->ndim);
  int k = lm_kindof(t->dtype);
  lt_tensor *x = t;
  if (has(&c, jdtype)) {
    lt_dtype dt = get_dtype(L, &c, jdtype);
    if ((op == LT_RD_MEAN || op == LT_RD_NORM) && lm_kindof(dt) <= LT_KIND_INT)
      arg_error(L, &c, jdtype, "expected a floating point or complex dtype, got %s", lt_dtypes[dt].name);
    x = cast_to(L, t, dt);       /* PyTorch casts the input first */
    k = lm_kindof(dt);
  }
  lt_dtype od = x->dtype;
  switch (op) {
    case LT_RD_SUM: case LT_RD_PROD:
      if (k <= LT_KIND_INT && !has(&c, jdtype)) od = LT_INT64;
      break;
    case LT_RD_MEAN:
      need_float_or_complex(L, x->dtype);
      break;
    case LT_RD_VAR: case LT_RD_STD: case LT_RD_NORM:
      need_float_or_complex(L, x->dtype);
      if (!(op == LT_RD_NORM && has(&c, jdtype))) od = real_of(x->dtype);   /* norm: dtype as given */
      break;
    case LT_RD_ANY: case LT_RD_ALL:
      od = x->dtype == LT_UINT8 ? LT_UINT8 : LT_BOOL;   /* PyTorch 1.13 keeps uint8 */
      break;
    case LT_RD_AMAX: case LT_RD_AMIN:
      no_complex(L, x);
      need_nonempty(L, &c, jdim, x, mask);
      break;
    case LT_RD_LOGSUMEXP:
      no_complex(L, x);
      if (!has(&c, jdim)) arg_error(L, &c, jdim, "integer or list of integers expected, got no value");
      if (k != LT_KIND_FLOAT) od = LT_FLOAT32;
      break;
  }
  int64_t shape[LT_MAX_DIMS];
  int nd = reduced_shape(x, mask, keepdim, shape);
  lt_tensor *out = lt_push_new(L, od, nd, shape, 0);
  lt_reduce(&r, x, mask, out, NULL);
  return 1;
}

static int l_sum(lua_State *L) { return reduce(L, LT_RD_SUM, "sum"); }
static int l_mean(lua_State *L) { return reduce(L, LT_RD_MEAN, "mean"); }
static int l_prod(lua_State *L) { return reduce(L, LT_RD_PROD, "prod"); }
static int l_var(lua_State *L) { return reduce(L, LT_RD_VAR, "var"); }
static int l_std(lua_State *L) { return reduce(L, LT_RD_STD, "std"); }
static int l_norm(lua_State *L) { return reduce(L, LT_RD_NORM, "norm"); }
static int l_any(lua_State *L) { return reduce(L, LT_RD_ANY, "any"); }
static int l_all(lua_State *L) { return reduce(L, LT_RD_ALL, "all"); }
static int l_amax(lua_State *L) { return reduce(L, LT_RD_AMAX, "amax"); }
static int l_amin(lua_State *L) { return reduce(L, LT_RD_AMIN, "amin"); }
static int l_logsumexp(lua_State *L) { return reduce(L, LT_RD_LOGSUMEXP, "logsumexp"); }

/* ---- max, min, argmax, argmin ------------------------------------------ */

static void add_one(lt_tensor *idx) {
  int64_t *p = (int64_t *)lt_data(idx);
  for (int64_t i = 0, n = lt_numel(idx); i < n; i++) p[i] += 1;
}

/* max(t) -> value; max(t, dim [, keepdim]) -> values, 1-based indices;
   max(t, other) -> maximum(t, other). argmax: the indices only; without a
   dim the position in the flattened tensor */
static int maxmin(lua_State *L, int want_max, int arg, const char *fn) {
  lt_tensor *t = lm_checkt(L, 1);
  if (!arg && lm_testt(L, 2)) {          /* the elementwise form */
    if (lua_gettop(L) > 2)
      lt_argerror(L, 3, "no arguments expected after the other tensor");
    /* maximum's C function run in this call, not through lua_call: its
       errors name the call as written (t:max(u), torch.max(t, u)) */
    lua_getfield(L, 1, want_max ? "maximum" : "minimum");
    lua_CFunction f = lt_tocfunction(L, -1);
    if (f) { lua_pop(L, 1); return f(L); }
    lua_insert(L, 1);                    /* replaced by Lua code: called as it is */
    lua_call(L, 2, 1);
    return 1;
  }
  callargs c;
  parse(L, &c, fn, N_DIMKEEP, 2);
  no_complex(L, t);
  int keepdim = get_bool(L, &c, 1, 0);
  int hasdim = has(&c, 0);
  if (hasdim && lua_type(L, c.at[0]) != LUA_TNUMBER)
    arg_error(L, &c, 0, "integer expected, got %s", type_of(L, &c, 0));
  if (!arg && !hasdim && has(&c, 1)) arg_error(L, &c, 1, "keepdim needs a dim");
  uint32_t mask = get_dims(L, &c, 0, t->ndim);
  need_nonempty(L, &c, 0, t, mask);
  lt_reduce_op r = {want_max ? LT_RD_MAX : LT_RD_MIN, 0, 0};
  int64_t shape[LT_MAX_DIMS];
  int nd = reduced_shape(t, mask, keepdim, shape);
  if (!hasdim && !keepdim) nd = 0;
  lt_tensor *vals = lt_push_new(L, t->dtype, nd, shape, 0);
  int vi = lua_gettop(L);
  /* the value alone (t:max()) needs no index, and has a faster path */
  lt_tensor *idx = hasdim || arg ? lt_push_new(L, LT_INT64, nd, shape, 0) : NULL;
  lt_reduce(&r, t, mask, vals, idx);
  if (idx) add_one(idx);
  if (arg) return 1;
  if (!hasdim) { lua_pushvalue(L, vi); return 1; }
  lua_pushvalue(L, vi);
  lua_insert(L, -2);
  return 2;
}

static int l_max(lua_State *L) { return maxmin(L, 1, 0, "max"); }
static int l_min(lua_State *L) { return maxmin(L, 0, 0, "min"); }
static int l_argmax(lua_State *L) { return maxmin(L, 1, 1, "argmax"); }
static int l_argmin(lua_State *L) { return maxmin(L, 0, 1, "argmin"); }

/* ---- scans ------------------------------------------------------------- */

static const char *const N_SCAN[] = {"dim", "dtype", NULL};

/* cumsum(t, dim [, {dtype =}]): bool and integers give int64 */
static int scan(lua_State *L, int op, const char *fn) {
  lt_tensor *t = lm_checkt(L, 1);
  callargs c;
  parse(L, &c, fn, N_SCAN, 1);
  int d = get_dim(L, &c, 0, t->ndim, -1);
  lt_tensor *x = has(&c, 1) ? cast_to(L, t, get_dtype(L, &c, 1)) : t;
  lt_dtype od = lm_kindof(x->dtype) <= LT_KIND_INT && !has(&c, 1) ? LT_INT64 : x->dtype;
  lt_tensor *out = lt_push_new(L, od, x->ndim, x->shape, 0);
  lt_scan(op, x, d, out);
  return 1;
}

static int l_cumsum(lua_State *L) { return scan(L, LT_SCAN_CUMSUM, "cumsum"); }
static int l_cumprod(lua_State *L) { return scan(L, LT_SCAN_CUMPROD, "cumprod"); }

/* ---- sorting ----------------------------------------------------------- */

static const char *const N_SORT[] = {"dim", "descending", "stable", NULL};
static const char *const N_TOPK[] = {"k", "dim", "largest", "sorted", NULL};

/* sorts t along d, keeping k of each line; pushes values (when wanted) then
   1-based indices */
static void sort_push(lua_State *L, lt_tensor *t, int d, int descending, int64_t k, int values) {
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  if (t->ndim) shape[d] = k;
  int64_t n = t->ndim ? t->shape[d] : 1;
  lt_tensor *vals = values ? lt_push_new(L, t->dtype, t->ndim, shape, 0) : NULL;
  lt_tensor *idx = lt_push_new(L, LT_INT64, t->ndim, shape, 0);
  /* the keys of one line and the merge's room: int64 pairs of two */
  int64_t wn = 4 * (n > 0 ? n : 1);
  lt_tensor *work = lt_push_new(L, LT_INT64, 1, &wn, 0);
  lt_sort(t, d, descending, k, vals, idx, (lt_sortkey *)lt_data(work));
  lua_pop(L, 1);
  add_one(idx);
}

static void need_sortable(lua_State *L, const lt_tensor *t) {
  no_complex(L, t);
}

static int sort_or_argsort(lua_State *L, int values, const char *fn) {
  lt_tensor *t = lm_checkt(L, 1);
  callargs c;
  parse(L, &c, fn, N_SORT, 3);
  int d = get_dim(L, &c, 0, t->ndim, t->ndim ? t->ndim - 1 : 0);
  int descending = get_bool(L, &c, 1, 0);
  get_bool(L, &c, 2, 0);            /* every sort is stable */
  need_sortable(L, t);
  int64_t n = t->ndim ? t->shape[d] : 1;
  sort_push(L, t, d, descending, n, values);
  return values ? 2 : 1;
}

static int l_sort(lua_State *L) { return sort_or_argsort(L, 1, "sort"); }
static int l_argsort(lua_State *L) { return sort_or_argsort(L, 0, "argsort"); }

/* topk(t, k [, dim = -1, largest = true, sorted = true]): always sorted */
static int l_topk(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  callargs c;
  parse(L, &c, "topk", N_TOPK, 4);
  lua_Integer k = get_int(L, &c, 0);
  int d = get_dim(L, &c, 1, t->ndim, t->ndim ? t->ndim - 1 : 0);
  int largest = get_bool(L, &c, 2, 1);
  get_bool(L, &c, 3, 1);
  need_sortable(L, t);
  int64_t n = t->ndim ? t->shape[d] : 1;
  if (k < 0 || k > n)
    arg_error(L, &c, 0, "k %lld out of range for dimension %d of size %lld", k, d + 1, (lua_Integer)n);
  sort_push(L, t, d, largest, k, 1);
  return 2;
}

/* ---- softmax ----------------------------------------------------------- */

static const char *const N_SOFTMAX[] = {"dim", "dtype", NULL};

/* softmax(t, dim [, dtype]): float64 computed in double, the other float
   dtypes in float32 (sums in double); integer input gives float32 */
static int softmax(lua_State *L, int log_, const char *fn) {
  lt_tensor *t = lm_checkt(L, 1);
  callargs c;
  parse(L, &c, fn, N_SOFTMAX, 2);
  int d = get_dim(L, &c, 0, t->ndim, -1);
  no_complex(L, t);
  lt_dtype od = lm_kindof(t->dtype) == LT_KIND_FLOAT ? t->dtype : LT_FLOAT32;
  if (has(&c, 1)) {
    od = get_dtype(L, &c, 1);
    if (lm_kindof(od) != LT_KIND_FLOAT)
      arg_error(L, &c, 1, "expected a floating point dtype, got %s", lt_dtypes[od].name);
  }
  int64_t outer = 1, n = 1, inner = 1;
  if (t->ndim > 0) {
    outer = lm_prod(t->shape, 0, d);
    n = t->shape[d];
    inner = lm_prod(t->shape, d + 1, t->ndim);
  }
  /* PyTorch casts to dtype first: a float64 input with dtype float32 is
     rounded before the softmax */
  lt_tensor *src = t;
  if (has(&c, 1) && od != LT_FLOAT64 && t->dtype != od) src = lm_push_copy(L, t, od);
  if (od != LT_FLOAT64 && src->dtype != LT_FLOAT64) {
    /* float32, float16, bfloat16: in float32, one exp per element */
    lt_tensor *x = lm_push_copy(L, src, LT_FLOAT32);
    float *buf = lua_newuserdatauv(L, (size_t)(2 * n + 1) * sizeof(float), 0);
    lt_softmax_f32((float *)lt_data(x), outer, n, inner, log_, buf);
    lua_pop(L, 1);
    if (od != LT_FLOAT32) lm_push_convert(L, x, od);
    return 1;
  }
  lt_tensor *x = lm_push_copy(L, src, LT_FLOAT64);
  lt_softmax_f64((double *)lt_data(x), outer, n, inner, log_);
  if (od != LT_FLOAT64) lm_push_convert(L, x, od);
  return 1;
}

static int l_softmax(lua_State *L) { return softmax(L, 0, "softmax"); }
static int l_log_softmax(lua_State *L) { return softmax(L, 1, "log_softmax"); }

/* ---- registration ------------------------------------------------------ */

/* ---- uint64 through the order-based ops --------------------------------- */

/* x ^ 2^63 maps uint64's order onto int64's: f runs on the flipped int64
   copy of a uint64 argument #1, and its first nvalues results (values, not
   indices) are flipped back to uint64 */
static void flip_sign(lt_tensor *t) {
  uint64_t *p = (uint64_t *)lt_data(t);
  for (int64_t i = 0, n = lt_numel(t); i < n; i++) p[i] ^= (uint64_t)1 << 63;
}

static int u64_ordered(lua_State *L, lua_CFunction f, int nvalues) {
  lt_tensor *t = lt_test(L, 1);
  if (!t || t->dtype != LT_UINT64) return f(L);
  lt_tensor *c = lm_push_copy(L, t, LT_UINT64);
  flip_sign(c);
  c->dtype = LT_INT64;
  lua_replace(L, 1);
  int n = f(L), top = lua_gettop(L);
  for (int i = 0; i < nvalues && i < n; i++) {
    lt_tensor *r = lt_test(L, top - n + 1 + i);
    if (r && r->dtype == LT_INT64) {
      r = lm_push_copy(L, r, LT_INT64);   /* its own memory, whatever f returned */
      flip_sign(r);
      r->dtype = LT_UINT64;
      lua_replace(L, top - n + 1 + i);
    }
  }
  return n;
}

static int u_amax(lua_State *L) { return u64_ordered(L, l_amax, 1); }
static int u_amin(lua_State *L) { return u64_ordered(L, l_amin, 1); }
static int u_max(lua_State *L) { return u64_ordered(L, l_max, 1); }
static int u_min(lua_State *L) { return u64_ordered(L, l_min, 1); }
static int u_argmax(lua_State *L) { return u64_ordered(L, l_argmax, 0); }
static int u_argmin(lua_State *L) { return u64_ordered(L, l_argmin, 0); }
static int u_sort(lua_State *L) { return u64_ordered(L, l_sort, 1); }
static int u_argsort(lua_State *L) { return u64_ordered(L, l_argsort, 0); }
static int u_topk(lua_State *L) { return u64_ordered(L, l_topk, 1); }

static const luaL_Reg funcs[] = {
  {NULL, NULL}
};

/* module functions that are tensor methods too */
static const luaL_Reg both[] = {
  {"sum", l_sum}, {"mean", l_mean}, {"prod", l_prod}, {"var", l_var}, {"std", l_std},
  {"norm", l_norm}, {"any", l_any}, {"all", l_all}, {"amax", u_amax}, {"amin", u_amin},
  {"logsumexp", l_logsumexp},
  {"max", u_max}, {"min", u_min}, {"argmax", u_argmax}, {"argmin", u_argmin},
  {"cumsum", l_cumsum}, {"cumprod", l_cumprod},
  {"sort", u_sort}, {"argsort", u_argsort}, {"topk", u_topk},
  {"softmax", l_softmax}, {"log_softmax", l_log_softmax},
  {NULL, NULL}
};

const lt_binding lt_reduce_binding = {funcs, NULL, both, NULL, NULL};
