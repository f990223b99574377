/*
** fuzz_t7.c: the Torch7 reader (src/t7.c): lt_t7_detect on the first 64
** bytes, then lt_t7_parse of the whole input as a binary file with 8- and
** with 4-byte longs and as an ascii file.
*/
#include <string.h>
#include "t7.h"
#include "fuzz_util.h"

static void parse(const uint8_t *data, size_t size, int long_size, int ascii) {
  lt_t7_file f;
  memset(&f, 0, sizeof f);
  char err[LT_MSG];
  if (lt_t7_parse(data, size, long_size, ascii, &f, err) == 0) {
    for (size_t i = 0; i < f.nnodes; i++)   /* binary storages lie inside the file */
      if (f.nodes[i].kind == LT_T7_STORAGE && !ascii && f.nodes[i].data > size) __builtin_trap();
    lt_t7_free(&f);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int ascii = 0;
  (void)lt_t7_detect(data, size < 64 ? size : 64, size, &ascii);
  parse(data, size, 8, 0);
  parse(data, size, 4, 0);
  parse(data, size, 8, 1);
  return 0;
}
