/*
** ltorch.c: the Lua binding of the tensor core, and luaopen_ltorch_core.
** Tensors are full userdata (metatable "ltorch.Tensor") holding an lt_tensor
** whose storage is reference counted in C, so views share storage and
** t:free() releases this view's reference at once. Tensor bytes are
** reported to the GC (lt_gc_account) so loops of temporaries stay bounded.
** Dims and indices are 1-based here and 0-based in the core.
*/
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <math.h>
#include <unistd.h>
#include <time.h>
#include "lt_lua.h"
#include "ltorch.h"

/* ---- userdata ------------------------------------------------------------ */

/* the bytes of a deferred storage (deferred.c) are read on first use */
static void need_data(lua_State *L, lt_tensor *t) {
  if (t->storage->device == LT_CUDA)
    luaL_error(L, "the tensor is on cuda:%d: CPU math and element access need it on the CPU (t:cpu())",
               t->storage->device_index);
  if (!lt_storage_pending(t->storage)) return;
  char err[LT_MSG];
  /* err names the file ("path: ..."): raised as it is, with no position */
  if (lt_storage_fill(t->storage, err)) { lua_pushstring(L, err); lua_error(L); }
  lt_gc_account(L);
}

lt_tensor *lt_test(lua_State *L, int idx) {
  lt_tensor *t = luaL_testudata(L, idx, LT_TENSOR_MT);
  if (!t || !t->storage) return NULL;
  need_data(L, t);
  return t;
}

lt_tensor *lt_check_meta(lua_State *L, int idx) {
  return lt_usable_meta(L, luaL_checkudata(L, idx, LT_TENSOR_MT));
}

lt_tensor *lt_usable_meta(lua_State *L, lt_tensor *t) {
  if (!t->storage) luaL_error(L, "attempt to use a freed tensor");
  if (t->storage->mapped) {
    const lt_mapping *m = t->storage->ctx;
    const char *path = lt_guard_changed(m->guard);
    if (path) lt_mapguard_raise(L, path);
  }
  return t;
}

/* Every binding runs through guarded, a closure over the binding
   (lt_push_guarded, used by linit.c): when the thread faulted in a file
   mapping during the call (the file was cut short under an mmap = true
   load, mapguard.c), what the call computed came partly from zero pages,
   so it raises instead of returning. */
static int guarded(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  unsigned faults = lt_mapguard_faults();
  unsigned long all = lt_mapguard_all_faults();
  int nargs = lua_gettop(L);
  int n = f(L);
  if (lt_mapguard_faults() != faults) return lt_mapguard_raise(L, lt_mapguard_last());
  if (lt_mapguard_all_faults() != all) {
    /* another thread faulted (OpenBLAS's workers run a gemm's reads): the
       call's tensor arguments say whether it was in their mapping */
    for (int i = 1; i <= nargs; i++) {
      const lt_tensor *t = luaL_testudata(L, i, LT_TENSOR_MT);
      if (t && t->storage && t->storage->mapped) {
        const char *path = lt_guard_changed(((const lt_mapping *)t->storage->ctx)->guard);
        if (path) return lt_mapguard_raise(L, path);
      }
    }
  }
  return n;
}

void lt_push_guarded(lua_State *L) { lua_pushcclosure(L, guarded, 1); }

lua_CFunction lt_tocfunction(lua_State *L, int idx) {
  lua_CFunction f = lua_tocfunction(L, idx);
  if (f != guarded) return f;
  lua_getupvalue(L, idx, 1);
  f = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  return f;
}

int lt_mapguard_raise(lua_State *L, const char *path) {
  return lt_file_error(L, path, NULL, "the file changed under its mapping (cut short by another "
                       "program after a load with mmap = true): its tensors are gone; load it again");
}

lt_tensor *lt_check(lua_State *L, int idx) {
  lt_tensor *t = lt_check_meta(L, idx);
  need_data(L, t);
  return t;
}

/* for views: a CPU tensor's data is read (as lt_check), a CUDA tensor's
   is left where it is */
static lt_tensor *check_view(lua_State *L, int idx) {
  lt_tensor *t = lt_check_meta(L, idx);
  if (t->storage->device != LT_CUDA) need_data(L, t);
  return t;
}

/* a new userdata with no storage yet: __gc is safe from the start */
static lt_tensor *newempty(lua_State *L) {
  lt_tensor *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, LT_TENSOR_MT);
  return t;
}

lt_tensor *lt_push_view(lua_State *L, const lt_tensor *proto) {
  lt_tensor *t = newempty(L);
  *t = *proto;
  lt_storage_retain(t->storage);
  return t;
}

lt_tensor *lt_push_storage(lua_State *L, lt_storage *s, lt_dtype dt, int ndim,
                           const int64_t *shape, const int64_t *stride, int64_t offset) {
  lt_tensor *t = newempty(L);
  t->storage = s;       /* owned from here: __gc releases it even if we raise */
  t->dtype = dt;
  t->ndim = ndim;
  t->offset = offset;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  if (stride) for (int i = 0; i < ndim; i++) t->stride[i] = stride[i];
  else lt_contiguous_strides(ndim, t->shape, t->stride);
  return t;
}

void *lt_newbox(lua_State *L, size_t size, const char *mt, lua_CFunction gc) {
  void *b = lua_newuserdatauv(L, size, 0);
  memset(b, 0, size);
  if (luaL_newmetatable(L, mt)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static int ptrbox_gc(lua_State *L) {
  lt_ptrbox *b = lua_touserdata(L, 1);
  if (b->p) b->release(b->p);
  b->p = NULL;
  return 0;
}

lt_ptrbox *lt_newptrbox(lua_State *L, void (*release)(void *)) {
  lt_ptrbox *b = lt_newbox(L, sizeof *b, "ltorch.ptrbox", ptrbox_gc);
  b->release = release;
  return b;
}

typedef struct pace { size_t threshold, dthreshold; uint64_t rng[4]; } pace;
static const char PACE_KEY = 'p';

static pace *getpace(lua_State *L) {
  pace *p;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &PACE_KEY);
  p = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return p;
}

/* A full collection runs once the live tensor bytes have grown by WINDOW
   (or by half, for a bigger heap) since the last one. The window matches
   storage.c's freed-block cache: the blocks a loop of ops drops between two
   collections fit in it and come back without fresh pages, which cost a
   fault and a zeroed page each; growing by half keeps a long load from
   collecting quadratically often. */
#define WINDOW ((size_t)64 << 20)
#define DWINDOW ((size_t)256 << 20)   /* device bytes between collections */

void lt_gc_account(lua_State *L) {
  pace *p = getpace(L);
  if (!p) return;
  size_t live = lt_storage_live_bytes(), dlive = lt_cuda_live_bytes();
  if (live > p->threshold || dlive > p->dthreshold) {
    lua_gc(L, LUA_GCCOLLECT);
    live = lt_storage_live_bytes();
    p->threshold = live + (live / 2 > WINDOW ? live / 2 : WINDOW);
    /* device memory counted on its own: a GPU's gigabytes are not the host's */
    dlive = lt_cuda_live_bytes();
    p->dthreshold = dlive + (dlive / 2 > DWINDOW ? dlive / 2 : DWINDOW);
  }
}

lt_tensor *lt_push_new(lua_State *L, lt_dtype dt, int ndim, const int64_t *shape, int zero) {
  int64_t n = lt_shape_numel(ndim, shape);
  size_t isz = lt_dtypes[dt].size;
  if (n < 0 || (uint64_t)n > SIZE_MAX / isz) luaL_error(L, "tensor size overflows");
  size_t nbytes = (size_t)n * isz;
  lt_gc_account(L);
  lt_tensor *t = newempty(L);
  lt_storage *s = lt_storage_new(nbytes, zero);
  if (!s) luaL_error(L, "not enough memory for a tensor of %zu bytes", nbytes);
  t->storage = s;
  t->dtype = dt;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  lt_contiguous_strides(ndim, t->shape, t->stride);
  return t;
}

static int t_free(lua_State *L) {
  lt_tensor *t = luaL_checkudata(L, 1, LT_TENSOR_MT);
  if (t->storage) {
    lt_storage *s = t->storage;
    t->storage = NULL;
    lt_storage_release(s);
  }
  return 0;
}

/* ---- argument helpers ---------------------------------------------------- */

const char *lt_pushvf(lua_State *L, const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0) return lua_pushstring(L, fmt);   /* an encoding error: the format as it is */
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  luaL_pushresultsize(&b, (size_t)n);
  return lua_tostring(L, -1);
}

