/*
** lcuda.c: the Lua binding of CUDA tensors (cuda.c does the driver work).
** A CUDA tensor is an ordinary tensor userdata whose storage is device
** memory: sizes, strides, dtype and every view method work on it as on
** the CPU; what reads or writes elements (math, printing the values,
** indexing into a Lua number) raises, saying to call t:cpu() first (the
** check is lt_check's, ltorch.c). Moves between devices:
**   t:to("cuda"), t:to("cuda:1"), t:to({device = , dtype = }), t:cuda([n]),
**   t:cpu(): a copy through the pinned staging buffers, or t itself when
**   nothing changes. A CPU tensor is made contiguous before it goes up (as
**   PyTorch does for non-dense ones); a device tensor comes down with its
**   strides, only the part of its storage it reaches. A dtype change on a
**   device tensor goes through the host (ltorch has no device kernels).
** core._cuda_upload_all(list, dev) moves a loaded value's tensors to a
** device keeping shared storages shared; core._cuda_shadow(list) gives CPU
** tensors whose bytes are read back from the device when a writer reaches
** them, so a save streams a model from the GPU without moving it.
** Layer: a binding, above cuda.c and deferred.c.
*/
#include <stdint.h>
#include <string.h>
#include "lt_lua.h"
#include "rawio.h"

/* a mapped record goes up in pieces of this, its pages dropped after each */
#define DROP_CHUNK ((size_t)8 << 20)

static int raise_msg(lua_State *L, const char *err) {
  lua_pushstring(L, err);
  return lua_error(L);
}

/* the element range [lo, hi) of its storage that t reaches */
static void extent(const lt_tensor *t, int64_t *lo, int64_t *hi) {
  *lo = *hi = t->offset;
  if (lt_numel(t) == 0) return;
  *hi = t->offset + 1;
  for (int i = 0; i < t->ndim; i++) {
    int64_t r = (t->shape[i] - 1) * t->stride[i];
    if (r >= 0) *hi += r; else *lo += r;
  }
}

static int device_of(const lt_tensor *t) { return t->storage->device == LT_CUDA ? t->storage->device_index : -1; }

/* push a device copy of CPU tensor t (its data present), contiguous */
static lt_tensor *upload(lua_State *L, const lt_tensor *t, int dev) {
  lt_tensor src = *t;
  int tmp = 0;
  if (!lt_is_contiguous(&src)) {
    lt_tensor *c = lt_push_new(L, src.dtype, src.ndim, src.shape, 0);
    lt_copy(c, &src);
    src = *c;
    tmp = lua_gettop(L);
  }
  size_t nbytes = (size_t)lt_numel(&src) * lt_dtypes[src.dtype].size;
  char err[LT_MSG];
  lt_storage *s = lt_cuda_alloc(dev, nbytes, 0, err);
  if (!s) raise_msg(L, err);
  lt_tensor *u = lt_push_storage(L, s, src.dtype, src.ndim, src.shape, NULL, 0);
  u->requires_grad = t->requires_grad;
  lt_cuda_xfer x;
  if (nbytes) {
    if (lt_cuda_xfer_begin(&x, dev, err)) raise_msg(L, err);
    lt_cuda_xfer_h2d(&x, s, 0, lt_data(&src), nbytes);
    if (lt_cuda_xfer_end(&x)) raise_msg(L, err);
  }
  if (tmp) lua_remove(L, tmp);
  lt_gc_account(L);
  return u;
}

/* push a CPU copy of device tensor t with t's strides over the part of its
   storage it reaches */
static lt_tensor *download(lua_State *L, const lt_tensor *t) {
  int64_t lo, hi;
  extent(t, &lo, &hi);
  size_t isz = lt_dtypes[t->dtype].size, n = (size_t)(hi - lo) * isz;
  lt_gc_account(L);
  lt_storage *h = lt_storage_new(n, 0);
  if (!h) luaL_error(L, "not enough memory for a tensor of %zu bytes", n);
  lt_tensor *u = lt_push_storage(L, h, t->dtype, t->ndim, t->shape, t->stride, t->offset - lo);
  u->requires_grad = t->requires_grad;
  if (n) {
    char err[LT_MSG];
    lt_cuda_xfer x;
    if (lt_cuda_xfer_begin(&x, t->storage->device_index, err)) raise_msg(L, err);
    lt_cuda_xfer_d2h(&x, h->data, t->storage, (size_t)lo * isz, n);
    if (lt_cuda_xfer_end(&x)) raise_msg(L, err);
  }
  return u;
}

