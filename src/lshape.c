/*
** lshape.c: the Lua binding of indexing and shape ops: gather scatter
** scatter_add index_select tril triu chunk split flip roll tile
** repeat_interleave diag outer, and the batched products bmm and baddbmm.
** Every function is torch.X(t, ...) and t:X(...). Dims and indices are
** 1-based (negative dims count from the end); index tensors hold 1-based
** values. The kernels are in shape.c; the products go through lm_matmul
** (OpenBLAS). Outputs are new contiguous tensors, except chunk and split,
** which return views (several values, as PyTorch returns a tuple).
** Errors go through luaL_argerror, so they number arguments as the call was
** written (t:gather(2, i) and torch.gather(t, 2, i) name i #2 and #3).
*/
#include <string.h>
#include <stdio.h>
#include "lmath.h"
#include "shape.h"

/* ---- helpers ----------------------------------------------------------- */

/* the tensor at arg, with what it is in the type error ("index tensor
   expected, got nil"); a freed tensor raises as lt_check does */
static lt_tensor *check_tensor(lua_State *L, int arg, const char *what) {
  lt_tensor *t = lm_testt(L, arg);
  if (!t) {
    if (luaL_testudata(L, arg, LT_TENSOR_MT)) lt_check(L, arg);
    luaL_typeerror(L, arg, what);
  }
  return t;
}

/* the options table at arg (nil or absent: none): every key must be one of
   valid ("bad option 'x' to 'scatter' (valid options: reduce)") */
static void check_opts(lua_State *L, int arg, const char *fn, const char *const *valid) {
  if (lua_isnoneornil(L, arg)) return;
  if (!lua_istable(L, arg)) luaL_typeerror(L, arg, "table of options");
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int ok = 0;
    for (int i = 0; k && valid[i]; i++) if (strcmp(k, valid[i]) == 0) ok = 1;
    if (!ok) {
      const char *kn = k ? k : luaL_tolstring(L, -1, NULL);
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; valid[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, valid[i]);
      }
      luaL_pushresult(&b);
      luaL_error(L, "bad option '%s' to '%s' (valid options: %s)", kn, fn,
                 lua_tostring(L, -1));
    }
  }
}

/* option key of the table at arg pushed (nil when absent or no table) */
static int get_opt(lua_State *L, int arg, const char *key) {
  if (!lua_istable(L, arg)) { lua_pushnil(L); return LUA_TNIL; }
  return lua_getfield(L, arg, key);
}

/* a fresh int64 scratch buffer of n elements (GC-owned: pushed) */
static int64_t *scratch(lua_State *L, int64_t n) {
  int64_t m = n > 0 ? n : 1;
  return (int64_t *)lt_data(lt_push_new(L, LT_INT64, 1, &m, 0));
}

/* a list of integers at arg: one integer, a table of them, or (varargs)
   the integers from arg on; returns the count (at most LT_MAX_DIMS) */
static int int_list(lua_State *L, int arg, int varargs, const char *what, lua_Integer *out) {
  int n = 0;
  if (lua_istable(L, arg)) {
    lua_Integer len = luaL_len(L, arg);
    if (len > LT_MAX_DIMS) lt_argerror(L, arg, "%s: %lld given, the limit is %d", what, len, LT_MAX_DIMS);
    for (int i = 1; i <= (int)len; i++) {
      int isint;
      lua_geti(L, arg, i);
      out[n++] = lua_tointegerx(L, -1, &isint);
      lua_pop(L, 1);
      if (!isint) lt_argerror(L, arg, "%s must be integers", what);
    }
    return n;
  }
  int top = varargs ? lua_gettop(L) : arg;
  for (int i = arg; i <= top; i++) {
    if (!lua_isinteger(L, i)) {
      if (i > arg && varargs && lua_isnoneornil(L, i)) break;
      lt_argerror(L, i, "%s must be integers or a table of them, got %s", what, luaL_typename(L, i));
    }
    if (n >= LT_MAX_DIMS) lt_argerror(L, i, "%s: more than the limit of %d", what, LT_MAX_DIMS);
    out[n++] = lua_tointeger(L, i);
  }
  return n;
}

/* raise the error of a failed index check of the index tensor at arg */
static int bad_index(lua_State *L, int arg, const lt_badindex *b) {
  return lt_argerror(L, arg, "index %lld is out of range for dim %d of size %lld (indices are 1-based)",
                     (lua_Integer)b->value, b->dim + 1, (lua_Integer)b->n);
}