int lt_argerror(lua_State *L, int arg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = lt_pushvf(L, fmt, ap);
  va_end(ap);
  return luaL_argerror(L, arg, msg);
}

/* luaL_argerror's rule (lauxlib.c): the running function's call, level 0 */
int lt_argnum(lua_State *L, int arg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && strcmp(ar.namewhat, "method") == 0) return arg - 1;
  return arg;
}

int lt_argerror_in(lua_State *L, int arg, const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = lt_pushvf(L, fmt, ap);
  va_end(ap);
  if (!name) return luaL_argerror(L, arg, msg);
  int n = lt_argnum(L, arg);
  if (n == 0) return luaL_error(L, "calling '%s' on bad self (%s)", name, msg);
  return luaL_error(L, "bad argument #%d to '%s' (%s)", n, name, msg);
}

lt_dtype lt_check_dtype(lua_State *L, int idx, int def) {
  if (lua_isnoneornil(L, idx) && def >= 0) return (lt_dtype)def;
  const char *name = luaL_checkstring(L, idx);
  int d = lt_dtype_from_name(name);
  if (d < 0) {
    const char *msg = lua_pushfstring(L, "unknown dtype '%s'", name);
    luaL_argerror(L, idx, msg);
  }
  return (lt_dtype)d;
}

static int64_t checksize(lua_State *L, int arg, int isint, lua_Integer v) {
  if (!isint) luaL_argerror(L, arg, "sizes must be integers");
  if (v < 0) luaL_argerror(L, arg, lua_pushfstring(L, "negative size %I", v));
  return v;
}

int lt_check_sizes(lua_State *L, int first, int64_t *shape) {
  int n = 0;
  if (lua_istable(L, first)) {
    int len = (int)luaL_len(L, first);
    if (len > LT_MAX_DIMS) luaL_argerror(L, first, lua_pushfstring(L, "rank %d exceeds the limit of %d", len, LT_MAX_DIMS));
    for (int i = 1; i <= len; i++) {
      int isint;
      lua_geti(L, first, i);
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      lua_pop(L, 1);
      shape[n++] = checksize(L, first, isint, v);
    }
    return n;
  }
  int top = lua_gettop(L);
  for (int i = first; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
    int isint;
    lua_Integer v = lua_tointegerx(L, i, &isint);
    if (n >= LT_MAX_DIMS) luaL_argerror(L, i, lua_pushfstring(L, "rank exceeds the limit of %d", LT_MAX_DIMS));
    shape[n++] = checksize(L, i, isint, v);
  }
  return n;
}

/* index of the first argument after the sizes (the options table, if any) */
static int after_sizes(lua_State *L, int first) {
  if (lua_istable(L, first) && !lua_isnoneornil(L, first) && lua_rawlen(L, first) > 0) return first + 1;
  int i = first;
  while (lua_type(L, i) == LUA_TNUMBER) i++;
  if (i == first && lua_istable(L, first)) {
    /* an empty table: sizes {} (0-dim) unless it holds options */
    lua_getfield(L, first, "dtype");
    lua_getfield(L, first, "device");
    int opts = !lua_isnil(L, -1) || !lua_isnil(L, -2);
    lua_pop(L, 2);
    return opts ? first : first + 1;
  }
  return i;
}

static void check_device_opt(lua_State *L, int opts) {
  if (!lua_istable(L, opts)) return;
  lua_getfield(L, opts, "device");
  if (!lua_isnil(L, -1)) {
    const char *dev = luaL_checkstring(L, -1);
    int d = lt_parse_device(dev);
    if (d == -2) luaL_error(L, "bad option 'device' (unknown device '%s')", dev);
    if (d >= 0) luaL_error(L, "device '%s': this function makes CPU tensors; move the result with :to('%s')", dev, dev);
  }
  lua_pop(L, 1);
}

int lt_parse_device(const char *s) {
  if (!strcmp(s, "cpu")) return -1;
  if (strncmp(s, "cuda", 4)) return -2;
  if (s[4] == 0) return 0;
  if (s[4] != ':' || s[5] < '0' || s[5] > '9') return -2;
  long v = 0;
  for (const char *p = s + 5; *p; p++) {
    if (*p < '0' || *p > '9' || v > 100000) return -2;
    v = v * 10 + (*p - '0');
  }
  return (int)v;
}

/* the dtype field of an options table */
lt_dtype lt_opt_dtype(lua_State *L, int opts, lt_dtype def) {
  lt_dtype d = def;
  if (lua_istable(L, opts)) {
    lua_getfield(L, opts, "dtype");
    if (!lua_isnil(L, -1)) {
      const char *name = lua_tostring(L, -1);
      int k = name ? lt_dtype_from_name(name) : -1;
      if (k < 0) luaL_argerror(L, opts, lua_pushfstring(L, "unknown dtype '%s'", name ? name : luaL_typename(L, -1)));
      d = (lt_dtype)k;
    }
    lua_pop(L, 1);
  } else if (!lua_isnoneornil(L, opts)) {
    luaL_typeerror(L, opts, "table of options");
  }
  return d;
}

/* a creation function's options: dtype, and device "cpu" (init.lua moves
   what is asked for on a GPU) */
static lt_dtype opt_dtype(lua_State *L, int opts, lt_dtype def) {
  lt_dtype d = lt_opt_dtype(L, opts, def);
  check_device_opt(L, opts);
  return d;
}

int lt_check_dim(lua_State *L, int arg, lua_Integer d, int ndim) {
  int n = ndim > 0 ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    luaL_argerror(L, arg, lua_pushfstring(L, "dimension %I out of range (expected 1 to %d, or -%d to -1)", d, n, n));
  return (int)(d > 0 ? d - 1 : n + d);
}

