/*
** pickle.c: Python's pickle format, the subset PyTorch checkpoints use,
** read by a VM that never imports or calls anything, and a protocol-2
** writer.
**
** Layout (one pickle; a legacy .pt file holds several back to back):
**   1. PROTO (0x80, u8 protocol) first, from protocol 2 on
**   2. opcodes, each one byte and its argument: fixed-size little-endian
**      integers, u8/u32/u64 length-prefixed bytes, or for the protocol-0
**      ones text up to '\n'; protocol 4 groups them in FRAMEs (0x95 u64)
**   3. STOP ('.'): the value on top of the stack is the pickle's
** Values live on a stack with marks; the memo keeps them by index; GLOBAL
** ('c', "module\nname\n") and STACK_GLOBAL (0x93) name classes and
** functions, REDUCE ('R') and NEWOBJ (0x81) call one, BUILD ('b') sets
** state, PERSID/BINPERSID ('P', 'Q') name data outside the pickle
** (PyTorch's storages).
**
** Reader. Every opcode of protocols 0 to 5 (INST and OBJ included) builds
** pk_obj nodes in an arena, but for protocol 5's out-of-band buffers (0x97,
** 0x98) and the copyreg extension codes (0x82-0x84), which are refused. GLOBAL and STACK_GLOBAL are looked up in
** a table of the names PyTorch's weights_only loader allows (2.x list, with
** Python 2 spellings mapped); REDUCE, NEWOBJ and BUILD on those are done
** natively: _rebuild_tensor(_v2,_v3) and _rebuild_parameter make PK_TENSOR
** nodes, OrderedDict makes PK_ODICT, torch.Size a tuple, torch.device a
** string, _codecs.encode and bytearray bytes, set/frozenset PK_SET,
** complex PK_COMPLEX. Any other global becomes a PK_INERT node recording its
** name, arguments and state, and its name is collected in the result so the
** caller can refuse the file listing every one of them. The run of opcodes
** torch.save writes for each tensor is parsed without the stack
** (fast_tensor, below); the result is the same. A big pickle can be read
** by two threads, the second from an entry of a dict ahead of the first
** (pk_split, below); again the result and any error are pk_load's.
**
** Limits (pickle.h): stack depth, memo size, node count; every length is
** checked against the bytes left before it is used.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include "pickle.h"

/* ---- arena --------------------------------------------------------------- */

/* One bump allocator for nodes, strings and arrays. Blocks double from
   64 KiB to 8 MiB; blocks of 2 MiB and more come from lt_alloc_bytes, which
   advises them for huge pages: a checkpoint of 20,000 tensors touches ~15 MB
   of nodes, and one fault per 2 MiB instead of per 4 KiB is most of the cost
   of parsing it in a fresh process. Storages (their node, fields and key)
   come from a second chain of blocks: the loader's passes over every
   storage (marking, locating, mapping) then walk memory in order instead
   of one storage in each ~370 bytes of nodes (a cache miss each: a tenth
   of opening 20,000 small tensors). */
#define FIRST_BLOCK ((size_t)64 << 10)
#define MAX_BLOCK ((size_t)8 << 20)

typedef struct blk { struct blk *next; size_t used, cap, size; } blk;
#define BLK_HDR ((sizeof(blk) + 15) & ~(size_t)15)

typedef struct chain {
  blk *cur;
  size_t next_size;      /* bytes of the next block, header included */
} chain;

struct pk_arena {
  chain main, side;      /* side: storages */
  size_t nobjs;
};

pk_arena *pk_arena_new(void) {
  pk_arena *a = calloc(1, sizeof(pk_arena));
  if (a) a->main.next_size = a->side.next_size = FIRST_BLOCK;
  return a;
}

static void chain_free(chain *c) {
  for (blk *b = c->cur, *n; b; b = n) { n = b->next; lt_free_bytes(b, b->size); }
}

void pk_arena_free(pk_arena *a) {
  if (!a) return;
  chain_free(&a->main);
  chain_free(&a->side);
  free(a);
}

static blk *new_block(size_t size) {
  blk *b = lt_alloc_bytes(size, 0);
  if (!b) return NULL;
  b->size = size;
  b->cap = size - BLK_HDR;
  b->used = 0;
  return b;
}

static void *chain_bytes(chain *a, size_t n) {
  if (n > SIZE_MAX - 64) return NULL;
  n = (n + 15) & ~(size_t)15;
  if (!a->cur || a->cur->cap - a->cur->used < n) {
    if (n > a->next_size / 4) {              /* a big string: its own block, after the current */
      blk *b = new_block(BLK_HDR + n);
      if (!b) return NULL;
      b->used = n;
      if (a->cur) { b->next = a->cur->next; a->cur->next = b; }
      else { b->next = NULL; a->cur = b; }
      return (unsigned char *)b + BLK_HDR;
    }
    blk *b = new_block(a->next_size);
    if (!b) return NULL;
    if (a->next_size < MAX_BLOCK) a->next_size *= 2;
    b->next = a->cur;
    a->cur = b;
  }
  void *p = (unsigned char *)a->cur + BLK_HDR + a->cur->used;
  a->cur->used += n;
  return p;
}

static void *abytes(pk_arena *a, size_t n) { return chain_bytes(&a->main, n); }

static pk_obj *chain_obj(pk_arena *a, chain *c, pk_kind k) {
  if (a->nobjs >= PK_MAX_OBJS) return NULL;
  pk_obj *o = chain_bytes(c, sizeof *o);
  if (!o) return NULL;
  memset(o, 0, sizeof *o);
  o->kind = (uint8_t)k;
  o->gid = -1;
  a->nobjs++;
  return o;
}

static pk_obj *aobj(pk_arena *a, pk_kind k) { return chain_obj(a, &a->main, k); }

/* append to a container; arrays live in the arena (a grown array leaves
   its old copy there: at most twice the final size) */
static int push_item(pk_arena *a, pk_obj *c, pk_obj *v) {
  if (c->n == c->cap) {
    size_t nc = c->cap ? (size_t)c->cap * 2 : 4;
    if (nc > UINT32_MAX) return -1;
    pk_obj **ni = abytes(a, nc * sizeof *ni);
    if (!ni) return -1;
    if (c->n) memcpy(ni, c->items, c->n * sizeof *ni);
    c->items = ni; c->cap = (uint32_t)nc;
  }
  c->items[c->n++] = v;
  return 0;
}

/* ---- globals ------------------------------------------------------------- */

enum {
  G_ODICT, G_REBUILD_V2, G_REBUILD, G_REBUILD_V3, G_PARAM, G_PARAM_STATE,
  G_FROM_TYPE_V2, G_PARAMETER, G_TENSOR, G_SIZE, G_DEVICE, G_LAYOUT, G_CODECS,
  G_SET, G_FROZENSET, G_BYTEARRAY, G_COMPLEX, G_STORAGE, G_UNTYPED, G_TENSOR_TYPE,
  G_DTYPE
};

typedef struct gname { const char *name; int gid; int dtype; } gname;

static const gname GLOBALS[] = {
  {"collections.OrderedDict", G_ODICT, -1},
  {"torch._utils._rebuild_tensor_v2", G_REBUILD_V2, -1},
  {"torch._utils._rebuild_tensor", G_REBUILD, -1},
  {"torch._utils._rebuild_tensor_v3", G_REBUILD_V3, -1},
  {"torch._utils._rebuild_parameter", G_PARAM, -1},
  {"torch._utils._rebuild_parameter_with_state", G_PARAM_STATE, -1},
  {"torch._tensor._rebuild_from_type_v2", G_FROM_TYPE_V2, -1},
  {"torch.nn.parameter.Parameter", G_PARAMETER, -1},
  {"torch.Tensor", G_TENSOR, -1},
  {"torch._tensor.Tensor", G_TENSOR, -1},
  {"torch.Size", G_SIZE, -1},
  {"torch.device", G_DEVICE, -1},
  {"torch.serialization._get_layout", G_LAYOUT, -1},
  {"_codecs.encode", G_CODECS, -1},
  {"builtins.set", G_SET, -1},
  {"builtins.frozenset", G_FROZENSET, -1},
  {"builtins.bytearray", G_BYTEARRAY, -1},
  {"builtins.complex", G_COMPLEX, -1},
  {"torch.storage.UntypedStorage", G_UNTYPED, LT_UINT8},
  {"torch.UntypedStorage", G_UNTYPED, LT_UINT8},
  {"torch.DoubleStorage", G_STORAGE, LT_FLOAT64},
  {"torch.FloatStorage", G_STORAGE, LT_FLOAT32},
  {"torch.HalfStorage", G_STORAGE, LT_FLOAT16},
  {"torch.BFloat16Storage", G_STORAGE, LT_BFLOAT16},
  {"torch.LongStorage", G_STORAGE, LT_INT64},
  {"torch.IntStorage", G_STORAGE, LT_INT32},
  {"torch.ShortStorage", G_STORAGE, LT_INT16},
  {"torch.CharStorage", G_STORAGE, LT_INT8},
  {"torch.ByteStorage", G_STORAGE, LT_UINT8},
  {"torch.BoolStorage", G_STORAGE, LT_BOOL},
  {"torch.ComplexDoubleStorage", G_STORAGE, LT_COMPLEX128},
  {"torch.ComplexFloatStorage", G_STORAGE, LT_COMPLEX64},
  {"torch.DoubleTensor", G_TENSOR_TYPE, LT_FLOAT64},
  {"torch.FloatTensor", G_TENSOR_TYPE, LT_FLOAT32},
  {"torch.HalfTensor", G_TENSOR_TYPE, LT_FLOAT16},
  {"torch.BFloat16Tensor", G_TENSOR_TYPE, LT_BFLOAT16},
  {"torch.LongTensor", G_TENSOR_TYPE, LT_INT64},
  {"torch.IntTensor", G_TENSOR_TYPE, LT_INT32},
  {"torch.ShortTensor", G_TENSOR_TYPE, LT_INT16},
  {"torch.CharTensor", G_TENSOR_TYPE, LT_INT8},
  {"torch.ByteTensor", G_TENSOR_TYPE, LT_UINT8},
  {"torch.BoolTensor", G_TENSOR_TYPE, LT_BOOL},
  {"torch.float32", G_DTYPE, LT_FLOAT32}, {"torch.float", G_DTYPE, LT_FLOAT32},
  {"torch.float64", G_DTYPE, LT_FLOAT64}, {"torch.double", G_DTYPE, LT_FLOAT64},
  {"torch.float16", G_DTYPE, LT_FLOAT16}, {"torch.half", G_DTYPE, LT_FLOAT16},
  {"torch.bfloat16", G_DTYPE, LT_BFLOAT16},
  {"torch.int8", G_DTYPE, LT_INT8}, {"torch.int16", G_DTYPE, LT_INT16},
  {"torch.short", G_DTYPE, LT_INT16}, {"torch.int32", G_DTYPE, LT_INT32},
  {"torch.int", G_DTYPE, LT_INT32}, {"torch.int64", G_DTYPE, LT_INT64},
  {"torch.long", G_DTYPE, LT_INT64}, {"torch.uint8", G_DTYPE, LT_UINT8},
  {"torch.bool", G_DTYPE, LT_BOOL},
  {"torch.complex64", G_DTYPE, LT_COMPLEX64}, {"torch.cfloat", G_DTYPE, LT_COMPLEX64},
  {"torch.complex128", G_DTYPE, LT_COMPLEX128}, {"torch.cdouble", G_DTYPE, LT_COMPLEX128},
  {"torch.float8_e4m3fn", G_DTYPE, LT_FLOAT8_E4M3FN},
  {"torch.float8_e5m2", G_DTYPE, LT_FLOAT8_E5M2},
  {"torch.uint16", G_DTYPE, LT_UINT16}, {"torch.uint32", G_DTYPE, LT_UINT32},
  {"torch.uint64", G_DTYPE, LT_UINT64},
};

