/*
** fuzz_npy.c: the .npy header parser (src/npy.c): lt_npy_preamble and
** lt_npy_parse on the input's first bytes (copied to a buffer of exactly
** the preamble's length), then the string conversions on its data: the
** first U element as UTF-8, and the input as UTF-8 to UTF-32.
*/
#include <stdlib.h>
#include <string.h>
#include "fmt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[LT_MSG];
  size_t need = 0;
  if (lt_npy_preamble(data, size, &need, err) == 0 && need <= size) {
    unsigned char *pre = malloc(need);
    if (!pre) return 0;
    memcpy(pre, data, need);
    lt_npy_header h;
    memset(&h, 0, sizeof h);
    if (lt_npy_parse(pre, need, &h, err) == 0) {
      if (h.data_offset > need || h.ndim < 0 || h.ndim > LT_MAX_DIMS) __builtin_trap();
      if (h.kind == 'U' && h.itemsize >= 4 && h.itemsize <= 4096 && h.data_offset + h.itemsize <= size) {
        char *out = malloc(h.itemsize);
        if (out) {
          size_t w = lt_npy_utf32_to_utf8(data + h.data_offset, h.itemsize / 4, h.big_endian, out, err);
          if (w != (size_t)-1 && w > h.itemsize) __builtin_trap();
          free(out);
        }
      }
    }
    free(pre);
  }
  size_t n = size < 4096 ? size : 4096;
  int64_t chars = lt_npy_utf8_chars((const char *)data, n);
  if (chars > (int64_t)n) __builtin_trap();
  if (chars >= 0) {
    unsigned char *u = malloc((size_t)chars * 4 + 4);
    if (u) {
      lt_npy_utf8_to_utf32((const char *)data, n, u, (size_t)chars + 1);
      free(u);
    }
  }
  return 0;
}
