/*
** lio.c: registers the file-format bindings (lpt.c: PyTorch zip, legacy and
** pickle; lfmt.c: safetensors, NumPy, TorchSharp).
*/
#include "lt_lua.h"

void lt_open_io(lua_State *L, int mod, int methods) {
  lt_open_pt(L, mod, methods);
  lt_open_fmt(L, mod, methods);
}
