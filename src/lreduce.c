/*
** lreduce.c: the Lua binding of reductions (sum mean var std prod norm any all amax amin, with dims and keepdim), scans (cumsum cumprod), sorting (sort argsort topk).
*/
#include "lmath.h"

static const luaL_Reg funcs[] = {
  {NULL, NULL}
};

static const luaL_Reg both[] = {
  {NULL, NULL}
};

const lt_binding lt_reduce_binding = {funcs, NULL, both, NULL, NULL};
