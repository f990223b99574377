/*
** fuzz_util.c: the memfd of fuzz_util.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "fuzz_util.h"

int fz_memfd(const uint8_t *data, size_t size) {
  static int fd = -1;
  if (fd < 0) {
    fd = memfd_create("ltorch-fuzz", MFD_CLOEXEC);
    if (fd < 0) { perror("memfd_create"); abort(); }
  }
  if (ftruncate(fd, 0) != 0) { perror("ftruncate"); abort(); }
  size_t done = 0;
  while (done < size) {
    ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
    if (w <= 0) { perror("pwrite"); abort(); }
    done += (size_t)w;
  }
  return fd;
}