/* an index tensor of int64 (or int32 too, with int32_ok) at arg */
static lt_tensor *check_index_tensor(lua_State *L, int arg, int int32_ok) {
  lt_tensor *ix = check_tensor(L, arg, "index tensor");
  if (ix->dtype != LT_INT64 && !(int32_ok && ix->dtype == LT_INT32))
    lt_argerror(L, arg, "index tensor must be %s, got %s", int32_ok ? "int64 or int32" : "int64",
                lt_dtypes[ix->dtype].name);
  return ix;
}

static const char *shape_str(char *buf, size_t n, const lt_tensor *t) {
  return lm_shape_str(buf, n, t->ndim, t->shape);
}

/* ---- gather and scatter ------------------------------------------------ */

/* t as the kernels see it: a 0-dim tensor as 1-D of size 1 (gather and
   scatter treat ranks 0 and 1 alike, as PyTorch does) */
static lt_tensor as1d(const lt_tensor *t) {
  lt_tensor v = *t;
  if (v.ndim == 0) { v.ndim = 1; v.shape[0] = 1; v.stride[0] = 0; }
  return v;
}

/* index (at arg 3) against the input t (gather: every dim but d; scatter
   too) and, for scatter, src (at 4: every dim) */
static void check_index_shape(lua_State *L, const lt_tensor *t, int d, const lt_tensor *ix,
                              const lt_tensor *src) {
  char s1[256], s2[256];
  lt_tensor T = as1d(t), I = as1d(ix);
  if (I.ndim != T.ndim)
    lt_argerror(L, 3, "index %s must have the rank of the input %s", shape_str(s1, sizeof s1, ix),
                shape_str(s2, sizeof s2, t));
  for (int i = 0; i < I.ndim; i++)
    if (i != d && I.shape[i] > T.shape[i])
      lt_argerror(L, 3, "index %s is larger than the input %s in dim %d", shape_str(s1, sizeof s1, ix),
                  shape_str(s2, sizeof s2, t), i + 1);
  if (!src) return;
  lt_tensor S = as1d(src);
  if (S.ndim != I.ndim)
    lt_argerror(L, 4, "src %s must have the rank of the index %s", shape_str(s1, sizeof s1, src),
                shape_str(s2, sizeof s2, ix));
  for (int i = 0; i < I.ndim; i++)
    if (I.shape[i] > S.shape[i])
      lt_argerror(L, 4, "src %s is smaller than the index %s in dim %d", shape_str(s1, sizeof s1, src),
                  shape_str(s2, sizeof s2, ix), i + 1);
}

/* gather(t, dim, index [, {sparse_grad=}]): out[c] = t[c with c[dim] =
   index[c]], of index's shape */
static int l_gather(lua_State *L) {
  static const char *const opts[] = {"sparse_grad", NULL};
  lt_tensor *t = lm_checkt(L, 1);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  lt_tensor *ix = check_index_tensor(L, 3, 0);
  check_opts(L, 4, "gather", opts);
  check_index_shape(L, t, d, ix, NULL);
  lt_tensor *out = lt_push_new(L, t->dtype, ix->ndim, ix->shape, 0);
  lt_tensor o = as1d(out), in = as1d(t), idx = as1d(ix);
  lt_badindex b;
  if (lt_gather_dim(&o, &in, d, &idx, &b)) bad_index(L, 3, &b);
  return 1;
}

/* scatter(t, dim, index, src | value [, {reduce = "add" | "multiply"}]),
   scatter_add(t, dim, index, src): out of place */