static const gname *find_global(const char *full) {
  for (size_t i = 0; i < sizeof GLOBALS / sizeof GLOBALS[0]; i++)
    if (!strcmp(GLOBALS[i].name, full)) return &GLOBALS[i];
  /* torch.cuda.FloatStorage and friends: any module, as torch.load does */
  const char *dot = strrchr(full, '.');
  if (dot && !strncmp(full, "torch.cuda.", 11) && strstr(dot, "Storage")) {
    char buf[64];
    snprintf(buf, sizeof buf, "torch%s", dot);
    for (size_t i = 0; i < sizeof GLOBALS / sizeof GLOBALS[0]; i++)
      if (GLOBALS[i].gid == G_STORAGE && !strcmp(GLOBALS[i].name, buf)) return &GLOBALS[i];
  }
  return NULL;
}

const char *pk_storage_class(lt_dtype dt) {
  for (size_t i = 0; i < sizeof GLOBALS / sizeof GLOBALS[0]; i++)
    if (GLOBALS[i].gid == G_STORAGE && GLOBALS[i].dtype == (int)dt) return GLOBALS[i].name + 6;
  return NULL;
}

/* ---- the VM ---------------------------------------------------------------- */

typedef struct vm {
  pk_arena *a;
  pk_result *res;
  const unsigned char *buf;
  size_t len, pos, op_pos;
  pk_obj **stack;
  size_t sp, scap;
  size_t *marks;
  size_t nmarks, mcap;
  pk_obj **memo;
  size_t memocap, nmemo;
  size_t memo_bytes;        /* memo from lt_alloc_bytes (a big pickle's): its size; 0: malloc */
  char *err;
  /* immutable values shared within one pickle: None, False, True, 0..255 */
  pk_obj *none, *bools[2], *small[256];
  /* storages by key: open addressing over res->storages indices; keys
     that are decimal numbers below the pickle's length (torch.save's "0",
     "1", ...) by number instead: index + 1, 0 for none */
  lt_hslot *hash;           /* i: index in res->storages; SIZE_MAX: empty */
  size_t hcap;
  uint32_t *bynum;
  size_t bncap;
  /* the tensor fast path (fast_tensor): the memo's stand-in for the values
     it does not build; a GET of one restarts the pickle without it */
  pk_obj *elided;
  int nofast, restart;
  size_t memo_hi;           /* one past the highest memo slot set */
  int guard;                /* the second part of a split pickle (below): its base mark is not its own */
  int second;               /* that part: MEMOIZE's slot (the memo's count) is unknown to it */
} vm;

#define VFAIL(...) do { verr(v, __VA_ARGS__); return -1; } while (0)

static void verr(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verr(vm *v, const char *fmt, ...) {
  int n = snprintf(v->err, LT_MSG, "at byte %zu: ", v->op_pos);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->err + n, (size_t)(LT_MSG - n), fmt, ap);
  va_end(ap);
}

static const char *kind_name(const pk_obj *o) {
  static const char *names[] = {"None", "bool", "int", "float", "str", "bytes", "list",
    "tuple", "dict", "OrderedDict", "set", "complex", "tensor", "storage", "dtype",
    "global", "object", "mark"};
  return names[o->kind];
}

static int push(vm *v, pk_obj *o) {
  if (!o) VFAIL("out of memory or more than %d objects", PK_MAX_OBJS);
  if (v->sp >= PK_MAX_STACK) VFAIL("stack depth exceeds the limit of %d", PK_MAX_STACK);
  if (v->sp == v->scap) {
    if (v->scap >= PK_MAX_STACK * 2) VFAIL("stack depth exceeds the limit of %d", PK_MAX_STACK);
    size_t nc = v->scap ? v->scap * 2 : 64;
    pk_obj **ns = realloc(v->stack, nc * sizeof *ns);
    if (!ns) VFAIL("out of memory");
    v->stack = ns; v->scap = nc;
  }
  v->stack[v->sp++] = o;
  return 0;
}

static size_t floor_(vm *v) { return v->nmarks ? v->marks[v->nmarks - 1] : 0; }

static pk_obj *pop(vm *v) {
  if (v->sp <= floor_(v)) { verr(v, "stack underflow"); return NULL; }
  return v->stack[--v->sp];
}

static pk_obj *top(vm *v) {
  if (v->sp <= floor_(v)) { verr(v, "stack underflow"); return NULL; }
  return v->stack[v->sp - 1];
}

/* items since the last mark: start index; removes the mark */
static int pop_mark(vm *v, size_t *start) {
  if (!v->nmarks) VFAIL("no mark on the stack");
  *start = v->marks[--v->nmarks];
  return 0;
}

static int need(vm *v, size_t n) {
  if (v->len - v->pos < n) VFAIL("pickle ends early (needs %zu more bytes)", n - (v->len - v->pos));
  return 0;
}

/* n little-endian bytes; the common widths spelled out, so that each
   becomes one load (LONG_BINPUT's 4-byte index is in every tensor) */
static inline uint64_t le(const unsigned char *p, int n) {
  switch (n) {
    case 1: return p[0];
    case 2: return (uint64_t)p[0] | (uint64_t)p[1] << 8;
    case 4: return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
    default: {
      uint64_t x = 0;
      for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
      return x;
    }
  }
}

static pk_obj *mkstr(vm *v, pk_kind k, const void *s, size_t n) {
  if (n > UINT32_MAX) return NULL;
  pk_obj *o = aobj(v->a, k);
  if (!o) return NULL;
  o->s = abytes(v->a, n + 1);
  if (!o->s) return NULL;
  memcpy(o->s, s, n);
  o->s[n] = 0;
  o->len = (uint32_t)n;
  return o;
}

static pk_obj *mkint(vm *v, int64_t x) {
  if (x >= 0 && x < 256 && v->small[x]) return v->small[x];
  pk_obj *o = aobj(v->a, PK_INT);
  if (o) o->i = x;
  if (x >= 0 && x < 256) v->small[x] = o;
  return o;
}

static pk_obj *mkbool(vm *v, int b) {
  if (!v->bools[b] && (v->bools[b] = aobj(v->a, PK_BOOL))) v->bools[b]->i = b;
  return v->bools[b];
}

static int read_line(vm *v, const char **s, size_t *n) {
  const unsigned char *p = v->buf + v->pos, *e = memchr(p, '\n', v->len - v->pos);
  if (!e) VFAIL("pickle ends early (unterminated line)");
  *s = (const char *)p;
  *n = (size_t)(e - p);
  v->pos += *n + 1;
  return 0;
}