/* ---- elements ------------------------------------------------------------ */

void lt_push_elem(lua_State *L, lt_dtype dt, const void *p) {
  switch (lt_dtypes[dt].kind) {
    case LT_KIND_BOOL: lua_pushboolean(L, *(const uint8_t *)p != 0); break;
    case LT_KIND_INT: lua_pushinteger(L, lt_get_i64(dt, p)); break;
    case LT_KIND_FLOAT: lua_pushnumber(L, lt_get_f64(dt, p)); break;
    default: {
      double c[2];
      lt_get_c128(dt, p, c);
      lua_createtable(L, 2, 0);
      lua_pushnumber(L, c[0]); lua_rawseti(L, -2, 1);
      lua_pushnumber(L, c[1]); lua_rawseti(L, -2, 2);
    }
  }
}

void lt_to_elem(lua_State *L, int idx, lt_dtype dt, void *p) {
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: lt_set_i64(dt, p, lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) lt_set_i64(dt, p, lua_tointeger(L, idx));
      else lt_set_f64(dt, p, lua_tonumber(L, idx));
      break;
    case LUA_TTABLE: {
      double c[2];
      lua_geti(L, idx, 1); lua_geti(L, idx, 2);
      c[0] = lua_tonumber(L, -2); c[1] = lua_tonumber(L, -1);
      lua_pop(L, 2);
      lt_set_c128(dt, p, c);
      break;
    }
    default:
      luaL_error(L, "expected a number or boolean, got %s", luaL_typename(L, idx));
  }
}

/* ---- random numbers (xoshiro256**, seeded through splitmix64) ------------ */

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void seed(pace *p, uint64_t s) {
  for (int i = 0; i < 4; i++) p->rng[i] = splitmix(&s);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lt_rand_u64(lua_State *L) {
  uint64_t *s = getpace(L)->rng;
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t; s[3] = rotl(s[3], 45);
  return r;
}

double lt_rand_uniform(lua_State *L) { return (double)(lt_rand_u64(L) >> 11) * 0x1.0p-53; }

double lt_rand_normal(lua_State *L) {
  double u1 = lt_rand_uniform(L), u2 = lt_rand_uniform(L);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int l_manual_seed(lua_State *L) {
  seed(getpace(L), (uint64_t)luaL_checkinteger(L, 1));
  return 0;
}

/* ---- creation ------------------------------------------------------------ */

typedef struct nest { int ndim; int64_t shape[LT_MAX_DIMS]; int has_float, has_int, has_bool, has_complex; } nest;

static void scan(lua_State *L, int idx, int depth, nest *n) {
  if (lua_type(L, idx) == LUA_TTABLE && depth < LT_MAX_DIMS) {
    if (depth == n->ndim) {  /* first table seen at this depth sets the size */
      n->shape[depth] = (int64_t)lua_rawlen(L, idx);
      n->ndim = depth + 1;
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (len != n->shape[depth])
      luaL_error(L, "expected a sequence of length %I at dim %d (got %I)",
                 (lua_Integer)n->shape[depth], depth + 1, len);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      scan(L, lua_gettop(L), depth + 1, n);
      lua_pop(L, 1);
    }
    return;
  }
  if (depth != n->ndim)
    luaL_error(L, "expected a sequence at dim %d, got %s", depth + 1, luaL_typename(L, idx));
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: if (lua_isinteger(L, idx)) n->has_int = 1; else n->has_float = 1; break;
    case LUA_TBOOLEAN: n->has_bool = 1; break;
    default: luaL_error(L, "expected numbers or booleans in tensor data, got %s", luaL_typename(L, idx));
  }
}

static char *fill_nested(lua_State *L, int idx, int depth, int ndim, lt_dtype dt, char *p) {
  if (depth == ndim) { lt_to_elem(L, idx, dt, p); return p + lt_dtypes[dt].size; }
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    p = fill_nested(L, lua_gettop(L), depth + 1, ndim, dt, p);
    lua_pop(L, 1);
  }
  return p;
}

/* torch.tensor(data [, {dtype=, device=}]): a copy, dtype inferred as PyTorch */
static int l_tensor(lua_State *L) {
  lt_tensor *src = lt_test(L, 1);
  if (src) {
    lt_dtype dt = opt_dtype(L, 2, src->dtype);
    lt_tensor *t = lt_push_new(L, dt, src->ndim, src->shape, 0);
    lt_copy(t, src);
    return 1;
  }
  nest n;
  memset(&n, 0, sizeof n);
  luaL_argexpected(L, lua_istable(L, 1) || lua_isnumber(L, 1) || lua_isboolean(L, 1), 1, "table, number or boolean");
  scan(L, 1, 0, &n);
  lt_dtype def = n.has_float ? LT_FLOAT32 : n.has_int ? LT_INT64 : n.has_bool ? LT_BOOL : LT_FLOAT32;
  lt_dtype dt = opt_dtype(L, 2, def);
  lt_tensor *t = lt_push_new(L, dt, n.ndim, n.shape, 0);
  fill_nested(L, 1, 0, n.ndim, dt, lt_data(t));
  return 1;
}

static lt_tensor *create(lua_State *L, lt_dtype def, int zero, int first) {
  int64_t shape[LT_MAX_DIMS];
  int ndim = lt_check_sizes(L, first, shape);
  int opts = after_sizes(L, first);
  lt_dtype dt = opt_dtype(L, opts, def);
  return lt_push_new(L, dt, ndim, shape, zero);
}

static void fill_value(lt_tensor *t, const void *elem) {
  size_t isz = lt_dtypes[t->dtype].size;
  int64_t n = lt_numel(t);
  char *p = lt_data(t);
  int allzero = 1;
  for (size_t i = 0; i < isz; i++) if (((const char *)elem)[i]) allzero = 0;
  if (allzero && lt_is_contiguous(t)) { memset(p, 0, (size_t)n * isz); return; }
  if (lt_is_contiguous(t)) {
    for (int64_t i = 0; i < n; i++) memcpy(p + i * isz, elem, isz);
    return;
  }
  lt_iter it;
  lt_iter_init(&it, t);
  while (it.left > 0) memcpy(lt_iter_next(&it), elem, isz);
}

static int l_zeros(lua_State *L) { create(L, LT_FLOAT32, 1, 1); return 1; }
static int l_empty(lua_State *L) { create(L, LT_FLOAT32, 0, 1); return 1; }

static int l_ones(lua_State *L) {
  lt_tensor *t = create(L, LT_FLOAT32, 0, 1);
  char e[16];
  lt_set_i64(t->dtype, e, 1);
  fill_value(t, e);
  return 1;
}

