/*
** lfmt.c: the Lua binding of safetensors, NumPy and TorchSharp.
*/
#include "lt_lua.h"
#include "fmt.h"

void lt_open_fmt(lua_State *L, int mod, int methods) {
  (void)methods;
  lt_open_json(L, mod);
}
