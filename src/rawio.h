/*
** rawio.h: the raw I/O of the C core (rawio.c). Whole reads and writes
** (EINTR and short counts handled), byte swapping, the crc32 of zip records,
** reads of a stored or raw-deflated byte range of a file, and the streamed
** tensor writer: a tensor's elements in row-major order, gathered from
** strided views and cast chunk by chunk through bounded buffers, never a
** whole copy. Layer: above dtype, storage and tensor (lt.h); below the
** deferred storages, the containers (zip, pickle) and the formats. No Lua.
*/
#ifndef LT_RAWIO_H
#define LT_RAWIO_H

#include "lt.h"

#define LT_STREAM_CHUNK ((size_t)1 << 20)   /* bytes per chunk of a streamed write */

/* A progress callback of the loops below: called after each chunk with the
   n bytes it moved; returning nonzero stops the loop, which then fails with
   err "stopped by the progress callback" (the caller knows the real cause). */
typedef int (*lt_progress_fn)(void *ud, uint64_t n);

/* ---- whole reads and writes ------------------------------------------------ */

/* Read exactly n bytes at off. 0 ok; -1 with errno set (0 when the file ends
   first) and *got (when not NULL) the bytes read before the failure. */
int lt_pread_all(int fd, void *buf, size_t n, uint64_t off, size_t *got);
/* lt_pread_all with a message: "read error at byte N: why" or "truncated:
   expected N bytes at byte M, found K" */
int lt_pread_full(int fd, void *buf, size_t n, uint64_t off, char *err);
/* Write all n bytes at fd's position. 0 ok; -1 with errno set. */
int lt_write_all(int fd, const void *buf, size_t n);
/* lt_write_all with err "write error: why" */
int lt_write_full(int fd, const void *buf, size_t n, char *err);
/* advice before writing n bytes or more to the new file fd, from its
   start: on ext4 and XFS its blocks are allocated at once (fallocate, the
   size unchanged), which took a third off writing 256 MiB to a new file
   (delayed allocation reserves every page as it is written). n must not
   exceed what is written: blocks past the end would stay allocated.
   Failures are ignored (a full disk fails the writes). */
void lt_preallocate(int fd, uint64_t n);
/* a, then b, in one writev(2) where it can (either may be empty), as
   lt_write_all writes them (EFAULT from a cut-short mapping included):
   0, or -1 with errno */
int lt_write2(int fd, const void *a, size_t an, const void *b, size_t bn);

/* Writes a watcher may stop: while a stop is set on the file open as fd,
   every lt_write_all and lt_write2 to it first asks stopped(ud), and fails
   with ECANCELED when it says so (an S3 save whose upload failed stops its
   writer: lio.c's watches). The file is told by its device and inode too,
   so a descriptor number used again for another file is not stopped. At
   most 8 at once: -1 when full. */
typedef int (*lt_write_stop_fn)(void *ud);
int lt_write_stop_add(int fd, lt_write_stop_fn stopped, void *ud);
void lt_write_stop_remove(void *ud);

/* byte-swap n units of sz bytes in place (sz < 2: nothing) */
void lt_byteswap(void *p, size_t n, size_t sz);
/* zlib-compatible crc32 (PCLMULQDQ folding where the CPU has it) */
uint32_t lt_crc32(uint32_t crc, const void *data, size_t n);

/* ---- range reads -------------------------------------------------------------- */

/* A record of a file: csize bytes at off, stored (method 0; csize == usize)
   or raw-deflated (method 8) to usize bytes whose crc32 is crc. name names
   it in errors: "entry 'name': ...". */
typedef struct lt_range {
  const char *name;
  uint64_t off, csize, usize;
  uint32_t crc;
  int method;
} lt_range;

/* Read n bytes of r's uncompressed data, from byte skip on, into dst.
   Deflated data is inflated from the start (the skipped bytes through a
   small buffer); a read to the end checks the length and crc (stored data:
   only with check_crc, and only when the whole record is read). progress
   may be NULL. 0 ok; -1 with err naming the record. */
int lt_read_range(int fd, const lt_range *r, uint64_t skip, void *dst, uint64_t n, int check_crc,
                  lt_progress_fn progress, void *ud, char *err);

/* ---- streamed tensor writes --------------------------------------------------- */

/* how a streamed write reports and releases */
typedef struct lt_wstream {
  int release;               /* drop consumed pages of mapped sources (lt_drop_pages) */
  lt_progress_fn progress;   /* after each chunk, or NULL */
  void *ud;
} lt_wstream;

/* Drop the whole pages of [from, to) of the file-mapped storage s from the
   process (nothing when s is not mapped): madvise DONTNEED, so they are
   read from the file again if touched. Returns where the next range should
   start (the page holding to, so no page is missed across calls). */
const char *lt_drop_pages(const lt_storage *s, const char *from, const char *to);

/* The one cast loop: the elements of a tensor (bytes in memory) in
   row-major order as dtype to, chunk by chunk. A contiguous source written
   as it is comes out as pointers into it (no copy); any other goes through
   a gather buffer (strided) and a cast buffer, each of at most
   LT_STREAM_CHUNK bytes. With release, the pages of a mapped contiguous
   source are dropped behind the chunks consumed (only for sources never
   written to in place). */
typedef struct lt_cast {
  const lt_tensor *t;
  lt_dtype to;
  int contig, release, own;   /* own: buf and gbuf were allocated by lt_cast_init */
  size_t sz, osz, m;          /* source and output element sizes; elements per chunk */
  int64_t numel, el;          /* elements in all, and produced so far */
  const char *src, *dropped;  /* contiguous source; where the next drop starts */
  char *buf, *gbuf;           /* cast chunk; gathered chunk */
  lt_iter it;
} lt_cast;

/* Start the stream of t as to. scratch (NULL: allocate what is needed) is
   two buffers of cap bytes each (cap >= LT_STREAM_CHUNK), owned by the
   caller and reused by one stream after another. 0 ok; -1 with err when
   out of memory (nothing to free then). */
int lt_cast_init(lt_cast *c, const lt_tensor *t, lt_dtype to, int release, char *scratch, size_t cap,
                 char *err);
/* the next chunk at *out: its length in bytes, 0 at the end (the stream's
   last pages then dropped, with release). *out stays valid until the next call. */
size_t lt_cast_next(lt_cast *c, const char **out);
/* free what lt_cast_init allocated; safe to call twice */
void lt_cast_free(lt_cast *c);

/* Write the elements of t (bytes in memory: see lt_write_tensor_as in
   deferred.c for tensors that may still be in their file) in row-major
   order as dtype to, through lt_cast; one write() for a contiguous tensor
   written as it is when nothing listens. ws may be NULL. 0 ok; -1 with err. */
int lt_write_elems(int fd, const lt_tensor *t, lt_dtype to, const lt_wstream *ws, char *err);

#endif