/* torch.full(sizes, value [, opts]) */
static int l_full(lua_State *L) {
  int64_t shape[LT_MAX_DIMS];
  luaL_checktype(L, 1, LUA_TTABLE);
  int ndim = lt_check_sizes(L, 1, shape);
  lt_dtype def = lua_isboolean(L, 2) ? LT_BOOL : lua_isinteger(L, 2) ? LT_INT64 : LT_FLOAT32;
  luaL_checkany(L, 2);
  lt_dtype dt = opt_dtype(L, 3, def);
  lt_tensor *t = lt_push_new(L, dt, ndim, shape, 0);
  char e[16];
  lt_to_elem(L, 2, dt, e);
  fill_value(t, e);
  return 1;
}

static void need_float(lua_State *L, lt_dtype dt, const char *fn) {
  int k = lt_dtypes[dt].kind;
  if (k != LT_KIND_FLOAT && k != LT_KIND_COMPLEX)
    luaL_error(L, "'%s' expects a floating dtype, got '%s'", fn, lt_dtypes[dt].name);
}

/* torch.rand(sizes [, opts]) (uniform on [0, 1)) and torch.randn (standard
   normal) */
static int random_tensor(lua_State *L, int normal) {
  lt_tensor *t = create(L, LT_FLOAT32, 0, 1);
  need_float(L, t->dtype, normal ? "randn" : "rand");
  int64_t n = lt_numel(t);
  char *p = lt_data(t);
  size_t isz = lt_dtypes[t->dtype].size;
  if (normal) for (int64_t i = 0; i < n; i++) lt_set_f64(t->dtype, p + i * isz, lt_rand_normal(L));
  else if (t->dtype == LT_FLOAT32) for (int64_t i = 0; i < n; i++) ((float *)p)[i] = (float)(lt_rand_u64(L) >> 40) * 0x1.0p-24f;
  else for (int64_t i = 0; i < n; i++) lt_set_f64(t->dtype, p + i * isz, lt_rand_uniform(L));
  return 1;
}

static int l_rand(lua_State *L) { return random_tensor(L, 0); }
static int l_randn(lua_State *L) { return random_tensor(L, 1); }

/* torch.randint(low, high, sizes [, opts]) or torch.randint(high, sizes) */
static int l_randint(lua_State *L) {
  lua_Integer lo = 0, hi;
  int sz = 2;
  if (lua_isinteger(L, 2)) { lo = luaL_checkinteger(L, 1); hi = luaL_checkinteger(L, 2); sz = 3; }
  else hi = luaL_checkinteger(L, 1);
  if (hi <= lo) luaL_argerror(L, sz - 1, "expected low < high");
  luaL_checktype(L, sz, LUA_TTABLE);
  int64_t shape[LT_MAX_DIMS];
  int ndim = lt_check_sizes(L, sz, shape);
  lt_dtype dt = opt_dtype(L, sz + 1, LT_INT64);
  lt_tensor *t = lt_push_new(L, dt, ndim, shape, 0);
  int64_t n = lt_numel(t);
  uint64_t range = (uint64_t)hi - (uint64_t)lo;
  char *p = lt_data(t);
  size_t isz = lt_dtypes[dt].size;
  for (int64_t i = 0; i < n; i++)
    lt_set_i64(dt, p + i * isz, (int64_t)((uint64_t)lo + lt_rand_u64(L) % range));
  return 1;
}

/* torch.arange([start,] stop [, step] [, opts]) */
static int l_arange(lua_State *L) {
  int nargs = 0;
  while (lua_type(L, nargs + 1) == LUA_TNUMBER) nargs++;
  if (nargs < 1 || nargs > 3) luaL_error(L, "bad arguments to 'arange' (expected [start,] stop [, step])");
  int allint = 1;
  for (int i = 1; i <= nargs; i++) allint &= lua_isinteger(L, i);
  double start = 0, stop, step = 1;
  if (nargs == 1) stop = lua_tonumber(L, 1);
  else { start = lua_tonumber(L, 1); stop = lua_tonumber(L, 2); if (nargs == 3) step = lua_tonumber(L, 3); }
  if (step == 0) luaL_argerror(L, 3, "step must be nonzero");
  lt_dtype dt = opt_dtype(L, nargs + 1, allint ? LT_INT64 : LT_FLOAT32);
  double cnt = ceil((stop - start) / step);
  if (!(cnt < 9e18)) luaL_error(L, "arange: too many elements");
  int64_t n = cnt > 0 ? (int64_t)cnt : 0;
  lt_tensor *t = lt_push_new(L, dt, 1, &n, 0);
  char *p = lt_data(t);
  size_t isz = lt_dtypes[dt].size;
  if (allint && lt_dtypes[dt].kind == LT_KIND_INT) {
    lua_Integer s0 = nargs == 1 ? 0 : lua_tointeger(L, 1), st = nargs == 3 ? lua_tointeger(L, 3) : 1;
    for (int64_t i = 0; i < n; i++) lt_set_i64(dt, p + i * isz, s0 + i * st);
  } else {
    for (int64_t i = 0; i < n; i++) lt_set_f64(dt, p + i * isz, start + (double)i * step);
  }
  return 1;
}

static int l_linspace(lua_State *L) {
  double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
  lua_Integer n = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0, 3, "number of steps must be non-negative");
  lt_dtype dt = opt_dtype(L, 4, LT_FLOAT32);
  int64_t nn = n;
  lt_tensor *t = lt_push_new(L, dt, 1, &nn, 0);
  char *p = lt_data(t);
  size_t isz = lt_dtypes[dt].size;
  double step = n > 1 ? (b - a) / (double)(n - 1) : 0;
  /* as PyTorch: the first half counts up from a, the second down from b */
  for (int64_t i = 0; i < n; i++)
    lt_set_f64(dt, p + i * isz, i < n / 2 ? a + step * (double)i : b - step * (double)(n - 1 - i));
  return 1;
}

static int l_eye(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1), m = n;
  int opts = 2;
  if (lua_isinteger(L, 2)) { m = lua_tointeger(L, 2); opts = 3; }
  luaL_argcheck(L, n >= 0 && m >= 0, 1, "sizes must be non-negative");
  lt_dtype dt = opt_dtype(L, opts, LT_FLOAT32);
  int64_t shape[2] = {n, m};
  lt_tensor *t = lt_push_new(L, dt, 2, shape, 1);
  char *p = lt_data(t);
  size_t isz = lt_dtypes[dt].size;
  for (int64_t i = 0; i < n && i < m; i++) lt_set_i64(dt, p + (i * m + i) * isz, 1);
  return 1;
}

/* torch.frombytes(s, dtype [, sizes]) */
static int l_frombytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lt_dtype dt = lt_check_dtype(L, 2, -1);
  size_t isz = lt_dtypes[dt].size;
  int64_t shape[LT_MAX_DIMS];
  int ndim;
  if (lua_isnoneornil(L, 3)) {
    if (len % isz) luaL_argerror(L, 1, lua_pushfstring(L, "%d bytes is not a multiple of the %s size %d", (int)len, lt_dtypes[dt].name, (int)isz));
    shape[0] = (int64_t)(len / isz);
    ndim = 1;
  } else {
    ndim = lt_check_sizes(L, 3, shape);
    int64_t n = lt_shape_numel(ndim, shape);
    if (n < 0 || (uint64_t)n > len / isz || (size_t)n * isz != len)
      luaL_argerror(L, 1, lua_pushfstring(L, "expected %I bytes for the shape, got %I", (lua_Integer)(n < 0 ? -1 : n * (int64_t)isz), (lua_Integer)len));
  }
  lt_tensor *t = lt_push_new(L, dt, ndim, shape, 0);
  memcpy(lt_data(t), s, len);
  return 1;
}