static int parse_dec(vm *v, const char *s, size_t n, int64_t *out) {
  char buf[32];
  while (n && (s[n - 1] == 'L' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
  if (n == 0 || n >= sizeof buf) VFAIL("integer '%.*s' does not fit in int64", (int)(n > 40 ? 40 : n), s);
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  long long x = strtoll(buf, &end, 10);
  if (*end || errno) VFAIL("integer '%s' does not fit in int64 or is malformed", buf);
  *out = x;
  return 0;
}

static pk_obj *new_storage(vm *v, const char *key, size_t klen) {
  pk_result *r = v->res;
  pk_obj *o = chain_obj(v->a, &v->a->side, PK_STORAGE);
  if (!o) return NULL;
  o->st = chain_bytes(&v->a->side, sizeof *o->st);
  if (!o->st) return NULL;
  memset(o->st, 0, sizeof *o->st);
  o->st->key = chain_bytes(&v->a->side, klen + 1);
  if (!o->st->key) return NULL;
  memcpy(o->st->key, key, klen);
  o->st->key[klen] = 0;
  o->st->key_len = (uint32_t)klen;   /* a str of at most UINT32_MAX bytes */
  if (r->nstorages == r->capstorages) {
    size_t nc = r->capstorages ? r->capstorages * 2 : 16;
    pk_obj **ns = realloc(r->storages, nc * sizeof *ns);
    if (!ns) return NULL;
    r->storages = ns; r->capstorages = nc;
  }
  r->storages[r->nstorages++] = o;
  return o;
}

/* the storage of key, or NULL; *slot: where the key's hash slot is or
   would go (hashed keys), or its number (decimal keys, below v->len) */
static pk_obj *find_storage(vm *v, const char *key, size_t klen, int64_t *num, size_t *slot, uint64_t *hash) {
  pk_result *r = v->res;
  /* the keys torch.save writes: a direct index, no hashing or probing */
  int64_t k = *num = lt_decimal_key(key, klen, v->len);
  if (k >= 0) return (size_t)k < v->bncap && v->bynum[k] ? r->storages[v->bynum[k] - 1] : NULL;
  uint64_t h = *hash = lt_hash_bytes(key, klen);
  if (!v->hcap) { *slot = SIZE_MAX; return NULL; }
  size_t j = h & (v->hcap - 1);
  while (v->hash[j].i != SIZE_MAX) {
    if (v->hash[j].h == h) {
      pk_obj *o = r->storages[v->hash[j].i];
      if (o->st->key_len == klen && !memcmp(o->st->key, key, klen)) return o;
    }
    j = (j + 1) & (v->hcap - 1);
  }
  *slot = j;
  return NULL;
}

static pk_obj *storage_by_key(vm *v, const char *key, size_t klen, int *created) {
  pk_result *r = v->res;
  int64_t k;
  size_t j;
  uint64_t h;
  pk_obj *o = find_storage(v, key, klen, &k, &j, &h);
  if (o) { *created = 0; return o; }
  if (k >= 0) {
    if ((size_t)k >= v->bncap) {
      size_t nc = v->bncap ? v->bncap : 64;
      while (nc <= (size_t)k) nc *= 2;
      uint32_t *nb = realloc(v->bynum, nc * sizeof *nb);
      if (!nb) return NULL;
      memset(nb + v->bncap, 0, (nc - v->bncap) * sizeof *nb);
      v->bynum = nb; v->bncap = nc;
    }
    if (r->nstorages >= UINT32_MAX) return NULL;
    if (!(o = new_storage(v, key, klen))) return NULL;
    v->bynum[k] = (uint32_t)r->nstorages;
    *created = 1;
    return o;
  }
  if (r->nstorages * 2 >= v->hcap) {
    /* slots keep the hash: probing and growing never chase a node */
    size_t nc = v->hcap ? v->hcap * 2 : 64;
    lt_hslot *nh = malloc(nc * sizeof *nh);
    if (!nh) return NULL;
    for (size_t i = 0; i < nc; i++) nh[i].i = SIZE_MAX;
    for (size_t i = 0; i < v->hcap; i++) {
      if (v->hash[i].i == SIZE_MAX) continue;
      size_t q = v->hash[i].h & (nc - 1);
      while (nh[q].i != SIZE_MAX) q = (q + 1) & (nc - 1);
      nh[q] = v->hash[i];
    }
    free(v->hash);
    v->hash = nh; v->hcap = nc;
    j = h & (nc - 1);   /* the new key's slot in the new table */
    while (v->hash[j].i != SIZE_MAX) j = (j + 1) & (nc - 1);
  }
  if (!(o = new_storage(v, key, klen))) return NULL;
  v->hash[j].h = h;
  v->hash[j].i = r->nstorages - 1;
  *created = 1;
  return o;
}

static int is_dict(const pk_obj *o) { return o->kind == PK_DICT || o->kind == PK_ODICT; }

static int get_int(vm *v, pk_obj *o, const char *what, int64_t *out) {
  if (!o || (o->kind != PK_INT && o->kind != PK_BOOL)) VFAIL("%s: expected an int, found %s", what, o ? kind_name(o) : "nothing");
  *out = o->i;
  return 0;
}

/* the persistent id tuple -> a PK_STORAGE node (or a class, below) */
static pk_obj *call(vm *v, pk_obj *f, pk_obj *args, int newobj);

/* the storage a persistent id names (cls: a storage class): found, its
   type and size checked, or created */
static pk_obj *storage_for(vm *v, const pk_obj *cls, const char *key, size_t klen, const char *loc, int64_t numel) {
  int dt = (int)cls->i;
  size_t isz = lt_dtypes[dt].size;
  if (numel < 0 || (uint64_t)numel > (UINT64_MAX >> 2) / isz) {
    verr(v, "storage '%.*s': bad element count %lld", (int)klen, key, (long long)numel);
    return NULL;
  }
  int created;
  pk_obj *s = storage_by_key(v, key, klen, &created);
  if (!s) { verr(v, "out of memory"); return NULL; }
  uint64_t nbytes = (uint64_t)numel * isz;
  if (created) {
    s->st->dtype = dt;
    s->st->untyped = cls->gid == G_UNTYPED;
    s->st->nbytes = nbytes;
    s->st->location = (char *)loc;
  } else if (s->st->nbytes != nbytes || s->st->dtype != dt) {
    verr(v, "storage '%.*s' is referenced with different types or sizes", (int)klen, key);
    return NULL;
  }
  return s;
}

static int persistent_load(vm *v, pk_obj *pid) {
  if (pid->kind != PK_TUPLE) VFAIL("persistent id: expected a tuple, found %s", kind_name(pid));
  /* legacy (non-zip) files name each nn.Module class they pickle as
     ('module', class, source_file, source); torch.load gives the class
     (its GLOBAL, already noted if unknown); the source is never used */
  if (pid->n == 4 && pid->items[0]->kind == PK_STR && !strcmp(pid->items[0]->s, "module"))
    return push(v, pid->items[1]);
  if (pid->n < 5 || pid->items[0]->kind != PK_STR || strcmp(pid->items[0]->s, "storage"))
    VFAIL("persistent id: expected ('storage', type, key, location, numel)");
  pk_obj *cls = pid->items[1], *key = pid->items[2], *loc = pid->items[3];
  int64_t numel;
  /* a storage class of an unsupported global (torch.QUInt8Storage, ...):
     an inert object, refused only when what holds it is loaded */
  if (cls->kind == PK_INERT) {
    pk_obj *o = call(v, cls, pid, 0);
    return o ? push(v, o) : -1;
  }
  if (cls->kind != PK_GLOBAL || (cls->gid != G_STORAGE && cls->gid != G_UNTYPED))
    VFAIL("persistent id: storage type is %s, not a storage class", cls->s ? cls->s : kind_name(cls));
  if (key->kind != PK_STR && key->kind != PK_BYTES) VFAIL("persistent id: storage key is %s, not a string", kind_name(key));
  if (get_int(v, pid->items[4], "persistent id numel", &numel)) return -1;
  pk_obj *s = storage_for(v, cls, key->s, key->len, loc->kind == PK_STR ? loc->s : "cpu", numel);
  if (!s) return -1;
  int created;
  int dt = (int)cls->i;
  size_t isz = lt_dtypes[dt].size;
  if (pid->n >= 6 && pid->items[5]->kind != PK_NONE) {
    /* legacy view: (view_key, offset, view_numel) of the root storage */
    pk_obj *vm_ = pid->items[5];
    int64_t off, vn;
    if (vm_->kind != PK_TUPLE || vm_->n != 3 || (vm_->items[0]->kind != PK_STR))
      VFAIL("persistent id: bad view metadata");
    if (get_int(v, vm_->items[1], "view offset", &off) || get_int(v, vm_->items[2], "view size", &vn)) return -1;
    if (off < 0 || vn < 0 || off > numel || vn > numel - off)
      VFAIL("storage view '%s' (offset %lld, %lld elements) lies outside storage '%s' of %lld elements",
            vm_->items[0]->s, (long long)off, (long long)vn, key->s, (long long)numel);
    pk_obj *w = storage_by_key(v, vm_->items[0]->s, vm_->items[0]->len, &created);
    if (!w) VFAIL("out of memory");
    if (created) {
      w->st->dtype = dt;
      w->st->nbytes = (uint64_t)vn * isz;
      w->st->location = s->st->location;
      w->st->root = s;
      w->st->view_off = (uint64_t)off * isz;
    }
    s = w;
  }
  return push(v, s);
}

static int tuple_dims(vm *v, pk_obj *o, const char *what, int64_t *out, int *nd) {
  if (o->kind != PK_TUPLE && o->kind != PK_LIST) VFAIL("tensor %s: expected a tuple, found %s", what, kind_name(o));
  if (o->n > LT_MAX_DIMS) VFAIL("tensor rank %u exceeds the limit of %d", (unsigned)o->n, LT_MAX_DIMS);
  for (size_t i = 0; i < o->n; i++) if (get_int(v, o->items[i], what, &out[i])) return -1;
  *nd = (int)o->n;
  return 0;
}

/* a PK_TENSOR node over storage so: dtype -1 is the storage's (refused for
   an untyped storage); a legacy view storage is rebased on its root; the
   extent is checked against the storage */
static pk_obj *make_tensor(vm *v, pk_obj *so, int64_t offset, const int64_t *shape, const int64_t *stride,
                           int ndim, int requires_grad, int dtype) {
  if (dtype < 0 && so->st->untyped) {
    verr(v, "tensor rebuild: untyped storage '%s' without a dtype", so->st->key);
    return NULL;
  }
  pk_obj *o = aobj(v->a, PK_TENSOR);
  if (!o || !(o->t = abytes(v->a, sizeof *o->t + 2 * (size_t)ndim * sizeof(int64_t)))) { verr(v, "out of memory"); return NULL; }
  pk_tensor *t = o->t;
  memset(t, 0, sizeof *t);
  t->ndim = ndim;
  t->offset = offset;
  memcpy(t->dims, shape, (size_t)ndim * sizeof *shape);
  memcpy(t->dims + ndim, stride, (size_t)ndim * sizeof *stride);
  t->requires_grad = requires_grad;
  t->dtype = dtype < 0 ? so->st->dtype : dtype;
  size_t isz = lt_dtypes[t->dtype].size;
  lt_tensor chk;   /* what lt_check_extent reads: dtype, rank, offset, sizes and strides */
  chk.dtype = (lt_dtype)t->dtype; chk.ndim = t->ndim;
  memcpy(chk.shape, shape, (size_t)ndim * sizeof *shape); memcpy(chk.stride, stride, (size_t)ndim * sizeof *stride);
  char e[LT_MSG];
  while (so->st->root) {           /* legacy view storage: rebase on the root */
    if (so->st->view_off % isz) { verr(v, "storage view offset is not a multiple of the element size"); return NULL; }
    if (t->offset > INT64_MAX - (int64_t)(so->st->view_off / isz)) { verr(v, "storage offset overflows"); return NULL; }
    chk.offset = t->offset;
    if (lt_check_extent(&chk, (size_t)so->st->nbytes, e)) { verr(v, "tensor in storage '%s': %s", so->st->key, e); return NULL; }
    t->offset += (int64_t)(so->st->view_off / isz);
    so = so->st->root;
  }
  t->storage = so;
  chk.offset = t->offset;
  if (so->st->nbytes > SIZE_MAX || lt_check_extent(&chk, (size_t)so->st->nbytes, e)) {
    verr(v, "tensor in storage '%s' of %llu bytes: %s", so->st->key,
         (unsigned long long)so->st->nbytes, so->st->nbytes > SIZE_MAX ? "too big" : e);
    return NULL;
  }
  return o;
}

/* _rebuild_tensor(_v2,_v3) arguments -> a PK_TENSOR node */
static pk_obj *rebuild_tensor(vm *v, int gid, pk_obj *args) {
  if (args->kind != PK_TUPLE || args->n < 4 || (gid == G_REBUILD_V3 && args->n < 7)) {
    verr(v, "tensor rebuild: bad arguments");
    return NULL;
  }
  pk_obj *so = args->items[0];
  if (so->kind != PK_STORAGE) { verr(v, "tensor rebuild: expected a storage, found %s", kind_name(so)); return NULL; }
  int64_t shape[LT_MAX_DIMS], stride[LT_MAX_DIMS], offset;
  int ndim, nd2;
  if (get_int(v, args->items[1], "storage offset", &offset)) return NULL;
  if (tuple_dims(v, args->items[2], "size", shape, &ndim)) return NULL;
  if (tuple_dims(v, args->items[3], "stride", stride, &nd2)) return NULL;
  if (nd2 != ndim) { verr(v, "tensor has %d sizes but %d strides", ndim, nd2); return NULL; }
  int rg = gid != G_REBUILD && args->n > 4 && args->items[4]->kind == PK_BOOL && args->items[4]->i;
  int dtype = -1;
  if (gid == G_REBUILD_V3) {
    pk_obj *d = args->items[6];
    if (d->kind != PK_DTYPE) { verr(v, "_rebuild_tensor_v3: expected a dtype, found %s", kind_name(d)); return NULL; }
    dtype = (int)d->i;
  }
  return make_tensor(v, so, offset, shape, stride, ndim, rg, dtype);
}

/* UTF-8 text -> latin-1 bytes (for _codecs.encode(s, 'latin1')) */
static pk_obj *latin1(vm *v, pk_obj *s) {
  pk_obj *o = aobj(v->a, PK_BYTES);
  if (!o || !(o->s = abytes(v->a, s->len + 1))) { verr(v, "out of memory"); return NULL; }
  size_t n = 0;
  const unsigned char *p = (const unsigned char *)s->s, *e = p + s->len;
  while (p < e) {
    if (*p < 0x80) o->s[n++] = (char)*p++;
    else if ((*p & 0xE0) == 0xC0 && e - p >= 2 && (*p & 0x1F) <= 3) { o->s[n++] = (char)(((*p & 0x1F) << 6) | (p[1] & 0x3F)); p += 2; }
    else { verr(v, "_codecs.encode: text is not latin-1"); return NULL; }
  }
  o->s[n] = 0;
  o->len = (uint32_t)n;
  return o;
}

static int note_unknown(vm *v, const char *name) {
  pk_result *r = v->res;
  for (int i = 0; i < r->nunknown; i++) if (!strcmp(r->unknown[i], name)) return 0;
  if (r->nunknown == PK_MAX_GLOBALS) { r->more_unknown = 1; return 0; }
  r->unknown[r->nunknown] = strdup(name);
  if (!r->unknown[r->nunknown]) VFAIL("out of memory");
  r->nunknown++;
  return 0;
}

static int do_global(vm *v, const char *mod, size_t ml, const char *name, size_t nl) {
  char full[512];
  if (ml + nl + 2 > sizeof full || memchr(mod, 0, ml) || memchr(name, 0, nl)) VFAIL("bad global name");
  if (ml == 11 && !memcmp(mod, "__builtin__", 11)) { mod = "builtins"; ml = 8; }
  else if (ml == 8 && !memcmp(mod, "copy_reg", 8)) { mod = "copyreg"; ml = 7; }
  else if (ml == 12 && !memcmp(mod, "torch.tensor", 12)) { mod = "torch._tensor"; ml = 13; }
  snprintf(full, sizeof full, "%.*s.%.*s", (int)ml, mod, (int)nl, name);
  const gname *g = find_global(full);
  if (g && g->gid == G_DTYPE) {
    pk_obj *o = aobj(v->a, PK_DTYPE);
    if (o) o->i = g->dtype;
    return push(v, o);
  }
  pk_obj *o = mkstr(v, g ? PK_GLOBAL : PK_INERT, full, strlen(full));
  if (!o) VFAIL("out of memory");
  if (g) { o->gid = (int16_t)g->gid; o->i = g->dtype; }
  else if (note_unknown(v, full)) return -1;
  return push(v, o);
}

/* f(*args) for an allowed f, natively; unknown f -> an inert object */
static pk_obj *call(vm *v, pk_obj *f, pk_obj *args, int newobj) {
  if (f->kind == PK_INERT) {
    pk_obj *o = aobj(v->a, PK_INERT);
    if (!o) { verr(v, "out of memory"); return NULL; }
    o->s = f->s; o->len = f->len;
    if (!(o->in = abytes(v->a, sizeof *o->in))) { verr(v, "out of memory"); return NULL; }
    memset(o->in, 0, sizeof *o->in);
    o->in->args = args;
    return o;
  }
  if (f->kind != PK_GLOBAL) { verr(v, "%s: cannot call a %s", newobj ? "NEWOBJ" : "REDUCE", kind_name(f)); return NULL; }
  if (args->kind != PK_TUPLE) { verr(v, "call of %s: arguments are a %s, not a tuple", f->s, kind_name(args)); return NULL; }
  size_t n = args->n;
  pk_obj **a = args->items;
  pk_obj *o;
  switch (f->gid) {
    case G_REBUILD_V2: case G_REBUILD: case G_REBUILD_V3:
      if (n >= 1 && a[0]->kind == PK_INERT) {
        /* over an inert storage: an inert object of the rebuild function */
        pk_obj *g = mkstr(v, PK_INERT, f->s, f->len);
        return g ? call(v, g, args, newobj) : NULL;
      }
      return rebuild_tensor(v, f->gid, args);
    case G_PARAM: case G_PARAM_STATE: case G_PARAMETER:
      if (n == 0 && f->gid == G_PARAMETER) { verr(v, "Parameter() without data is not supported"); return NULL; }
      if (n < 1 || a[0]->kind != PK_TENSOR) { verr(v, "%s: expected a tensor", f->s); return NULL; }
      o = a[0];
      o->t->is_param = 1;
      o->t->requires_grad = n >= 2 ? (a[1]->kind == PK_BOOL && a[1]->i) : 1;
      return o;
    case G_FROM_TYPE_V2: {
      /* (func, type, args, state): func(*args), then the state is ignored */
      if (n < 3 || a[0]->kind != PK_GLOBAL) { verr(v, "_rebuild_from_type_v2: bad arguments"); return NULL; }
      return call(v, a[0], a[2], 0);
    }
    case G_ODICT: {
      o = aobj(v->a, PK_ODICT);
      if (!o) { verr(v, "out of memory"); return NULL; }
      if (n >= 1 && (a[0]->kind == PK_LIST || a[0]->kind == PK_TUPLE)) {
        for (size_t i = 0; i < a[0]->n; i++) {
          pk_obj *p = a[0]->items[i];
          if ((p->kind != PK_TUPLE && p->kind != PK_LIST) || p->n != 2) { verr(v, "OrderedDict: items must be pairs"); return NULL; }
          if (push_item(v->a, o, p->items[0]) || push_item(v->a, o, p->items[1])) { verr(v, "out of memory"); return NULL; }
        }
      }
      return o;
    }
    case G_SIZE:
      if (n == 0) { o = aobj(v->a, PK_TUPLE); if (!o) verr(v, "out of memory"); return o; }
      if (a[0]->kind != PK_TUPLE && a[0]->kind != PK_LIST) { verr(v, "torch.Size: expected a tuple"); return NULL; }
      o = aobj(v->a, PK_TUPLE);
      if (!o) { verr(v, "out of memory"); return NULL; }
      for (size_t i = 0; i < a[0]->n; i++) if (push_item(v->a, o, a[0]->items[i])) { verr(v, "out of memory"); return NULL; }
      return o;
    case G_DEVICE: case G_LAYOUT: {
      if (n < 1 || a[0]->kind != PK_STR) { verr(v, "%s: expected a string", f->s); return NULL; }
      if (f->gid == G_DEVICE && n >= 2 && a[1]->kind == PK_INT) {
        char buf[300];
        snprintf(buf, sizeof buf, "%.200s:%lld", a[0]->s, (long long)a[1]->i);
        o = mkstr(v, PK_STR, buf, strlen(buf));
        if (!o) verr(v, "out of memory");
        return o;
      }
      return a[0];
    }
    case G_CODECS:
      if (n < 1 || a[0]->kind != PK_STR) { verr(v, "_codecs.encode: expected a string"); return NULL; }
      if (n >= 2 && a[1]->kind == PK_STR && (!strcmp(a[1]->s, "utf-8") || !strcmp(a[1]->s, "utf8"))) {
        o = mkstr(v, PK_BYTES, a[0]->s, a[0]->len);
        if (!o) verr(v, "out of memory");
        return o;
      }
      return latin1(v, a[0]);
    case G_BYTEARRAY:
      if (n == 0) { o = mkstr(v, PK_BYTES, "", 0); if (!o) verr(v, "out of memory"); return o; }
      if (a[0]->kind == PK_BYTES) return a[0];
      if (a[0]->kind == PK_STR) return latin1(v, a[0]);
      verr(v, "bytearray: unsupported argument %s", kind_name(a[0]));
      return NULL;
    case G_SET: case G_FROZENSET:
      o = aobj(v->a, PK_SET);
      if (!o) { verr(v, "out of memory"); return NULL; }
      if (n >= 1 && (a[0]->kind == PK_LIST || a[0]->kind == PK_TUPLE || a[0]->kind == PK_SET))
        for (size_t i = 0; i < a[0]->n; i++) if (push_item(v->a, o, a[0]->items[i])) { verr(v, "out of memory"); return NULL; }
      return o;
    case G_COMPLEX: {
      o = aobj(v->a, PK_COMPLEX);
      if (!o) { verr(v, "out of memory"); return NULL; }
      for (size_t i = 0; i < n && i < 2; i++) {
        double x = a[i]->kind == PK_FLOAT ? a[i]->f : (a[i]->kind == PK_INT || a[i]->kind == PK_BOOL) ? (double)a[i]->i : 0;
        if (i == 0) o->f = x; else o->f2 = x;
      }
      return o;
    }
    default:
      verr(v, "cannot call %s", f->s);
      return NULL;
  }
}

static int load_long(vm *v, size_t n) {
  if (need(v, n)) return -1;
  const unsigned char *p = v->buf + v->pos;
  v->pos += n;
  if (n == 0) return push(v, mkint(v, 0));
  /* strip sign-extension bytes beyond 8 */
  size_t m = n;
  while (m > 8 && ((p[m - 1] == 0 && !(p[m - 2] & 0x80)) || (p[m - 1] == 0xFF && (p[m - 2] & 0x80)))) m--;
  if (m > 8) {
    char hex[2 * 24 + 8];
    size_t k = 0, show = m > 24 ? 24 : m;
    for (size_t i = 0; i < show; i++) k += (size_t)snprintf(hex + k, sizeof hex - k, "%02x", p[m - 1 - i]);
    VFAIL("integer 0x%s%s (two's complement, %zu bytes) does not fit in int64", hex, m > 24 ? "..." : "", n);
  }
  uint64_t x = le(p, (int)m);
  if (m < 8 && (p[m - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * m);
  int64_t s;
  memcpy(&s, &x, sizeof s);
  return push(v, mkint(v, s));
}

#define BIG_PICKLE ((size_t)1 << 20)   /* bytes from which a pickle's memo and nodes take huge pages */

static int memo_put(vm *v, uint64_t idx, pk_obj *t) {
  if (idx >= PK_MAX_MEMO) VFAIL("memo index %llu exceeds the limit of %d", (unsigned long long)idx, PK_MAX_MEMO);
  if (idx >= v->memocap) {
    size_t nc = v->memocap ? v->memocap : 64;
    while (nc <= idx) nc *= 2;
    pk_obj **nm;
    if (v->memo_bytes) {   /* past the first guess: to the heap */
      if (!(nm = malloc(nc * sizeof *nm))) VFAIL("out of memory");
      memcpy(nm, v->memo, v->memocap * sizeof *nm);
      lt_free_bytes(v->memo, v->memo_bytes);
      v->memo_bytes = 0;
    } else if (!(nm = realloc(v->memo, nc * sizeof *nm))) VFAIL("out of memory");
    memset(nm + v->memocap, 0, (nc - v->memocap) * sizeof *nm);
    v->memo = nm; v->memocap = nc;
  }
  if (!v->memo[idx]) v->nmemo++;
  if (idx >= v->memo_hi) v->memo_hi = idx + 1;
  v->memo[idx] = t;
  return 0;
}

static int set_memo(vm *v, uint64_t idx) {
  pk_obj *t = top(v);
  return t ? memo_put(v, idx, t) : -1;
}

/* The fast path's memo slot of a storage key's string is the storage's
   node, tagged: the str node is made when the slot is read (torch.save
   PUTs every key; only a second tensor of a storage reads one), a sixth of
   the nodes of a state dict's pickle. */
#define KEY_TAG ((uintptr_t)1)

static int is_key_slot(const pk_obj *o) { return ((uintptr_t)o & KEY_TAG) != 0; }

/* slot idx (below memocap): its node, the key's str node made; NULL when out of memory */
static pk_obj *memo_at(vm *v, size_t idx) {
  pk_obj *o = v->memo[idx];
  if (!is_key_slot(o)) return o;
  const pk_storage *st = ((const pk_obj *)((uintptr_t)o & ~KEY_TAG))->st;
  if (!(o = aobj(v->a, PK_STR))) return NULL;
  o->s = st->key;
  o->len = (uint32_t)st->key_len;
  return v->memo[idx] = o;
}

static int get_memo(vm *v, uint64_t idx) {
  if (idx >= v->memocap || !v->memo[idx]) VFAIL("memo key %llu is not defined", (unsigned long long)idx);
  if (v->memo[idx] == v->elided) {
    v->restart = 1;
    VFAIL("memo key %llu names a value the tensor fast path did not build", (unsigned long long)idx);
  }
  pk_obj *o = memo_at(v, (size_t)idx);
  if (!o) VFAIL("out of memory");
  return push(v, o);
}

/* ---- the common tensor, without the stack ---------------------------------- */

/* torch.save pickles each tensor as this run of opcodes (after the first
   tensor, whose globals and strings come inline):
     GET(_rebuild_tensor_v2) MARK MARK str('storage') GET(storage class)
     str(key) str(location) int(numel) TUPLE BINPERSID int(offset) dims
     dims bool GET(OrderedDict) EMPTY_TUPLE REDUCE TUPLE REDUCE
   with a PUT after most steps; str is a (SHORT_)BINUNICODE or a GET of a
   str, int a BININT1/BININT2/BININT/LONG1, dims an EMPTY_TUPLE, TUPLE1-3
   of ints, MARK ints TUPLE, or a GET of a tuple of ints. fast_tensor
   parses that run and makes the storage and the tensor directly: the
   persistent id, size, stride, hooks and argument tuples are never built
   (half the nodes of a state dict's pickle, and the memory they touch).
   The memo slots of the values not built hold v->elided; a GET of one
   (torch.save never writes it) fails and pk_load runs the pickle again
   without the fast path. Anything else, a bad value included, is no
   match: the VM runs the opcodes and says what is wrong. */
#define FP_PUTS 12
enum { FP_ELIDED, FP_LOC, FP_KEY, FP_STORAGE, FP_TENSOR };

typedef struct fparse {
  vm *v;
  const unsigned char *p, *e;
  struct { uint64_t idx; int memoize, what; } put[FP_PUTS];
  int nput;
} fparse;

static int fp_op(fparse *f, int op) {
  if (f->p < f->e && *f->p == op) { f->p++; return 1; }
  return 0;
}

/* an optional PUT of the value just made (what it is: FP_*) */
static int fp_put(fparse *f, int what) {
  uint64_t idx = 0;
  int memoize = 0;
  if (f->e - f->p >= 2 && f->p[0] == 'q') { idx = f->p[1]; f->p += 2; }
  else if (f->e - f->p >= 5 && f->p[0] == 'r') { idx = le(f->p + 1, 4); f->p += 5; }
  else if (f->p < f->e && f->p[0] == 0x94) { memoize = 1; f->p++; }
  else return 1;
  if (f->nput == FP_PUTS) return 0;
  f->put[f->nput].idx = idx;
  f->put[f->nput].memoize = memoize;
  f->put[f->nput++].what = what;
  return 1;
}

static pk_obj *fp_get(fparse *f) {
  uint64_t idx;
  if (f->e - f->p >= 2 && f->p[0] == 'h') { idx = f->p[1]; f->p += 2; }
  else if (f->e - f->p >= 5 && f->p[0] == 'j') { idx = le(f->p + 1, 4); f->p += 5; }
  else return NULL;
  vm *v = f->v;
  if (idx >= v->memocap || v->memo[idx] == v->elided) return NULL;
  return memo_at(v, (size_t)idx);
}

/* a str: inline (then *node is NULL) or from the memo */
static int fp_str(fparse *f, const char **s, size_t *n, pk_obj **node, int what) {
  uint64_t len;
  if (f->e - f->p >= 2 && f->p[0] == 0x8C) { len = f->p[1]; f->p += 2; }
  else if (f->e - f->p >= 5 && f->p[0] == 'X') { len = le(f->p + 1, 4); f->p += 5; }
  else {
    pk_obj *o = fp_get(f);
    if (!o || o->kind != PK_STR) return 0;
    *s = o->s; *n = o->len; *node = o;
    return 1;
  }
  if (len > (uint64_t)(f->e - f->p) || len > UINT32_MAX) return 0;
  *s = (const char *)f->p; *n = (size_t)len; *node = NULL;
  f->p += len;
  return fp_put(f, what);
}

static int fp_int(fparse *f, int64_t *x) {
  const unsigned char *p = f->p;
  ptrdiff_t left = f->e - p;
  if (left >= 2 && p[0] == 'K') { *x = p[1]; f->p += 2; return 1; }
  if (left >= 3 && p[0] == 'M') { *x = (int64_t)le(p + 1, 2); f->p += 3; return 1; }
  if (left >= 5 && p[0] == 'J') { *x = (int32_t)(uint32_t)le(p + 1, 4); f->p += 5; return 1; }
  if (left >= 2 && p[0] == 0x8A && p[1] <= 8 && left >= 2 + p[1]) {
    int n = p[1];
    uint64_t u = n ? le(p + 2, n) : 0;
    if (n && n < 8 && (p[1 + n] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
    memcpy(x, &u, sizeof *x);
    f->p += 2 + n;
    return 1;
  }
  return 0;
}

static int fp_dims(fparse *f, int64_t *d, int *nd) {
  int n = 0;
  if (fp_op(f, ')')) { *nd = 0; return 1; }
  if (fp_op(f, '(')) {
    while (!fp_op(f, 't')) if (n == LT_MAX_DIMS || !fp_int(f, &d[n++])) return 0;
    *nd = n;
    return 1;
  }
  if (f->p < f->e && (*f->p == 'h' || *f->p == 'j')) {
    pk_obj *o = fp_get(f);
    if (!o || o->kind != PK_TUPLE || o->n > LT_MAX_DIMS) return 0;
    for (uint32_t i = 0; i < o->n; i++) {
      if (o->items[i]->kind != PK_INT) return 0;
      d[i] = o->items[i]->i;
    }
    *nd = (int)o->n;
    return 1;
  }
  while (n < 3 && fp_int(f, &d[n])) n++;
  if (n == 0 || !fp_op(f, 0x84 + n)) return 0;
  *nd = n;
  return 1;
}

/* at v->pos, just past a GET of _rebuild_tensor_v2: 1 when the run above
   was made into a tensor (pushed, v->pos past it), 0 for no match, -1 on
   an error of the VM's own (memory, limits) */
static int fast_tensor(vm *v) {
  fparse f;   /* not an initializer: zeroing the put array was a tenth of the parse */
  f.v = v; f.p = v->buf + v->pos; f.e = v->buf + v->len; f.nput = 0;
  const char *tag, *key, *loc;
  size_t tagn, keyn, locn;
  pk_obj *tagnode, *keynode, *locnode, *cls, *od;
  int64_t numel, offset, shape[LT_MAX_DIMS], stride[LT_MAX_DIMS];
  int ndim, nd2, rg;
  if (!fp_op(&f, '(') || !fp_op(&f, '(')) return 0;
  if (!fp_str(&f, &tag, &tagn, &tagnode, FP_ELIDED) || tagn != 7 || memcmp(tag, "storage", 7) || tagnode == NULL) return 0;
  if (!(cls = fp_get(&f)) || cls->kind != PK_GLOBAL || (cls->gid != G_STORAGE && cls->gid != G_UNTYPED)) return 0;
  if (!fp_str(&f, &key, &keyn, &keynode, FP_KEY) || !fp_str(&f, &loc, &locn, &locnode, FP_LOC)) return 0;
  if (!fp_int(&f, &numel) || !fp_op(&f, 't') || !fp_put(&f, FP_ELIDED) || !fp_op(&f, 'Q') || !fp_put(&f, FP_STORAGE)) return 0;
  if (!fp_int(&f, &offset) || !fp_dims(&f, shape, &ndim) || !fp_put(&f, FP_ELIDED)) return 0;
  if (!fp_dims(&f, stride, &nd2) || nd2 != ndim || !fp_put(&f, FP_ELIDED)) return 0;
  if (fp_op(&f, 0x88)) rg = 1;
  else if (fp_op(&f, 0x89)) rg = 0;
  else return 0;
  if (!(od = fp_get(&f)) || od->kind != PK_GLOBAL || od->gid != G_ODICT) return 0;
  if (!fp_op(&f, ')') || !fp_op(&f, 'R') || !fp_put(&f, FP_ELIDED)) return 0;
  if (!fp_op(&f, 't') || !fp_put(&f, FP_ELIDED) || !fp_op(&f, 'R') || !fp_put(&f, FP_TENSOR)) return 0;
  /* the values: made, or no match (nothing made that matters) */
  if (!locnode && !(locnode = mkstr(v, PK_STR, loc, locn))) VFAIL("out of memory");
  pk_obj *s = storage_for(v, cls, key, keyn, locnode->s, numel);
  if (!s) return 0;
  pk_obj *t = make_tensor(v, s, offset, shape, stride, ndim, rg, -1);
  if (!t) return 0;
  if (!v->elided && !(v->elided = aobj(v->a, PK_NONE))) VFAIL("out of memory");
  for (int i = 0; i < f.nput; i++) {
    pk_obj *o = v->elided;
    switch (f.put[i].what) {
      case FP_LOC: o = locnode; break;
      case FP_KEY:   /* the key's str node, or the storage's tagged (memo_at) */
        o = keynode ? keynode : (pk_obj *)((uintptr_t)s | KEY_TAG);
        break;
      case FP_STORAGE: o = s; break;
      case FP_TENSOR: o = t; break;
      default: break;
    }
    if (memo_put(v, f.put[i].memoize ? v->nmemo : f.put[i].idx, o)) return -1;
  }
  if (push(v, t)) return -1;
  v->pos = (size_t)(f.p - v->buf);
  return 1;
}

/* container from stack items [start, sp) */
static int collect(vm *v, pk_kind k, size_t start) {
  pk_obj *o = aobj(v->a, k);
  if (!o) VFAIL("out of memory");
  size_t n = v->sp - start;
  if (k == PK_DICT && n % 2) VFAIL("DICT with an odd number of items");
  if (n) {
    o->items = abytes(v->a, n * sizeof *o->items);
    if (!o->items) VFAIL("out of memory");
    memcpy(o->items, v->stack + start, n * sizeof *o->items);
    o->n = o->cap = (uint32_t)n;
  }
  v->sp = start;
  return push(v, o);
}

static pk_inert *inert_of(vm *v, pk_obj *o) {
  if (!o->in && (o->in = abytes(v->a, sizeof *o->in))) memset(o->in, 0, sizeof *o->in);
  if (!o->in) verr(v, "out of memory");
  return o->in;
}

static pk_obj *inert_dict(vm *v, pk_obj *o) {
  pk_inert *in = inert_of(v, o);
  if (!in) return NULL;
  if (!in->dict) in->dict = aobj(v->a, PK_DICT);
  if (!in->dict) verr(v, "out of memory");
  return in->dict;
}

static int setitems(vm *v, pk_obj *d, size_t start) {
  if ((v->sp - start) % 2) VFAIL("SETITEMS with an odd number of items");
  if (d->kind == PK_INERT) d = inert_dict(v, d);
  if (!d) return -1;
  if (!is_dict(d)) VFAIL("SETITEM on a %s", kind_name(d));
  for (size_t i = start; i < v->sp; i++) if (push_item(v->a, d, v->stack[i])) VFAIL("out of memory");
  v->sp = start;
  return 0;
}

static int appends(vm *v, pk_obj *l, size_t start) {
  if (l->kind != PK_LIST && l->kind != PK_SET && l->kind != PK_INERT) VFAIL("APPEND to a %s", kind_name(l));
  for (size_t i = start; i < v->sp; i++) if (push_item(v->a, l, v->stack[i])) VFAIL("out of memory");
  v->sp = start;
  return 0;
}

/* a Python 2 STRING repr ('...' or "...") -> bytes */
static int load_string_repr(vm *v, const char *s, size_t n) {
  if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0]) VFAIL("STRING: bad quoting");
  char *out = malloc(n);
  if (!out) VFAIL("out of memory");
  size_t k = 0;
  for (size_t i = 1; i < n - 1; i++) {
    char c = s[i];
    if (c != '\\' || i + 1 >= n - 1) { out[k++] = c; continue; }
    c = s[++i];
    switch (c) {
      case 'n': out[k++] = '\n'; break;
      case 't': out[k++] = '\t'; break;
      case 'r': out[k++] = '\r'; break;
      case 'x':
        if (i + 2 < n - 1) { char h[3] = {s[i + 1], s[i + 2], 0}; out[k++] = (char)strtol(h, NULL, 16); i += 2; }
        break;
      default:
        if (c >= '0' && c <= '7') {
          int x = 0, d = 0;
          while (d < 3 && i < n - 1 && s[i] >= '0' && s[i] <= '7') { x = x * 8 + (s[i] - '0'); i++; d++; }
          i--;
          out[k++] = (char)x;
        } else out[k++] = c;
    }
  }
  pk_obj *o = mkstr(v, lt_utf8_valid(out, k) ? PK_STR : PK_BYTES, out, k);
  free(out);
  return push(v, o);
}

static void put_utf8(char *out, size_t *k, uint32_t c) {
  if (c < 0x80) out[(*k)++] = (char)c;
  else if (c < 0x800) { out[(*k)++] = (char)(0xC0 | c >> 6); out[(*k)++] = (char)(0x80 | (c & 0x3F)); }
  else if (c < 0x10000) { out[(*k)++] = (char)(0xE0 | c >> 12); out[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F)); out[(*k)++] = (char)(0x80 | (c & 0x3F)); }
  else { out[(*k)++] = (char)(0xF0 | c >> 18); out[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F)); out[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F)); out[(*k)++] = (char)(0x80 | (c & 0x3F)); }
}

/* raw-unicode-escape text -> UTF-8 */
static int load_unicode_text(vm *v, const char *s, size_t n) {
  char *out = malloc(n * 4 + 1);
  if (!out) VFAIL("out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
      size_t d = s[i + 1] == 'u' ? 4 : 8;
      if (i + 2 + d <= n) {
        char h[9] = {0};
        memcpy(h, s + i + 2, d);
        char *end;
        unsigned long x = strtoul(h, &end, 16);
        if (!*end && x <= 0x10FFFF) { put_utf8(out, &k, (uint32_t)x); i += 1 + d; continue; }
      }
    }
    put_utf8(out, &k, c);
  }
  pk_obj *o = mkstr(v, PK_STR, out, k);
  free(out);
  return push(v, o);
}

