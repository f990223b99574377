/*
** lgguf.c: the Lua binding of the GGUF header reader (gguf.c).
**   core._gguf_scan(h) -> info: the header of the file open as h
**     (core._fopen), parsed and validated from its mapping:
**     {version, big_endian, alignment, header_end, data_start,
**      keys = {...}, values = {...}, types = {...},   -- metadata, file order
**      tensors = {{name, type (ggml id), ne = {GGUF order}, shape (PyTorch
**        order: ne reversed), offset (absolute byte), nbytes}, ...}}
**     A value is a Lua integer (every integer type; a uint64 above 2^63 - 1
**     wraps, as Lua's integers do), float, boolean, string or list (arrays,
**     nested ones as nested lists); its type is the GGUF type's name
**     ("uint32", "string", ...), an array's "array:" and its element type's
**     ("array:string", "array:array:uint32").
**   core._gguf_value_types() -> the value type names, by code
** Errors are raised without the path; the Lua side prefixes it.
*/
#include <string.h>
#include "lt_lua.h"
#include "gguf.h"

typedef struct gbox { lt_gguf_file f; } gbox;

static int gbox_gc(lua_State *L) {
  gbox *b = lua_touserdata(L, 1);
  lt_gguf_free(&b->f);
  return 0;
}

/* the visitor's state: the arrays being filled, innermost last */
typedef struct frame { int table; lua_Integer n; } frame;
typedef struct vstate {
  lua_State *L;
  frame fr[LT_GGUF_MAX_DEPTH + 1];
  int depth;
} vstate;

/* a value was pushed: into the array being filled, if any */
static void emit(vstate *s) {
  if (s->depth > 0) {
    frame *f = &s->fr[s->depth - 1];
    lua_rawseti(s->L, f->table, ++f->n);
  }
}

static void v_integer(void *ud, int type, int64_t i, uint64_t u) {
  vstate *s = ud;
  lua_pushinteger(s->L, (lua_Integer)(type == LT_GGUFV_UINT64 ? (int64_t)u : i));
  emit(s);
}
static void v_real(void *ud, int type, double x) {
  vstate *s = ud;
  (void)type;
  lua_pushnumber(s->L, x);
  emit(s);
}
static void v_boolean(void *ud, int b) {
  vstate *s = ud;
  lua_pushboolean(s->L, b);
  emit(s);
}
static void v_string(void *ud, const char *p, uint64_t n) {
  vstate *s = ud;
  lua_pushlstring(s->L, p, (size_t)n);
  emit(s);
}
static void v_array_begin(void *ud, int et, uint64_t n) {
  vstate *s = ud;
  (void)et;
  luaL_checkstack(s->L, 4, "GGUF arrays");
  lua_createtable(s->L, n < (1u << 26) ? (int)n : 0, 0);
  s->fr[s->depth].table = lua_gettop(s->L);
  s->fr[s->depth].n = 0;
  s->depth++;
}
static void v_array_end(void *ud) {
  vstate *s = ud;
  s->depth--;
  emit(s);
}

/* the type name of a value at (an array's: "array:" + its element type's) */
static void push_type(lua_State *L, const lt_gguf_file *f, int type, uint64_t at) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int depth = 0; type == LT_GGUFV_ARRAY && depth <= LT_GGUF_MAX_DEPTH; depth++) {
    luaL_addstring(&b, "array:");
    int et;
    uint64_t n;
    lt_gguf_array_info(f, at, &et, &n);
    at += 4 + (f->version == 1 ? 4 : 8);   /* the first element, if any */
    type = et;
    if (type == LT_GGUFV_ARRAY && n == 0) {
      /* an empty array of arrays: its elements' type is unknown past here */
      luaL_addstring(&b, "array");
      luaL_pushresult(&b);
      return;
    }
  }
  luaL_addstring(&b, lt_gguf_type_name(type));
  luaL_pushresult(&b);
}

static int l_gguf_scan(lua_State *L) {
  size_t len;
  const unsigned char *buf = lt_fmt_map(L, 1, &len);
  char err[LT_MSG];
  gbox *b = lt_newbox(L, sizeof *b, "ltorch.ggufbox", gbox_gc);
  if (lt_gguf_parse(buf, len, &b->f, err)) {
    lua_pushstring(L, err);
    return lua_error(L);
  }
  const lt_gguf_file *f = &b->f;
  lua_createtable(L, 0, 10);
  int info = lua_gettop(L);
  lua_pushinteger(L, f->version); lua_setfield(L, info, "version");
  lua_pushboolean(L, f->big_endian); lua_setfield(L, info, "big_endian");
  lua_pushinteger(L, f->alignment); lua_setfield(L, info, "alignment");
  lua_pushinteger(L, (lua_Integer)f->header_end); lua_setfield(L, info, "header_end");
  lua_pushinteger(L, (lua_Integer)f->data_start); lua_setfield(L, info, "data_start");
  lua_createtable(L, (int)f->nkv, 0);
  lua_createtable(L, (int)f->nkv, 0);
  lua_createtable(L, (int)f->nkv, 0);
  int keys = info + 1, vals = info + 2, types = info + 3;
  vstate s = {.L = L};
  lt_gguf_visitor v = {v_integer, v_real, v_boolean, v_string, v_array_begin, v_array_end, &s};
  for (size_t i = 0; i < f->nkv; i++) {
    const lt_gguf_kv *kv = &f->kv[i];
    lua_pushlstring(L, (const char *)buf + kv->key, (size_t)kv->key_len);
    lua_rawseti(L, keys, (lua_Integer)i + 1);
    s.depth = 0;
    lt_gguf_visit(f, kv->type, kv->value, &v);
    lua_rawseti(L, vals, (lua_Integer)i + 1);
    push_type(L, f, kv->type, kv->value);
    lua_rawseti(L, types, (lua_Integer)i + 1);
  }
  lua_setfield(L, info, "types");
  lua_setfield(L, info, "values");
  lua_setfield(L, info, "keys");
  lua_createtable(L, (int)f->ntensors, 0);
  for (size_t i = 0; i < f->ntensors; i++) {
    const lt_gguf_tensor *t = &f->t[i];
    lua_createtable(L, 0, 7);
    lua_pushlstring(L, (const char *)buf + t->name, (size_t)t->name_len); lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->type); lua_setfield(L, -2, "type");
    lua_createtable(L, t->ndim, 0);
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
      lua_pushinteger(L, t->ne[d]);
      lua_rawseti(L, -3, d + 1);
      lua_pushinteger(L, t->ne[d]);
      lua_rawseti(L, -2, t->ndim - d);
    }
    lua_setfield(L, -3, "shape");
    lua_setfield(L, -2, "ne");
    lua_pushinteger(L, (lua_Integer)t->data); lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)t->nbytes); lua_setfield(L, -2, "nbytes");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, info, "tensors");
  return 1;
}

static int l_gguf_value_types(lua_State *L) {
  lua_createtable(L, LT_GGUFV_NTYPES, 0);
  for (int i = 0; i < LT_GGUFV_NTYPES; i++) {
    lua_pushstring(L, lt_gguf_type_name(i));
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static const luaL_Reg funcs[] = {
  {"_gguf_scan", l_gguf_scan}, {"_gguf_value_types", l_gguf_value_types},
  {NULL, NULL}
};

const lt_binding lt_gguf_binding = {funcs, NULL, NULL, NULL, NULL};
