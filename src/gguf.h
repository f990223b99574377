/*
** gguf.h: the GGUF (llama.cpp, ggml) header reader (gguf.c). C core: no
** Lua. A header is parsed, and every field validated, from the file's
** bytes in memory: metadata key/value pairs in file order (values left in
** the file, walked on demand by lt_gguf_visit) and tensor infos with their
** absolute data offsets and byte sizes. The layout is in gguf.c's header;
** the quantized block types are gguf_quant.h's; the binding is lgguf.c.
*/
#ifndef LT_GGUF_H
#define LT_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "lt.h"

#define LT_GGUF_MAX_DIMS 4            /* GGML_MAX_DIMS */
#define LT_GGUF_MAX_NAME 65535        /* bytes of a key or tensor name */
#define LT_GGUF_MAX_DEPTH 16          /* nesting of arrays in a value */
#define LT_GGUF_DEFAULT_ALIGNMENT 32

/* metadata value types (enum gguf_type) */
enum {
  LT_GGUFV_UINT8, LT_GGUFV_INT8, LT_GGUFV_UINT16, LT_GGUFV_INT16, LT_GGUFV_UINT32, LT_GGUFV_INT32,
  LT_GGUFV_FLOAT32, LT_GGUFV_BOOL, LT_GGUFV_STRING, LT_GGUFV_ARRAY, LT_GGUFV_UINT64, LT_GGUFV_INT64,
  LT_GGUFV_FLOAT64, LT_GGUFV_NTYPES
};

/* the name of a value type ("uint32", "array", ...), or NULL; and back (-1) */
const char *lt_gguf_type_name(int type);
int lt_gguf_type_from_name(const char *name);

typedef struct lt_gguf_kv {
  uint64_t key, key_len;        /* byte offset and length of the key in the file */
  int type;                     /* LT_GGUF_* */
  uint64_t value;               /* byte offset of the value */
} lt_gguf_kv;

typedef struct lt_gguf_tensor {
  uint64_t name, name_len;      /* in the file */
  int ndim;
  int64_t ne[LT_GGUF_MAX_DIMS]; /* GGUF's order: innermost first */
  int type;                     /* ggml type id */
  uint64_t offset;              /* relative to the data section */
  uint64_t data;                /* absolute byte offset of its data */
  uint64_t nbytes;
} lt_gguf_tensor;

typedef struct lt_gguf_file {
  uint32_t version;             /* 1, 2 or 3 */
  int big_endian;
  uint32_t alignment;
  uint64_t header_end;          /* the byte after the last tensor info */
  uint64_t data_start;          /* header_end padded to the alignment */
  size_t nkv, ntensors;
  lt_gguf_kv *kv;
  lt_gguf_tensor *t;
  const unsigned char *buf;     /* the bytes parsed (not owned) */
  size_t len;
} lt_gguf_file;

/* the file starts "GGUF" */
int lt_gguf_detect(const unsigned char *head, size_t n);

/* Parse and validate the len bytes at buf (the whole file, which stays
   valid while f is used). 0 ok (free with lt_gguf_free), -1 with err
   naming the key or tensor and what is wrong. */
int lt_gguf_parse(const unsigned char *buf, size_t len, lt_gguf_file *f, char *err);
void lt_gguf_free(lt_gguf_file *f);

/* A walk over one (validated) value: scalars as signed or unsigned
   integers, doubles, booleans; strings; arrays as begin(elem type,
   count), the elements, end. */
typedef struct lt_gguf_visitor {
  void (*integer)(void *ud, int type, int64_t i, uint64_t u);
  void (*real)(void *ud, int type, double x);
  void (*boolean)(void *ud, int b);
  void (*string)(void *ud, const char *s, uint64_t len);
  void (*array_begin)(void *ud, int elem_type, uint64_t count);
  void (*array_end)(void *ud);
  void *ud;
} lt_gguf_visitor;

void lt_gguf_visit(const lt_gguf_file *f, int type, uint64_t at, const lt_gguf_visitor *v);

/* the type and count of the array at (an ARRAY value's offset) */
void lt_gguf_array_info(const lt_gguf_file *f, uint64_t at, int *elem_type, uint64_t *count);

#endif