/* the second part of a split pickle starts inside SETITEMS's run, above a
   mark whose items before the split it does not have: of the opcodes that
   take the items since a mark, only SETITEMS (onto the dict below it) is
   the same without them. Another one on that mark ends the part. */
static int guarded_op(vm *v, int op) {
  if (v->nmarks == 0) { v->guard = 0; return 0; }
  if (v->nmarks > 1) return 0;
  switch (op) {
    case 't': case 'l': case 'd': case 0x91: case 'e': case 0x90: case '1': case 'o': case 'i': case '0': return 1;
    default: return 0;
  }
}

static int step(vm *v, int *stop) {
  v->op_pos = v->pos;
  if (need(v, 1)) return -1;
  int op = v->buf[v->pos++];
  if (v->guard && guarded_op(v, op)) VFAIL("split pickle: the base mark taken by opcode 0x%02x", op);
  const unsigned char *p;
  pk_obj *o, *a, *b;
  size_t start, n;
  const char *s, *s2;
  size_t sl, sl2;
  int64_t x;
  switch (op) {
    case 0x80: if (need(v, 1)) return -1; if (v->buf[v->pos] > 5) VFAIL("unsupported pickle protocol %d", v->buf[v->pos]); v->pos++; return 0;
    case 0x95: if (need(v, 8)) return -1; v->pos += 8; return 0;             /* FRAME */
    case '.': *stop = 1; return 0;
    case '(':
      if (v->nmarks == v->mcap) {
        if (v->mcap >= PK_MAX_STACK) VFAIL("too many marks");
        size_t nc = v->mcap ? v->mcap * 2 : 16;
        size_t *nm = realloc(v->marks, nc * sizeof *nm);
        if (!nm) VFAIL("out of memory");
        v->marks = nm; v->mcap = nc;
      }
      v->marks[v->nmarks++] = v->sp;
      return 0;
    case ')': return push(v, aobj(v->a, PK_TUPLE));
    case 't': if (pop_mark(v, &start)) return -1; return collect(v, PK_TUPLE, start);
    case 0x85: case 0x86: case 0x87:
      n = (size_t)(op - 0x84);
      if (v->sp < floor_(v) + n) VFAIL("stack underflow");
      return collect(v, PK_TUPLE, v->sp - n);
    case ']': return push(v, aobj(v->a, PK_LIST));
    case 'l': if (pop_mark(v, &start)) return -1; return collect(v, PK_LIST, start);
    case '}': return push(v, aobj(v->a, PK_DICT));
    case 'd': if (pop_mark(v, &start)) return -1; return collect(v, PK_DICT, start);
    case 0x8F: return push(v, aobj(v->a, PK_SET));
    case 0x91: if (pop_mark(v, &start)) return -1; return collect(v, PK_SET, start);
    case 'a':
      if (!(b = pop(v)) || !(a = top(v))) return -1;
      return push(v, b) || appends(v, a, v->sp - 1);
    case 'e': case 0x90:
      if (pop_mark(v, &start)) return -1;
      if (start <= floor_(v)) VFAIL("stack underflow");
      return appends(v, v->stack[start - 1], start);
    case 's':
      if (v->sp < floor_(v) + 3) VFAIL("stack underflow");
      return setitems(v, v->stack[v->sp - 3], v->sp - 2);
    case 'u':
      if (pop_mark(v, &start)) return -1;
      if (start <= floor_(v)) VFAIL("stack underflow");
      return setitems(v, v->stack[start - 1], start);
    case 'N': if (!v->none) v->none = aobj(v->a, PK_NONE); return push(v, v->none);
    case 0x88: case 0x89: return push(v, mkbool(v, op == 0x88));
    case 'K': if (need(v, 1)) return -1; x = v->buf[v->pos]; v->pos += 1; return push(v, mkint(v, x));
    case 'M': if (need(v, 2)) return -1; x = (int64_t)le(v->buf + v->pos, 2); v->pos += 2; return push(v, mkint(v, x));
    case 'J': if (need(v, 4)) return -1; x = (int32_t)(uint32_t)le(v->buf + v->pos, 4); v->pos += 4; return push(v, mkint(v, x));
    case 0x8A: if (need(v, 1)) return -1; n = v->buf[v->pos++]; return load_long(v, n);
    case 0x8B:
      if (need(v, 4)) return -1;
      x = (int32_t)(uint32_t)le(v->buf + v->pos, 4); v->pos += 4;
      if (x < 0) VFAIL("LONG4 with negative length");
      return load_long(v, (size_t)x);
    case 'I': case 'L':
      if (read_line(v, &s, &sl)) return -1;
      if (op == 'I' && sl == 2 && (!memcmp(s, "00", 2) || !memcmp(s, "01", 2))) {
        return push(v, mkbool(v, s[1] == '1'));
      }
      if (parse_dec(v, s, sl, &x)) return -1;
      return push(v, mkint(v, x));
    case 'G': {
      if (need(v, 8)) return -1;
      p = v->buf + v->pos; v->pos += 8;
      uint64_t bits = 0;
      for (int i = 0; i < 8; i++) bits = bits << 8 | p[i];
      o = aobj(v->a, PK_FLOAT);
      if (o) memcpy(&o->f, &bits, 8);
      return push(v, o);
    }
    case 'F': {
      if (read_line(v, &s, &sl)) return -1;
      char buf[64];
      if (sl >= sizeof buf) VFAIL("FLOAT: text too long");
      memcpy(buf, s, sl); buf[sl] = 0;
      char *end;
      double d = strtod(buf, &end);
      if (end == buf) VFAIL("FLOAT: bad number '%s'", buf);
      o = aobj(v->a, PK_FLOAT); if (o) o->f = d;
      return push(v, o);
    }
    case 'X': case 0x8C: case 0x8D: case 'U': case 'T': case 'C': case 'B': case 0x8E: case 0x96: {
      int w = (op == 0x8C || op == 'U' || op == 'C') ? 1 : (op == 0x8D || op == 0x8E || op == 0x96) ? 8 : 4;
      if (need(v, (size_t)w)) return -1;
      uint64_t l = le(v->buf + v->pos, w);
      if (op == 'T' && l > INT32_MAX) VFAIL("BINSTRING with negative length");
      v->pos += (size_t)w;
      if (l > v->len - v->pos) VFAIL("pickle ends early (string of %llu bytes)", (unsigned long long)l);
      p = v->buf + v->pos; v->pos += (size_t)l;
      pk_kind k = (op == 'X' || op == 0x8C || op == 0x8D) ? PK_STR
                : (op == 'U' || op == 'T') ? (lt_utf8_valid((const char *)p, (size_t)l) ? PK_STR : PK_BYTES)
                : PK_BYTES;
      o = mkstr(v, k, p, (size_t)l);
      if (!o) VFAIL("out of memory");
      return push(v, o);
    }
    case 'S': if (read_line(v, &s, &sl)) return -1; return load_string_repr(v, s, sl);
    case 'V': if (read_line(v, &s, &sl)) return -1; return load_unicode_text(v, s, sl);
    case 'q': if (need(v, 1)) return -1; x = v->buf[v->pos++]; return set_memo(v, (uint64_t)x);
    case 'r': if (need(v, 4)) return -1; x = (int64_t)le(v->buf + v->pos, 4); v->pos += 4; return set_memo(v, (uint64_t)x);
    case 0x94:   /* MEMOIZE: index len(memo) */
      if (v->second) VFAIL("split pickle: MEMOIZE in the second part");
      return set_memo(v, v->nmemo);
    case 'p': if (read_line(v, &s, &sl) || parse_dec(v, s, sl, &x)) return -1; if (x < 0) VFAIL("negative memo key"); return set_memo(v, (uint64_t)x);
    case 'h': case 'j':
      if (op == 'h') { if (need(v, 1)) return -1; x = v->buf[v->pos++]; }
      else { if (need(v, 4)) return -1; x = (int64_t)le(v->buf + v->pos, 4); v->pos += 4; }
      if (!v->nofast && (uint64_t)x < v->memocap && v->memo[x] && !is_key_slot(v->memo[x]) &&
          v->memo[x]->kind == PK_GLOBAL && v->memo[x]->gid == G_REBUILD_V2) {
        int rc = fast_tensor(v);
        if (rc) return rc < 0 ? -1 : 0;
      }
      return get_memo(v, (uint64_t)x);
    case 'g': if (read_line(v, &s, &sl) || parse_dec(v, s, sl, &x)) return -1; if (x < 0) VFAIL("negative memo key"); return get_memo(v, (uint64_t)x);
    case 'c': case 'i':
      if (read_line(v, &s, &sl) || read_line(v, &s2, &sl2)) return -1;
      if (do_global(v, s, sl, s2, sl2)) return -1;
      if (op == 'c') return 0;
      /* INST: class just pushed, args since the mark below it */
      a = pop(v);
      if (pop_mark(v, &start)) return -1;
      if (collect(v, PK_TUPLE, start)) return -1;
      b = pop(v);
      o = call(v, a, b, 1);
      return o ? push(v, o) : -1;
    case 0x93:
      if (!(b = pop(v)) || !(a = pop(v))) return -1;
      if (a->kind != PK_STR || b->kind != PK_STR) VFAIL("STACK_GLOBAL: module and name must be strings");
      return do_global(v, a->s, a->len, b->s, b->len);
    case 'o':
      if (pop_mark(v, &start)) return -1;
      if (v->sp <= start) VFAIL("OBJ without a class");
      a = v->stack[start];
      if (collect(v, PK_TUPLE, start + 1)) return -1;
      b = pop(v); v->sp--;
      o = call(v, a, b, 1);
      return o ? push(v, o) : -1;
    case 'R': case 0x81:
      if (!(b = pop(v)) || !(a = pop(v))) return -1;
      o = call(v, a, b, op == 0x81);
      return o ? push(v, o) : -1;
    case 0x92:
      if (!pop(v) || !(b = pop(v)) || !(a = pop(v))) return -1;
      o = call(v, a, b, 1);
      return o ? push(v, o) : -1;
    case 'b':
      if (!(b = pop(v)) || !(a = top(v))) return -1;
      if (a->kind == PK_INERT) { if (!inert_of(v, a)) return -1; a->in->state = b; return 0; }
      if (a->kind == PK_TENSOR || a->kind == PK_DICT || a->kind == PK_ODICT) return 0;  /* Python-side attributes: ignored */
      VFAIL("BUILD on a %s", kind_name(a));
    case 'Q':
      if (!(a = pop(v))) return -1;
      return persistent_load(v, a);
    case 'P': VFAIL("text persistent ids (PERSID) are not used by PyTorch");
    case '0':
      if (v->sp > floor_(v)) { v->sp--; return 0; }
      if (v->nmarks) { v->nmarks--; return 0; }
      VFAIL("stack underflow");
    case '1': if (pop_mark(v, &start)) return -1; v->sp = start; return 0;
    case '2': if (!(a = top(v))) return -1; return push(v, a);
    case 0x97: case 0x98: VFAIL("out-of-band buffers (protocol 5) are not supported");
    case 0x82: case 0x83: case 0x84: VFAIL("copyreg extension codes are not supported");
    default: VFAIL("unknown opcode 0x%02x", op);
  }
}

