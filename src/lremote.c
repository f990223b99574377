/*
** lremote.c: the Lua binding of remote objects (remote.c). remote.lua
** opens an object, fetches what a format's header needs, and hands the
** loaders the object's local mirror by its /proc/self/fd path.
**   core._remote_open(url, {connections =, retries =, timeout_ms =, aws_sigv4 =,
**     userpwd =, headers =, ca_file =}) -> handle
**   h:path()  the local mirror, for the loaders
**   h:size()  the object's size
**   h:fetch(off, len [, progress]), h:fetch({off, len, off2, len2, ...}
**     [, progress])  make those ranges present (one batch: missing parts
**     coalesced and fetched in parallel)
**   h:fetch_memory([progress])  the whole object into memory, not the
**     mirror: the loaders' reads and mappings of the mirror are then that
**     memory (an eager load's only copy)
**   h:read(off, len) -> the bytes (fetched first)
**   h:stats() -> bytes fetched, requests made
**   h:close()
**   core._s3_begin(url, opts) -> an S3 upload (below)
** Offsets are 0-based byte offsets, as in the file formats.
** Layer: a binding, above remote.c.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lt_lua.h"
#include "rawio.h"

#define REMOTE_MT "ltorch.remote"
#define S3UP_MT "ltorch.s3upload"

typedef struct rbox { lt_remote *r; } rbox;

static lt_remote *check(lua_State *L) {
  rbox *b = luaL_checkudata(L, 1, REMOTE_MT);
  if (!b->r) luaL_error(L, "attempt to use a closed remote object");
  return b->r;
}

static int r_close(lua_State *L) {
  rbox *b = luaL_checkudata(L, 1, REMOTE_MT);
  lt_remote_release(b->r);
  b->r = NULL;
  return 0;
}

static const char *opt_string(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1);   /* the options table keeps the string alive */
  return s;
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* the options of the table at idx (its strings are the table's, kept by it) */
static void read_opts(lua_State *L, int idx, lt_remote_opts *o) {
  o->connections = (int)opt_int(L, idx, "connections", 0);
  o->retries = (int)opt_int(L, idx, "retries", -1);
  o->timeout_ms = (long)opt_int(L, idx, "timeout_ms", 0);
  o->aws_sigv4 = opt_string(L, idx, "aws_sigv4");
  o->userpwd = opt_string(L, idx, "userpwd");
  o->headers = opt_string(L, idx, "headers");
  o->ca_file = opt_string(L, idx, "ca_file");
}

static int l_remote_open(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lt_remote_opts o = {0};
  o.retries = -1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    read_opts(L, 2, &o);
  }
  rbox *b = lt_newbox(L, sizeof *b, REMOTE_MT, r_close);
  char err[LT_MSG];
  b->r = lt_remote_open(url, &o, err);
  if (!b->r) { lua_pushstring(L, err); return lua_error(L); }
  return 1;
}

static int r_path(lua_State *L) {
  lt_remote *r = check(L);
  lua_pushfstring(L, "/proc/self/fd/%d", lt_remote_fd(r));
  return 1;
}

static int r_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lt_remote_size(check(L)));
  return 1;
}

static uint64_t check_u64(lua_State *L, int i) {
  lua_Integer v = luaL_checkinteger(L, i);
  if (v < 0) luaL_argerror(L, i, "negative");
  return (uint64_t)v;
}

/* h:fetch(off, len [, progress]) or h:fetch({off1, len1, off2, len2, ...}
   [, progress]): progress(done, total) in bytes, as a load's progress option */
static int r_fetch(lua_State *L) {
  lt_remote *r = check(L);
  int fn = lua_isfunction(L, lua_gettop(L)) ? lua_gettop(L) : 0;
  size_t n;
  uint64_t *rg;
  if (lua_istable(L, 2)) {
    size_t len = (size_t)lua_rawlen(L, 2);
    if (len % 2) luaL_argerror(L, 2, "offset, length pairs expected");
    n = len / 2;
    rg = lua_newuserdatauv(L, sizeof *rg * 2 * (n ? n : 1), 0);
    for (size_t k = 0; k < 2 * n; k++) {
      lua_rawgeti(L, 2, (lua_Integer)k + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok || v < 0) luaL_argerror(L, 2, "offsets and lengths must be integers of at least 0");
      rg[k] = (uint64_t)v;
      lua_pop(L, 1);
    }
  } else {
    n = 1;
    rg = lua_newuserdatauv(L, sizeof *rg * 2, 0);
    rg[0] = check_u64(L, 2);
    rg[1] = check_u64(L, 3);
  }
  uint64_t total = 0;
  for (size_t k = 0; k < n; k++) total += rg[2 * k + 1];
  lt_progress pg;
  lt_progress_init(L, &pg, fn, total);
  char err[LT_MSG];
  int rc = lt_remote_ensure_many(r, rg, n, fn ? lt_progress_step : NULL, &pg, err);
  lt_progress_check(&pg);   /* the callback's own error, as it raised it */
  if (rc) { lua_pushstring(L, err); return lua_error(L); }
  return 0;
}

/* h:fetch_memory([progress]): the whole object into memory, for an eager
   load (lt_remote_fetch_memory) */
static int r_fetch_memory(lua_State *L) {
  lt_remote *r = check(L);
  int fn = lua_isfunction(L, 2) ? 2 : 0;
  lt_progress pg;
  lt_progress_init(L, &pg, fn, lt_remote_size(r));
  char err[LT_MSG];
  int rc = lt_remote_fetch_memory(r, fn ? lt_progress_step : NULL, &pg, err);
  lt_progress_check(&pg);
  if (rc) { lua_pushstring(L, err); return lua_error(L); }
  return 0;
}

