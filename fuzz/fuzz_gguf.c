/*
** fuzz_gguf.c: the GGUF reader (src/gguf.c) and the dequantizers
** (src/gguf_quant.c): lt_gguf_parse, a walk over every metadata value, and
** the first elements (at most 4096, whole blocks) of every tensor whose
** type is dequantized, converted to float32.
*/
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "gguf_quant.h"
#include "fuzz_util.h"

#define MAX_ELEMS 4096

typedef struct walk { uint64_t n; int depth; } walk;

static void v_int(void *ud, int type, int64_t i, uint64_t u) {
  (void)type; (void)i; (void)u; ((walk *)ud)->n++;
}
static void v_real(void *ud, int type, double x) { (void)type; (void)x; ((walk *)ud)->n++; }
static void v_bool(void *ud, int b) { (void)b; ((walk *)ud)->n++; }
static void v_str(void *ud, const char *s, uint64_t len) {
  if (len) (void)*(volatile const char *)&s[len - 1];   /* the whole string is there */
  ((walk *)ud)->n++;
}
static void v_begin(void *ud, int elem_type, uint64_t count) {
  (void)elem_type; (void)count;
  walk *w = ud;
  if (++w->depth > LT_GGUF_MAX_DEPTH + 1) __builtin_trap();
}
static void v_end(void *ud) {
  walk *w = ud;
  if (--w->depth < 0) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)lt_gguf_detect(data, size);
  lt_gguf_file f;
  memset(&f, 0, sizeof f);
  char err[LT_MSG];
  if (lt_gguf_parse(data, size, &f, err) != 0) return 0;
  walk w = {0, 0};
  lt_gguf_visitor v = {v_int, v_real, v_bool, v_str, v_begin, v_end, &w};
  for (size_t i = 0; i < f.nkv; i++) {
    lt_gguf_visit(&f, f.kv[i].type, f.kv[i].value, &v);
    if (w.depth != 0) __builtin_trap();
    if (f.kv[i].type == LT_GGUFV_ARRAY) {
      int et; uint64_t count;
      lt_gguf_array_info(&f, f.kv[i].value, &et, &count);
    }
  }
  float *out = malloc(MAX_ELEMS * sizeof(float));
  for (size_t i = 0; out && i < f.ntensors; i++) {
    const lt_gguf_tensor *t = &f.t[i];
    const lt_gguf_type *ty = lt_gguf_type_by_id(t->type);
    if (!ty || !ty->dequant || ty->block <= 0) continue;
    if (t->data > size || t->nbytes > size - t->data) __builtin_trap();   /* parse checked it */
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
      if (t->ne[d] < 0 || (t->ne[d] && numel > INT64_MAX / t->ne[d])) { numel = -1; break; }
      numel *= t->ne[d];
    }
    if (numel < 0) continue;
    int64_t n = numel < MAX_ELEMS ? numel : MAX_ELEMS;
    n -= n % ty->block;
    int64_t nb = lt_gguf_row_bytes(t->type, n, err);
    if (nb < 0 || (uint64_t)nb > t->nbytes) continue;
    /* exactly nb bytes, so a read past them is an ASan report */
    unsigned char *src = malloc(nb ? (size_t)nb : 1);
    if (!src) continue;
    memcpy(src, data + t->data, (size_t)nb);
    (void)lt_gguf_dequantize(t->type, src, out, n, err);
    free(src);
  }
  free(out);
  lt_gguf_free(&f);
  return 0;
}