/* push t (at idx) on device dev (-1: the CPU) with dtype dt */
static int lt_cuda_to(lua_State *L, int idx, int dev, lt_dtype dt) {
  idx = lua_absindex(L, idx);
  lt_tensor *t = lt_check_meta(L, idx);
  int cur = device_of(t);
  if (cur == dev && dt == t->dtype) { lua_pushvalue(L, idx); return 1; }
  if (dev >= 0) {
    char err[LT_MSG];
    if (lt_cuda_count(err) < 0) raise_msg(L, err);
  }
  if (cur < 0) {   /* up */
    t = lt_check(L, idx);
    if (dt != t->dtype) {
      lt_tensor *c = lt_push_new(L, dt, t->ndim, t->shape, 0);
      lt_copy(c, t);
      c->requires_grad = t->requires_grad;
      upload(L, c, dev);
      lua_remove(L, -2);
    } else upload(L, t, dev);
    return 1;
  }
  if (dev >= 0 && dt == t->dtype) {   /* across devices, strides kept */
    int64_t lo, hi;
    extent(t, &lo, &hi);
    size_t isz = lt_dtypes[t->dtype].size, n = (size_t)(hi - lo) * isz;
    char err[LT_MSG];
    lt_storage *s = lt_cuda_alloc(dev, n, 0, err);
    if (!s) raise_msg(L, err);
    lt_tensor src = *t;
    lt_tensor *u = lt_push_storage(L, s, t->dtype, t->ndim, t->shape, t->stride, t->offset - lo);
    u->requires_grad = src.requires_grad;
    if (lt_cuda_d2d(s, 0, src.storage, (size_t)lo * isz, n, err)) raise_msg(L, err);
    return 1;
  }
  /* down, and for a dtype change on the device, through the host */
  lt_tensor *h = download(L, t);
  if (dt != h->dtype) {
    lt_tensor *c = lt_push_new(L, dt, h->ndim, h->shape, 0);
    lt_copy(c, h);
    c->requires_grad = h->requires_grad;
    lua_remove(L, -2);
  }
  if (dev >= 0) {
    upload(L, lt_check(L, -1), dev);
    lua_remove(L, -2);
  }
  return 1;
}

/* a contiguous copy of a device tensor on its device (clone, contiguous) */
static int lt_cuda_clone(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lt_tensor *t = lt_check_meta(L, idx);
  int dev = device_of(t);
  if (lt_is_contiguous(t)) {
    size_t isz = lt_dtypes[t->dtype].size, n = (size_t)lt_numel(t) * isz;
    char err[LT_MSG];
    lt_storage *s = lt_cuda_alloc(dev, n, 0, err);
    if (!s) raise_msg(L, err);
    lt_tensor src = *t;
    lt_tensor *u = lt_push_storage(L, s, t->dtype, t->ndim, t->shape, NULL, 0);
    u->requires_grad = src.requires_grad;
    if (lt_cuda_d2d(s, 0, src.storage, (size_t)src.offset * isz, n, err)) raise_msg(L, err);
    return 1;
  }
  download(L, t);
  upload(L, lt_check(L, -1), dev);
  lua_remove(L, -2);
  return 1;
}

/* t:contiguous(), t:clone(), t:to(...): here because a device may be involved */
static int t_contiguous(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  if (lt_is_contiguous(t)) { lua_settop(L, 1); return 1; }
  if (t->storage->device == LT_CUDA) return lt_cuda_clone(L, 1);
  t = lt_check(L, 1);
  lt_push_contiguous_copy(L, t, t->dtype);
  return 1;
}

static int t_clone(lua_State *L) {
  if (lt_check_meta(L, 1)->storage->device == LT_CUDA) return lt_cuda_clone(L, 1);
  lt_tensor *t = lt_check(L, 1);
  lt_push_contiguous_copy(L, t, t->dtype)->requires_grad = t->requires_grad;
  return 1;
}

