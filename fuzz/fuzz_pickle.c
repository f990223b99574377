/*
** fuzz_pickle.c: the pickle reader (src/pickle.c, pk_load). The input is
** run as a sequence of pickles sharing one arena and result, as a legacy
** .pt file's are (magic, protocol, sys info, the object, the storage keys).
** Then it is run split in two (pk_split_at: the place an open of a big
** pickle would pick, from the middle; the parts one after the other), and
** the split's return, error, value, storages and unknown globals must be
** pk_load's: a difference traps.
*/
#include <string.h>
#include "pickle.h"
#include "fuzz_util.h"

/* x and y the same value, to a depth and a count of nodes (shared nodes
   are compared again: the count bounds that) */
static int same(const pk_obj *x, const pk_obj *y, int depth, long *budget) {
  if (!x || !y) return x == y;
  if (depth > 64 || --*budget < 0) return 1;
  if (x->kind != y->kind || x->n != y->n || x->len != y->len) return 0;
  switch (x->kind) {
    case PK_BOOL: case PK_INT: case PK_DTYPE: return x->i == y->i;
    case PK_FLOAT: return !memcmp(&x->f, &y->f, sizeof x->f);
    case PK_COMPLEX: return !memcmp(&x->f, &y->f, sizeof x->f) && !memcmp(&x->f2, &y->f2, sizeof x->f2);
    case PK_STR: case PK_BYTES: case PK_GLOBAL: if (memcmp(x->s, y->s, x->len)) return 0; break;
    case PK_STORAGE:
      return x->st->key_len == y->st->key_len && !memcmp(x->st->key, y->st->key, x->st->key_len) &&
             x->st->nbytes == y->st->nbytes && x->st->dtype == y->st->dtype;
    case PK_TENSOR: {
      const pk_tensor *a = x->t, *b = y->t;
      return a->dtype == b->dtype && a->ndim == b->ndim && a->offset == b->offset &&
             a->requires_grad == b->requires_grad && a->is_param == b->is_param &&
             !memcmp(a->dims, b->dims, 2 * (size_t)a->ndim * sizeof a->dims[0]) &&
             same(a->storage, b->storage, depth + 1, budget);
    }
    case PK_INERT:
      if (memcmp(x->s, y->s, x->len) || !x->in != !y->in) return 0;
      if (x->in && (!same(x->in->args, y->in->args, depth + 1, budget) || !same(x->in->state, y->in->state, depth + 1, budget) ||
                    !same(x->in->dict, y->in->dict, depth + 1, budget)))
        return 0;
      break;
    default: break;
  }
  if (x->kind == PK_GLOBAL && x->gid != y->gid) return 0;
  for (uint32_t i = 0; i < x->n && x->kind != PK_STR && x->kind != PK_BYTES && x->kind != PK_GLOBAL; i++)
    if (!same(x->items[i], y->items[i], depth + 1, budget)) return 0;
  return 1;
}

static void split_check(const uint8_t *data, size_t size) {
  pk_arena *a = pk_arena_new(), *b = pk_arena_new();
  pk_result ra, rb;
  memset(&ra, 0, sizeof ra);
  memset(&rb, 0, sizeof rb);
  char ea[LT_MSG], eb[LT_MSG];
  pk_split *s = a && b ? pk_split_at(b, data, size, &rb, eb) : NULL;
  if (s) {
    int rca = pk_load(a, data, size, &ra, ea);
    pk_split_first(s);
    pk_split_second(s);
    int rcb = pk_split_finish(s);
    if (rca != rcb) __builtin_trap();
    if (rca) {
      if (strcmp(ea, eb)) __builtin_trap();
    } else {
      long budget = 200000;
      if (ra.consumed != rb.consumed || ra.nstorages != rb.nstorages || ra.nunknown != rb.nunknown ||
          ra.more_unknown != rb.more_unknown || !same(ra.value, rb.value, 0, &budget))
        __builtin_trap();
      for (size_t i = 0; i < ra.nstorages; i++) {
        budget = 1000;
        if (!same(ra.storages[i], rb.storages[i], 0, &budget)) __builtin_trap();
      }
      for (int i = 0; i < ra.nunknown; i++) if (strcmp(ra.unknown[i], rb.unknown[i])) __builtin_trap();
    }
  }
  pk_result_free(&ra);
  pk_result_free(&rb);
  pk_arena_free(a);
  pk_arena_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pk_arena *a = pk_arena_new();
  if (!a) return 0;
  pk_result res;
  memset(&res, 0, sizeof res);
  char err[LT_MSG];
  size_t pos = 0;
  for (int i = 0; i < 8 && pos < size; i++) {
    res.consumed = 0;
    if (pk_load(a, data + pos, size - pos, &res, err) != 0) break;
    if (res.consumed == 0 || res.consumed > size - pos) __builtin_trap();   /* no progress, or past the end */
    pos += res.consumed;
  }
  pk_result_free(&res);
  pk_arena_free(a);
  split_check(data, size);
  return 0;
}
