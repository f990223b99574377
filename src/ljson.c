/*
** ljson.c: JSON for the Lua side, decoding through cJSON.
**   _json_decode(s [, from, null]) -> value: objects become ordered dicts
**     (built by from(keys, data), ltorch.odict's constructor), arrays become
**     lists, null becomes the null sentinel, integral numbers in int64 range
**     become integers; duplicate object keys and trailing text are errors.
**   _json_encode(v [, null]) -> string: compact JSON. Tables with a __pairs
**     metamethod (odicts) are objects in pairs order; plain tables with keys
**     1..n are arrays; other plain tables are objects with keys sorted;
**     integers are written exactly, floats so they read back exactly.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "lt_lua.h"
#include "fmt.h"

#define JSON_MAX_DEPTH 512

/* ---- decoding --------------------------------------------------------------- */

typedef struct jbox { cJSON *root; } jbox;

static int jbox_gc(lua_State *L) {
  jbox *b = lua_touserdata(L, 1);
  if (b->root) cJSON_Delete(b->root);
  b->root = NULL;
  return 0;
}

/* push the Lua value of node; from and null are stack indices */
static void push_node(lua_State *L, const cJSON *node, int from, int null, int depth) {
  luaL_checkstack(L, 6, "json nesting too deep");
  if (depth > JSON_MAX_DEPTH) luaL_error(L, "json: nesting deeper than %d", JSON_MAX_DEPTH);
  if (cJSON_IsNull(node)) lua_pushvalue(L, null);
  else if (cJSON_IsFalse(node)) lua_pushboolean(L, 0);
  else if (cJSON_IsTrue(node)) lua_pushboolean(L, 1);
  else if (cJSON_IsNumber(node)) {
    double v = node->valuedouble;
    if (v == floor(v) && v >= -0x1p63 && v < 0x1p63) lua_pushinteger(L, (lua_Integer)v);
    else lua_pushnumber(L, v);
  } else if (cJSON_IsString(node)) lua_pushstring(L, node->valuestring);
  else if (cJSON_IsArray(node)) {
    lua_newtable(L);
    lua_Integer i = 0;
    for (const cJSON *c = node->child; c; c = c->next) {
      push_node(L, c, from, null, depth + 1);
      lua_seti(L, -2, ++i);
    }
  } else if (cJSON_IsObject(node)) {
    lua_pushvalue(L, from);
    lua_newtable(L);   /* keys */
    lua_newtable(L);   /* data */
    lua_Integer i = 0;
    for (const cJSON *c = node->child; c; c = c->next) {
      const char *k = c->string ? c->string : "";
      if (lua_getfield(L, -1, k) != LUA_TNIL) luaL_error(L, "json: duplicate key '%s'", k);
      lua_pop(L, 1);
      lua_pushstring(L, k);
      lua_seti(L, -3, ++i);
      push_node(L, c, from, null, depth + 1);
      lua_setfield(L, -2, k);
    }
    lua_call(L, 2, 1);
  } else luaL_error(L, "json: unexpected value");
}

static int l_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (lua_isnoneornil(L, 2)) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "ltorch.odict");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "from");
    lua_replace(L, 2);
    lua_pop(L, 1);
  }
  if (lua_isnone(L, 3)) lua_pushnil(L);
  lua_settop(L, 3);
  jbox *b = lt_newbox(L, sizeof *b, "ltorch.jsonbox", jbox_gc);
  const char *end = NULL;
  b->root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  if (!b->root) {
    size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
    return luaL_error(L, "json: invalid JSON at byte %d", (int)at);
  }
  size_t used = end ? (size_t)(end - s) : len;
  while (used < len && (s[used] == ' ' || s[used] == '\t' || s[used] == '\n' || s[used] == '\r'))
    used++;
  if (used < len) return luaL_error(L, "json: unexpected text after the value at byte %d", (int)used);
  push_node(L, b->root, 2, 3, 0);
  cJSON_Delete(b->root);
  b->root = NULL;
  return 1;
}

/* ---- encoding --------------------------------------------------------------- */

typedef struct jbuf { char *p; size_t n, cap; } jbuf;

static int jbuf_gc(lua_State *L) {
  jbuf *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  return 0;
}

static void put(lua_State *L, jbuf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) luaL_error(L, "not enough memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}
#define PUTS(L, b, lit) put(L, b, lit, sizeof(lit) - 1)

/* a JSON string as serde_json writes it: UTF-8 kept, controls escaped */
static void put_string(lua_State *L, jbuf *b, const char *s, size_t n) {
  PUTS(L, b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    switch (c) {
      case '"': PUTS(L, b, "\\\""); break;
      case '\\': PUTS(L, b, "\\\\"); break;
      case '\n': PUTS(L, b, "\\n"); break;
      case '\r': PUTS(L, b, "\\r"); break;
      case '\t': PUTS(L, b, "\\t"); break;
      case '\b': PUTS(L, b, "\\b"); break;
      case '\f': PUTS(L, b, "\\f"); break;
      default:
        if (c < 0x20) {
          snprintf(esc, sizeof esc, "\\u%04x", c);
          put(L, b, esc, 6);
        } else put(L, b, (const char *)&s[i], 1);
    }
  }
  PUTS(L, b, "\"");
}

static void encode(lua_State *L, jbuf *b, int idx, int null, int depth);

static int sort_keys(lua_State *L) {
  /* sort the list at 1 (strings) */
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 0);
  return 0;
}

