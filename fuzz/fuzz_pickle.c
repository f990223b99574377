/*
** fuzz_pickle.c: the pickle reader (src/pickle.c, pk_load). The input is
** run as a sequence of pickles sharing one arena and result, as a legacy
** .pt file's are (magic, protocol, sys info, the object, the storage keys).
*/
#include <string.h>
#include "pickle.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pk_arena *a = pk_arena_new();
  if (!a) return 0;
  pk_result res;
  memset(&res, 0, sizeof res);
  char err[LT_MSG];
  size_t pos = 0;
  for (int i = 0; i < 8 && pos < size; i++) {
    res.consumed = 0;
    if (pk_load(a, data + pos, size - pos, &res, err) != 0) break;
    if (res.consumed == 0 || res.consumed > size - pos) __builtin_trap();   /* no progress, or past the end */
    pos += res.consumed;
  }
  pk_result_free(&res);
  pk_arena_free(a);
  return 0;
}
