/*
** ljson.c: JSON for the Lua side, decoding through cJSON.
**   _json_decode(s [, from, null]) -> value: objects become ordered dicts
**     (built by from(keys, data), ltorch.odict's constructor), arrays become
**     lists, null becomes the null sentinel; a number written without '.',
**     'e' or 'E' is an integer (exact, when it fits in int64; beyond, a
**     float), any other number a float ("1.0" and "1e3" stay floats);
**     duplicate object keys and trailing text are errors.
**   _json_encode(v [, null]) -> string: compact JSON. Tables with a __pairs
**     metamethod (odicts) are objects in pairs order; plain tables with keys
**     1..n are arrays; other plain tables are objects with keys sorted;
**     integers are written exactly, floats so they read back exactly, and
**     always with a '.' or an exponent, so they read back as floats.
**
** cJSON validates the text and builds the tree, but keeps neither a
** number's text (only its double) nor a string's length (its strings are C
** strings, cut at an escaped NUL). So the decoder reads the original text
** once more, in step with the tree: cJSON's children are in document order,
** so the k-th string or number node met by a depth-first walk (an object
** member's key before its value) is the k-th string or number token of the
** text. Each number token says whether the number is an integer, and gives
** integers their exact value; a string token holding a NUL is decoded from
** the text. One pass, no memory beyond the tree.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "lt_lua.h"

#define JSON_MAX_DEPTH 512

/* ---- decoding --------------------------------------------------------------- */

/* the release of a parsed tree, kept in a GC-owned box (lt_newptrbox) */
static void delete_json(void *root) { cJSON_Delete(root); }

/* the original text, read in step with the tree; p: where the next token
   is looked for, end: where cJSON's value ended */
typedef struct jscan { const char *s, *p, *end; } jscan;

enum { TOK_NONE, TOK_STRING, TOK_NUMBER };
typedef struct jtok {
  const char *b, *e;   /* the token's text: a string with its quotes */
  int kind;
  int nul;             /* a string that holds a NUL (raw or \u0000) */
} jtok;

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_num_char(char c) {
  return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* the next string or number token at or after sc->p. What lies between
   tokens (whitespace, punctuation, true, false, null) holds no '"', '-' or
   digit. The text was validated by cJSON, so a token ends where cJSON's did:
   a string at its closing quote, a number at the first character that
   cannot continue it */
static jtok next_token(jscan *sc) {
  jtok t = {NULL, NULL, TOK_NONE, 0};
  const char *p = sc->p, *end = sc->end;
  while (p < end && *p != '"' && *p != '-' && !is_digit(*p)) p++;
  if (p < end) {
    t.b = p;
    if (*p == '"') {
      t.kind = TOK_STRING;
      for (p++; p < end && *p != '"'; p++) {
        if (*p == '\0') t.nul = 1;
        else if (*p == '\\' && p + 1 < end) {
          if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) t.nul = 1;
          p++;   /* the escaped character cannot end the string */
        }
      }
      if (p < end) p++;
    } else {
      t.kind = TOK_NUMBER;
      while (p < end && is_num_char(*p)) p++;
    }
    t.e = p;
  }
  sc->p = p;
  return t;
}

/* the next token, which must be of kind (a string or number node); raises
   if the walk and the text are out of step (a bug, never a file's fault) */
static jtok expect_token(lua_State *L, jscan *sc, int kind) {
  jtok t = next_token(sc);
  if (t.kind != kind)
    luaL_error(L, "json: internal error: %s node and text out of step at byte %d",
               kind == TOK_STRING ? "string" : "number", (int)(sc->p - sc->s));
  return t;
}

/* a number token's integer value; 0 when the token has a fraction or an
   exponent, or when it does not fit in a lua_Integer */