static void encode_table(lua_State *L, jbuf *b, int idx, int null, int depth) {
  if (depth > JSON_MAX_DEPTH) luaL_error(L, "json: nesting deeper than %d (cycle?)", JSON_MAX_DEPTH);
  luaL_checkstack(L, 8, "json nesting too deep");
  if (luaL_getmetafield(L, idx, "__pairs") != LUA_TNIL) {
    /* ordered dict (or any pairs-able table): an object in pairs order */
    lua_pushvalue(L, idx);
    lua_call(L, 1, 3);          /* f, s, ctl */
    int f = lua_gettop(L) - 2;
    int first = 1;
    PUTS(L, b, "{");
    for (;;) {
      lua_pushvalue(L, f);
      lua_pushvalue(L, f + 1);
      lua_pushvalue(L, f + 2);
      lua_call(L, 2, 2);
      if (lua_isnil(L, -2)) { lua_pop(L, 2); break; }
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "json: object keys must be strings");
      if (!first) PUTS(L, b, ",");
      first = 0;
      size_t kn;
      const char *k = lua_tolstring(L, -2, &kn);
      put_string(L, b, k, kn);
      PUTS(L, b, ":");
      encode(L, b, lua_gettop(L), null, depth + 1);
      lua_pop(L, 1);
      lua_replace(L, f + 2);   /* key becomes the control value */
    }
    lua_pop(L, 3);
    PUTS(L, b, "}");
    return;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lua_Integer count = 0;
  int strings = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) != LUA_TSTRING) strings = 0;
    lua_pop(L, 1);
  }
  int arr = luaL_getmetafield(L, idx, "__jsonarray") != LUA_TNIL;
  if (arr) lua_pop(L, 1);
  if ((count > 0 && count == n) || (count == 0 && arr)) {
    PUTS(L, b, "[");
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) PUTS(L, b, ",");
      lua_rawgeti(L, idx, i);
      encode(L, b, lua_gettop(L), null, depth + 1);
      lua_pop(L, 1);
    }
    PUTS(L, b, "]");
    return;
  }
  if (!strings) luaL_error(L, "json: cannot encode a table mixing non-string keys (not a sequence)");
  lua_createtable(L, (int)count, 0);
  int keys = lua_gettop(L);
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, ++i);
  }
  lua_pushcfunction(L, sort_keys);
  lua_pushvalue(L, keys);
  lua_call(L, 1, 0);
  PUTS(L, b, "{");
  for (i = 1; i <= count; i++) {
    if (i > 1) PUTS(L, b, ",");
    lua_rawgeti(L, keys, i);
    size_t kn;
    const char *k = lua_tolstring(L, -1, &kn);
    put_string(L, b, k, kn);
    PUTS(L, b, ":");
    lua_rawget(L, idx);
    encode(L, b, lua_gettop(L), null, depth + 1);
    lua_pop(L, 1);
  }
  PUTS(L, b, "}");
  lua_pop(L, 1);
}

static void encode(lua_State *L, jbuf *b, int idx, int null, int depth) {
  char num[64];
  switch (lua_type(L, idx)) {
    case LUA_TNIL: PUTS(L, b, "null"); break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) PUTS(L, b, "true"); else PUTS(L, b, "false");
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        int n = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        put(L, b, num, (size_t)n);
      } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) luaL_error(L, "json: cannot encode %f", v);
        int n = snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v) n = snprintf(num, sizeof num, "%.17g", v);
        if (!strpbrk(num, ".eEn")) { num[n++] = '.'; num[n++] = '0'; num[n] = 0; }
        put(L, b, num, (size_t)n);
      }
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      put_string(L, b, s, n);
      break;
    }
    case LUA_TTABLE:
      if (null && lua_rawequal(L, idx, null)) { PUTS(L, b, "null"); break; }
      encode_table(L, b, idx, null, depth);
      break;
    default:
      luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
  }
}

static int l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 2);
  int null = lua_isnil(L, 2) ? 0 : 2;
  jbuf *b = lt_newbox(L, sizeof *b, "ltorch.jsonbuf", jbuf_gc);
  encode(L, b, 1, null, 0);
  lua_pushlstring(L, b->p ? b->p : "", b->n);
  free(b->p);
  b->p = NULL;
  return 1;
}

void lt_open_json(lua_State *L, int mod) {
  lua_pushcfunction(L, l_json_decode);
  lua_setfield(L, mod, "_json_decode");
  lua_pushcfunction(L, l_json_encode);
  lua_setfield(L, mod, "_json_encode");
}
