/*
** lops.c: the Lua binding of the math in ops.c (arithmetic with
** broadcasting, matmul, activations, reductions, cat/stack, conv and pooling).
*/
#include "lt_lua.h"

void lt_open_ops(lua_State *L, int mod, int methods) {
  (void)L; (void)mod; (void)methods;
}
