/*
** lquant.c: the Lua binding of ggml's block types (gguf_quant.c), for the
** GGUF reader and writer: core._gguf_types() lists the type table,
** core._gguf_dequantize(type, bytes [, n]) turns blocks into a float32
** tensor, core._gguf_quantize(type, tensor) turns a tensor into blocks (a
** uint8 tensor). A type is its ggml id or its name, case-insensitively
** ("Q4_K", "q4_k"). Usage errors go through luaL_argerror (lt_argerror):
** an unknown, removed or unconverted type on argument 1, a count that is
** not a whole number of blocks on the argument that gave it, bytes too few
** for n on argument 2. Outputs are new contiguous tensors; temporaries are
** tensors on the Lua stack, so an error leaks nothing.
*/
#include <string.h>
#include "lmath.h"
#include "gguf_quant.h"

/* the type at arg: an integer id or a name; raises when it is unknown or
   removed */
static const lt_gguf_type *check_type(lua_State *L, int arg) {
  const lt_gguf_type *t;
  if (lua_type(L, arg) == LUA_TSTRING) {
    const char *name = lua_tostring(L, arg);
    t = lt_gguf_type_by_name(name);
    if (!t) lt_argerror(L, arg, "unknown ggml type '%s'", name);
  } else if (lua_isinteger(L, arg)) {
    lua_Integer id = lua_tointeger(L, arg);
    t = id >= 0 && id < LT_GGUF_NTYPES ? lt_gguf_type_by_id((int)id) : NULL;
    if (!t) lt_argerror(L, arg, "unknown ggml type id %lld (ids are 0 to %d)", (long long)id, LT_GGUF_NTYPES - 1);
  } else {
    lt_argerror(L, arg, "ggml type id or name expected, got %s",
                lua_type(L, arg) == LUA_TNUMBER ? "a non-integer number" : luaL_typename(L, arg));
    return NULL;
  }
  if (t->removed) lt_argerror(L, arg, "ggml type %s (id %d) has been removed from ggml", t->name, t->id);
  return t;
}

/* core._gguf_types() -> {{id=, name=, block=, bytes=, removed=, dequant=,
   quant=}, ...}: every id, 0 up, in order */
static int l_gguf_types(lua_State *L) {
  lua_createtable(L, LT_GGUF_NTYPES, 0);
  for (int id = 0; id < LT_GGUF_NTYPES; id++) {
    const lt_gguf_type *t = lt_gguf_type_by_id(id);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, t->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->block);
    lua_setfield(L, -2, "block");
    lua_pushinteger(L, t->bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushboolean(L, t->removed);
    lua_setfield(L, -2, "removed");
    lua_pushboolean(L, t->dequant);
    lua_setfield(L, -2, "dequant");
    lua_pushboolean(L, t->quant);
    lua_setfield(L, -2, "quant");
    lua_rawseti(L, -2, id + 1);
  }
  return 1;
}

/* core._gguf_dequantize(type, bytes [, n]) -> a float32 tensor {n}: the
   first n elements of the blocks in bytes (a string or a uint8 tensor of
   any shape), n by default all that bytes holds (a whole number of
   blocks). Bytes beyond what n needs are not read */
static int l_gguf_dequantize(lua_State *L) {
  lua_settop(L, 3);                 /* temporaries go above the arguments */
  const lt_gguf_type *t = check_type(L, 1);
  if (!t->dequant) lt_argerror(L, 1, "ggml type %s cannot be dequantized", t->name);
  const char *src;
  size_t len;
  if (lua_type(L, 2) == LUA_TSTRING) {
    src = lua_tolstring(L, 2, &len);
  } else {
    lt_tensor *b = lm_testt(L, 2);
    if (!b) return lt_argerror(L, 2, "string or uint8 tensor expected, got %s", luaL_typename(L, 2));
    if (b->dtype != LT_UINT8) return lt_argerror(L, 2, "expected a uint8 tensor, got %s", lt_dtypes[b->dtype].name);
    b = lm_contig(L, b, LT_UINT8);
    len = (size_t)lt_numel(b);
    src = len ? lt_data(b) : "";
  }
  char err[LT_MSG];
  int64_t n;
  if (lua_isnoneornil(L, 3)) {
    if (len % (size_t)t->bytes)
      return lt_argerror(L, 2, "%s: %llu bytes are not a whole number of %d-byte blocks", t->name,
                         (unsigned long long)len, t->bytes);
    if (len / (size_t)t->bytes > (size_t)(INT64_MAX / t->block))
      return lt_argerror(L, 2, "%s: %llu bytes hold too many elements", t->name, (unsigned long long)len);
    n = (int64_t)(len / (size_t)t->bytes) * t->block;
  } else {
    n = luaL_checkinteger(L, 3);
    int64_t need = lt_gguf_row_bytes(t->id, n, err);
    if (need < 0) return lt_argerror(L, 3, "%s", err);
    if ((uint64_t)need > len)
      return lt_argerror(L, 2, "%s: %lld elements need %lld bytes, got %llu", t->name, (long long)n,
                         (long long)need, (unsigned long long)len);
  }
  int64_t shape[1] = {n};
  lt_tensor *out = lt_push_new(L, LT_FLOAT32, 1, shape, 0);
  if (lt_gguf_dequantize(t->id, src, n ? (float *)lt_data(out) : NULL, n, err))
    return luaL_error(L, "%s", err);
  return 1;
}

/* core._gguf_quantize(type, tensor) -> a uint8 tensor {bytes}: the blocks
   of the tensor's elements in row-major order (float32, or another
   floating dtype converted to float32 first), as ggml's reference
   quantizer writes them */
static int l_gguf_quantize(lua_State *L) {
  lua_settop(L, 2);
  const lt_gguf_type *t = check_type(L, 1);
  if (!t->quant) lt_argerror(L, 1, "ggml type %s has no reference quantizer here", t->name);
  lt_tensor *x = lm_checkt(L, 2);
  lm_need_floating(L, x->dtype, 2, NULL);
  char err[LT_MSG];
  int64_t n = lt_numel(x);
  int64_t nbytes = lt_gguf_row_bytes(t->id, n, err);
  if (nbytes < 0) return lt_argerror(L, 2, "%s", err);
  x = lm_contig(L, x, LT_FLOAT32);
  int64_t shape[1] = {nbytes};
  lt_tensor *out = lt_push_new(L, LT_UINT8, 1, shape, 0);
  if (lt_gguf_quantize(t->id, n ? (const float *)lt_data(x) : NULL, nbytes ? lt_data(out) : NULL, n, err))
    return lt_argerror(L, 2, "%s", err);
  return 1;
}

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg funcs[] = {
  {"_gguf_types", l_gguf_types}, {"_gguf_dequantize", l_gguf_dequantize},
  {"_gguf_quantize", l_gguf_quantize},
  {NULL, NULL}
};

const lt_binding lt_quant_binding = {funcs, NULL, NULL, NULL, NULL};
