/*
** fuzz_torchsharp.c: the TorchSharp .dat scanners (src/torchsharp.c): the
** input (as a memfd) scanned as a state dict, as one tensor and as an
** optimizer state.
*/
#include <string.h>
#include "fmt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = fz_memfd(data, size);
  char err[LT_MSG];
  lt_ts_file f;
  memset(&f, 0, sizeof f);
  if (lt_ts_scan(fd, size, &f, err) == 0) {
    for (size_t i = 0; i < f.n; i++)
      if (f.e[i].data_off > size || f.e[i].nbytes > size - f.e[i].data_off) __builtin_trap();
    lt_ts_free(&f);
  }
  lt_ts_entry e;
  if (lt_ts_scan_tensor(fd, size, &e, err) == 0)
    if (e.data_off > size || e.nbytes > size - e.data_off) __builtin_trap();
  lt_ts_optim o;
  memset(&o, 0, sizeof o);
  if (lt_ts_scan_optim(fd, size, &o, err) == 0) lt_ts_optim_free(&o);
  return 0;
}
