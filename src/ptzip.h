/*
** ptzip.h: the zip container of PyTorch checkpoints (and the reader of
** .npz archives), read and written by ltorch's own code (ptzip.c) on top
** of rawio.c. C core: no Lua.
*/
#ifndef PTZIP_H
#define PTZIP_H

#include <stddef.h>
#include <stdint.h>
#include "lt.h"
#include "rawio.h"

#define PZ_MAX_NAME 4096            /* bytes in an entry name */
#define PZ_ALIGN 64                 /* data alignment PyTorch writes */

typedef struct pz_entry {
  char *name;              /* NUL-terminated; no NUL inside */
  size_t name_len;
  uint64_t data_off;       /* absolute offset of the (compressed) data */
  uint64_t csize, usize;
  uint32_t crc;
  int method;              /* 0 stored, 8 deflated */
} pz_entry;

/* a slot of the name index: the high half of the name's hash, and its
   entry's index + 1 (0: empty) */
typedef struct pz_slot { uint32_t h, i; } pz_slot;

typedef struct pz_reader {
  int fd;
  uint64_t file_size;
  pz_entry *entries;
  size_t n;
  char *names;             /* every entry's name, NUL-terminated, one buffer */
  void *mem;               /* a big directory's one block (lt_alloc_bytes) holding
                              hash, entries and names; NULL: each malloc'd */
  size_t mem_bytes;
  pz_slot *hash;           /* open addressing by name (8 bytes a slot: a table of 20,000
                              names is 512 KiB, not 1 MiB, of fresh memory) */
  size_t hcap;             /* a power of two, > 2n */
  int in_order;            /* the directory lists entries in file order (data offsets ascend) */
  int sparse;              /* records 64 KiB apart or more on average: read, don't touch the mapping */
} pz_reader;

/* Parse the archive open on fd (size file_size): end records, central
   directory, every local header. Validates every field. map is the whole
   file mapped (lt_map_file): headers are read in place, with no read calls
   and no copies, a page fault per header at most. 0 ok; -1 with err (the reader then owns nothing that needs freeing beyond
   pz_close). */
int pz_open(pz_reader *z, int fd, uint64_t file_size, const void *map, char *err);
void pz_close(pz_reader *z);
/* The first entry of the central directory and the entry count, read from
   the mapping without building the directory, for a caller that starts on
   that entry while pz_open reads the rest (lpt.c: the pickle of a big
   archive). e->name must have room for PZ_MAX_NAME + 1 bytes. Only the
   bounds of what is read are checked: the caller uses the values only
   once pz_open has validated the same entry and they agree. 0 ok; -1. */
int pz_peek_first(const void *map, uint64_t file_size, pz_entry *e, uint64_t *count);
/* the entry named name, or NULL */
const pz_entry *pz_find(const pz_reader *z, const char *name);
/* Read the whole uncompressed entry into dst (e->usize bytes); inflates
   deflated entries. If check_crc, stored data is checked against its CRC
   (deflated always is). progress(ud, n) is called after each chunk of n
   bytes when not NULL (nonzero stops the read: lt_progress_fn). 0 ok; -1
   with err. */
int pz_read(const pz_reader *z, const pz_entry *e, void *dst, int check_crc,
            lt_progress_fn progress, void *ud, char *err);

/* Read n bytes of e's uncompressed data, from byte skip on, into dst, with
   fd the archive's file. Deflated data is inflated from the start (the
   skipped bytes through a small buffer); a read to the entry's end checks
   its length and crc (stored data: only with check_crc, and only when the
   whole entry is read). 0 ok; -1 with err naming the entry. rawio.c's
   lt_read_range does the reading. */
int pz_read_range(int fd, const pz_entry *e, uint64_t skip, void *dst, uint64_t n, int check_crc,
                  lt_progress_fn progress, void *ud, char *err);

/* ---- writer ---------------------------------------------------------- */

typedef struct pz_wentry {
  size_t name;             /* where the name starts in the writer's names */
  uint64_t hdr_off, size;
  uint32_t crc;
  uint16_t name_len;
} pz_wentry;

typedef struct pz_writer {
  int fd;
  uint64_t pos;
  pz_wentry *entries;
  size_t n, cap;
  lt_buf names;            /* every record's name, NUL-terminated, one buffer */
  uint64_t left;           /* bytes the open record still expects */
  int failed;
  /* headers, descriptors, the central directory and small records gather
     here and go out in big writes (one system call for many records) */
  unsigned char *buf;
  size_t bn;
  /* set by the caller before pz_record_data: the bytes cannot change or
     fault while they are written (not a file mapping: mapguard.c guards
     only the caller's thread), so a big piece's crc and its write(2) may
     run at once on the pool's threads */
  int crc_thread;
} pz_writer;

void pz_writer_init(pz_writer *w, int fd);
/* the name of a record written (NUL-terminated, in w) */
static inline const char *pz_wentry_name(const pz_writer *w, const pz_wentry *e) { return w->names.p + e->name; }
/* One stored record, as PyTorch's writer makes it, written in pieces:
   pz_record_begin writes the local header (with "FB" padding so the data
   starts at a multiple of 64) of a record of size bytes; pz_record_data
   writes the next n of them (crc computed as they go); pz_record_end checks
   that all size bytes came and writes the data descriptor (none for an
   empty record). Each returns 0, or -1 with err. */
int pz_record_begin(pz_writer *w, const char *name, uint64_t size, char *err);
int pz_record_data(pz_writer *w, const void *p, size_t n, char *err);
int pz_record_end(pz_writer *w, char *err);
/* a whole record from memory: begin, data in chunks (progress after each,
   NULL for none; nonzero stops with err), end */
int pz_write_entry(pz_writer *w, const char *name, const void *data, uint64_t size,
                   lt_progress_fn progress, void *ud, char *err);
/* central directory, ZIP64 end record and locator, end record, and what
   is still buffered written out; 0 ok */
int pz_write_finish(pz_writer *w, char *err);
void pz_writer_free(pz_writer *w);

#endif