static int scatter(lua_State *L, const char *name, int fixed_op) {
  static const char *const opts[] = {"reduce", NULL};
  static const char *const none[] = {NULL};
  lt_tensor *t = lm_checkt(L, 1);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  lt_tensor *ix = check_index_tensor(L, 3, 0);
  lt_tensor *src = lm_testt(L, 4);
  int isnum = lua_type(L, 4) == LUA_TNUMBER || lua_type(L, 4) == LUA_TBOOLEAN;
  if (!src && (fixed_op >= 0 || !isnum)) {
    if (luaL_testudata(L, 4, LT_TENSOR_MT)) lt_check(L, 4);
    luaL_typeerror(L, 4, fixed_op >= 0 ? "src tensor" : "src tensor or number");
  }
  check_opts(L, 5, name, fixed_op >= 0 ? none : opts);
  int op = fixed_op >= 0 ? fixed_op : LT_SCATTER_SET;
  if (fixed_op < 0 && get_opt(L, 5, "reduce") != LUA_TNIL) {
    static const char *const reds[] = {"add", "multiply", NULL};
    const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int k = -1;
    for (int i = 0; r && reds[i]; i++) if (strcmp(r, reds[i]) == 0) k = i;
    if (k < 0)
      luaL_error(L, "bad option 'reduce' to '%s' ('add' or 'multiply' expected, got %s)", name,
                 r ? r : luaL_typename(L, -1));
    op = k == 0 ? LT_SCATTER_ADD : LT_SCATTER_MUL;
  }
  lua_settop(L, 4);
  if (src && src->dtype != t->dtype)
    lt_argerror(L, 4, "src has dtype %s, expected the input's %s", lt_dtypes[src->dtype].name,
                lt_dtypes[t->dtype].name);
  check_index_shape(L, t, d, ix, src);
  lt_tensor idx = as1d(ix), sv;
  if (src) sv = as1d(src);
  else {                               /* the value, as a 0-dim tensor broadcast */
    lt_tensor *v = lt_push_new(L, t->dtype, 0, NULL, 0);
    lt_to_elem(L, 4, t->dtype, lt_data(v));
    sv = *v;
    sv.ndim = idx.ndim;
    for (int i = 0; i < idx.ndim; i++) { sv.shape[i] = idx.shape[i]; sv.stride[i] = 0; }
  }
  lt_tensor *out = lm_push_copy(L, t, t->dtype);
  int oi = lua_gettop(L);
  lt_tensor o = as1d(out);
  lt_badindex b;
  if (lt_scatter_dim(&o, d, &idx, &sv, op, &b)) bad_index(L, 3, &b);
  lua_pushvalue(L, oi);
  return 1;
}

static int l_scatter(lua_State *L) { return scatter(L, "scatter", -1); }
static int l_scatter_add(lua_State *L) { return scatter(L, "scatter_add", LT_SCATTER_ADD); }

/* index_select(t, dim, index): the slices at the 1-based indices of a 1-D
   (or 0-dim) int64 or int32 index */
static int l_index_select(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  lt_tensor *ix = check_index_tensor(L, 3, 1);
  if (ix->ndim > 1) lt_argerror(L, 3, "index must be 1-D or 0-dim, got %d-D", ix->ndim);
  int64_t cnt = lt_numel(ix), n = t->ndim ? t->shape[d] : 1;
  int64_t *map = scratch(L, cnt);
  size_t isz = lt_dtypes[ix->dtype].size;
  int64_t st = ix->ndim ? ix->stride[0] : 0;
  for (int64_t k = 0; k < cnt; k++) {
    int64_t v = lt_get_i64(ix->dtype, lt_data(ix) + k * st * (int64_t)isz);
    if (v < 1 || v > n) {
      lt_badindex b = {v, d, n};
      bad_index(L, 3, &b);
    }
    map[k] = v - 1;
  }
  if (t->ndim == 0) { lm_push_copy(L, t, t->dtype); return 1; }
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[d] = cnt;
  lt_tensor *out = lt_push_new(L, t->dtype, t->ndim, shape, 0);
  const int64_t *maps[LT_MAX_DIMS] = {NULL};
  maps[d] = map;
  lt_remap(out, t, maps);
  return 1;
}

/* ---- triangles and diagonals ------------------------------------------- */

static int tri(lua_State *L, int upper) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer k = luaL_optinteger(L, 2, 0);
  if (t->ndim < 2) lt_argerror(L, 1, "expected a tensor of at least 2 dims, got %d-D", t->ndim);
  lt_tensor *out = lm_push_copy(L, t, t->dtype);
  lt_tri_zero(out, k, upper);
  return 1;
}

static int l_tril(lua_State *L) { return tri(L, 0); }
static int l_triu(lua_State *L) { return tri(L, 1); }

/* diag(t [, diagonal = 0]): a 1-D t on diagonal k of a square matrix, or
   diagonal k of a 2-D t (empty past the edge) */
