/*
** fuzz_npz.c: a whole torch.load of a .npz archive (lua/ltorch/formats/
** npz.lua and npy.lua, src/ptzip.c, src/npy.c; object arrays through
** src/pickle.c), read into memory with unknown globals made inert, and
** mapped; each loaded value is walked and its small tensors read.
*/
#include "fuzz_util.h"
#include "fuzz_lua_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fz_lua_init(FZ_LUA_TOUCH FZ_LUA_LOAD, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_lua_run(data, size, ".npz");
  return 0;
}
