/*
** lshape.c: the Lua binding of indexing and shape ops (gather scatter index_select masked_fill tril triu chunk split flip roll tile repeat_interleave diag outer), bmm and baddbmm.
*/
#include "lmath.h"

static const luaL_Reg funcs[] = {
  {NULL, NULL}
};

static const luaL_Reg both[] = {
  {NULL, NULL}
};

const lt_binding lt_shape_binding = {funcs, NULL, both, NULL, NULL};
