/*
** host_state.h: what the example hosts (host.c, threads.c) share: where
** ltorch's Lua modules are, and a new lua_State that finds them and opens
** this program's copy of core.so. Static functions: each host is one file.
*/
#ifndef HOST_STATE_H
#define HOST_STATE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "ltorch.h"

/* where lua/ltorch is: $LTORCH_ROOT, else the folder above the one that
   holds this program; buf holds it */
static const char *find_root(char *buf, size_t n) {
  const char *env = getenv("LTORCH_ROOT");
  if (env && *env) return env;
  ssize_t len = readlink("/proc/self/exe", buf, n - 1);
  if (len <= 0) return ".";
  buf[len] = 0;
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(buf, '/');
    if (!slash) return ".";
    *slash = 0;
  }
  return *buf ? buf : "/";
}

/* a new state whose require finds ltorch's Lua modules under root, and
   whose require("ltorch.core") opens the copy of core.so this program is
   linked with (the one the ltorch_* functions belong to); NULL when out
   of memory */
static lua_State *new_state(const char *root) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", root, root, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_ltorch_core);
  lua_setfield(L, -2, "ltorch.core");
  lua_pop(L, 2);
  return L;
}

#endif
