/*
** fuzz_pt.c: a whole torch.load of a .pt file (lua/ltorch/formats/pt.lua,
** src/lpt.c, src/ptzip.c, src/pickle.c: zip and legacy checkpoints),
** read into memory with unknown globals made inert, and mapped; each
** loaded value is walked and its small tensors read (fuzz_lua_common.h).
*/
#include "fuzz_util.h"
#include "fuzz_lua_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fz_lua_init(FZ_LUA_TOUCH FZ_LUA_LOAD, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_lua_run(data, size, ".pt");
  return 0;
}
