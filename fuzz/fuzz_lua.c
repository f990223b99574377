/*
** fuzz_lua.c: the Lua host of the targets that fuzz whole loads
** (fuzz_pt.c, fuzz_npz.c, fuzz_json.c). One lua_State per process, with
** ltorch's core linked in (the sanitizer build of src/ files, opened through
** package.preload as examples/host/host.c does) and its Lua modules found
** in the checkout.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "ltorch.h"
#include "fuzz_util.h"

static lua_State *L;
static int fn_ref = LUA_NOREF;
static char dir[PATH_MAX];
static char file[PATH_MAX];

/* the checkout: $LTORCH_ROOT, else three folders above the binary
   (build-fuzz/bin/fuzz_x) */
static void find_root(char *buf, size_t n) {
  const char *env = getenv("LTORCH_ROOT");
  if (env && *env) { snprintf(buf, n, "%s", env); return; }
  ssize_t len = readlink("/proc/self/exe", buf, n - 1);
  if (len <= 0) { snprintf(buf, n, "."); return; }
  buf[len] = 0;
  for (int up = 0; up < 3; up++) {
    char *slash = strrchr(buf, '/');
    if (!slash) { snprintf(buf, n, "."); return; }
    *slash = 0;
  }
  if (!*buf) snprintf(buf, n, "/");
}

static void remove_dir(void) {
  if (*file) unlink(file);
  if (*dir) rmdir(dir);
}

static void die(const char *what) {
  fprintf(stderr, "fuzz_lua: %s: %s\n", what, L ? lua_tostring(L, -1) : "no state");
  abort();
}

void fz_lua_init(const char *chunk, void (*setup)(lua_State *L)) {
  char root[PATH_MAX];
  find_root(root, sizeof root);
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/ltorch-fuzz-XXXXXX", tmp);
  if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
  atexit(remove_dir);

  L = luaL_newstate();
  if (!L) die("luaL_newstate");
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");           /* no other copy of core.so */
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_ltorch_core);
  lua_setfield(L, -2, "ltorch.core");
  lua_pop(L, 2);
  if (setup) setup(L);
  if (luaL_loadstring(L, chunk) != LUA_OK) die("loading the chunk");
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) die("running the chunk");
  if (!lua_isfunction(L, -1)) die("the chunk returned no function");
  fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_gc(L, LUA_GCCOLLECT);
}

void fz_lua_run(const uint8_t *data, size_t size, const char *ext) {
  if (ext) {
    if (!*file) snprintf(file, sizeof file, "%s/input%s", dir, ext);
    FILE *f = fopen(file, "wb");
    if (!f) { perror(file); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(file); abort(); }
    if (fclose(f) != 0) { perror(file); abort(); }
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
  if (ext) lua_pushstring(L, file);
  else lua_pushnil(L);
  lua_pushlstring(L, (const char *)data, size);
  (void)lua_pcall(L, 2, 0, 0);     /* an error is the expected answer to bad input */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
}
