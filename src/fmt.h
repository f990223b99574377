/*
** fmt.h: the C core of the non-pickle formats (safetensors, NumPy .npy,
** TorchSharp .dat). Parsers work on buffers or file descriptors and return
** 0 or -1 with a message in err (LT_MSG bytes); they never raise and never
** include Lua. Their reads and writes go through rawio.h; the bindings are
** lfmt.c and lnpy.c (NumPy).
*/
#ifndef LT_FMT_H
#define LT_FMT_H

#include <stdio.h>
#include "lt.h"
#include "rawio.h"    /* lt_wstream: the writers stream through rawio */

#define LT_ST_MAX_HEADER 100000000u               /* safetensors header limit (reference) */
#define LT_ST_MAX_META 16384u                     /* metadata entries */
#define LT_NPY_MAX_HEADER (1u << 20)              /* .npy header limit */
#define LT_NPY_MAX_ITEM (1u << 30)                /* bytes of one U/S element */
#define LT_NPY_MAX_PICKLE (1u << 31)              /* bytes of an object array's pickle */
#define LT_NPY_MAX_VALUES (1u << 27)              /* Lua values (strings, lists) one array loads as */
#define LT_TS_MAX_TENSORS (1u << 24)              /* TorchSharp tensor count */
#define LT_TS_MAX_NAME 65536u                     /* TorchSharp name length */
#define LT_TS_MAX_STATES (1u << 20)               /* TorchSharp optimizer groups, states */

/* ---- safetensors -------------------------------------------------------- */

typedef struct lt_st_entry {
  char *name;                  /* UTF-8, NUL-terminated (owned) */
  lt_dtype dtype;              /* the ltorch dtype it loads as */
  const char *unsupported;     /* the safetensors dtype when ltorch has none
                                  (F4, F6_*, F8_E8M0): an error only when
                                  the tensor is loaded; NULL otherwise */
  int ndim;
  int64_t shape[LT_MAX_DIMS];
  uint64_t begin, end;         /* byte offsets within the data buffer */
} lt_st_entry;

typedef struct lt_st_header {
  size_t n;                    /* tensors, in data-offset order */
  lt_st_entry *e;
  size_t nmeta;                /* __metadata__ entries, in file order */
  char **meta_key, **meta_val;
} lt_st_header;

/* the safetensors name ("F32") of a dtype; NULL when there is none */
const char *lt_st_dtype_name(lt_dtype dt);
/*
** Parse and validate the JSON header (len bytes at json) of a file whose
** data buffer holds data_len bytes. On success fills h (free with
** lt_st_free) and returns 0; on failure returns -1, err says what is wrong
** and h holds nothing.
*/
int lt_st_parse(const char *json, size_t len, uint64_t data_len, lt_st_header *h, char *err);
void lt_st_free(lt_st_header *h);
/*
** Write a safetensors file to fd as the reference writer does: tensors
** sorted by dtype (descending) then name, compact JSON, header padded with
** spaces to a multiple of 8, then each tensor's bytes, tensor i written as
** out[i] (out NULL: as they are), streamed through lt_write_tensor_as
** (strided views gathered, casts made chunk by chunk). 0 ok, -1 with err.
*/
int lt_st_write_as(int fd, size_t n, const char *const *names, const lt_tensor *const *ts,
                   const lt_dtype *out, size_t nmeta, const char *const *keys,
                   const char *const *vals, const lt_wstream *ws, char *err);

/* ---- NumPy .npy ----------------------------------------------------------- */

typedef struct lt_npy_header {
  int major, minor;            /* format version */
  size_t header_len;           /* bytes of the dict text */
  size_t data_offset;          /* where the array data starts */
  lt_dtype dtype;              /* numeric kinds; LT_UINT8 for the others */
  int kind;                    /* 0 numeric; 'U' UTF-32 strings, 'S' byte
                                  strings, 'O' objects (the data is a pickle) */
  size_t itemsize;             /* bytes per element (U: 4 per character; O: 0) */
  int big_endian;              /* data must be byte-swapped (U: '>' code units) */
  int fortran;                 /* column-major data */
  int ndim;
  int64_t shape[LT_MAX_DIMS];
  char descr[32];
} lt_npy_header;

/*
** Parse the preamble of a .npy file in buf (n bytes, at least the magic,
** version and length fields; 10 or 12 bytes). Stage 1 returns the total
** preamble size needed in *need; stage 2 (lt_npy_parse) parses it fully.
*/
int lt_npy_preamble(const unsigned char *buf, size_t n, size_t *need, char *err);
int lt_npy_parse(const unsigned char *buf, size_t n, lt_npy_header *h, char *err);
/* the descr ("<f4") of a dtype, and the header text for writing: returns the
   whole preamble length (magic..newline), a multiple of 64 */