/* A split pickle's storage list and index by number (pk_split_new: buf
   is the pickle, len its size, not the rest of a file), reserved whole (a
   storage per 32 bytes, more than torch.save's ~90 a tensor): memory not
   yet touched costs nothing, where their doublings copied and cleared
   ~100 pages of 4 KiB, each a fault in a fresh process. At most 4 Mi of
   them (48 MiB of address space): past that they grow as they fill. */
static void reserve_storages(vm *v) {
  if (v->len < BIG_PICKLE) return;
  size_t guess = v->len / 32 < ((size_t)1 << 22) ? v->len / 32 : ((size_t)1 << 22);
  pk_result *r = v->res;
  if (!r->capstorages && (r->storages = malloc(guess * sizeof *r->storages))) r->capstorages = guess;
  if (!v->bynum && (v->bynum = calloc(guess, sizeof *v->bynum))) v->bncap = guess;
}

static void vm_init(vm *v, pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err, int nofast) {
  memset(v, 0, sizeof *v);
  v->a = a; v->res = res; v->buf = buf; v->len = len; v->err = err;
  v->nofast = nofast;
  /* a big pickle's nodes start in the biggest blocks (huge pages, touched
     2 MiB at a time), not in 2 MB of doubling 4 KiB-paged ones */
  if (!a->main.cur && len >= BIG_PICKLE) a->main.next_size = MAX_BLOCK;
  if (!a->side.cur && len >= BIG_PICKLE) a->side.next_size = (size_t)2 << 20;
  /* a big pickle's memo: whole huge pages, fresh (so zero), sized for a
     PUT every 8 bytes (torch.save's pickles have one every 7 or 8). The
     20,000 tensors of a 1.9 MB pickle fill 2 MB of memo: one fault in
     place of 512 faults of 4 KiB and the copies of its doublings */
  if (len >= BIG_PICKLE) {
    size_t bytes = lt_huge_round((len / 8 < PK_MAX_MEMO ? len / 8 : PK_MAX_MEMO) * sizeof *v->memo);
    if ((v->memo = lt_alloc_bytes(bytes, 1))) { v->memocap = bytes / sizeof *v->memo; v->memo_bytes = bytes; }
  }
}