static int l_diag(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer k = luaL_optinteger(L, 2, 0);
  if (t->ndim == 1) {
    if (k > INT32_MAX || k < -INT32_MAX) lt_argerror(L, 2, "diagonal %lld is too far from the main one", k);
    int64_t n = t->shape[0], ak = k < 0 ? -k : k;
    int64_t m = n + ak, shape[2] = {m, m};
    if (lt_shape_numel(2, shape) < 0) lt_argerror(L, 2, "diagonal %lld makes a matrix too large", k);
    lt_tensor *out = lt_push_new(L, t->dtype, 2, shape, 1);
    lt_tensor v = *out;
    v.ndim = 1;
    v.shape[0] = n;
    v.stride[0] = m + 1;
    v.offset += k >= 0 ? k : -k * m;
    lt_copy(&v, t);
    return 1;
  }
  if (t->ndim != 2) lt_argerror(L, 1, "expected a 1-D or 2-D tensor, got %d-D", t->ndim);
  int64_t R = t->shape[0], C = t->shape[1], len;
  if (k >= 0) len = k < C ? (R < C - k ? R : C - k) : 0;
  else len = k > -R ? (C < R + k ? C : R + k) : 0;
  lt_tensor v = *t;
  v.ndim = 1;
  v.shape[0] = len;
  v.stride[0] = t->stride[0] + t->stride[1];
  if (len > 0) v.offset += k >= 0 ? k * t->stride[1] : -k * t->stride[0];
  lm_push_copy(L, &v, t->dtype);
  return 1;
}

/* ---- chunk and split: views -------------------------------------------- */

/* push the views of t along d of the given sizes (they sum to its size) */
static int push_pieces(lua_State *L, lt_tensor *t, int d, const int64_t *sizes, int64_t n) {
  if (n > 1000000) luaL_error(L, "too many pieces (%I)", (lua_Integer)n);
  luaL_checkstack(L, (int)n + 2, "too many pieces");
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    lt_tensor v = *t;
    v.offset += at * t->stride[d];
    v.shape[d] = sizes[i];
    lt_push_view(L, &v);
    at += sizes[i];
  }
  return (int)n;
}

/* the views of split(t, size) along d: pieces of size, the last smaller */
static int split_even(lua_State *L, lt_tensor *t, int d, int64_t size, int arg) {
  int64_t n = t->shape[d];
  if (size < 0) lt_argerror(L, arg, "split size must not be negative, got %lld", (lua_Integer)size);
  if (size == 0 && n != 0) lt_argerror(L, arg, "split size can be 0 only for a dim of size 0, got size %lld", (lua_Integer)n);
  int64_t cnt = size == 0 ? 1 : n / size + (n % size != 0);
  if (cnt < 1) cnt = 1;
  if (cnt > 1000000) luaL_error(L, "too many pieces (%I)", (lua_Integer)cnt);
  int64_t *sizes = scratch(L, cnt);
  for (int64_t i = 0; i < cnt; i++) sizes[i] = size;
  sizes[cnt - 1] = n - size * (cnt - 1);
  return push_pieces(L, t, d, sizes, cnt);
}

/* chunk(t, chunks [, dim = 1]) */
static int l_chunk(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lua_Integer chunks = luaL_checkinteger(L, 2);
  if (t->ndim == 0) lt_argerror(L, 1, "chunk needs a tensor of at least 1 dim");
  int d = lt_check_dim(L, 3, luaL_optinteger(L, 3, 1), t->ndim);
  if (chunks < 1) lt_argerror(L, 2, "chunks must be at least 1, got %lld", chunks);
  lua_settop(L, 1);
  int64_t n = t->shape[d];
  int64_t size = n / chunks + (n % chunks != 0);
  if (size == 0 && n == 0) {           /* chunks empty pieces, as PyTorch */
    if (chunks > 1000000) luaL_error(L, "too many pieces (%I)", chunks);
    int64_t *sizes = scratch(L, chunks);
    for (int64_t i = 0; i < chunks; i++) sizes[i] = 0;
    return push_pieces(L, t, d, sizes, chunks);
  }
  return split_even(L, t, d, size, 2);
}

