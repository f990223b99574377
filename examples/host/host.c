/*
** host.c: a complete C host application embedding ltorch.
** Runs N threads, each with its own lua_State: the host wraps its own float
** buffer as a tensor, Lua code computes on it, and the host reads the
** result back through the accessors of ltorch.h. With a path argument it
** then loads that checkpoint with ltorch_load and lists its tensors, one
** line each: name, dtype, shape ("fc.weight float32 [10, 4]"; the names of
** dicts inside dicts joined with '.'), in the file's order (ltorch_next).
**   build/host [checkpoint]      (or: build/host -e CODE, a chunk to run)
** It runs from any folder: core.so is found through the rpath
** ($ORIGIN/ltorch), the Lua modules in $LTORCH_ROOT/lua, by default the
** folder above the program's (build/host: the checkout).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "ltorch.h"
#include "host_state.h"

#define NTHREADS 4

typedef struct job { int id; const char *root; int ok; } job;

static void released(void *ctx) { *(int *)ctx = 1; }

static void *run(void *arg) {
  job *j = arg;
  lua_State *L = new_state(j->root);
  float buf[6];
  for (int i = 0; i < 6; i++) buf[i] = (float)(i + j->id);
  int64_t shape[2] = {2, 3};
  int freed = 0;
  /* the chunk receives the host tensor and returns a new one */
  const char *chunk =
      "local torch = require('ltorch')\n"
      "local t = ...\n"
      "assert(t:dtype() == 'float32' and t:size(1) == 2)\n"
      "t[1]:fill(100)\n"                   /* writes into the host's buffer */
      "return t:t():contiguous()\n";
  if (luaL_loadstring(L, chunk) != LUA_OK) goto fail;
  if (!ltorch_pushwrap(L, buf, "float32", 2, shape, NULL, released, &freed)) {
    lua_pushliteral(L, "pushwrap failed");
    goto fail;
  }
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) goto fail;
  ltorch_Tensor *r = ltorch_checktensor(L, -1);
  const float *d = ltorch_data(r);
  int good = ltorch_ndim(r) == 2 && ltorch_size(r, 0) == 3 && ltorch_size(r, 1) == 2 &&
             strcmp(ltorch_dtype(r), "float32") == 0 && ltorch_is_contiguous(r) &&
             d[0] == 100 && d[1] == (float)(3 + j->id) && buf[0] == 100;
  lua_pop(L, 1);
  lua_close(L);   /* collects the wrapped tensor: release must have run */
  j->ok = good && freed;
  printf("thread %d: %s\n", j->id, j->ok ? "ok" : "FAILED");
  return NULL;
fail:
  fprintf(stderr, "thread %d: %s\n", j->id, lua_tostring(L, -1));
  lua_close(L);
  return NULL;
}

static void print_tensor(const char *name, const ltorch_Tensor *t) {
  printf("%s %s [", name, ltorch_dtype(t));
  for (int d = 0; d < ltorch_ndim(t); d++) printf(d ? ", %lld" : "%lld", (long long)ltorch_size(t, d));
  printf("]\n");
}

/* print the tensors of the dict at index dict, walking the dicts in it;
   prefix (with a '.') comes before their names */
static void list_dict(lua_State *L, int dict, const char *prefix) {
  luaL_checkstack(L, 8, "dicts nested too deep");
  lua_pushnil(L);
  while (ltorch_next(L, dict)) {                   /* key, value */
    luaL_tolstring(L, -2, NULL);                   /* key, value, key as text */
    const char *name = lua_pushfstring(L, "%s%s%s", prefix, *prefix ? "." : "", lua_tostring(L, -1));
    int v = lua_gettop(L) - 2;
    ltorch_Tensor *t = ltorch_totensor(L, v);
    if (t) print_tensor(name, t);
    else if (lua_istable(L, v)) list_dict(L, v, name);
    lua_pop(L, 3);                                 /* the key stays for ltorch_next */
  }
}

/* list(path): load the checkpoint and list its tensors (raises on errors) */
static int list(lua_State *L) {
  if (ltorch_load(L, luaL_checkstring(L, 1)) != LUA_OK) return lua_error(L);
  ltorch_Tensor *t = ltorch_totensor(L, -1);
  if (t) print_tensor("tensor", t);
  else if (lua_istable(L, -1)) list_dict(L, lua_gettop(L), "");
  return 0;
}

int main(int argc, char **argv) {
  char buf[4096];
  const char *root = find_root(buf, sizeof buf);
  pthread_t th[NTHREADS];
  job jobs[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    jobs[i] = (job){i, root, 0};
    pthread_create(&th[i], NULL, run, &jobs[i]);
  }
  int ok = 1;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    ok &= jobs[i].ok;
  }
  if (argc > 1) {
    fflush(stdout);
    lua_State *L = new_state(root);
    int rc;
    if (argc > 2 && !strcmp(argv[1], "-e")) {
      /* host -e CODE: run a chunk (torch is require("ltorch")), as a host
         running its users' scripts would */
      rc = luaL_loadstring(L, "torch = require('ltorch')");
      if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0);
      if (rc == LUA_OK) rc = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(host chunk)");
      if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0);
    } else {
      lua_pushcfunction(L, list);
      lua_pushstring(L, argv[1]);
      rc = lua_pcall(L, 1, 0, 0);
    }
    if (rc != LUA_OK) {
      fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
      ok = 0;
    }
    lua_close(L);
  }
  return ok ? 0 : 1;
}
