/*
** lprogress.c: the one progress policy of the bindings (lpt.c, lfmt.c, lnpy.c).
** A load or save that reports progress calls the Lua callback between the
** chunks of C loops that hold buffers, descriptors and half-written files,
** so the callback runs protected (lua_pcall). An error in it is kept in a
** stack slot and stops the loop (the C callback returns nonzero); the loop
** frees what it holds and returns, and the binding raises the kept error
** once, unchanged, after closing its file (the Lua side then removes the
** unfinished file). The callback is not called again after it has failed.
*/
#include <string.h>
#include "lt_lua.h"

void lt_progress_init(lua_State *L, lt_progress *p, int fn, uint64_t total) {
  memset(p, 0, sizeof *p);
  p->L = L;
  p->fn = fn;
  p->total = total;
  lua_pushnil(L);            /* the slot of the callback's error */
  p->slot = lua_gettop(L);
}

/* call fn(done, total) protected; nonzero once it has failed */
static int report(lt_progress *p) {
  if (p->failed) return 1;
  if (!p->fn) return 0;
  lua_State *L = p->L;
  if (!lua_checkstack(L, 3)) return 0;   /* no room: this report is skipped */
  lua_pushvalue(L, p->fn);
  lua_pushinteger(L, (lua_Integer)p->done);
  lua_pushinteger(L, (lua_Integer)p->total);
  if (lua_pcall(L, 2, 0, 0) == LUA_OK) return 0;
  lua_replace(L, p->slot);
  p->failed = 1;
  return 1;
}

int lt_progress_step(void *ud, uint64_t n) {
  lt_progress *p = ud;
  p->done += n;
  return report(p);
}

int lt_progress_jobs(void *ud, uint64_t done) {
  lt_progress *p = ud;
  p->done = p->base + done;
  return report(p);
}

void lt_progress_add(lt_progress *p, uint64_t n) {
  if (lt_progress_step(p, n)) lt_progress_check(p);
}

void lt_progress_check(lt_progress *p) {
  if (!p->failed) return;
  lua_pushvalue(p->L, p->slot);
  lua_error(p->L);
}