/* core._isatty(fd): whether fd (0, 1 or 2) is a terminal, for progress bars */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core._clock(): monotonic seconds, for benchmarks */
static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
  return 1;
}

static int l_is_tensor(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, LT_TENSOR_MT) != NULL);
  return 1;
}

/* ---- accessors ----------------------------------------------------------- */

/* t:size([dim]) and t:stride([dim]), v being t's sizes or strides: the
   value of dim (1 for a 0-dim tensor), or all of them as a list */
static int per_dim(lua_State *L, const lt_tensor *t, const int64_t *v) {
  if (!lua_isnoneornil(L, 2)) {
    int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
    lua_pushinteger(L, t->ndim ? v[d] : 1);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, v[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}

static int t_size(lua_State *L) { lt_tensor *t = lt_check_meta(L, 1); return per_dim(L, t, t->shape); }
static int t_stride(lua_State *L) { lt_tensor *t = lt_check_meta(L, 1); return per_dim(L, t, t->stride); }

static int t_dim(lua_State *L) { lua_pushinteger(L, lt_check_meta(L, 1)->ndim); return 1; }
static int t_numel(lua_State *L) { lua_pushinteger(L, lt_numel(lt_check_meta(L, 1))); return 1; }
static int t_dtype(lua_State *L) { lua_pushstring(L, lt_dtypes[lt_check_meta(L, 1)->dtype].name); return 1; }
static int t_device(lua_State *L) {
  const lt_storage *s = lt_check_meta(L, 1)->storage;
  if (s->device == LT_CUDA) lua_pushfstring(L, "cuda:%d", s->device_index);
  else lua_pushliteral(L, "cpu");
  return 1;
}
static int t_offset(lua_State *L) { lua_pushinteger(L, lt_check_meta(L, 1)->offset); return 1; }
static int t_is_contiguous(lua_State *L) { lua_pushboolean(L, lt_is_contiguous(lt_check_meta(L, 1))); return 1; }
static int t_element_size(lua_State *L) { lua_pushinteger(L, (lua_Integer)lt_dtypes[lt_check_meta(L, 1)->dtype].size); return 1; }
/* a CUDA tensor's is its device address, as in PyTorch */
static int t_data_ptr(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->storage->device != LT_CUDA) t = lt_check(L, 1);
  lua_pushinteger(L, (lua_Integer)(intptr_t)lt_data(t));
  return 1;
}
static int t_is_freed(lua_State *L) {
  lt_tensor *t = luaL_checkudata(L, 1, LT_TENSOR_MT);
  lua_pushboolean(L, t->storage == NULL);
  return 1;
}

static int t_requires_grad(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (!lua_isnone(L, 2)) { t->requires_grad = lua_toboolean(L, 2); lua_settop(L, 1); return 1; }
  lua_pushboolean(L, t->requires_grad);
  return 1;
}

/* storage identity, bytes, whether it is a file mapping, and whether its
   bytes are still in the file (a deferred storage not read yet), for
   serializers that keep views shared and for specs */
static int t_storage_info(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lua_pushlightuserdata(L, t->storage);
  lua_pushinteger(L, (lua_Integer)t->storage->nbytes);
  lua_pushboolean(L, t->storage->mapped);
  lua_pushboolean(L, lt_storage_pending(t->storage));   /* still in its file (deferred) */
  return 4;
}

/* t:_storage_view(): a 1-D tensor of t's dtype over all of t's storage */
static int t_storage_view(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v;
  lt_storage_tensor(&v, t->storage, t->dtype);
  lt_push_view(L, &v);
  return 1;
}

/* t:_set_view(offset, sizes, strides): a view of the same storage */
static int t_as_strided(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  int64_t st[LT_MAX_DIMS];
  v.ndim = lt_check_sizes(L, 2, v.shape);
  luaL_checktype(L, 3, LUA_TTABLE);
  int ns = (int)luaL_len(L, 3);
  luaL_argcheck(L, ns == v.ndim, 3, "strides must match the sizes");
  for (int i = 0; i < ns; i++) { lua_geti(L, 3, i + 1); st[i] = luaL_checkinteger(L, -1); lua_pop(L, 1); v.stride[i] = st[i]; }
  v.offset = luaL_optinteger(L, 4, t->offset);
  char err[LT_MSG];
  if (lt_check_extent(&v, t->storage->nbytes, err)) luaL_error(L, "as_strided: %s", err);
  lt_push_view(L, &v);
  return 1;
}

/* ---- views --------------------------------------------------------------- */

/* the strides for viewing t as newshape without a copy (ATen's
   computeStride); 0 when impossible */
static int view_strides(const lt_tensor *t, int nd, const int64_t *ns, int64_t *out) {
  if (t->ndim == 0 || lt_numel(t) == 0) { lt_contiguous_strides(nd, ns, out); return 1; }
  int view_d = nd - 1;
  int64_t chunk = t->stride[t->ndim - 1], tnumel = 1, vnumel = 1;
  for (int td = t->ndim - 1; td >= 0; td--) {
    tnumel *= t->shape[td];
    if (td == 0 || (t->shape[td - 1] != 1 && t->stride[td - 1] != tnumel * chunk)) {
      while (view_d >= 0 && (vnumel < tnumel || ns[view_d] == 1)) {
        out[view_d] = vnumel * chunk;
        vnumel *= ns[view_d];
        view_d--;
      }
      if (vnumel != tnumel) return 0;
      if (td > 0) { chunk = t->stride[td - 1]; tnumel = 1; vnumel = 1; }
    }
  }
  return view_d == -1;
}

static void shape_str(luaL_Buffer *b, int nd, const int64_t *s) {
  char tmp[32];
  luaL_addchar(b, '{');
  for (int i = 0; i < nd; i++) {
    snprintf(tmp, sizeof tmp, i ? ", %lld" : "%lld", (long long)s[i]);
    luaL_addstring(b, tmp);
  }
  luaL_addchar(b, '}');
}

/* read the target shape of view/reshape, resolving one -1 */
static int target_shape(lua_State *L, lt_tensor *t, int64_t *ns, const char *fn) {
  int nd = 0, infer = -1;
  int istable = lua_istable(L, 2);
  int top = istable ? (int)luaL_len(L, 2) : lua_gettop(L) - 1;
  if (top > LT_MAX_DIMS) luaL_error(L, "%s: rank %d exceeds the limit of %d", fn, top, LT_MAX_DIMS);
  for (int i = 1; i <= top; i++) {
    lua_Integer v;
    if (istable) { lua_geti(L, 2, i); v = luaL_checkinteger(L, -1); lua_pop(L, 1); }
    else v = luaL_checkinteger(L, i + 1);
    if (v == -1) {
      if (infer >= 0) luaL_argerror(L, istable ? 2 : i + 1, "only one dimension can be inferred");
      infer = nd;
      v = 1;
    } else if (v < 0) luaL_argerror(L, istable ? 2 : i + 1, lua_pushfstring(L, "invalid shape dimension %I", v));
    ns[nd++] = v;
  }
  int64_t n = lt_numel(t), p = lt_shape_numel(nd, ns);
  if (infer >= 0 && p > 0 && n % p == 0) { ns[infer] = n / p; p = n; }
  else if (infer >= 0 && p == 0 && n == 0) { ns[infer] = 0; p = 0; }
  if (p != n) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "shape '");
    if (infer >= 0) ns[infer] = -1;
    shape_str(&b, nd, ns);
    lua_pushfstring(L, "' is invalid for input of size %I", (lua_Integer)n);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    luaL_argerror(L, 2, lua_tostring(L, -1));
  }
  return nd;
}