/* split(t, size | sizes [, dim = 1]) */
static int l_split(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->ndim == 0) lt_argerror(L, 1, "split needs a tensor of at least 1 dim");
  int d = lt_check_dim(L, 3, luaL_optinteger(L, 3, 1), t->ndim);
  if (!lua_istable(L, 2)) {
    lua_Integer size = luaL_checkinteger(L, 2);
    lua_settop(L, 2);
    return split_even(L, t, d, size, 2);
  }
  lua_Integer cnt = luaL_len(L, 2);
  if (cnt < 0 || cnt > 1000000) lt_argerror(L, 2, "too many sizes");
  lua_settop(L, 2);
  int64_t *sizes = scratch(L, cnt), sum = 0;
  for (lua_Integer i = 0; i < cnt; i++) {
    int isint;
    lua_geti(L, 2, i + 1);
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || v < 0) lt_argerror(L, 2, "split sizes must be integers of at least 0");
    sizes[i] = v;
    sum += v;
    if (sum > t->shape[d]) break;
  }
  if (sum != t->shape[d])
    lt_argerror(L, 2, "split sizes must sum to %lld, the size of dim %d", (lua_Integer)t->shape[d], d + 1);
  return push_pieces(L, t, d, sizes, cnt);
}

/* ---- flip, roll, tile, repeat_interleave ------------------------------- */

/* the distinct 0-based dims listed from arg (a table, one integer or
   varargs) into seen (0/1 per dim); returns how many */
static int dim_list(lua_State *L, int arg, const lt_tensor *t, int varargs, int *dims) {
  lua_Integer v[LT_MAX_DIMS];
  int n = int_list(L, arg, varargs, "dims", v);
  for (int i = 0; i < n; i++) {
    dims[i] = lt_check_dim(L, arg, v[i], t->ndim);
    for (int j = 0; j < i; j++)
      if (dims[j] == dims[i]) lt_argerror(L, arg, "dim %d appears more than once in the dims", dims[i] + 1);
  }
  return n;
}

/* flip(t, dims): a copy with the order along each listed dim reversed */
static int l_flip(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  int dims[LT_MAX_DIMS];
  luaL_checkany(L, 2);
  int n = dim_list(L, 2, t, 1, dims);
  lt_tensor v = *t;
  if (t->ndim > 0) {
    for (int i = 0; i < n; i++) {
      int d = dims[i];
      if (v.shape[d] > 1) {
        v.offset += (v.shape[d] - 1) * v.stride[d];
        v.stride[d] = -v.stride[d];
      }
    }
  }
  lm_push_copy(L, &v, t->dtype);
  return 1;
}

/* roll(t, shifts [, dims]): without dims, over the flattened tensor */
static int l_roll(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer sh[LT_MAX_DIMS];
  int ns = int_list(L, 2, 0, "shifts", sh);
  if (lua_isnoneornil(L, 3)) {
    if (ns != 1) lt_argerror(L, 2, "one shift is needed when no dims are given, got %d", ns);
    lt_tensor *c = lm_contig(L, t, t->dtype);
    lt_tensor *out = lt_push_new(L, t->dtype, t->ndim, t->shape, 0);
    int64_t n = lt_numel(t);
    if (n == 0) return 1;
    lt_tensor fin = *c, fout = *out;
    fin.ndim = fout.ndim = 1;
    fin.shape[0] = fout.shape[0] = n;
    fin.stride[0] = fout.stride[0] = 1;
    int64_t *map = scratch(L, n), s = (int64_t)(sh[0] % n);
    for (int64_t k = 0; k < n; k++) map[k] = ((k - s) % n + n) % n;
    const int64_t *maps[1] = {map};
    lt_remap(&fout, &fin, maps);
    lua_pop(L, 1);
    return 1;
  }
  lua_Integer dv[LT_MAX_DIMS];
  int nd = int_list(L, 3, 0, "dims", dv);
  if (nd != ns) lt_argerror(L, 3, "%d dims given for %d shifts", nd, ns);
  int64_t total[LT_MAX_DIMS] = {0};
  int used[LT_MAX_DIMS] = {0};
  for (int i = 0; i < nd; i++) {
    int d = lt_check_dim(L, 3, dv[i], t->ndim);
    if (t->ndim == 0) continue;
    int64_t n = t->shape[d];
    if (n == 0) continue;
    total[d] = (total[d] + sh[i] % n) % n;
    used[d] = 1;
  }
  lt_tensor *out = lt_push_new(L, t->dtype, t->ndim, t->shape, 0);
  int oi = lua_gettop(L);
  const int64_t *maps[LT_MAX_DIMS] = {NULL};
  for (int d = 0; d < t->ndim; d++) {
    if (!used[d] || total[d] == 0) continue;
    int64_t n = t->shape[d], *map = scratch(L, n);
    for (int64_t k = 0; k < n; k++) map[k] = ((k - total[d]) % n + n) % n;
    maps[d] = map;
  }
  lt_remap(out, t, maps);
  lua_pushvalue(L, oi);
  return 1;
}