/* t:to(dtype | device | {dtype=, device=}); returns t itself when nothing changes */
static int t_to(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lt_dtype dt = t->dtype;
  int dev = t->storage->device == LT_CUDA ? t->storage->device_index : -1;
  if (lua_istable(L, 2)) {
    dt = lt_opt_dtype(L, 2, t->dtype);
    lua_getfield(L, 2, "device");
    if (!lua_isnil(L, -1)) {
      const char *s = luaL_checkstring(L, -1);
      dev = lt_parse_device(s);
      if (dev == -2) luaL_argerror(L, 2, lua_pushfstring(L, "unknown device '%s'", s));
    }
    lua_pop(L, 1);
  } else if (lua_isstring(L, 2)) {
    const char *s = lua_tostring(L, 2);
    int d = lt_parse_device(s);
    if (lt_dtype_from_name(s) >= 0) dt = (lt_dtype)lt_dtype_from_name(s);
    else if (d != -2) dev = d;
    else luaL_argerror(L, 2, lua_pushfstring(L, "unknown dtype or device '%s'", s));
  } else luaL_typeerror(L, 2, "dtype, device or table");
  if (dev >= 0 || t->storage->device == LT_CUDA) return lt_cuda_to(L, 1, dev, dt);
  t = lt_check(L, 1);
  if (dt == t->dtype) { lua_settop(L, 1); return 1; }
  lt_push_contiguous_copy(L, t, dt);
  return 1;
}

/* t:cuda([index]) */
static int t_cuda(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  lua_Integer dev = luaL_optinteger(L, 2, 0);
  if (dev < 0 || dev > 100000) luaL_argerror(L, 2, "device index out of range");
  return lt_cuda_to(L, 1, (int)dev, t->dtype);
}

static int t_cpu(lua_State *L) {
  lt_tensor *t = lt_check_meta(L, 1);
  return lt_cuda_to(L, 1, -1, t->dtype);
}

/* core._cuda_count() -> devices, or nil and why CUDA cannot be used */
static int l_cuda_count(lua_State *L) {
  char err[LT_MSG];
  int n = lt_cuda_count(err);
  if (n < 0) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
  lua_pushinteger(L, n);
  return 1;
}

/* core._cuda_name(index 0-based) */
static int l_cuda_name(lua_State *L) {
  lua_Integer dev = luaL_checkinteger(L, 1);
  char err[LT_MSG], name[256];
  if (dev < 0 || dev > 100000) luaL_argerror(L, 1, "device index out of range");
  if (lt_cuda_device_name((int)dev, name, sizeof name, err)) raise_msg(L, err);
  lua_pushstring(L, name);
  return 1;
}

static int l_cuda_live(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lt_cuda_live_bytes());
  return 1;
}

/* core._cuda_live_storages() -> device storages alive (0: every tensor is
   on the CPU, and a save walks none of them to look) */
static int l_cuda_live_storages(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lt_cuda_live_storages());
  return 1;
}

/* with a tensor at -2 and a holder (a tensor over the storage to use) at
   -1, push the tensor's view over the holder's storage */
static void view_over_holder(lua_State *L) {
  lt_tensor *holder = lt_check_meta(L, -1);
  lt_tensor v = *lt_check_meta(L, -2);
  v.storage = holder->storage;
  lt_push_view(L, &v);
}

/* core._cuda_upload_all(list, dev) -> list: the tensors of list on cuda:dev.
   Each distinct storage goes up once, whole; tensors over one storage stay
   views of one device storage. First every device storage is made (what
   may raise), then all the bytes go up in one transfer, so small tensors
   share staging buffers and syncs. A mapped storage's pages are dropped as
   they are copied and a deferred one is read and evicted in turn, so the
   host holds the staging buffers, not the model. */
