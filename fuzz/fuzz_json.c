/*
** fuzz_json.c: the JSON decoder and encoder (src/ljson.c, through
** lua/ltorch/json.lua). The input is decoded; what decodes is encoded, and
** that text must decode and encode back to itself: when it does not, the
** target aborts (a finding).
*/
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include "fuzz_util.h"

static int mismatch(lua_State *L) {
  fprintf(stderr, "fuzz_json: %s\n", lua_tostring(L, 1));
  abort();
}

static void setup(lua_State *L) { lua_register(L, "fuzz_mismatch", mismatch); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  fz_lua_init(
    "local json = require('ltorch.json')\n"
    "require('ltorch')\n"
    "return function(_, s)\n"
    "  local ok, v = pcall(json.decode, s)\n"
    "  if not ok then return end\n"
    "  local e = json.encode(v)\n"
    "  local ok2, v2 = pcall(json.decode, e)\n"
    "  if not ok2 then fuzz_mismatch('encoded text does not decode: ' .. tostring(v2)) end\n"
    "  local e2 = json.encode(v2)\n"
    "  if e2 ~= e then fuzz_mismatch('round trip changed ' .. e .. ' to ' .. e2) end\n"
    "end\n", setup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_lua_run(data, size, NULL);
  return 0;
}