static void vm_release(vm *v) {
  if (v->memo_bytes) lt_free_bytes(v->memo, v->memo_bytes); else free(v->memo);
  free(v->stack); free(v->marks); free(v->hash); free(v->bynum);
}

/* STOP reached: the result */
static int vm_stop(vm *v) {
  v->op_pos = v->pos;
  if (v->sp == 0) VFAIL("STOP with an empty stack");
  v->res->value = v->stack[v->sp - 1];
  v->res->consumed = v->pos;
  return 0;
}

/* the steps from v->pos to STOP; then the result */
static int vm_run(vm *v) {
  int rc = 0, stop = 0;
  while (rc == 0 && !stop) rc = step(v, &stop);
  return rc ? rc : vm_stop(v);
}

/* res back to what it held before a pass (its nodes stay in the arena, unreachable) */
static void result_rewind(pk_result *res, size_t nstorages, int nunknown, int more_unknown) {
  for (int i = nunknown; i < res->nunknown; i++) free(res->unknown[i]);
  res->nunknown = nunknown;
  res->more_unknown = more_unknown;
  res->nstorages = nstorages;
}

static int load_passes(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err, int pass) {
  /* what the result held before: a restart without the fast path goes
     back to it */
  size_t nstorages = res->nstorages;
  int nunknown = res->nunknown, more_unknown = res->more_unknown;
  for (;; pass++) {
    vm v;
    vm_init(&v, a, buf, len, res, err, pass > 0);
    /* storages of earlier pickles of the same file are indexed on first use */
    int rc = vm_run(&v);
    vm_release(&v);
    if (!(rc && v.restart)) return rc;
    result_rewind(res, nstorages, nunknown, more_unknown);
  }
}

