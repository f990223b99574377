/*
** lpt.c: the Lua binding of the PyTorch formats (pickle.c, ptzip.c).
*/
#include "lt_lua.h"

void lt_open_pt(lua_State *L, int mod, int methods) {
  (void)L; (void)mod; (void)methods;
}