/* tile(t, reps): PyTorch's t.repeat(reps) when #reps >= t:dim() (new
   leading dims for the extra reps), torch.tile's padding of reps with
   leading 1s when fewer */
static int l_tile(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer r[LT_MAX_DIMS];
  luaL_checkany(L, 2);
  int nr = int_list(L, 2, 1, "reps", r);
  int nd = nr > t->ndim ? nr : t->ndim;
  lt_tensor in = *t;                   /* t with leading dims of size 1 */
  in.ndim = nd;
  int64_t reps[LT_MAX_DIMS], shape[LT_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int j = i - (nd - t->ndim), q = i - (nd - nr);
    in.shape[i] = j >= 0 ? t->shape[j] : 1;
    in.stride[i] = j >= 0 ? t->stride[j] : 0;
    reps[i] = q >= 0 ? r[q] : 1;
    if (reps[i] < 0) lt_argerror(L, 2, "reps must not be negative, got %lld", (lua_Integer)reps[i]);
    if (reps[i] > 0 && in.shape[i] > INT64_MAX / reps[i]) lt_argerror(L, 2, "reps make a tensor too large");
    shape[i] = in.shape[i] * reps[i];
  }
  if (lt_shape_numel(nd, shape) < 0) lt_argerror(L, 2, "reps make a tensor too large");
  lt_tensor *out = lt_push_new(L, t->dtype, nd, shape, 0);
  int oi = lua_gettop(L);
  const int64_t *maps[LT_MAX_DIMS] = {NULL};
  if (lt_numel(out) > 0) {
    for (int i = 0; i < nd; i++) {
      if (reps[i] == 1) continue;
      int64_t *map = scratch(L, shape[i]);
      for (int64_t k = 0; k < shape[i]; k++) map[k] = k % in.shape[i];
      maps[i] = map;
    }
  }
  lt_remap(out, &in, maps);
  lua_pushvalue(L, oi);
  return 1;
}

/* repeat_interleave(t, repeats [, dim] [, {output_size=}]): each slice
   along dim repeated; repeats an integer or a 0-dim/1-D int64 or int32
   tensor (one count per slice, or one for all); without dim, over the
   flattened tensor */
