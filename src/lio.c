/*
** lio.c: the Lua binding of the file formats (PyTorch zip and legacy,
** pickle, safetensors, NumPy, TorchSharp).
*/
#include "lt_lua.h"

void lt_open_io(lua_State *L, int mod, int methods) {
  (void)L; (void)mod; (void)methods;
}