static int t_view(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  v.ndim = target_shape(L, t, v.shape, "view");
  if (!view_strides(t, v.ndim, v.shape, v.stride))
    luaL_argerror(L, 2, "view size is not compatible with input tensor's size and stride; use reshape instead");
  lt_push_view(L, &v);
  return 1;
}

lt_tensor *lt_push_contiguous_copy(lua_State *L, const lt_tensor *t, lt_dtype dt) {
  lt_tensor src = *t;   /* t may move if the GC runs a finalizer? no: userdata do not move */
  lt_tensor *c = lt_push_new(L, dt, src.ndim, src.shape, 0);
  lt_copy(c, &src);
  return c;
}

static int t_reshape(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  v.ndim = target_shape(L, t, v.shape, "reshape");
  if (view_strides(t, v.ndim, v.shape, v.stride)) { lt_push_view(L, &v); return 1; }
  need_data(L, t);
  lt_tensor *c = lt_push_contiguous_copy(L, t, t->dtype);
  c->ndim = v.ndim;
  memcpy(c->shape, v.shape, sizeof v.shape);
  lt_contiguous_strides(c->ndim, c->shape, c->stride);
  return 1;
}

static int t_transpose(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  if (t->ndim == 0) { lt_push_view(L, &v); return 1; }
  int a = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  int b = lt_check_dim(L, 3, luaL_checkinteger(L, 3), t->ndim);
  v.shape[a] = t->shape[b]; v.shape[b] = t->shape[a];
  v.stride[a] = t->stride[b]; v.stride[b] = t->stride[a];
  lt_push_view(L, &v);
  return 1;
}

static int t_t(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->ndim > 2) luaL_argerror(L, 1, lua_pushfstring(L, "expected a tensor with at most 2 dimensions, got %d", t->ndim));
  lt_tensor v = *t;
  if (t->ndim == 2) {
    v.shape[0] = t->shape[1]; v.shape[1] = t->shape[0];
    v.stride[0] = t->stride[1]; v.stride[1] = t->stride[0];
  }
  lt_push_view(L, &v);
  return 1;
}

static int t_permute(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  int istable = lua_istable(L, 2);
  int n = istable ? (int)luaL_len(L, 2) : lua_gettop(L) - 1;
  if (n != t->ndim) luaL_argerror(L, 2, lua_pushfstring(L, "expected %d dims, got %d", t->ndim, n));
  int seen[LT_MAX_DIMS] = {0};
  for (int i = 0; i < n; i++) {
    lua_Integer d;
    if (istable) { lua_geti(L, 2, i + 1); d = luaL_checkinteger(L, -1); lua_pop(L, 1); }
    else d = luaL_checkinteger(L, i + 2);
    int dd = lt_check_dim(L, istable ? 2 : i + 2, d, t->ndim);
    if (seen[dd]++) luaL_argerror(L, istable ? 2 : i + 2, lua_pushfstring(L, "repeated dim %I", d));
    v.shape[i] = t->shape[dd];
    v.stride[i] = t->stride[dd];
  }
  lt_push_view(L, &v);
  return 1;
}

static int t_squeeze(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_tensor v = *t;
  int only = -1;
  if (!lua_isnoneornil(L, 2)) only = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  v.ndim = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 1 && (only < 0 || only == i)) continue;
    v.shape[v.ndim] = t->shape[i];
    v.stride[v.ndim++] = t->stride[i];
  }
  lt_push_view(L, &v);
  return 1;
}

static int t_unsqueeze(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->ndim >= LT_MAX_DIMS) luaL_error(L, "unsqueeze: rank exceeds the limit of %d", LT_MAX_DIMS);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim + 1);
  lt_tensor v = *t;
  v.ndim = t->ndim + 1;
  for (int i = 0, j = 0; i < v.ndim; i++) {
    if (i == d) {
      v.shape[i] = 1;
      v.stride[i] = d < t->ndim ? t->shape[d] * t->stride[d] : 1;
    } else { v.shape[i] = t->shape[j]; v.stride[i] = t->stride[j]; j++; }
  }
  lt_push_view(L, &v);
  return 1;
}

static int t_flatten(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->ndim == 0) {
    lt_tensor v = *t;
    v.ndim = 1; v.shape[0] = 1; v.stride[0] = 1;
    lt_push_view(L, &v);
    return 1;
  }
  int s = lt_check_dim(L, 2, luaL_optinteger(L, 2, 1), t->ndim);
  int e = lt_check_dim(L, 3, luaL_optinteger(L, 3, -1), t->ndim);
  if (s > e) luaL_argerror(L, 3, "end dim must not come before start dim");
  lua_settop(L, 1);
  lua_createtable(L, t->ndim, 0);
  int k = 1;
  int64_t m = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (i < s || i > e) { lua_pushinteger(L, t->shape[i]); lua_rawseti(L, 2, k++); }
    else { m *= t->shape[i]; if (i == e) { lua_pushinteger(L, m); lua_rawseti(L, 2, k++); } }
  }
  return t_reshape(L);
}

/* a 1-based (or negative, from the end) index into a dim of size n, as a
   0-based one. The error says the index as the user wrote it; arg is the
   argument it came in, or 0 for a subscript (t[i]: an operator, no argument) */
static int64_t check_index(lua_State *L, int arg, lua_Integer i, int64_t n, const char *what) {
  lua_Integer j = i < 0 ? i + n + 1 : i;
  if (j < 1 || j > n) {
    const char *msg = lua_pushfstring(L, "index %I is out of range for %s of size %I (indices are 1-based)",
                                      i, what, (lua_Integer)n);
    if (arg == 0) luaL_error(L, "%s", msg);
    luaL_argerror(L, arg, msg);
  }
  return j - 1;
}

static void do_select(lua_State *L, lt_tensor *t, int d, int64_t i) {
  lt_tensor v = *t;
  v.offset += i * t->stride[d];
  for (int k = d; k < t->ndim - 1; k++) { v.shape[k] = t->shape[k + 1]; v.stride[k] = t->stride[k + 1]; }
  v.ndim = t->ndim - 1;
  lt_push_view(L, &v);
}

