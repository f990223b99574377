/*
** t7.h: the Torch7 (.t7, Lua Torch) object reader (t7.c). C core: no Lua.
** A file is parsed, and every field validated, into a graph of nodes
** (tables, torch class objects, tensors, storages, tds containers,
** functions) whose values refer to nodes by number, so references and
** cycles come out as the file has them; storages are located, not read.
** The layout is in t7.c's header; the binding (lfmt.c) turns the graph
** into Lua values.
*/
#ifndef LT_T7_H
#define LT_T7_H

#include <stddef.h>
#include <stdint.h>
#include "lt.h"

#define LT_T7_MAX_DEPTH 1000     /* nesting of objects in one file */
#define LT_T7_MAX_NAME 1024      /* bytes of a class name */
#define LT_T7_NONE UINT32_MAX    /* no node (a tensor without storage) */

/* what a value is; LT_T7_NODE values refer to f->nodes[node] */
enum { LT_T7_NIL, LT_T7_NUMBER, LT_T7_STRING, LT_T7_BOOLEAN, LT_T7_NODE };

typedef struct lt_t7_value {
  uint8_t kind;
  uint8_t b;                /* BOOLEAN */
  uint32_t node;            /* NODE */
  union {
    double num;             /* NUMBER */
    struct { uint64_t off, len; } s;   /* STRING: bytes in f->pool */
  };
} lt_t7_value;

/* the kinds of nodes */
enum {
  LT_T7_TABLE,              /* items[first ..] holds n (key, value) pairs */
  LT_T7_OBJECT,             /* a torch class; items[first] is its payload */
  LT_T7_TENSOR,
  LT_T7_STORAGE,
  LT_T7_HASH,               /* tds.Hash: n pairs, as a table */
  LT_T7_VEC,                /* tds.Vec: n values */
  LT_T7_FUNCTION            /* bytecode (name) and upvalues (items[first]) */
};

typedef struct lt_t7_node {
  uint8_t kind;
  uint8_t tag;              /* the record's type tag (FUNCTION: 6, 7 or 8) */
  int32_t index;            /* its object index in the file (0: a legacy function) */
  double version;           /* the class version ("V 1" -> 1; none -> 0) */
  uint64_t at;              /* byte offset of its record */
  uint64_t name, name_len;  /* class name in pool (FUNCTION: the bytecode) */
  size_t first, n;          /* its values in items */
  /* TENSOR and STORAGE */
  int dtype;                /* lt_dtype */
  /* TENSOR: ndim sizes then ndim strides at dims[first_dim], offset 0-based,
     storage a STORAGE node or LT_T7_NONE */
  int ndim;
  size_t first_dim;
  int64_t offset;
  uint32_t storage;
  /* STORAGE: count elements of esize bytes each (esize < the dtype's size:
     a 4-byte long widened to int64), at byte data of the file (binary) or
     of pool (ascii, as the dtype's native values) */
  int64_t count;
  int esize;
  uint64_t data;
} lt_t7_node;

typedef struct lt_t7_file {
  lt_t7_node *nodes;
  size_t nnodes, capnodes;
  lt_t7_value *items;
  size_t nitems, capitems;
  int64_t *dims;
  size_t ndims, capdims;
  lt_buf pool;              /* strings, class names, bytecode; ascii storages */
  lt_t7_value root;
  int ascii, long_size;
} lt_t7_file;

/* Whether the first n bytes of a file look like a Torch7 file (binary or
   ascii); *ascii says which. size is the whole file's size. */
int lt_t7_detect(const unsigned char *head, size_t n, uint64_t size, int *ascii);

/* Parse the len bytes at buf as a Torch7 file with long_size-byte longs (4
   or 8; binary mode) or as an ascii file. On success fills f (free with
   lt_t7_free) and returns 0; else returns -1 and err says where and what:
   "PATH: what is wrong (byte N)", PATH the object's place from the root
   ("[1].modules[3].weight"; "root" for the root itself). */
int lt_t7_parse(const unsigned char *buf, size_t len, int long_size, int ascii, lt_t7_file *f,
                char *err);
void lt_t7_free(lt_t7_file *f);

/* the ltorch dtype of a Torch7 class "torch.[Cuda]<T>Tensor" or
   "torch.[Cuda]<T>Storage" (len bytes at name); *storage says which; -1 for
   any other name */
int lt_t7_class_dtype(const char *name, size_t len, int *storage);
/* the Torch7 class name of a tensor (storage 0) or storage (storage 1) of
   dtype dt, or NULL when Torch7 has none */
const char *lt_t7_class_name(lt_dtype dt, int storage);

#endif
