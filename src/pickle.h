/*
** pickle.h: a Python pickle reader that never imports or calls anything, and
** a protocol-2 pickle writer, for PyTorch checkpoints (pickle.c). C core: no
** Lua. The reader turns a pickle into a graph of pk_obj nodes; GLOBALs are
** looked up in an allowlist (PyTorch's weights_only list) and the rebuild
** functions, containers and classes PyTorch writes are built natively.
*/
#ifndef PICKLE_H
#define PICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "lt.h"

#define PK_MAX_STACK 100000       /* values on the VM stack */
#define PK_MAX_MEMO 10000000      /* memo slots */
#define PK_MAX_OBJS 20000000      /* nodes in one pickle (48 bytes each) */
#define PK_MAX_DEPTH 1000         /* nesting of containers when converting */
#define PK_MAX_GLOBALS 64         /* distinct unsupported globals reported */

typedef enum pk_kind {
  PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_LIST, PK_TUPLE,
  PK_DICT, PK_ODICT, PK_SET, PK_COMPLEX, PK_TENSOR, PK_STORAGE, PK_DTYPE,
  PK_GLOBAL,    /* an allowed class or function used as a value */
  PK_INERT,     /* an object of an unsupported global (unknown = "inert") */
  PK_MARK       /* internal: the mark on the stack */
} pk_kind;

typedef struct pk_obj pk_obj;

/* a storage referenced by persistent id: one node per key (80 bytes) */
typedef struct pk_storage {
  char *key;
  uint32_t key_len;
  uint8_t dtype;        /* lt_dtype of the typed storage; LT_UINT8 for untyped */
  uint8_t untyped;
  uint8_t needed, located;   /* filled by the loader */
  uint64_t nbytes;      /* numel * itemsize, or nbytes for untyped */
  char *location;
  /* legacy views: this storage is [view_off, +nbytes) bytes of root */
  pk_obj *root;
  uint64_t view_off;
  /* filled by the loader */
  uint32_t slot;        /* its record in the loader's table of mapped records + 1; 0: none */
  uint64_t file_off;    /* absolute offset of the data in the file */
  const void *entry;    /* the zip entry, when there is one */
  lt_storage *data;
} pk_storage;

typedef struct pk_tensor {
  pk_obj *storage;      /* PK_STORAGE */
  int dtype;
  int ndim;
  int requires_grad, is_param;
  int64_t offset;       /* elements */
  int64_t dims[];       /* ndim sizes, then ndim strides */
} pk_tensor;

/* what an object of an unsupported global was given */
typedef struct pk_inert {
  pk_obj *args;         /* REDUCE / NEWOBJ arguments */
  pk_obj *state;        /* BUILD */
  pk_obj *dict;         /* SETITEM(S) on it: a PK_DICT */
} pk_inert;

/* 48 bytes: a checkpoint's pickle makes ~15 of these per tensor */
struct pk_obj {
  uint8_t kind;         /* pk_kind */
  uint8_t mark;         /* scratch for walkers */
  int16_t gid;          /* PK_GLOBAL: global id; -1 otherwise */
  uint32_t len;         /* STR, BYTES, GLOBAL, INERT: bytes in s */
  uint32_t n, cap;      /* items in LIST, TUPLE, SET, INERT; DICT/ODICT as k,v,k,v */
  union {
    int64_t i;          /* BOOL, INT, DTYPE (lt_dtype), GLOBAL (its dtype or -1) */
    double f;           /* FLOAT, COMPLEX (real part) */
  };
  char *s;              /* STR, BYTES; GLOBAL and INERT: "module.name" */
  pk_obj **items;
  union {
    pk_tensor *t;       /* TENSOR */
    pk_storage *st;     /* STORAGE */
    pk_inert *in;       /* INERT (NULL until given something) */
    double f2;          /* COMPLEX (imaginary part) */
  };
};

typedef struct pk_arena pk_arena;

typedef struct pk_result {
  pk_obj *value;                 /* the top of the stack at STOP */
  size_t consumed;               /* bytes read, STOP included */
  char *unknown[PK_MAX_GLOBALS]; /* distinct unsupported globals, file order */
  int nunknown;
  int more_unknown;              /* more than PK_MAX_GLOBALS */
  pk_obj **storages;             /* every PK_STORAGE node, creation order */
  size_t nstorages, capstorages;
} pk_result;

pk_arena *pk_arena_new(void);
void pk_arena_free(pk_arena *a);   /* frees every node; NULL is fine */

/* Run the pickle in buf[0..len). Persistent ids are resolved to PK_STORAGE
   nodes, one per key (shared across calls with the same arena and result,
   as the legacy format needs). Objects of unsupported globals are always
   built inert, and the globals collected in res: a caller that refuses them
   (unknown = "error") turns a non-empty list into its error. Returns 0, or
   -1 with err ("at byte N: what"). */
int pk_load(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err);
void pk_result_free(pk_result *res);

/* A big pickle read by two threads: pk_split_first runs it from the start
   on the caller's arena and result; pk_split_second, run at the same time
   on another thread, picks a place ahead of the first (between two entries
   of a dict's SETITEMS run) and runs from there to STOP on its own arena;
   the first stops when it reaches that place. pk_split_finish, once both
   have returned, joins the two parts, or when the second part's run
   cannot be shown to be the one the first would have made, runs the rest
   of the pickle from the first part's place; the result and the error are
   always those of pk_load. pk_split_new returns NULL for a pickle it does
   not split (small, protocol 4 and up, out of memory): pk_load it. */
typedef struct pk_split pk_split;
pk_split *pk_split_new(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err);
void pk_split_first(pk_split *s);
void pk_split_second(pk_split *s);
int pk_split_finish(pk_split *s);      /* pk_load's return; s freed */
/* a split of any size at the first entry from the middle (split_place), or
   NULL where there is none: for the fuzzer, which runs the parts one after
   the other and compares the result with pk_load's */
pk_split *pk_split_at(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err);
/* splits of this process joined, and those whose first part ran on (specs) */
void pk_split_counts(unsigned *joined, unsigned *ran_on);

/* ---- writer ------------------------------------------------------------ */

typedef struct pk_buf {
  lt_buf out;           /* the pickle's bytes; out.oom when memory ran out */
  uint32_t memo;        /* next memo index */
} pk_buf;

void pk_buf_free(pk_buf *b);
void pk_w_raw(pk_buf *b, const void *p, size_t n);
void pk_w_op(pk_buf *b, int op);
void pk_w_int(pk_buf *b, int64_t v);
void pk_w_float(pk_buf *b, double v);
void pk_w_str(pk_buf *b, const char *s, size_t n);      /* BINUNICODE */
void pk_w_bytes(pk_buf *b, const char *s, size_t n);    /* _codecs.encode(latin1) */
void pk_w_global(pk_buf *b, const char *module, const char *name);
uint32_t pk_w_put(pk_buf *b);                           /* memoize the top */
void pk_w_get(pk_buf *b, uint32_t idx);

/* storage class name ("FloatStorage") of a dtype, NULL for float8 */
const char *pk_storage_class(lt_dtype dt);

#endif