static int t_select(lua_State *L) {
  lt_tensor *t = check_view(L, 1);
  if (t->ndim == 0) luaL_argerror(L, 1, "cannot select from a 0-dim tensor");
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  char what[40];
  snprintf(what, sizeof what, "dim %d", d + 1);
  int64_t i = check_index(L, 3, luaL_checkinteger(L, 3), t->shape[d], what);
  do_select(L, t, d, i);
  return 1;
}

static int t_narrow(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (t->ndim == 0) luaL_argerror(L, 1, "cannot narrow a 0-dim tensor");
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (start < 0) start += t->shape[d] + 1;
  if (start < 1 || start > t->shape[d] + 1) luaL_argerror(L, 3, lua_pushfstring(L, "start %I out of range for dim %d of size %I", start, d + 1, (lua_Integer)t->shape[d]));
  if (len < 0 || start - 1 + len > t->shape[d]) luaL_argerror(L, 4, lua_pushfstring(L, "length %I out of range (start %I, size %I)", len, start, (lua_Integer)t->shape[d]));
  lt_tensor v = *t;
  v.offset += (start - 1) * t->stride[d];
  v.shape[d] = len;
  lt_push_view(L, &v);
  return 1;
}

/* t:expand(sizes): broadcast view with stride 0 on expanded dims; -1 keeps */
static int t_expand(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  int64_t ns[LT_MAX_DIMS];
  int istable = lua_istable(L, 2);
  int nd = istable ? (int)luaL_len(L, 2) : lua_gettop(L) - 1;
  if (nd > LT_MAX_DIMS) luaL_error(L, "expand: rank exceeds the limit of %d", LT_MAX_DIMS);
  if (nd < t->ndim) luaL_argerror(L, 2, lua_pushfstring(L, "%d sizes given for a tensor of %d dims", nd, t->ndim));
  lt_tensor v = *t;
  v.ndim = nd;
  for (int i = 0; i < nd; i++) {
    if (istable) { lua_geti(L, 2, i + 1); ns[i] = luaL_checkinteger(L, -1); lua_pop(L, 1); }
    else ns[i] = luaL_checkinteger(L, i + 2);
  }
  for (int i = nd - 1, j = t->ndim - 1; i >= 0; i--, j--) {
    if (j >= 0) {
      if (ns[i] == -1 || ns[i] == t->shape[j]) { v.shape[i] = t->shape[j]; v.stride[i] = t->stride[j]; }
      else if (t->shape[j] == 1 && ns[i] >= 0) { v.shape[i] = ns[i]; v.stride[i] = 0; }
      else luaL_argerror(L, istable ? 2 : i + 2, lua_pushfstring(L, "size %I of dim %d cannot expand to %I", (lua_Integer)t->shape[j], j + 1, (lua_Integer)ns[i]));
    } else {
      if (ns[i] < 0) luaL_argerror(L, istable ? 2 : i + 2, "size -1 not allowed for a new dim");
      v.shape[i] = ns[i]; v.stride[i] = 0;
    }
  }
  lt_push_view(L, &v);
  return 1;
}

/* t:index(dim, indices): a copy of the slices at the given 1-based indices */
static int t_index(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  int d = lt_check_dim(L, 2, luaL_checkinteger(L, 2), t->ndim);
  int64_t cnt;
  lt_tensor *it = lt_test(L, 3);
  if (it) {
    if (lt_dtypes[it->dtype].kind != LT_KIND_INT || it->ndim > 1) luaL_argerror(L, 3, "expected a 1-D integer tensor of indices");
    cnt = lt_numel(it);
  } else {
    luaL_checktype(L, 3, LUA_TTABLE);
    cnt = (int64_t)luaL_len(L, 3);
  }
  lt_tensor src = *t;
  if (t->ndim == 0) luaL_argerror(L, 1, "cannot index a 0-dim tensor");
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[d] = cnt;
  lt_tensor *out = lt_push_new(L, t->dtype, t->ndim, shape, 0);
  char what[40];
  snprintf(what, sizeof what, "dim %d", d + 1);
  for (int64_t k = 0; k < cnt; k++) {
    lua_Integer ix;
    if (it) ix = lt_get_i64(it->dtype, lt_data(it) + k * it->stride[0] * (int64_t)lt_dtypes[it->dtype].size);
    else { lua_geti(L, 3, k + 1); ix = luaL_checkinteger(L, -1); lua_pop(L, 1); }
    int64_t i = check_index(L, 3, ix, src.shape[d], what);
    lt_tensor a = src, b = *out;
    a.offset += i * src.stride[d];
    b.offset += k * out->stride[d];
    a.shape[d] = b.shape[d] = 1;
    lt_copy(&b, &a);
  }
  return 1;
}

/* ---- element access ------------------------------------------------------ */

static int t_item(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  int64_t n = lt_numel(t);
  if (n != 1) luaL_argerror(L, 1, lua_pushfstring(L, "a tensor with %I elements cannot be converted to a number", (lua_Integer)n));
  lt_push_elem(L, t->dtype, lt_data(t));
  return 1;
}

static void tolist(lua_State *L, lt_dtype dt, const char *p, int nd, const int64_t *shape, const int64_t *stride) {
  if (nd == 0) { lt_push_elem(L, dt, p); return; }
  luaL_checkstack(L, 3, "tensor too deep");
  lua_createtable(L, shape[0] > INT32_MAX ? 0 : (int)shape[0], 0);
  int64_t step = stride[0] * (int64_t)lt_dtypes[dt].size;
  for (int64_t i = 0; i < shape[0]; i++) {
    tolist(L, dt, p + i * step, nd - 1, shape + 1, stride + 1);
    lua_rawseti(L, -2, i + 1);
  }
}

static int t_tolist(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  tolist(L, t->dtype, lt_numel(t) ? lt_data(t) : NULL, t->ndim, t->shape, t->stride);
  return 1;
}

static int t_tobytes(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  size_t n = (size_t)lt_numel(t) * lt_dtypes[t->dtype].size;
  if (lt_is_contiguous(t)) { lua_pushlstring(L, n ? lt_data(t) : "", n); return 1; }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n);
  lt_gather(p, t);
  luaL_pushresultsize(&b, n);
  return 1;
}

static int t_fill(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  char e[16];
  luaL_checkany(L, 2);
  lt_to_elem(L, 2, t->dtype, e);
  fill_value(t, e);
  lua_settop(L, 1);
  return 1;
}

/* t:zero_(): PyTorch's name for t:fill(0) */
static int t_zero(lua_State *L) {
  lua_settop(L, 1);
  lua_pushinteger(L, 0);
  return t_fill(L);
}

static int overlaps(const lt_tensor *a, const lt_tensor *b) { return a->storage == b->storage; }