static int token_integer(const jtok *t, lua_Integer *out) {
  const char *p = t->b;
  int neg = *p == '-';
  if (neg) p++;
  /* magnitude limit: 2^63 for a negative number, 2^63 - 1 otherwise */
  unsigned long long lim = neg ? (unsigned long long)LUA_MAXINTEGER + 1u
                               : (unsigned long long)LUA_MAXINTEGER;
  unsigned long long v = 0;
  if (p == t->e) return 0;
  for (; p < t->e; p++) {
    if (!is_digit(*p)) return 0;
    unsigned d = (unsigned)(*p - '0');
    if (v > (lim - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (!neg) *out = (lua_Integer)v;
  else if (v == (unsigned long long)LUA_MAXINTEGER + 1u) *out = LUA_MININTEGER;
  else *out = -(lua_Integer)v;
  return 1;
}

static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (unsigned)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* push a string token's value, decoded from the text: for the strings that
   hold a NUL, which cJSON's C strings cut short. The escapes were checked
   by cJSON (four hex digits, surrogates in pairs); the bounds are checked
   again here all the same */
static void push_token_string(lua_State *L, const jtok *t) {
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  const char *p = t->b + 1, *e = t->e - 1;   /* inside the quotes */
  while (p < e) {
    if (*p != '\\') { luaL_addchar(&B, *p++); continue; }
    if (e - p < 2) break;
    char c = p[1];
    p += 2;
    switch (c) {
      case 'b': luaL_addchar(&B, '\b'); break;
      case 'f': luaL_addchar(&B, '\f'); break;
      case 'n': luaL_addchar(&B, '\n'); break;
      case 'r': luaL_addchar(&B, '\r'); break;
      case 't': luaL_addchar(&B, '\t'); break;
      case 'u': {
        if (e - p < 4) { p = e; break; }
        unsigned long cp = hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(p + 2) - 0xDC00);
          p += 6;
        }
        char u[4];
        int n;
        if (cp < 0x80) { u[0] = (char)cp; n = 1; }
        else if (cp < 0x800) {
          u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2;
        } else if (cp < 0x10000) {
          u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
          u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
        } else {
          u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
          u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
        }
        luaL_addlstring(&B, u, (size_t)n);
        break;
      }
      default: luaL_addchar(&B, c);   /* '"', '\\', '/' */
    }
  }
  luaL_pushresult(&B);
}

/* push a string node's value (s: cJSON's C string), taking its token */
static void push_string(lua_State *L, jscan *sc, const char *s) {
  jtok t = expect_token(L, sc, TOK_STRING);
  if (t.nul) push_token_string(L, &t);
  else lua_pushstring(L, s ? s : "");
}

/* push the Lua value of node, reading its tokens from sc; from and null are
   stack indices */
static void push_node(lua_State *L, jscan *sc, const cJSON *node, int from, int null, int depth) {
  luaL_checkstack(L, 8, "json nesting too deep");
  if (depth > JSON_MAX_DEPTH) luaL_error(L, "json: nesting deeper than %d", JSON_MAX_DEPTH);
  if (cJSON_IsNull(node)) lua_pushvalue(L, null);
  else if (cJSON_IsFalse(node)) lua_pushboolean(L, 0);
  else if (cJSON_IsTrue(node)) lua_pushboolean(L, 1);
  else if (cJSON_IsNumber(node)) {
    jtok t = expect_token(L, sc, TOK_NUMBER);
    lua_Integer i;
    if (token_integer(&t, &i)) lua_pushinteger(L, i);
    else lua_pushnumber(L, node->valuedouble);
  } else if (cJSON_IsString(node)) push_string(L, sc, node->valuestring);
  else if (cJSON_IsArray(node)) {
    lua_newtable(L);
    lua_Integer i = 0;
    for (const cJSON *c = node->child; c; c = c->next) {
      push_node(L, sc, c, from, null, depth + 1);
      lua_seti(L, -2, ++i);
    }
  } else if (cJSON_IsObject(node)) {
    lua_pushvalue(L, from);
    lua_newtable(L);   /* keys */
    lua_newtable(L);   /* data */
    int data = lua_gettop(L);
    lua_Integer i = 0;
    for (const cJSON *c = node->child; c; c = c->next) {
      push_string(L, sc, c->string);   /* the key */
      lua_pushvalue(L, -1);
      if (lua_rawget(L, data) != LUA_TNIL)
        luaL_error(L, "json: duplicate key '%s'", lua_tostring(L, -2));
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, data - 1, ++i);
      push_node(L, sc, c, from, null, depth + 1);
      lua_rawset(L, data);
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
  lt_ptrbox *b = lt_newptrbox(L, delete_json);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  b->p = root;
  if (!root) {
    size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
    return luaL_error(L, "json: invalid JSON at byte %d", (int)at);
  }
  size_t used = end ? (size_t)(end - s) : len;
  while (used < len && (s[used] == ' ' || s[used] == '\t' || s[used] == '\n' || s[used] == '\r'))
    used++;
  if (used < len) return luaL_error(L, "json: unexpected text after the value at byte %d", (int)used);
  jscan sc = {s, s, end ? end : s + len};
  push_node(L, &sc, root, 2, 3, 0);
  b->p = NULL;
  cJSON_Delete(root);
  return 1;
}

/* ---- encoding --------------------------------------------------------------- */

typedef lt_buf jbuf;   /* the core's growable buffer (buf.c) */

static int jbuf_gc(lua_State *L) {
  lt_buf_free(lua_touserdata(L, 1));
  return 0;
}

static void put(lua_State *L, jbuf *b, const char *s, size_t n) {
  lt_buf_put(b, s, n);
  if (b->oom) luaL_error(L, "not enough memory");
}
#define PUTS(L, b, lit) put(L, b, lit, sizeof(lit) - 1)

/* a JSON string as serde_json writes it: UTF-8 kept, controls escaped (the
   core's escaper, buf.c, which the safetensors header writer uses too) */
static void put_string(lua_State *L, jbuf *b, const char *s, size_t n) {
  lt_buf_json_string(b, s, n);
  if (b->oom) luaL_error(L, "not enough memory");
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
        /* the shortest of 15, 16 or 17 digits that reads back as v */
        int n = snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v) n = snprintf(num, sizeof num, "%.16g", v);
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

static const luaL_Reg funcs[] = {
  {"_json_decode", l_json_decode}, {"_json_encode", l_json_encode},
  {NULL, NULL}
};

const lt_binding lt_json_binding = {funcs, NULL, NULL, NULL, NULL};
