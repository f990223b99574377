/*
** linit.c: the top of the C core. luaopen_ltorch_core registers every
** binding file's functions, methods and metamethods (their lt_binding
** tables, lt_lua.h) into the module table and the one tensor metatable,
** and the parts of the host API (ltorch.h) that need the whole module live
** here too. Every other file is below this one: nothing calls up into it.
*/
#include <stdlib.h>
#include <string.h>
#include "lt_lua.h"
#include "ltorch.h"

/* every binding file, in registration order */
static const lt_binding *const bindings[] = {
  &lt_core_binding,
  &lt_ops_binding,
  &lt_reduce_binding,
  &lt_shape_binding,
  &lt_nn_binding,
  &lt_pt_binding,
  &lt_fmt_binding,
  &lt_npy_binding,
  &lt_json_binding,
  &lt_io_binding,
  &lt_quant_binding,
  &lt_gguf_binding,
  &lt_cuda_binding,
  &lt_remote_binding,
};

static void setfuncs(lua_State *L, int t, const luaL_Reg *r) {
  if (!r) return;
  for (; r->name; r++) {
    lua_pushcfunction(L, r->func);
    if (strcmp(r->name, "__gc") != 0 && strcmp(r->name, "__close") != 0)
      lt_push_guarded(L);   /* raises after a fault in a mapping (ltorch.c) */
    lua_setfield(L, t, r->name);
  }
}

/* The one place the module table and the tensor metatable are filled:
   every binding's functions, methods and metamethods, then __index (integer
   indices select rows; names are looked up in the methods table, its
   upvalue). Pushes the module; core._meta is the metatable and
   core._methods the methods table. A second opening in the same state
   fills the existing metatable again, so tensors made before it stay
   tensors. */
static void open_bindings(lua_State *L) {
  lua_newtable(L);
  int mod = lua_gettop(L);
  lua_newtable(L);
  int meth = lua_gettop(L);
  luaL_newmetatable(L, LT_TENSOR_MT);         /* sets __name */
  int mt = lua_gettop(L);
  for (size_t i = 0; i < sizeof bindings / sizeof *bindings; i++) {
    const lt_binding *b = bindings[i];
    setfuncs(L, mod, b->funcs);
    setfuncs(L, mod, b->both);
    setfuncs(L, meth, b->both);
    setfuncs(L, meth, b->methods);
    setfuncs(L, mt, b->meta);
    if (b->open) b->open(L);
  }
  lua_pushvalue(L, meth);
  lua_pushcclosure(L, lt_tensor_index, 1);
  lua_setfield(L, mt, "__index");
  lua_setfield(L, mod, "_meta");
  lua_setfield(L, mod, "_methods");
}

int luaopen_ltorch_core(lua_State *L) {
  open_bindings(L);
  return 1;
}

/* ---- host API that needs the module (ltorch.h) ----------------------------- */

typedef struct wrapctx { void (*release)(void *); void *ctx; } wrapctx;
static void wrap_release(lt_storage *s) {
  wrapctx *w = s->ctx;
  if (w->release) w->release(w->ctx);
  free(w);
}

ltorch_Tensor *ltorch_pushwrap(lua_State *L, void *data, const char *dtype, int ndim,
                               const int64_t *shape, const int64_t *strides,
                               void (*release)(void *), void *ctx) {
  int dt = lt_dtype_from_name(dtype);
  if (dt < 0 || ndim < 0 || ndim > LT_MAX_DIMS) return NULL;
  /* the host may wrap memory before any Lua code required ltorch */
  if (luaL_getmetatable(L, LT_TENSOR_MT) == LUA_TNIL) {
    luaL_requiref(L, "ltorch.core", luaopen_ltorch_core, 0);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lt_tensor v;
  memset(&v, 0, sizeof v);
  v.dtype = (lt_dtype)dt;
  v.ndim = ndim;
  for (int i = 0; i < ndim; i++) v.shape[i] = shape[i];
  if (strides) for (int i = 0; i < ndim; i++) v.stride[i] = strides[i];
  else lt_contiguous_strides(ndim, v.shape, v.stride);
  if (lt_shape_numel(ndim, v.shape) < 0) return NULL;
  /* the storage is the extent the view reaches; the caller vouches for it */
  int64_t hi = 0;
  for (int i = 0; i < ndim; i++) {
    if (v.stride[i] < 0) return NULL;
    if (v.shape[i] > 0) hi += (v.shape[i] - 1) * v.stride[i];
  }
  size_t nbytes = lt_numel(&v) ? (size_t)(hi + 1) * lt_dtypes[dt].size : 0;
  wrapctx *w = malloc(sizeof *w);
  if (!w) return NULL;
  w->release = release;
  w->ctx = ctx;
  lt_storage *s = lt_storage_wrap(data, nbytes, wrap_release, w);
  if (!s) { free(w); return NULL; }
  return lt_push_storage(L, s, v.dtype, ndim, v.shape, v.stride, 0);
}

/* an ordered dict (odict.lua) walks itself with its __next metafield */
int ltorch_next(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int tt = luaL_getmetafield(L, idx, "__next");
  if (tt != LUA_TFUNCTION) {
    if (tt != LUA_TNIL) lua_pop(L, 1);
    return lua_next(L, idx);
  }
  lua_pushvalue(L, idx);                      /* key, __next, t */
  lua_rotate(L, -3, 2);                       /* __next, t, key */
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) { lua_pop(L, 2); return 0; }
  return 1;
}

int ltorch_load(lua_State *L, const char *path) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "ltorch");
  int rc = lua_pcall(L, 1, 1, 0);
  if (rc != LUA_OK) return rc;
  lua_getfield(L, -1, "load");
  lua_remove(L, -2);
  lua_pushstring(L, path);
  return lua_pcall(L, 1, 1, 0);
}

