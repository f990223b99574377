/*
** host.c: a complete C host application embedding ltorch.
** Runs N threads, each with its own lua_State: the host wraps its own float
** buffer as a tensor, Lua code computes on it, and the host reads the
** result back through the accessors of ltorch.h. With a path argument it
** also loads that checkpoint with ltorch_load and prints its tensors.
**   build/host [checkpoint]
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "ltorch.h"

#define NTHREADS 4

typedef struct job { int id; const char *root; const char *ckpt; int ok; } job;

static void set_paths(lua_State *L, const char *root) {
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pushfstring(L, "%s/build/?.so", root);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}

static void released(void *ctx) { *(int *)ctx = 1; }

static void *run(void *arg) {
  job *j = arg;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  set_paths(L, j->root);
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
  if (j->ckpt && j->id == 0) {
    if (ltorch_load(L, j->ckpt) != LUA_OK) goto fail;
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        ltorch_Tensor *t = ltorch_totensor(L, -1);
        if (t && lua_type(L, -2) == LUA_TSTRING)
          printf("%s %s ndim=%d numel=%lld\n", lua_tostring(L, -2), ltorch_dtype(t),
                 ltorch_ndim(t), (long long)ltorch_numel(t));
        lua_pop(L, 1);
      }
    } else if (ltorch_totensor(L, -1)) {
      ltorch_Tensor *t = ltorch_totensor(L, -1);
      printf("tensor %s numel=%lld\n", ltorch_dtype(t), (long long)ltorch_numel(t));
    }
    lua_pop(L, 1);
  }
  lua_close(L);   /* collects the wrapped tensor: release must have run */
  j->ok = good && freed;
  printf("thread %d: %s\n", j->id, j->ok ? "ok" : "FAILED");
  return NULL;
fail:
  fprintf(stderr, "thread %d: %s\n", j->id, lua_tostring(L, -1));
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  const char *root = getenv("LTORCH_ROOT") ? getenv("LTORCH_ROOT") : ".";
  pthread_t th[NTHREADS];
  job jobs[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    jobs[i] = (job){i, root, argc > 1 ? argv[1] : NULL, 0};
    pthread_create(&th[i], NULL, run, &jobs[i]);
  }
  int ok = 1;
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    ok &= jobs[i].ok;
  }
  return ok ? 0 : 1;
}