static int l_repeat_interleave(lua_State *L) {
  static const char *const opts[] = {"output_size", NULL};
  lt_tensor *t = lm_checkt(L, 1);
  int optarg = lua_istable(L, 3) ? 3 : 4;
  check_opts(L, optarg, "repeat_interleave", opts);
  int has_dim = optarg == 4 && !lua_isnoneornil(L, 3);
  lt_tensor in = *t;
  if (!has_dim) {                      /* flattened: a contiguous 1-D view */
    lt_tensor *c = lm_contig(L, t, t->dtype);
    in = *c;
    in.ndim = 1;
    in.shape[0] = lt_numel(t);
    in.stride[0] = 1;
  } else if (in.ndim == 0) {           /* a 0-dim tensor along its one "dim" */
    lt_check_dim(L, 3, luaL_checkinteger(L, 3), 0);
    in.ndim = 1;
    in.shape[0] = 1;
    in.stride[0] = 1;
  }
  int d = has_dim ? lt_check_dim(L, 3, luaL_checkinteger(L, 3), in.ndim) : 0;
  int64_t n = in.shape[d], total = 0;
  lt_tensor *rt = lm_testt(L, 2);
  int64_t one = 0, per = 0;            /* one count for all, or per slice (rt) */
  if (rt) {
    if (rt->dtype != LT_INT64 && rt->dtype != LT_INT32)
      lt_argerror(L, 2, "repeats must be an int64 or int32 tensor, got %s", lt_dtypes[rt->dtype].name);
    if (rt->ndim > 1) lt_argerror(L, 2, "repeats must be 0-dim or 1-D, got %d-D", rt->ndim);
    int64_t m = lt_numel(rt);
    if (m == 1) one = lt_get_i64(rt->dtype, lt_data(rt));
    else if (m != n) lt_argerror(L, 2, "repeats has %lld counts for dim %d of size %lld", (lua_Integer)m, d + 1, (lua_Integer)n);
    else per = 1;
  } else {
    if (!lua_isinteger(L, 2)) luaL_typeerror(L, 2, "integer or tensor of repeats");
    one = lua_tointeger(L, 2);
  }
  int64_t *counts = per ? scratch(L, n) : NULL;
  if (per) {
    size_t isz = lt_dtypes[rt->dtype].size;
    for (int64_t k = 0; k < n; k++) counts[k] = lt_get_i64(rt->dtype, lt_data(rt) + k * rt->stride[0] * (int64_t)isz);
  }
  for (int64_t k = 0; k < (per ? n : 1); k++) {
    int64_t c = per ? counts[k] : one;
    if (c < 0) lt_argerror(L, 2, "repeats must not be negative, got %lld", (lua_Integer)c);
  }
  if (per) {
    for (int64_t k = 0; k < n; k++) {
      if (counts[k] > INT64_MAX - total) lt_argerror(L, 2, "repeats make a tensor too large");
      total += counts[k];
    }
  } else {
    if (one > 0 && n > INT64_MAX / one) lt_argerror(L, 2, "repeats make a tensor too large");
    total = n * one;
  }
  if (get_opt(L, optarg, "output_size") != LUA_TNIL) {
    int isint;
    lua_Integer os = lua_tointegerx(L, -1, &isint);
    if (!isint || os != total)
      luaL_error(L, "bad option 'output_size' to 'repeat_interleave' (the repeats sum to %I, got %s)",
                 (lua_Integer)total, luaL_tolstring(L, -1, NULL));
  }
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, in.shape, sizeof(int64_t) * (size_t)in.ndim);
  shape[d] = total;
  if (lt_shape_numel(in.ndim, shape) < 0) lt_argerror(L, 2, "repeats make a tensor too large");
  lt_tensor *out = lt_push_new(L, t->dtype, in.ndim, shape, 0);
  int oi = lua_gettop(L);
  int64_t *map = scratch(L, total);
  for (int64_t k = 0, at = 0; k < n; k++)
    for (int64_t j = 0, c = per ? counts[k] : one; j < c; j++) map[at++] = k;
  const int64_t *maps[LT_MAX_DIMS] = {NULL};
  maps[d] = map;
  lt_remap(out, &in, maps);
  lua_pushvalue(L, oi);
  return 1;
}

/* ---- outer, bmm, baddbmm ------------------------------------------------ */

/* outer(a, b): a[i] * b[j], promoted */
static int l_outer(lua_State *L) {
  lt_tensor *a = check_tensor(L, 1, "tensor"), *b = check_tensor(L, 2, "tensor");
  if (a->ndim != 1) lt_argerror(L, 1, "expected a 1-D tensor, got %d-D", a->ndim);
  if (b->ndim != 1) lt_argerror(L, 2, "expected a 1-D tensor, got %d-D", b->ndim);
  lt_dtype od = lm_promote(L, a->dtype, b->dtype);
  int64_t shape[2] = {a->shape[0], b->shape[0]};
  lt_tensor *out = lt_push_new(L, od, 2, shape, 0);
  lt_tensor ea = *a, eb = *b;
  ea.ndim = eb.ndim = 2;
  ea.shape[1] = shape[1]; ea.stride[1] = 0;
  eb.shape[1] = shape[1]; eb.stride[1] = b->stride[0];
  eb.shape[0] = shape[0]; eb.stride[0] = 0;
  lt_binary(LT_OP_MUL, lm_domain_of(od), &ea, &eb, out);
  return 1;
}

/* the batched operands a (B x N x M) and b (B x M x P) at 1 and 2 of arg */
static void check_batches(lua_State *L, int arg, const lt_tensor *a, const lt_tensor *b) {
  char s1[256], s2[256];
  if (a->ndim != 3) lt_argerror(L, arg, "expected a 3-D tensor, got %d-D", a->ndim);
  if (b->ndim != 3) lt_argerror(L, arg + 1, "expected a 3-D tensor, got %d-D", b->ndim);
  if (a->shape[0] != b->shape[0] || a->shape[2] != b->shape[1])
    lt_argerror(L, arg + 1, "size mismatch: %s by %s (expected %lld x %lld x P)", shape_str(s1, sizeof s1, a),
                shape_str(s2, sizeof s2, b), (lua_Integer)a->shape[0], (lua_Integer)a->shape[2]);
}