static int l_cuda_upload_all(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer dev = luaL_checkinteger(L, 2);
  char err[LT_MSG];
  int count = lt_cuda_count(err);
  if (count < 0) raise_msg(L, err);
  if (dev < 0 || dev >= count) luaL_error(L, "CUDA device cuda:%d does not exist", (int)dev);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  lua_settop(L, 2);
  lua_newtable(L);   /* 3: host storage -> device storage holder (a byte tensor) */
  lua_createtable(L, (int)n, 0);   /* 4: the result */
  lua_newtable(L);   /* 5: the distinct host storages, in order, and their holders */
  int ndistinct = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lt_tensor *t = lt_check_meta(L, -1);
    if (device_of(t) >= 0) {   /* already on a device: moved as t:to would */
      lt_cuda_to(L, -1, (int)dev, t->dtype);
      lua_rawseti(L, 4, i);
      lua_pop(L, 1);
      continue;
    }
    lt_storage *s = t->storage;
    lua_pushlightuserdata(L, s);
    if (lua_rawget(L, 3) == LUA_TNIL) {
      lua_pop(L, 1);
      lt_storage *d = lt_cuda_alloc((int)dev, s->nbytes, 0, err);
      if (!d) raise_msg(L, err);
      int64_t whole = (int64_t)s->nbytes;
      lt_push_storage(L, d, LT_UINT8, 1, &whole, NULL, 0);
      lua_pushlightuserdata(L, s);
      lua_pushvalue(L, -2);
      lua_rawset(L, 3);
      lua_pushvalue(L, -2);                 /* the host tensor keeps its storage alive */
      lua_rawseti(L, 5, 2 * ++ndistinct - 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, 5, 2 * ndistinct);
      lt_gc_account(L);
    }
    view_over_holder(L);
    lua_rawseti(L, 4, i);
    lua_pop(L, 2);
  }
  if (ndistinct) {
    lt_cuda_xfer x;
    if (lt_cuda_xfer_begin(&x, (int)dev, err)) raise_msg(L, err);
    for (int k = 1; k <= ndistinct && !x.failed; k++) {
      lua_rawgeti(L, 5, 2 * k - 1);
      lua_rawgeti(L, 5, 2 * k);
      lt_storage *s = ((lt_tensor *)lua_touserdata(L, -2))->storage;
      lt_storage *d = ((lt_tensor *)lua_touserdata(L, -1))->storage;
      lua_pop(L, 2);
      if (!s->nbytes) continue;
      if (lt_storage_pending(s) && lt_storage_fill(s, err)) { x.failed = 1; break; }
      const char *p = s->data, *dropped = p;
      for (size_t at = 0; at < s->nbytes && !x.failed;) {
        size_t c = s->nbytes - at < DROP_CHUNK ? s->nbytes - at : DROP_CHUNK;
        lt_cuda_xfer_h2d(&x, d, at, p + at, c);
        at += c;
        dropped = lt_drop_pages(s, dropped, p + at);   /* copied into staging already */
      }
      if (s->deferred) lt_storage_evict(s);
    }
    if (lt_cuda_xfer_end(&x)) raise_msg(L, err);
  }
  lua_pushvalue(L, 4);
  return 1;
}

/* core._cuda_shadow(list) -> list: for each device tensor, a CPU tensor of
   the same view over a deferred storage read back from the device when it
   is first used (a writer fills it, writes it and evicts it); tensors over
   one device storage share one shadow storage. CPU tensors come back as
   they are. */
static int l_cuda_shadow(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);   /* 2: device storage -> shadow holder */
  lua_createtable(L, (int)n, 0);   /* 3 */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lt_tensor *t = lt_check_meta(L, -1);
    if (device_of(t) < 0) { lua_rawseti(L, 3, i); continue; }
    lua_pushlightuserdata(L, t->storage);
    if (lua_rawget(L, 2) == LUA_TNIL) {
      lua_pop(L, 1);
      lt_storage *h = lt_storage_from_device(t->storage);
      if (!h) luaL_error(L, "out of memory");
      int64_t whole = (int64_t)h->nbytes;
      lt_push_storage(L, h, LT_UINT8, 1, &whole, NULL, 0);
      lua_pushlightuserdata(L, t->storage);
      lua_pushvalue(L, -2);
      lua_rawset(L, 2);
    }
    view_over_holder(L);
    lua_rawseti(L, 3, i);
    lua_pop(L, 2);
  }
  lua_pushvalue(L, 3);
  return 1;
}

/* core._cuda_pinned_h2d(dev, bytes) -> seconds (make bench's reference) */
static int l_cuda_pinned_h2d(lua_State *L) {
  lua_Integer dev = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
  char err[LT_MSG];
  if (dev < 0 || dev > 100000 || n < 0) luaL_argerror(L, 1, "out of range");
  double s = lt_cuda_pinned_h2d_seconds((int)dev, (size_t)n, err);
  if (s < 0) raise_msg(L, err);
  lua_pushnumber(L, s);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"_cuda_pinned_h2d", l_cuda_pinned_h2d},
  {"_cuda_count", l_cuda_count}, {"_cuda_name", l_cuda_name}, {"_cuda_live_bytes", l_cuda_live},
  {"_cuda_live_storages", l_cuda_live_storages},
  {"_cuda_upload_all", l_cuda_upload_all}, {"_cuda_shadow", l_cuda_shadow},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"cuda", t_cuda}, {"cpu", t_cpu}, {"to", t_to}, {"clone", t_clone}, {"contiguous", t_contiguous},
  {NULL, NULL}
};

const lt_binding lt_cuda_binding = {funcs, methods, NULL, NULL, NULL};
