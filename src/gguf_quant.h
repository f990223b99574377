/*
** gguf_quant.h: ggml's tensor types as GGUF files store them (gguf_quant.c,
** no Lua): the table of every type id ggml has given out, with its block
** size and bytes per block, and conversion of whole rows of blocks to and
** from float32: dequantization with ggml's dequantize_row_* arithmetic and
** reference quantization with its quantize_row_*_ref, bit for bit. The
** facts (ids, names, block layouts, the reference algorithms) are ggml's
** (ggml-org/ggml include/ggml.h enum ggml_type, src/ggml.c type_traits,
** src/ggml-common.h, src/ggml-quants.c, src/ggml-impl.h; commit d99724f2,
** 2026-08-21); the code is ltorch's own. Nothing here allocates; every
** function reads only the n elements' worth of bytes it is given and
** writes only its output.
*/
#ifndef LT_GGUF_QUANT_H
#define LT_GGUF_QUANT_H

#include <stdint.h>

/* GGML_TYPE_COUNT at the commit above: ids are 0 .. LT_GGUF_NTYPES - 1 */
#define LT_GGUF_NTYPES 43

/* the ids the code below names (ggml's enum ggml_type) */
enum {
  LT_GGUF_F32 = 0, LT_GGUF_F16 = 1, LT_GGUF_Q4_0 = 2, LT_GGUF_Q4_1 = 3,
  LT_GGUF_Q5_0 = 6, LT_GGUF_Q5_1 = 7, LT_GGUF_Q8_0 = 8, LT_GGUF_Q8_1 = 9,
  LT_GGUF_Q2_K = 10, LT_GGUF_Q3_K = 11, LT_GGUF_Q4_K = 12, LT_GGUF_Q5_K = 13,
  LT_GGUF_Q6_K = 14, LT_GGUF_Q8_K = 15, LT_GGUF_IQ2_XXS = 16, LT_GGUF_IQ2_XS = 17,
  LT_GGUF_IQ3_XXS = 18, LT_GGUF_IQ1_S = 19, LT_GGUF_IQ4_NL = 20, LT_GGUF_IQ3_S = 21,
  LT_GGUF_IQ2_S = 22, LT_GGUF_IQ4_XS = 23, LT_GGUF_I8 = 24, LT_GGUF_I16 = 25,
  LT_GGUF_I32 = 26, LT_GGUF_I64 = 27, LT_GGUF_F64 = 28, LT_GGUF_IQ1_M = 29,
  LT_GGUF_BF16 = 30, LT_GGUF_TQ1_0 = 34, LT_GGUF_TQ2_0 = 35, LT_GGUF_MXFP4 = 39,
  LT_GGUF_NVFP4 = 40, LT_GGUF_Q1_0 = 41, LT_GGUF_Q2_0 = 42
};

/* One type id. A removed id (ggml dropped its support; GGUF readers
   refuse it) keeps its historical name and has block = bytes = 0, as in
   ggml's table. */
typedef struct lt_gguf_type {
  int id;
  const char *name;     /* as ggml's enum spells it: "Q4_K", "BF16", "Q4_0_4_4" */
  int block;            /* elements per block (1 for the plain types) */
  int bytes;            /* bytes per block */
  int removed;          /* 1: no longer a ggml type */
  int dequant;          /* 1: lt_gguf_dequantize converts it */
  int quant;            /* 1: lt_gguf_quantize produces it */
} lt_gguf_type;

/* the entry of id, or NULL when id is not in 0 .. LT_GGUF_NTYPES - 1 */
const lt_gguf_type *lt_gguf_type_by_id(int id);
/* the entry named name, case-insensitively ("q4_k" is Q4_K; removed types
   included), or NULL */
const lt_gguf_type *lt_gguf_type_by_name(const char *name);

/* Bytes that n elements of type take: n / block * bytes. -1 with a message
   in err (LT_MSG bytes) when type is unknown or removed, n is negative or
   not a multiple of the block size, or the size overflows int64. */
int64_t lt_gguf_row_bytes(int type, int64_t n, char *err);

/* dst[0 .. n) = the n elements whose blocks are at src (lt_gguf_row_bytes
   of them), as ggml's dequantize_row_* gives them (F32, F16 and BF16 too).
   0, or -1 with err when the type is unknown, removed or not dequantized,
   or n is not a whole number of blocks; nothing is written then. */
int lt_gguf_dequantize(int type, const void *src, float *dst, int64_t n, char *err);

/* dst = the blocks (lt_gguf_row_bytes of them) of the n floats at src, as
   ggml's quantize_row_*_ref writes them for one row of n (F32, F16 and
   BF16 as ggml converts them). 0, or -1 with err when the type is unknown,
   removed or not quantized, n is not a whole number of blocks, or (block
   types) an element is not finite; nothing is written then. */
int lt_gguf_quantize(int type, const float *src, void *dst, int64_t n, char *err);

#endif
