/*
** fuzz_safetensors.c: the safetensors header parser (src/safetensors.c,
** lt_st_parse). The input is a safetensors file: an 8-byte little-endian
** header length, the JSON header, the data buffer. A length past the end
** is cut to what is there, so every input reaches the parser; the header
** is copied to a buffer of exactly its length (no NUL after it).
*/
#include <stdlib.h>
#include <string.h>
#include "fmt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
  size_t len = size - 8;
  if (n < len) len = (size_t)n;
  char *json = malloc(len ? len : 1);
  if (!json) return 0;
  memcpy(json, data + 8, len);
  lt_st_header h;
  memset(&h, 0, sizeof h);
  char err[LT_MSG];
  if (lt_st_parse(json, len, (uint64_t)(size - 8 - len), &h, err) == 0) {
    for (size_t i = 0; i < h.n; i++)   /* what the parser promises */
      if (h.e[i].begin > h.e[i].end || h.e[i].end > size - 8 - len) __builtin_trap();
    lt_st_free(&h);
  }
  free(json);
  return 0;
}