/* t:copy(src): src broadcast to t's shape, converted to t's dtype */
static int t_copy(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  lt_tensor *s = lt_check(L, 2);
  lt_tensor src = *s;
  if (!(s->ndim == t->ndim && memcmp(s->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim) == 0)) {
    lua_pushcfunction(L, t_expand);
    lua_pushvalue(L, 2);
    lua_newtable(L);
    for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, t->shape[i]); lua_rawseti(L, -2, i + 1); }
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
      luaL_argerror(L, 2, "source cannot be broadcast to the destination's shape");
    src = *lt_check(L, -1);
  }
  if (overlaps(t, &src)) {
    lt_tensor *tmp = lt_push_contiguous_copy(L, &src, src.dtype);
    src = *tmp;
  }
  lt_copy(t, &src);
  lua_settop(L, 1);
  return 1;
}

static int t_index_mm(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lt_tensor *t = check_view(L, 1);
    if (!lua_isinteger(L, 2)) luaL_error(L, "index must be an integer");
    if (t->ndim == 0) luaL_error(L, "cannot index a 0-dim tensor");
    /* one past the last row is nil, so ipairs(t) walks the rows and stops;
       every other index out of range raises */
    if (lua_tointeger(L, 2) == t->shape[0] + 1) { lua_pushnil(L); return 1; }
    int64_t i = check_index(L, 0, lua_tointeger(L, 2), t->shape[0], "dim 1");
    do_select(L, t, 0, i);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* t[i] = v: fill row i with a number or copy a tensor into it */
static int t_newindex(lua_State *L) {
  lt_tensor *t = lt_check(L, 1);
  if (!lua_isinteger(L, 2)) luaL_error(L, "tensors take only integer indices for assignment");
  if (t->ndim == 0) luaL_error(L, "cannot index a 0-dim tensor");
  int64_t i = check_index(L, 0, lua_tointeger(L, 2), t->shape[0], "dim 1");
  lt_tensor row = *t;
  row.offset += i * t->stride[0];
  for (int k = 0; k < t->ndim - 1; k++) { row.shape[k] = t->shape[k + 1]; row.stride[k] = t->stride[k + 1]; }
  row.ndim = t->ndim - 1;
  if (lt_test(L, 3)) {
    lua_pushcfunction(L, t_copy);
    lt_push_view(L, &row);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 0);
  } else {
    char e[16];
    lt_to_elem(L, 3, t->dtype, e);
    fill_value(&row, e);
  }
  return 0;
}

static int t_len(lua_State *L) {
  lt_tensor *t = check_view(L, 1);
  lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
  return 1;
}

/* __tostring. The text is made by Lua code (format.lua prints tensors as
   PyTorch does), and the C layer never calls up into the Lua modules (it
   does not know where they are). So the metamethod is set here with all the
   others, and the Lua side hands it the printer once: init.lua calls
   core._set_tostring(format.tensor_tostring), which keeps the function in
   this state's registry. Until then (the core required alone) a tensor
   prints as other userdata do, "ltorch.Tensor: 0x...". */
static const char TOSTRING_KEY = 's';

static int t_tostring(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TOSTRING_KEY) != LUA_TFUNCTION) {
    lua_pushfstring(L, "%s: %p", LT_TENSOR_MT, lua_topointer(L, 1));
    return 1;
  }
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

/* core._set_tostring(fn): fn(t) -> string makes tostring(t) from now on */
static int l_set_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TOSTRING_KEY);
  return 0;
}

/* ---- public C API (ltorch.h) ------------------------------------------------ */

/* a host sees a CUDA tensor's device address (ltorch_data) */
ltorch_Tensor *ltorch_checktensor(lua_State *L, int idx) { return check_view(L, idx); }
ltorch_Tensor *ltorch_totensor(lua_State *L, int idx) { return lt_test(L, idx); }
const char *ltorch_dtype(const ltorch_Tensor *t) { return lt_dtypes[t->dtype].name; }
size_t ltorch_elemsize(const ltorch_Tensor *t) { return lt_dtypes[t->dtype].size; }
int ltorch_ndim(const ltorch_Tensor *t) { return t->ndim; }
int64_t ltorch_size(const ltorch_Tensor *t, int d) { return d >= 0 && d < t->ndim ? t->shape[d] : -1; }
int64_t ltorch_stride(const ltorch_Tensor *t, int d) { return d >= 0 && d < t->ndim ? t->stride[d] : 0; }
int64_t ltorch_numel(const ltorch_Tensor *t) { return lt_numel(t); }
int ltorch_is_contiguous(const ltorch_Tensor *t) { return lt_is_contiguous(t); }
const char *ltorch_device(const ltorch_Tensor *t) { return t->storage->device == LT_CUDA ? "cuda" : "cpu"; }
void *ltorch_data(const ltorch_Tensor *t) { return lt_data(t); }

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg funcs[] = {
  {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty},
  {"full", l_full}, {"rand", l_rand}, {"randn", l_randn}, {"randint", l_randint},
  {"arange", l_arange}, {"linspace", l_linspace}, {"eye", l_eye},
  {"frombytes", l_frombytes}, {"is_tensor", l_is_tensor}, {"manual_seed", l_manual_seed},
  {"_isatty", l_isatty}, {"_clock", l_clock}, {"_set_tostring", l_set_tostring},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"size", t_size}, {"stride", t_stride}, {"dim", t_dim}, {"numel", t_numel},
  {"dtype", t_dtype}, {"device", t_device}, {"storage_offset", t_offset},
  {"is_contiguous", t_is_contiguous}, {"element_size", t_element_size},
  {"data_ptr", t_data_ptr}, {"is_freed", t_is_freed}, {"requires_grad", t_requires_grad},
  {"view", t_view}, {"reshape", t_reshape}, {"t", t_t}, {"transpose", t_transpose},
  {"permute", t_permute}, {"squeeze", t_squeeze}, {"unsqueeze", t_unsqueeze},
  {"flatten", t_flatten}, {"select", t_select}, {"narrow", t_narrow},
  {"expand", t_expand}, {"index", t_index},
  {"item", t_item}, {"tolist", t_tolist}, {"tobytes", t_tobytes},
  {"fill", t_fill}, {"copy", t_copy}, {"free", t_free},
  /* PyTorch's in-place names */
  {"fill_", t_fill}, {"copy_", t_copy}, {"zero_", t_zero},
  {"_storage_info", t_storage_info}, {"_storage_view", t_storage_view},
  {"as_strided", t_as_strided},
  {NULL, NULL}
};

/* __index is not here: it is a closure over the methods table (below) */
static const luaL_Reg metamethods[] = {
  {"__newindex", t_newindex}, {"__len", t_len}, {"__gc", t_free}, {"__close", t_free},
  {"__tostring", t_tostring},
  {NULL, NULL}
};

/* the core's state, made once per lua_State: the GC pacing and the random
   generator (run by luaopen_ltorch_core, linit.c, with the other openers) */
static void core_open(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &PACE_KEY);
  if (lua_isnil(L, -1)) {
    pace *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->threshold = WINDOW;
    p->dthreshold = DWINDOW;
    seed(p, 0x5eed);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &PACE_KEY);
  }
  lua_pop(L, 1);
}

const lt_binding lt_core_binding = {funcs, methods, NULL, metamethods, core_open};

/* the tensor metatable's __index, a closure over the methods table: integer
   indices select rows, names are looked up in the methods */
lua_CFunction lt_tensor_index = t_index_mm;