/* bmm(a, b): one product per batch entry, no broadcasting */
static int l_bmm(lua_State *L) {
  lt_tensor *a = check_tensor(L, 1, "tensor"), *b = check_tensor(L, 2, "tensor");
  check_batches(L, 1, a, b);
  lm_matmul(L, a, b, 1);
  return 1;
}

/* a number option of the table at arg, or def */
static double num_opt(lua_State *L, int arg, const char *key, const char *fn, double def, int *isint) {
  int ty = get_opt(L, arg, key);
  double v = def;
  *isint = 1;
  if (ty != LUA_TNIL) {
    if (ty != LUA_TNUMBER)
      luaL_error(L, "bad option '%s' to '%s' (number expected, got %s)", key, fn, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    *isint = lua_isinteger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* baddbmm(input, a, b [, {beta = 1, alpha = 1}]): beta * input + alpha *
   bmm(a, b), input broadcast to the product's shape; with beta 0 input is
   not read (its nan and inf do not propagate), as in PyTorch */
static int l_baddbmm(lua_State *L) {
  static const char *const opts[] = {"beta", "alpha", NULL};
  lt_tensor *in = check_tensor(L, 1, "tensor");
  lt_tensor *a = check_tensor(L, 2, "tensor"), *b = check_tensor(L, 3, "tensor");
  check_opts(L, 4, "baddbmm", opts);
  int bi, ai;
  double beta = num_opt(L, 4, "beta", "baddbmm", 1, &bi), alpha = num_opt(L, 4, "alpha", "baddbmm", 1, &ai);
  lua_settop(L, 4);
  check_batches(L, 2, a, b);
  lt_tensor *r = lm_matmul(L, a, b, 2);
  int64_t bs[LT_MAX_DIMS];
  int nd = lt_broadcast_shape(in->ndim, in->shape, 3, r->shape, bs);
  if (nd != 3 || memcmp(bs, r->shape, sizeof(int64_t) * 3) != 0) {
    char s1[256], s2[256];
    lt_argerror(L, 1, "input %s cannot be broadcast to the product's %s", shape_str(s1, sizeof s1, in),
                shape_str(s2, sizeof s2, r));
  }
  lt_dtype od = lm_promote(L, in->dtype, r->dtype);
  int dom = lm_domain_of(od);
  lt_tensor *out = lt_push_new(L, od, 3, r->shape, 0);
  int oi = lua_gettop(L);
  /* the scalars as 0-dim tensors of the compute domain, expanded */
  lua_pushnumber(L, alpha);
  if (ai) { lua_pop(L, 1); lua_pushinteger(L, (lua_Integer)alpha); }
  lt_tensor sa;
  lt_expand_view(lm_push_scalar(L, lua_gettop(L), od), 3, r->shape, &sa);
  if (alpha == 1) lt_copy(out, r);
  else lt_binary(LT_OP_MUL, dom, r, &sa, out);
  if (beta != 0) {
    lt_tensor ein;
    lt_expand_view(in, 3, r->shape, &ein);
    if (beta == 1) {
      lt_binary(LT_OP_ADD, dom, out, &ein, out);
    } else {
      if (bi) lua_pushinteger(L, (lua_Integer)beta);
      else lua_pushnumber(L, beta);
      lt_tensor sb;
      lt_expand_view(lm_push_scalar(L, lua_gettop(L), od), 3, r->shape, &sb);
      lt_tensor *tmp = lt_push_new(L, od, 3, r->shape, 0);
      lt_binary(LT_OP_MUL, dom, &ein, &sb, tmp);
      lt_binary(LT_OP_ADD, dom, out, tmp, out);
    }
  }
  lua_pushvalue(L, oi);
  return 1;
}

/* ---- registration ------------------------------------------------------ */

static const luaL_Reg both[] = {
  {"gather", l_gather}, {"scatter", l_scatter}, {"scatter_add", l_scatter_add},
  {"index_select", l_index_select}, {"tril", l_tril}, {"triu", l_triu}, {"diag", l_diag},
  {"chunk", l_chunk}, {"split", l_split}, {"flip", l_flip}, {"roll", l_roll},
  {"tile", l_tile}, {"repeat_interleave", l_repeat_interleave},
  {"outer", l_outer}, {"bmm", l_bmm}, {"baddbmm", l_baddbmm},
  {NULL, NULL}
};

const lt_binding lt_shape_binding = {NULL, NULL, both, NULL, NULL};