const char *lt_npy_descr(lt_dtype dt);
size_t lt_npy_format_header(char *out, size_t cap, lt_dtype dt, int ndim, const int64_t *shape);
/* the same for any descr ("<U5"); 0 when it does not fit in cap */
size_t lt_npy_format_header_descr(char *out, size_t cap, const char *descr, int ndim, const int64_t *shape);
/* One U element (nchars UTF-32 code units at in, big-endian when big) as
   UTF-8 into out (room for 4 * nchars bytes), trailing NULs dropped as
   NumPy shows them: the bytes written, or (size_t)-1 with err naming the
   character that is no Unicode code point (a surrogate, beyond U+10FFFF). */
size_t lt_npy_utf32_to_utf8(const unsigned char *in, size_t nchars, int big, char *out, char *err);
/* code points in the UTF-8 string s (n bytes), or -1 when it is not valid
   UTF-8; then s as nchars UTF-32LE code units into out, NUL-padded */
int64_t lt_npy_utf8_chars(const char *s, size_t n);
void lt_npy_utf8_to_utf32(const char *s, size_t n, unsigned char *out, size_t nchars);

/* ---- TorchSharp .dat ------------------------------------------------------ */

typedef struct lt_ts_entry {
  char *name;                  /* owned */
  int unsupported;             /* a dtype code ltorch has no dtype for but whose
                                  element size is known (quantized, complex32,
                                  bits types): skipped, an error only when
                                  loaded; -1 otherwise */
  lt_dtype dtype;
  int ndim;
  int64_t shape[LT_MAX_DIMS];
  uint64_t data_off, nbytes;   /* position of the raw bytes in the file */
} lt_ts_entry;

typedef struct lt_ts_file {
  size_t n;
  lt_ts_entry *e;
} lt_ts_file;

/* TorchSharp's ScalarType codes */
int lt_ts_dtype_from_code(uint64_t code);   /* -1 when unknown or unsupported */
int lt_ts_code(lt_dtype dt);
/* scan the whole file at fd (size bytes) as a state dict; 0 ok, -1 with err */
int lt_ts_scan(int fd, uint64_t size, lt_ts_file *f, char *err);
void lt_ts_free(lt_ts_file *f);
/* scan it as one tensor (Tensor.Save): e->name stays NULL; 0 ok, -1 with err */
int lt_ts_scan_tensor(int fd, uint64_t size, lt_ts_entry *e, char *err);
/* LEB128 into out (at most 10 bytes); returns bytes written */
size_t lt_leb128(uint64_t v, unsigned char *out);

/* optimizer states: each optimizer's fields, as its C# SaveStateDict writes them */
typedef enum lt_ts_kind {
  LT_TS_F64,                   /* double, 8 bytes LE */
  LT_TS_BOOL,                  /* one byte, 0 or 1 */
  LT_TS_I64,                   /* long, 8 bytes LE */
  LT_TS_TENSOR,                /* a tensor record */
  LT_TS_OPT_TENSOR             /* a bool, then a tensor record when it is 1 */
} lt_ts_kind;

typedef struct lt_ts_field { const char *name; lt_ts_kind kind; } lt_ts_field;

typedef struct lt_ts_layout {
  const char *name;            /* the C# class name stored in the file */
  const lt_ts_field *options;  /* per parameter group */
  int noptions;
  const lt_ts_field *state;    /* per parameter */
  int nstate;
} lt_ts_layout;

typedef struct lt_ts_value {
  double f;                    /* LT_TS_F64 */
  int64_t i;                   /* LT_TS_I64 */
  int64_t tensor;              /* index into lt_ts_optim.t.e; -1: none */
  unsigned char b;             /* LT_TS_BOOL, and the flag of LT_TS_OPT_TENSOR */
} lt_ts_value;

typedef struct lt_ts_optim {
  const lt_ts_layout *layout;  /* static */
  uint64_t ngroups, nstates;
  lt_ts_value *v;              /* ngroups * noptions, then nstates * nstate (owned) */
  lt_ts_file t;                /* the tensors, in file order (names NULL) */
  size_t tcap;                 /* room in t.e */
} lt_ts_optim;

/* the optimizers TorchSharp saves, in a static table of *n */
const lt_ts_layout *lt_ts_layouts(size_t *n);
/* scan the file as an optimizer state; 0 ok (free with lt_ts_optim_free), -1 with err */
int lt_ts_scan_optim(int fd, uint64_t size, lt_ts_optim *o, char *err);
void lt_ts_optim_free(lt_ts_optim *o);

#endif