int pk_load(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err) {
  return load_passes(a, buf, len, res, err, 0);
}

/* ---- a big pickle read by two threads -------------------------------------- */

/* The second part (B) starts at a place ahead of the first (A): the first
   byte of a dict entry's key inside a SETITEMS run, just after the REDUCE
   and PUT that end the entry before (torch.save writes a state dict as runs
   of 1,000 such entries). B first runs the pickle's start up to the dict's
   first entry, for the dict and the memo's globals and strings, then goes
   on from the place with the dict and the run's mark as its stack. A stops
   at the place. The two join when A stopped there at an opcode's start
   with a dict below its top mark and an even count of items above it, and
   B ran to STOP ending with its dict alone, took the mark only by SETITEMS,
   read no memo slot of its start but a global's or a string's, each equal
   to A's slot at the place, and made no storage A made: then what B did is
   what A would have done. The dict gets A's items above the mark, then
   B's; storages, unknown globals and nodes are A's, then B's. Otherwise A
   runs on from the place, and B's work is dropped. */
#define SPLIT_REST ((size_t)256 << 10)   /* bytes A has left, at least, for B to start */
#define SPLIT_SCAN ((size_t)64 << 10)    /* bytes searched for the place */
#define SPLIT_START ((size_t)16 << 10)  /* bytes B runs from the start, at least (or 256 entries); pk_split_at: 0 */

enum { A_RUN, A_AT, A_END };

struct pk_split {
  const unsigned char *buf;
  size_t len;
  pk_arena *arena;
  pk_result *res;
  char *err;
  vm a;
  int a_state, a_rc;
  atomic_size_t a_pos;       /* A's place: a step's start */
  atomic_size_t at;          /* B's place; SIZE_MAX until B chose it */
  atomic_int a_end;          /* A ran to STOP, or failed */
  size_t fixed_at;           /* pk_split_at's place; SIZE_MAX: B picks it */
  size_t prefix;             /* bytes B runs from the start, at least (or 256 entries) */
  pk_arena *b_arena;
  pk_result b_res;
  vm b;
  int b_ok;
  pk_obj *b_dict;
  uint32_t b_n0;             /* items of B's dict from its start, A's */
  struct keep { size_t idx; pk_obj *o; } *keep;
  size_t nkeep;
  char b_err[LT_MSG];
};

/* the first entry's key at or after from: SIZE_MAX when none is near */
static size_t split_place(const unsigned char *b, size_t len, size_t from) {
  size_t end = len - from > SPLIT_SCAN ? from + SPLIT_SCAN : len;
  for (size_t p = from < 8 ? 8 : from; p + 16 < end; p++) {
    if (b[p] != 'X' && b[p] != 0x8C) continue;
    if (!((b[p - 2] == 'q' && b[p - 3] == 'R') || (b[p - 5] == 'r' && b[p - 6] == 'R'))) continue;
    size_t n = b[p] == 'X' ? (size_t)le(b + p + 1, 4) : b[p + 1];
    size_t q = p + (b[p] == 'X' ? 5 : 2);
    if (n > len - q || len - q - n < 8) continue;
    q += n;
    if (b[q] == 'q') q += 2;
    else if (b[q] == 'r') q += 5;
    else continue;
    if (b[q] == 'h' || b[q] == 'j') return p;
  }
  return SIZE_MAX;
}

static pk_split *split_make(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err,
                            size_t at, size_t prefix) {
  /* protocols 2 and 3 only: their PUTs name their slots, where protocol 4's
     MEMOIZE numbers them by a count B cannot know */
  if (buf[0] != 0x80 || (buf[1] != 2 && buf[1] != 3)) return NULL;
  if (res->nstorages || res->nunknown || res->more_unknown) return NULL;
  pk_split *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (!(s->b_arena = pk_arena_new())) { free(s); return NULL; }
  s->buf = buf; s->len = len; s->arena = a; s->res = res; s->err = err;
  vm_init(&s->a, a, buf, len, res, err, 0);
  reserve_storages(&s->a);
  atomic_init(&s->a_pos, 0);
  atomic_init(&s->at, at);
  atomic_init(&s->a_end, 0);
  s->fixed_at = at;
  s->prefix = prefix;
  return s;
}

pk_split *pk_split_new(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err) {
  return len < BIG_PICKLE ? NULL : split_make(a, buf, len, res, err, SIZE_MAX, SPLIT_START);
}

pk_split *pk_split_at(pk_arena *a, const unsigned char *buf, size_t len, pk_result *res, char *err) {
  size_t at = len < 16 ? SIZE_MAX : split_place(buf, len, len / 2);
  return at == SIZE_MAX ? NULL : split_make(a, buf, len, res, err, at, 0);
}

/* A at B's place: what B took for its stack is there */
static int a_joinable(const vm *v) {
  if (v->restart || !v->nmarks) return 0;
  size_t m = v->marks[v->nmarks - 1];
  size_t below = v->nmarks > 1 ? v->marks[v->nmarks - 2] : 0;
  return m > below && m <= v->sp && (v->sp - m) % 2 == 0 && is_dict(v->stack[m - 1]);
}

void pk_split_first(pk_split *s) {
  vm *v = &s->a;
  int rc = 0, stop = 0;
  size_t at = SIZE_MAX;   /* SIZE_MAX: not known yet; SIZE_MAX - 1: passed */
  while (rc == 0 && !stop) {
    atomic_store_explicit(&s->a_pos, v->pos, memory_order_relaxed);
    if (at == SIZE_MAX) at = atomic_load_explicit(&s->at, memory_order_relaxed);
    if (v->pos >= at) {
      if (v->pos == at && a_joinable(v)) { s->a_state = A_AT; return; }
      at = SIZE_MAX - 1;
    }
    rc = step(v, &stop);
  }
  s->a_rc = rc ? rc : vm_stop(v);
  s->a_state = A_END;
  atomic_store_explicit(&s->a_end, 1, memory_order_relaxed);
}