static int r_read(lua_State *L) {
  lt_remote *r = check(L);
  uint64_t off = check_u64(L, 2), len = check_u64(L, 3), size = lt_remote_size(r);
  if (off > size) off = size;
  if (len > size - off) len = size - off;
  char err[LT_MSG];
  if (len && lt_remote_ensure(r, off, len, err)) { lua_pushstring(L, err); return lua_error(L); }
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)len);
  if (len && lt_pread_full(lt_remote_fd(r), p, (size_t)len, off, err)) { lua_pushstring(L, err); return lua_error(L); }
  luaL_pushresultsize(&b, (size_t)len);
  return 1;
}

static int r_stats(lua_State *L) {
  uint64_t bytes;
  unsigned long req;
  lt_remote_stats(check(L), &bytes, &req);
  lua_pushinteger(L, (lua_Integer)bytes);
  lua_pushinteger(L, (lua_Integer)req);
  return 2;
}

static int up_follow(lua_State *L);
static int up_finish(lua_State *L);
static int up_abort_l(lua_State *L);
static int up_failure(lua_State *L);
static int up_gc(lua_State *L);

/* a metatable with __gc and the methods m as __index */
static void methods(lua_State *L, const char *mt, lua_CFunction gc, const luaL_Reg *m) {
  luaL_getmetatable(L, mt);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    luaL_newmetatable(L, mt);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_newtable(L);
  luaL_setfuncs(L, m, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

static void open_remote(lua_State *L) {
  static const luaL_Reg um[] = {{"follow", up_follow}, {"finish", up_finish}, {"abort", up_abort_l}, {"failure", up_failure}, {NULL, NULL}};
  static const luaL_Reg m[] = {
    {"path", r_path}, {"size", r_size}, {"fetch", r_fetch}, {"fetch_memory", r_fetch_memory}, {"read", r_read},
    {"stats", r_stats}, {"close", r_close}, {NULL, NULL}
  };
  methods(L, S3UP_MT, up_gc, um);
  methods(L, REMOTE_MT, r_close, m);
}

/* core._s3_begin(url, opts) -> upload (CreateMultipartUpload now)
     up:follow(path)   the file a writer is writing front to back: its
                       parts go out as the writer passes them
     up:finish(path)   the rest of the file at path, then the object
     up:abort()        nothing is left on the server (also when collected
                       before finish)
     up:failure()      the upload's error once it has failed, or nil; the
                       followed writer's writes fail from then on */
typedef struct upbox { lt_s3_up *up; char *watch; } upbox;

/* the watch (lt_temp_watch) ended: before the upload goes */
static void unwatch(upbox *b) {
  if (b->watch) lt_temp_unwatch(b->watch);
  free(b->watch);
  b->watch = NULL;
}

static void on_temp(void *ud, int fd) { lt_s3_follow_fd(ud, fd); }
static int on_write(void *ud) { return lt_s3_failed(ud, NULL); }

static lt_s3_up *check_up(lua_State *L) {
  upbox *b = luaL_checkudata(L, 1, S3UP_MT);
  if (!b->up) luaL_error(L, "attempt to use a finished upload");
  return b->up;
}

static int up_gc(lua_State *L) {
  upbox *b = luaL_checkudata(L, 1, S3UP_MT);
  unwatch(b);
  if (b->up) lt_s3_abort(b->up);
  b->up = NULL;
  return 0;
}

static int l_s3_begin(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lt_remote_opts o = {0};
  read_opts(L, 2, &o);
  lua_Integer part = opt_int(L, 2, "part_size", (lua_Integer)8 << 20);
  upbox *b = lt_newbox(L, sizeof *b, S3UP_MT, up_gc);
  char err[LT_MSG];
  b->up = lt_s3_begin(url, &o, (uint64_t)(part > 0 ? part : 0), err);
  if (!b->up) { lua_pushstring(L, err); return lua_error(L); }
  return 1;
}

/* up:follow(tmp): the writer's file for tmp, once it makes it */
static int up_follow(lua_State *L) {
  lt_s3_up *up = check_up(L);
  upbox *b = lua_touserdata(L, 1);
  const char *path = luaL_checkstring(L, 2);
  unwatch(b);
  b->watch = strdup(path);
  if (!b->watch || lt_temp_watch(path, on_temp, on_write, up)) {
    free(b->watch);
    b->watch = NULL;   /* no watch: the parts go when the file is done */
  }
  return 0;
}

static int up_finish(lua_State *L) {
  lt_s3_up *up = check_up(L);
  const char *path = luaL_checkstring(L, 2);
  upbox *b = lua_touserdata(L, 1);
  unwatch(b);
  b->up = NULL;
  char err[LT_MSG];
  if (lt_s3_finish(up, path, err)) { lua_pushstring(L, err); return lua_error(L); }
  return 0;
}

static int up_abort_l(lua_State *L) { return up_gc(L); }

/* up:failure(): why the upload failed, or nil (also once finished) */
static int up_failure(lua_State *L) {
  upbox *b = luaL_checkudata(L, 1, S3UP_MT);
  char err[LT_MSG];
  if (b->up && lt_s3_failed(b->up, err)) lua_pushstring(L, err);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"_remote_open", l_remote_open}, {"_s3_begin", l_s3_begin},
  {NULL, NULL}
};

const lt_binding lt_remote_binding = {funcs, NULL, NULL, NULL, open_remote};
