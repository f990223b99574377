/*
** fuzz_zip.c: the zip container reader (src/ptzip.c): pz_open on the
** input (fd a memfd, map the input itself, so any read past it is an ASan
** report), then every entry (at most 64) looked up by name and read whole
** with its crc checked, and its second half read as a range. pz_peek_first
** on the same input must agree with pz_open's first entry whenever both
** succeed.
*/
#include <stdlib.h>
#include <string.h>
#include "ptzip.h"
#include "fuzz_util.h"

#define MAX_READ ((uint64_t)16 << 20)   /* bytes of one entry read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = fz_memfd(data, size);
  pz_reader z;
  memset(&z, 0, sizeof z);
  char err[LT_MSG];
  char name[PZ_MAX_NAME + 1];
  pz_entry first = {.name = name};
  uint64_t count = 0;
  int peeked = pz_peek_first(data, size, &first, &count) == 0;
  if (pz_open(&z, fd, size, data, err) == 0) {
    if (peeked && z.n) {
      const pz_entry *e = &z.entries[0];
      if (count != z.n || e->name_len != first.name_len || memcmp(e->name, first.name, e->name_len) ||
          e->data_off != first.data_off || e->usize != first.usize || e->csize != first.csize ||
          e->crc != first.crc || e->method != first.method)
        __builtin_trap();
    }
    for (size_t i = 0; i < z.n && i < 64; i++) {
      const pz_entry *e = &z.entries[i];
      if (!pz_find(&z, e->name)) __builtin_trap();   /* every entry is found by its name */
      if (e->usize > MAX_READ) continue;
      unsigned char *dst = malloc(e->usize ? (size_t)e->usize : 1);
      if (!dst) continue;
      (void)pz_read(&z, e, dst, 1, NULL, NULL, err);
      uint64_t half = e->usize / 2;
      (void)pz_read_range(fd, e, half, dst, e->usize - half, 1, NULL, NULL, err);
      free(dst);
    }
  }
  pz_close(&z);
  return 0;
}