void pk_split_second(pk_split *s) {
  size_t at = s->fixed_at;
  if (at == SIZE_MAX) {
    if (atomic_load_explicit(&s->a_end, memory_order_relaxed)) return;
    size_t ap = atomic_load_explicit(&s->a_pos, memory_order_relaxed);
    if (s->len - ap < SPLIT_REST) return;
    at = split_place(s->buf, s->len, ap + (s->len - ap) / 2);
    if (at == SIZE_MAX) return;
  }
  vm *v = &s->b;
  vm_init(v, s->b_arena, s->buf, s->len, &s->b_res, s->b_err, 0);
  reserve_storages(v);
  v->second = 1;
  atomic_store_explicit(&s->at, at, memory_order_relaxed);
  /* the start, to the end of an entry (a tensor and its PUT) from
     SPLIT_START bytes on, or of its 256th: [dict, mark, key, tensor, ...].
     The globals and strings of those first entries (storage classes,
     locations) are what the entries after them read from the memo */
  int rc = 0, stop = 0;
  while (rc == 0 && !stop) {
    if (v->pos >= at) return;
    if (v->nmarks == 1 && v->marks[0] == 1 && v->sp >= 3 && (v->sp - 1) % 2 == 0 &&
        (v->pos >= s->prefix || v->sp >= 513) && v->stack[v->sp - 1]->kind == PK_TENSOR &&
        v->buf[v->pos] != 'q' && v->buf[v->pos] != 'r' && is_dict(v->stack[0])) break;
    rc = step(v, &stop);
  }
  if (rc || stop) return;
  /* of the memo, the globals and strings are kept; a read of any other
     slot (a GET of an elided value) ends the part */
  if (!v->elided && !(v->elided = aobj(v->a, PK_NONE))) return;
  size_t cap = 0;
  for (size_t i = 0; i < v->memo_hi; i++) {
    pk_obj *o = v->memo[i];
    if (!o || o == v->elided) continue;
    if (is_key_slot(o) || (o->kind != PK_GLOBAL && o->kind != PK_STR)) { v->memo[i] = v->elided; continue; }
    if (s->nkeep == cap) {
      cap = cap ? 2 * cap : 64;
      void *n = realloc(s->keep, cap * sizeof *s->keep);
      if (!n) return;
      s->keep = n;
    }
    s->keep[s->nkeep].idx = i;
    s->keep[s->nkeep++].o = o;
  }
  /* the entries' storages and items are A's: B's start afresh */
  s->b_dict = v->stack[0];
  s->b_n0 = s->b_dict->n;
  v->sp = 1;
  /* the index by number cleared where the start's storages are (a new
     one would be cleared whole: memory the allocator reuses, not fresh) */
  for (size_t i = 0; i < s->b_res.nstorages; i++) {
    const pk_storage *st = s->b_res.storages[i]->st;
    int64_t k = lt_decimal_key(st->key, st->key_len, v->len);
    if (k >= 0 && (size_t)k < v->bncap) v->bynum[k] = 0;
  }
  s->b_res.nstorages = 0;
  free(v->hash); v->hash = NULL; v->hcap = 0;
  v->pos = at;
  v->guard = 1;
  while (rc == 0 && !stop) rc = step(v, &stop);
  s->b_ok = rc == 0 && v->sp == 1 && v->stack[0] == s->b_dict && v->nmarks == 0 && !v->restart;
}

static int same_value(const pk_obj *x, const pk_obj *y) {
  if (!x || x->kind != y->kind || x->len != y->len || (x->kind == PK_GLOBAL && x->gid != y->gid)) return 0;
  return !memcmp(x->s, y->s, x->len);
}

/* b's blocks into a */
static void chain_absorb(chain *a, chain *b) {
  blk **tail = &a->cur;
  while (*tail) tail = &(*tail)->next;
  *tail = b->cur;
}

static void arena_absorb(pk_arena *a, pk_arena *b) {
  chain_absorb(&a->main, &b->main);
  chain_absorb(&a->side, &b->side);
  a->nobjs += b->nobjs;
  free(b);
}

/* 0: joined; 1: not (A runs on); -1: out of memory (err) */
static int split_join(pk_split *s) {
  vm *a = &s->a, *b = &s->b;
  pk_result *ra = s->res, *rb = &s->b_res;
  for (size_t k = 0; k < s->nkeep; k++) {
    size_t i = s->keep[k].idx;
    if (i >= a->memocap || !a->memo[i] || !same_value(memo_at(a, i), s->keep[k].o)) return 1;
  }
  size_t m = a->marks[a->nmarks - 1];
  pk_obj *d = a->stack[m - 1];
  if (d->kind != s->b_dict->kind || s->arena->nobjs + s->b_arena->nobjs > PK_MAX_OBJS ||
      ra->nstorages + rb->nstorages >= UINT32_MAX)
    return 1;
  for (size_t i = 0; i < rb->nstorages; i++) {
    int64_t num;
    size_t slot;
    uint64_t h;
    if (find_storage(a, rb->storages[i]->st->key, rb->storages[i]->st->key_len, &num, &slot, &h)) return 1;
  }
  /* the unknown globals first: on a failure no node of B's is referenced */
  for (int i = 0; i < rb->nunknown; i++) if (note_unknown(a, rb->unknown[i])) return -1;
  if (rb->more_unknown) ra->more_unknown = 1;
  size_t ns = ra->nstorages + rb->nstorages;
  if (ns > ra->capstorages) {
    pk_obj **n = realloc(ra->storages, ns * sizeof *n);
    if (!n) { verr(a, "out of memory"); return -1; }
    ra->storages = n; ra->capstorages = ns;
  }
  if (rb->nstorages) memcpy(ra->storages + ra->nstorages, rb->storages, rb->nstorages * sizeof *rb->storages);
  ra->nstorages = ns;
  arena_absorb(s->arena, s->b_arena);
  s->b_arena = NULL;
  for (size_t i = m; i < a->sp; i++) if (push_item(s->arena, d, a->stack[i])) { verr(a, "out of memory"); return -1; }
  for (uint32_t i = s->b_n0; i < s->b_dict->n; i++) if (push_item(s->arena, d, s->b_dict->items[i])) { verr(a, "out of memory"); return -1; }
  ra->value = d;   /* what STOP would take: A's VM is released unused */
  ra->consumed = b->pos;
  return 0;
}

static atomic_uint splits_joined, splits_ran_on;

void pk_split_counts(unsigned *joined, unsigned *ran_on) {
  *joined = atomic_load(&splits_joined);
  *ran_on = atomic_load(&splits_ran_on);
}

int pk_split_finish(pk_split *s) {
  vm *a = &s->a;
  int rc = s->a_rc;
  if (s->a_state == A_AT) {
    rc = s->b_ok ? split_join(s) : 1;
    atomic_fetch_add(rc > 0 ? &splits_ran_on : &splits_joined, 1);
    if (rc > 0) rc = vm_run(a);   /* A runs on from the place */
  }
  int restart = rc && a->restart;
  vm_release(a);
  vm_release(&s->b);
  for (int i = 0; i < s->b_res.nunknown; i++) free(s->b_res.unknown[i]);
  free(s->b_res.storages);
  pk_arena_free(s->b_arena);
  free(s->keep);
  if (restart) {   /* as pk_load: again, without the fast path */
    result_rewind(s->res, 0, 0, 0);
    rc = load_passes(s->arena, s->buf, s->len, s->res, s->err, 1);
  }
  free(s);
  return rc;
}

void pk_result_free(pk_result *res) {
  for (int i = 0; i < res->nunknown; i++) free(res->unknown[i]);
  free(res->storages);
  memset(res, 0, sizeof *res);
}

/* ---- writer -------------------------------------------------------------- */

void pk_buf_free(pk_buf *b) { lt_buf_free(&b->out); b->memo = 0; }

void pk_w_raw(pk_buf *b, const void *p, size_t n) {
  lt_buf *o = &b->out;
  if (n <= 16 && o->cap - o->n >= n) {   /* the usual opcode and argument: no call */
    memcpy(o->p + o->n, p, n);
    o->n += n;
    return;
  }
  lt_buf_put(o, p, n);
}

void pk_w_op(pk_buf *b, int op) {
  lt_buf *o = &b->out;
  if (o->n < o->cap) { o->p[o->n++] = (char)op; return; }
  unsigned char c = (unsigned char)op;
  lt_buf_put(o, &c, 1);
}

static void w_le(pk_buf *b, uint64_t x, int n) {
  unsigned char t[8];
  for (int i = 0; i < n; i++) t[i] = (unsigned char)(x >> (8 * i));
  pk_w_raw(b, t, (size_t)n);
}

void pk_w_int(pk_buf *b, int64_t v) {
  if (v >= 0 && v < 256) { pk_w_op(b, 'K'); w_le(b, (uint64_t)v, 1); }
  else if (v >= 0 && v < 65536) { pk_w_op(b, 'M'); w_le(b, (uint64_t)v, 2); }
  else if (v >= INT32_MIN && v <= INT32_MAX) { pk_w_op(b, 'J'); w_le(b, (uint64_t)v, 4); }
  else {
    /* LONG1: shortest two's complement little-endian */
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    int n = 8;
    while (n > 1) {
      unsigned char hi = (unsigned char)(u >> (8 * (n - 1))), nx = (unsigned char)(u >> (8 * (n - 2)));
      if ((hi == 0 && !(nx & 0x80)) || (hi == 0xFF && (nx & 0x80))) n--; else break;
    }
    pk_w_op(b, 0x8A); w_le(b, (uint64_t)n, 1); w_le(b, u, n);
  }
}

void pk_w_float(pk_buf *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  unsigned char t[9];
  t[0] = 'G';
  for (int i = 0; i < 8; i++) t[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
  pk_w_raw(b, t, 9);
}

void pk_w_str(pk_buf *b, const char *s, size_t n) {
  pk_w_op(b, 'X');
  w_le(b, n, 4);
  pk_w_raw(b, s, n);
}

void pk_w_bytes(pk_buf *b, const char *s, size_t n) {
  /* what CPython's protocol-2 pickler writes for bytes */
  pk_w_global(b, "_codecs", "encode");
  size_t m = 0;
  for (size_t i = 0; i < n; i++) m += ((unsigned char)s[i] < 0x80) ? 1 : 2;
  pk_w_op(b, 'X');
  w_le(b, m, 4);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) pk_w_raw(b, &c, 1);
    else { unsigned char t[2] = {(unsigned char)(0xC0 | c >> 6), (unsigned char)(0x80 | (c & 0x3F))}; pk_w_raw(b, t, 2); }
  }
  pk_w_str(b, "latin1", 6);
  pk_w_op(b, 0x86);
  pk_w_op(b, 'R');
}

void pk_w_global(pk_buf *b, const char *module, const char *name) {
  pk_w_op(b, 'c');
  pk_w_raw(b, module, strlen(module)); pk_w_op(b, '\n');
  pk_w_raw(b, name, strlen(name)); pk_w_op(b, '\n');
}

uint32_t pk_w_put(pk_buf *b) {
  uint32_t i = b->memo++;
  if (i < 256) { pk_w_op(b, 'q'); w_le(b, i, 1); }
  else { pk_w_op(b, 'r'); w_le(b, i, 4); }
  return i;
}

void pk_w_get(pk_buf *b, uint32_t i) {
  if (i < 256) { pk_w_op(b, 'h'); w_le(b, i, 1); }
  else { pk_w_op(b, 'j'); w_le(b, i, 4); }
}
