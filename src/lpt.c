/*
** lpt.c: the Lua binding of the PyTorch formats (pickle.c, ptzip.c).
**
**   core._pt_load(path, opts) -> value, extras
**     opts: null (the value for None), odict_from (function(keys, data)),
**     mmap, unknown ("error" or "inert"), select (function(key) -> new key
**     or nil, for the top-level dict), progress (function(done, total)),
**     verify (check the crc32 of stored records), torchscript (read a
**     TorchScript archive, one with "constants.pkl", instead of refusing
**     it: its data.pkl loads as with unknown = "inert", and a third result
**     is {name = text} of its "code/" records ending in ".py", names
**     relative to "<folder>/code/"). extras: {name = bytes} of the
**     archive's ".ltorch/" records, or nil.
**   core._pt_save(obj, path, folder, opts) -> nil
**     opts: null, odict_parts (function(t) -> an ordered dict's key list
**     (or the function that makes it) and data table, nil for any other
**     value: odict.parts), ordered_keys (function(t) -> list of t's keys in
**     the order they are written: odict.ordered_keys), cast (a dtype name: floating storages
**     are written as it, cast chunk by chunk), release (drop the pages of
**     file-mapped storages once written, free deferred ones), progress
**     (function(done, total)), extra ({name = bytes}, written as the
**     records "<folder>/.ltorch/NAME"). Every dict (and the extra records)
**     is written in ordered_keys' order, never next()'s, so that saving one
**     value twice gives the same bytes (docs/pt-format.md, "Key order").
**   core._pickle_loads(bytes, opts), core._pt_utf8(s), core._pt_crc32(s
**     [, crc]): the pickle reader, UTF-8 check and crc32, for tests.
**
** Layout (what the loader relies on):
**   1. zip (torch.save since 1.6; ptzip.c): every record in one folder,
**      "<folder>/version" (or ".data/version": text "1".."10"),
**      "<folder>/byteorder" ("little" or "big"; absent: little),
**      "<folder>/data.pkl" (the pickle; storages by persistent id
**      ('storage', type, key, location, numel)), "<folder>/data/<key>" per
**      storage (stored, 64-byte aligned by the writer), and ltorch's own
**      "<folder>/.ltorch/NAME" records; "constants.pkl" means TorchScript
**      (torch.jit.save: data.pkl holds __torch__.* objects, their class
**      definitions are text under "code/"; lua/ltorch/torchscript.lua)
**   2. legacy (torch.save before 1.6): the magic pickle (the number
**      0x1950a86a20f9469cfc6c), then the pickles of the protocol version
**      (1001), sys_info and the value, then the list of storage keys, then
**      per key in that order an int64 LE numel and its bytes,
**      little-endian whatever the writer
**
** Progress runs protected (lprogress.c): an error in the callback stops the
** load or save and is raised once, unchanged. Every resource (file
** descriptor, zip directory, pickle arena, mapping, write buffers) lives in
** a userdata box whose __gc frees it, so an error raised anywhere (a bad
** file, a callback) leaks nothing.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include "lt_lua.h"
#include "pickle.h"
#include "ptzip.h"

#define MAX_PKL ((uint64_t)1 << 31)     /* data.pkl larger than this is refused */
#define MAX_EXTRA ((uint64_t)1 << 28)   /* an .ltorch/ record; all TorchScript code/ records together */
#define MAP_ALIGN 64                     /* data offset needed for zero-copy */
#define SMALL_RECORD ((uint64_t)256 << 10) /* copied from a mapping rather than read */

static const unsigned char LEGACY_MAGIC[] =
  {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

/* ---- load context --------------------------------------------------------- */

typedef struct ldctx {
  int fd;
  int zopen;
  pz_reader z;
  pk_arena *arena;
  pk_result res;
  lt_mapping *map;
  unsigned char *pkl;
  size_t pkl_size;
  const char *path;
  lt_file *lf;            /* kept open by deferred storages (mmap loads) */
  pk_arena *spec_arena;   /* a big archive's pickle read beside its directory (open_archive) */
  pk_result spec_res;
  void *scratch;          /* locate_records' tables (scratch_alloc) */
  size_t scratch_bytes;
} ldctx;

static int ld_gc(lua_State *L) {
  ldctx *c = lua_touserdata(L, 1);
  if (c->res.storages)
    for (size_t i = 0; i < c->res.nstorages; i++) {
      pk_storage *st = c->res.storages[i]->st;
      lt_storage_release(st->data);
      st->data = NULL;
    }
  pk_result_free(&c->res);
  pk_arena_free(c->arena); c->arena = NULL;
  pk_result_free(&c->spec_res);
  pk_arena_free(c->spec_arena); c->spec_arena = NULL;
  if (c->zopen) { pz_close(&c->z); c->zopen = 0; }
  lt_mapping_release(c->map); c->map = NULL;
  lt_file_release(c->lf); c->lf = NULL;
  lt_free_bytes(c->pkl, c->pkl_size); c->pkl = NULL;
  if (c->fd >= 0) { close(c->fd); c->fd = -1; }
  lt_free_bytes(c->scratch, c->scratch_bytes); c->scratch = NULL;
  return 0;
}

/* raise a message without the "file:line:" prefix luaL_error would add */
static int raise(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int raise(lua_State *L, const char *fmt, ...) {
  char msg[2 * LT_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushstring(L, msg);
  return lua_error(L);
}

/* raise "path: message" (lt_file_error) */
static int fail(lua_State *L, ldctx *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(lua_State *L, ldctx *c, const char *fmt, ...) {
  char msg[LT_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_file_error(L, c->path, NULL, "%s", msg);
}

/* bits of pk_obj.mark while loading */
#define MK_SEEN 1        /* reached by mark_needed */
#define MK_SHARED 2      /* reached twice: converted once, through the cache */
#define MK_BUILDING 4    /* a dict being converted */

/* mark the storages reachable from o as needed, and the nodes reachable more
   than once as shared */
/* the objects of unsupported globals mark_needed reached (they decide the
   unknown = "error" refusal: an entry keys leaves out is never an error) */
typedef struct reached { const char *name[PK_MAX_GLOBALS]; int n, more; } reached;

static void note_reached(reached *r, const pk_obj *o) {
  if (!r || !o->s) return;
  for (int i = 0; i < r->n; i++) if (!strcmp(r->name[i], o->s)) return;
  if (r->n == PK_MAX_GLOBALS) { r->more = 1; return; }
  r->name[r->n++] = o->s;
}

static int mark_needed(pk_obj *o, int depth, reached *r) {
  if (depth > PK_MAX_DEPTH) return -1;
  if (o->mark & MK_SEEN) { o->mark |= MK_SHARED; return 0; }
  o->mark |= MK_SEEN;
  switch (o->kind) {
    case PK_TENSOR: o->t->storage->st->needed = 1; return 0;
    case PK_STORAGE: {
      pk_obj *s = o;
      while (s->st->root) s = s->st->root;
      s->st->needed = 1;
      return 0;
    }
    case PK_INERT:
      note_reached(r, o);
      if (o->in && o->in->args && mark_needed(o->in->args, depth + 1, r)) return -1;
      if (o->in && o->in->state && mark_needed(o->in->state, depth + 1, r)) return -1;
      if (o->in && o->in->dict && mark_needed(o->in->dict, depth + 1, r)) return -1;
      /* fallthrough */
    default:
      for (size_t i = 0; i < o->n; i++) if (mark_needed(o->items[i], depth + 1, r)) return -1;
      return 0;
  }
}

typedef struct needed { uint64_t off; pk_obj *s; } needed;

static int cmp_off(const void *a, const void *b) {
  uint64_t ox = ((const needed *)a)->off, oy = ((const needed *)b)->off;
  return ox < oy ? -1 : ox > oy;
}

static int cmp_key(const void *a, const void *b) {
  return strcmp((*(pk_obj *const *)a)->st->key, (*(pk_obj *const *)b)->st->key);
}

/* ---- pickle graph -> Lua -------------------------------------------------- */

/* The records an mmap load maps become storages when first used: an open
   of 20,000 small tensors made 20,000 storage objects (an allocation and
   two atomic counts each) that a script may never touch. The table holds
   the mapping and, per record, where it lies and its storage once made;
   every user (a tensor converted now, a lazy one later) takes the storage
   from here, so the tensors of one record share one storage. */
typedef struct maptab_slot { lt_storage *s; uint64_t off, nbytes; } maptab_slot;

typedef struct maptab {
  lt_mapping *map;
  size_t n;             /* slots filled (read_record adds one per mapped record, at most nneed) */
  maptab_slot *slot;    /* scratch_alloc'd, slot_bytes */
  size_t slot_bytes;
} maptab;

/* Memory for a load's tables of one entry per tensor: from 256 KiB, whole
   huge pages. A fresh process pays a fault per 4 KiB page it touches
   (3-5 us each on this project's VMs): the 20,000 entries of the storages
   to read, the records by number and the mapped records were 280 of them,
   a sixth of an mmap open; one 2 MiB page costs its zeroing. */
#define SCRATCH_HUGE ((size_t)256 << 10)
#define HUGE_PAGE ((size_t)2 << 20)

static void *scratch_alloc(size_t n, size_t *bytes) {
  if (n >= SCRATCH_HUGE && n <= SIZE_MAX - HUGE_PAGE) n = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  *bytes = n;
  return lt_alloc_bytes(n, 0);
}

static int maptab_gc(lua_State *L) {
  maptab *t = lua_touserdata(L, 1);
  for (size_t i = 0; i < t->n; i++) { lt_storage_release(t->slot[i].s); t->slot[i].s = NULL; }
  t->n = 0;
  lt_mapping_release(t->map);
  t->map = NULL;
  lt_free_bytes(t->slot, t->slot_bytes);
  t->slot = NULL;
  return 0;
}

/* a new table for up to cap records of mapping m, on the stack; NULL when
   out of memory */
static maptab *maptab_push(lua_State *L, lt_mapping *m, size_t cap) {
  maptab *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->map = NULL;
  t->n = 0;
  t->slot = NULL;
  if (luaL_newmetatable(L, "ltorch.mapped_records")) {
    lua_pushcfunction(L, maptab_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (!(t->slot = scratch_alloc((cap ? cap : 1) * sizeof(maptab_slot), &t->slot_bytes))) return NULL;
  atomic_fetch_add(&m->refs, 1);
  t->map = m;
  return t;
}

/* the storage of slot k (1-based), made on first use; NULL when out of memory */
static lt_storage *maptab_get(maptab *t, uint32_t k) {
  maptab_slot *sl = &t->slot[k - 1];
  if (!sl->s) sl->s = lt_storage_from_mapping(t->map, (size_t)sl->off, (size_t)sl->nbytes);
  return sl->s;
}

typedef struct conv {
  lua_State *L;
  ldctx *c;
  int null, odict_from, cache, select;
  maptab *mt;           /* the mapped records, or NULL */
  int mt_idx;           /* its stack index */
} conv;

static void push_obj(conv *v, pk_obj *o, int depth);

/* a loaded storage, made from the mapping if it was not yet (not retained) */
static lt_storage *storage_data(conv *v, const pk_storage *st) {
  lt_storage *s = st->data;
  if (!s && st->slot && !(s = maptab_get(v->mt, st->slot))) lt_file_error(v->L, v->c->path, NULL, "out of memory");
  if (!s) lt_file_error(v->L, v->c->path, NULL, "storage '%s' was not loaded", st->key);
  return s;
}

static void push_tensor(conv *v, pk_obj *o) {
  pk_tensor *t = o->t;
  lt_storage *s = storage_data(v, t->storage->st);
  lt_storage_retain(s);
  lt_tensor *u = lt_push_storage(v->L, s, (lt_dtype)t->dtype, t->ndim, t->dims, t->dims + t->ndim, t->offset);
  u->requires_grad = t->requires_grad;
}

/* A dict's tensors are made on first access: an open of 20,000 small
   tensors spent half its conversion making tensor objects that a script may
   never read. Each tensor value under a string key that no other node
   shares becomes an entry of a lazy block; the dict's data table
   (odict.lua) gets an __index that makes the tensor from its entry once,
   stores it in the table and marks the entry done, so a key removed or
   replaced never comes back. The block finds an entry by its key with a
   hash of its own (a Lua table of pending keys was a quarter of an open):
   entries, dims, index and key bytes in one allocation, of huge pages when
   big. When every value of the dict is lazy, its key strings wait too: the
   odict gets a function that makes the key list from the block when first
   walked (lazy_keys; 20,000 interned strings were a fifth of an open).
   Dicts with fewer tensors than LAZY_MIN are built whole (a block and a
   metatable each would cost more than they save). */
#define LAZY_MIN 16

typedef struct lazy_ent {
  lt_storage *s;        /* owned until the tensor is made; NULL: slot's */
  uint32_t slot;        /* its mapped record (maptab), when s is NULL */
  uint32_t dims;        /* index of its sizes, then strides, in the block's dims */
  int64_t offset;
  size_t key;           /* its key's bytes: at names + key, klen of them */
  uint32_t klen;
  uint8_t dtype, ndim, requires_grad, done;
} lazy_ent;

typedef struct lazy_blk {
  size_t n;             /* entries filled */
  lazy_ent *e;
  int64_t *dims;
  uint32_t *ix;         /* open addressing: entry index + 1, 0 empty */
  size_t ixcap;         /* a power of two */
  char *names;
  void *mem;            /* the one allocation (lt_alloc_bytes), mem_bytes long */
  size_t mem_bytes;
  maptab *mt;           /* the load's mapped records (kept by the user value) */
} lazy_blk;

static void lazy_drop(lazy_ent *e) {
  lt_storage_release(e->s);
  e->s = NULL;
  e->slot = 0;
  e->done = 1;
}

static int lazy_gc(lua_State *L) {
  lazy_blk *b = lua_touserdata(L, 1);
  for (size_t i = 0; i < b->n; i++) lt_storage_release(b->e[i].s);
  b->n = 0;
  if (b->mem) lt_free_bytes(b->mem, b->mem_bytes);
  b->mem = NULL;
  return 0;
}

/* the index slot of key k of hash h: its entry's, or the empty one it would take */
static uint32_t *lazy_slot_h(lazy_blk *b, const char *k, size_t kl, uint64_t h) {
  size_t j = (size_t)h & (b->ixcap - 1);
  for (;; j = (j + 1) & (b->ixcap - 1)) {
    uint32_t x = b->ix[j];
    if (!x) return &b->ix[j];
    const lazy_ent *e = &b->e[x - 1];
    if (e->klen == kl && !memcmp(b->names + e->key, k, kl)) return &b->ix[j];
  }
}

static uint32_t *lazy_slot(lazy_blk *b, const char *k, size_t kl) {
  return lazy_slot_h(b, k, kl, lt_hash_bytes(k, kl));
}

/* the storage of entry e not yet made: its own, or its mapped record's
   (made on first use); NULL when out of memory */
static lt_storage *lazy_storage(lazy_blk *b, const lazy_ent *e) {
  if (e->s) return e->s;
  return e->slot ? maptab_get(b->mt, e->slot) : NULL;
}

/* __index(data, key), upvalue: the block */
static int lazy_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  lazy_blk *b = lua_touserdata(L, lua_upvalueindex(1));
  size_t kl;
  const char *k = lua_tolstring(L, 2, &kl);
  if (!b->mem) return 0;
  uint32_t x = *lazy_slot(b, k, kl);
  if (!x || b->e[x - 1].done) return 0;
  lazy_ent *e = &b->e[x - 1];
  const int64_t *d = b->dims + e->dims;
  if (!e->s) {
    if (!(e->s = lazy_storage(b, e))) return luaL_error(L, "out of memory");
    lt_storage_retain(e->s);
  }
  lua_settop(L, 2);
  lt_tensor *t = lt_push_storage(L, e->s, (lt_dtype)e->dtype, e->ndim, d, d + e->ndim, e->offset);
  e->s = NULL;          /* the tensor owns it now */
  e->slot = 0;
  e->done = 1;
  t->requires_grad = e->requires_grad;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* the dict's key list, made when first asked for (odict.lua calls it once;
   upvalue: the block): in entry order, which is the file's order of first
   appearance */
static int lazy_keys(lua_State *L) {
  lazy_blk *b = lua_touserdata(L, lua_upvalueindex(1));
  if (!b->mem) return luaL_error(L, "the dict's key list is gone");
  if (b->n > INT_MAX) return luaL_error(L, "too many keys");
  lua_createtable(L, (int)b->n, 0);
  for (size_t i = 0; i < b->n; i++) {
    lua_pushlstring(L, b->names + b->e[i].key, b->e[i].klen);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* entry e of the block takes tensor t's descriptor (dims at the block's
   nd, advanced) and its storage */
static void lazy_fill(conv *v, lazy_blk *b, lazy_ent *e, const pk_tensor *t, uint32_t *nd) {
  const pk_storage *st = t->storage->st;
  lt_storage *s = st->data;
  if (!s && !st->slot) lt_file_error(v->L, v->c->path, NULL, "storage '%s' was not loaded", st->key);
  e->offset = t->offset;
  e->dims = *nd;
  e->dtype = (uint8_t)t->dtype;
  e->ndim = (uint8_t)t->ndim;
  e->requires_grad = (uint8_t)t->requires_grad;
  e->done = 0;
  memcpy(b->dims + *nd, t->dims, 2 * (size_t)t->ndim * sizeof(int64_t));
  *nd += 2 * (uint32_t)t->ndim;
  if (s) lt_storage_retain(s);
  e->s = s;
  e->slot = s ? 0 : st->slot;
}

static int lazy_key(const pk_obj *k) { return k->kind == PK_STR || k->kind == PK_BYTES; }
static int lazy_value(const pk_obj *x) { return x->kind == PK_TENSOR && !(x->mark & MK_SHARED); }

/* a new block for n entries of ndims dims and nkey key bytes, on the stack */
static lazy_blk *lazy_push(conv *v, size_t n, size_t ndims, size_t nkey) {
  lua_State *L = v->L;
  lazy_blk *b = lua_newuserdatauv(L, sizeof *b, 1);
  memset(b, 0, sizeof *b);
  b->mt = v->mt;
  if (v->mt) { lua_pushvalue(L, v->mt_idx); lua_setiuservalue(L, -2, 1); }
  if (luaL_newmetatable(L, "ltorch.lazy_tensors")) {
    lua_pushcfunction(L, lazy_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  b->ixcap = 16;
  while (b->ixcap < 2 * n) b->ixcap *= 2;
  size_t eb = n * sizeof *b->e, db = ndims * sizeof *b->dims, ib = b->ixcap * sizeof *b->ix;
  b->mem_bytes = lt_huge_round(eb + db + ib + nkey + 1);
  if (!(b->mem = lt_alloc_bytes(b->mem_bytes, 0))) lt_file_error(L, v->c->path, NULL, "out of memory");
  b->ix = b->mem;   /* uint32_t first, then the 8-byte-aligned parts */
  memset(b->ix, 0, ib);
  b->e = (lazy_ent *)((char *)b->mem + ((ib + 7) & ~(size_t)7));
  b->dims = (int64_t *)(b->e + n);
  b->names = (char *)(b->dims + ndims);
  return b;
}

static void push_dict(conv *v, pk_obj *o, int depth, int top) {
  lua_State *L = v->L;
  size_t nlazy = 0, ndims = 0, nkey = 0;
  for (size_t i = 1; i < o->n; i += 2)
    if (lazy_value(o->items[i]) && lazy_key(o->items[i - 1])) {
      nlazy++;
      ndims += 2 * (size_t)o->items[i]->t->ndim;
      nkey += o->items[i - 1]->len;
    }
  lazy_blk *lb = NULL;
  int renames = top && v->select;   /* a key select renames is not lazy; any may collide */
  int blk = 0, all_lazy = 2 * nlazy == o->n && !renames;
  if (nlazy >= LAZY_MIN) {
    if (nlazy >= UINT32_MAX / 2) lt_file_error(L, v->c->path, NULL, "too many tensors in one dict");
    lb = lazy_push(v, nlazy, ndims, nkey);
    blk = lua_gettop(L);
  }
  /* with a selector: each kept key's name in the file, by its new name
     (two names renamed to one are an error; a name the file repeats is not) */
  int origs = 0;
  if (renames) { lua_newtable(L); origs = lua_gettop(L); }
  lua_pushvalue(L, v->odict_from);
  if (lb && all_lazy) {
    /* every value lazy: no key strings now, the key list made when first
       walked (lazy_keys); a repeated key keeps its first entry, whose
       place is the key's, and takes the last value */
    uint32_t nd = 0;
    size_t kused = 0;
    /* the index's slots fetched ahead (lt.h); key j is items[2 j] */
    lt_ahead ah = {.slots = (const char *)lb->ix, .size = sizeof *lb->ix, .mask = lb->ixcap - 1};
    size_t nk = o->n / 2;
    for (size_t j = 0; j < LT_AHEAD && j < nk; j++) lt_ahead_key(&ah, j, o->items[2 * j]->s, o->items[2 * j]->len);
    for (size_t j = 0; j < nk; j++) {
      const pk_obj *k = o->items[2 * j];
      uint64_t h = lt_ahead_hash(&ah, j);
      if (j + LT_AHEAD < nk) lt_ahead_key(&ah, j + LT_AHEAD, o->items[2 * (j + LT_AHEAD)]->s, o->items[2 * (j + LT_AHEAD)]->len);
      uint32_t *slot = lazy_slot_h(lb, k->s, k->len, h);
      lazy_ent *e;
      if (*slot) {
        e = &lb->e[*slot - 1];
        lt_storage_release(e->s);
      } else {
        e = &lb->e[lb->n];
        e->key = kused;
        e->klen = (uint32_t)k->len;
        memcpy(lb->names + kused, k->s, k->len);
        kused += k->len;
        *slot = (uint32_t)++lb->n;
      }
      lazy_fill(v, lb, e, o->items[2 * j + 1]->t, &nd);
    }
    lua_pushvalue(L, blk);
    lua_pushcclosure(L, lazy_keys, 1);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, blk);
    lua_pushcclosure(L, lazy_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_call(L, 2, 1);
    lua_replace(L, blk);
    lua_settop(L, blk);
    return;
  }
  lua_createtable(L, (int)(o->n / 2), 0);     /* keys */
  lua_createtable(L, 0, (int)(o->n / 2 - (lb ? nlazy : 0)));   /* data: what is not lazy */
  int keys = lua_gettop(L) - 1, data = keys + 1;
  lua_Integer nk = 0;
  uint32_t nd = 0;
  size_t kused = 0;
  for (size_t i = 0; i + 1 < o->n; i += 2) {
    pk_obj *k = o->items[i], *x = o->items[i + 1];
    push_obj(v, k, depth + 1);
    if (renames) {
      lua_pushvalue(L, -1);
      lua_pushvalue(L, v->select);
      lua_insert(L, -2);
      lua_call(L, 1, 1);
      if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) { lua_pop(L, 2); continue; }
      lua_pushvalue(L, -1);
      if (lua_rawget(L, origs) != LUA_TNIL && !lua_rawequal(L, -1, -3))
        lt_file_error(L, v->c->path, NULL, "two tensors are renamed to '%s'",
                      lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushvalue(L, -3);
      lua_rawset(L, origs);
      lua_remove(L, -2);
    }
    if (lua_isnil(L, -1)) lt_file_error(L, v->c->path, NULL, "dict key converts to nil");
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
      lt_file_error(L, v->c->path, NULL, "dict key is NaN");
    /* a repeated key keeps its first position and its last value */
    int in_data = 0;
    /* the block knows the key as the dict has it */
    const char *ks = NULL;
    size_t kl = 0;
    if (lb && lua_type(L, -1) == LUA_TSTRING) ks = lua_tolstring(L, -1, &kl);
    uint32_t *slot = ks ? lazy_slot(lb, ks, kl) : NULL;
    int in_blk = slot && *slot;
    /* a key select renamed is not lazy: the block keeps the file's bytes */
    int lazy = slot && lazy_value(x) && lazy_key(k) && kl == k->len && !memcmp(ks, k->s, kl);
    if (!lb || !all_lazy) { lua_pushvalue(L, -1); in_data = lua_rawget(L, data) != LUA_TNIL; lua_pop(L, 1); }
    if (!in_data && !in_blk) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, keys, ++nk);
    }
    if (in_blk) lazy_drop(&lb->e[*slot - 1]);   /* an earlier value of this key */
    if (lazy) {
      if (in_data) { lua_pushvalue(L, -1); lua_pushnil(L); lua_rawset(L, data); }
      lazy_ent *e = &lb->e[lb->n];
      e->key = kused;
      e->klen = (uint32_t)k->len;
      memcpy(lb->names + kused, k->s, k->len);
      kused += k->len;
      lazy_fill(v, lb, e, x->t, &nd);
      *slot = (uint32_t)++lb->n;
      lua_pop(L, 1);
    } else {
      push_obj(v, x, depth + 1);
      lua_rawset(L, data);
    }
  }
  if (lb) {
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, blk);
    lua_pushcclosure(L, lazy_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, data);
  }
  lua_call(L, 2, 1);
  if (lb) { lua_replace(L, blk); lua_settop(L, blk); }
  else if (origs) lua_remove(L, origs);
}

static void push_list(conv *v, pk_obj *o, int depth) {
  lua_State *L = v->L;
  lua_createtable(L, (int)o->n, 0);
  if (o->mark & MK_SHARED) {   /* before the items: cycles resolve */
    lua_pushlightuserdata(L, o); lua_pushvalue(L, -2); lua_rawset(L, v->cache);
  }
  for (size_t i = 0; i < o->n; i++) {
    push_obj(v, o->items[i], depth + 1);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void push_obj(conv *v, pk_obj *o, int depth) {
  lua_State *L = v->L;
  if (depth > PK_MAX_DEPTH) lt_file_error(L, v->c->path, NULL, "nesting exceeds the limit of %d", PK_MAX_DEPTH);
  luaL_checkstack(L, 8, "nesting");
  switch (o->kind) {
    case PK_NONE: lua_pushvalue(L, v->null); return;
    case PK_BOOL: lua_pushboolean(L, (int)o->i); return;
    case PK_INT: lua_pushinteger(L, (lua_Integer)o->i); return;
    case PK_FLOAT: lua_pushnumber(L, o->f); return;
    case PK_STR: case PK_BYTES: lua_pushlstring(L, o->s, o->len); return;
    case PK_DTYPE: lua_pushstring(L, lt_dtypes[o->i].name); return;
    case PK_COMPLEX:
      lua_createtable(L, 2, 0);
      lua_pushnumber(L, o->f); lua_rawseti(L, -2, 1);
      lua_pushnumber(L, o->f2); lua_rawseti(L, -2, 2);
      return;
    case PK_MARK: lt_file_error(L, v->c->path, NULL, "a mark leaked into the value"); return;
    default: break;
  }
  /* shared nodes: the same Lua value each time */
  int shared = o->mark & MK_SHARED;
  if (shared) {
    lua_pushlightuserdata(L, o);
    if (lua_rawget(L, v->cache) != LUA_TNIL) return;
    lua_pop(L, 1);
  }
  switch (o->kind) {
    case PK_LIST: case PK_TUPLE: push_list(v, o, depth); return;
    case PK_DICT: case PK_ODICT:
      /* an odict is made from its finished contents, so a dict inside itself
         cannot be built; lists and inert objects can */
      if (o->mark & MK_BUILDING) lt_file_error(L, v->c->path, NULL, "a dict that contains itself is not supported");
      o->mark |= MK_BUILDING;
      push_dict(v, o, depth, depth == 0);
      o->mark &= (uint8_t)~MK_BUILDING;
      break;
    case PK_SET:
      lua_createtable(L, 0, (int)o->n);
      for (size_t i = 0; i < o->n; i++) { push_obj(v, o->items[i], depth + 1); lua_pushboolean(L, 1); lua_rawset(L, -3); }
      break;
    case PK_TENSOR: push_tensor(v, o); break;
    case PK_STORAGE: {
      pk_obj *r = o;
      uint64_t off = 0;
      while (r->st->root) { off += r->st->view_off; r = r->st->root; }
      lt_storage *s = storage_data(v, r->st);
      size_t isz = lt_dtypes[o->st->dtype].size;
      int64_t shape = (int64_t)(o->st->nbytes / isz);
      lt_storage_retain(s);
      lt_push_storage(L, s, (lt_dtype)o->st->dtype, 1, &shape, NULL, (int64_t)(off / isz));
      break;
    }
    case PK_GLOBAL:
      lua_createtable(L, 0, 1);
      lua_pushlstring(L, o->s, o->len); lua_setfield(L, -2, "__global");
      break;
    case PK_INERT:
      lua_createtable(L, 0, 4);
      if (shared) { lua_pushlightuserdata(L, o); lua_pushvalue(L, -2); lua_rawset(L, v->cache); }
      lua_pushlstring(L, o->s, o->len); lua_setfield(L, -2, "__global");
      if (o->in && o->in->args) { push_obj(v, o->in->args, depth + 1); lua_setfield(L, -2, "args"); }
      if (o->in && o->in->state) { push_obj(v, o->in->state, depth + 1); lua_setfield(L, -2, "state"); }
      if (o->in && o->in->dict) { push_obj(v, o->in->dict, depth + 1); lua_setfield(L, -2, "dict"); }
      if (o->n) {
        lua_createtable(L, (int)o->n, 0);
        for (size_t i = 0; i < o->n; i++) { push_obj(v, o->items[i], depth + 1); lua_rawseti(L, -2, (lua_Integer)i + 1); }
        lua_setfield(L, -2, "items");
      }
      return;
    default: lt_file_error(L, v->c->path, NULL, "unexpected node");
  }
  if (shared) { lua_pushlightuserdata(L, o); lua_pushvalue(L, -2); lua_rawset(L, v->cache); }
}

/* ---- reading ---------------------------------------------------------------- */

static int opt_field(lua_State *L, int opts, const char *name, int type) {
  int t = lua_getfield(L, opts, name);
  if (t == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (type != LUA_TNONE && t != type) luaL_error(L, "bad option '%s' (%s expected, got %s)", name, lua_typename(L, type), lua_typename(L, t));
  return lua_gettop(L);
}

/* the refusal of unsupported globals: those reached (r), or every one the
   pickle named (r NULL) */
static void unknown_error_of(lua_State *L, ldctx *c, const reached *r) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, c->path);
  luaL_addstring(&b, ": unsupported globals: ");
  int module = 0, n = r ? r->n : c->res.nunknown;
  for (int i = 0; i < n; i++) {
    const char *g = r ? r->name[i] : c->res.unknown[i];
    if (i) luaL_addstring(&b, ", ");
    luaL_addstring(&b, g);
    if (!strncmp(g, "torch.nn.modules.", 17) || !strncmp(g, "__main__.", 9)) module = 1;
  }
  if (r ? r->more : c->res.more_unknown) luaL_addstring(&b, ", ...");
  luaL_addstring(&b, module ? " (a whole pickled module; load its state_dict, or pass {unknown = \"inert\"})"
                            : " (pass {unknown = \"inert\"} to load them as inert tables)");
  luaL_pushresult(&b);
  lua_error(L);
}

static void unknown_error(lua_State *L, ldctx *c) { unknown_error_of(L, c, NULL); }

/* read a small record fully into a Lua string */
static void push_record(lua_State *L, ldctx *c, const pz_entry *e, uint64_t limit) {
  char err[LT_MSG];
  if (e->usize > limit) fail(L, c, "entry '%s' of %llu bytes exceeds the limit of %llu", e->name,
                              (unsigned long long)e->usize, (unsigned long long)limit);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)e->usize);
  if (pz_read(&c->z, e, p, 1, NULL, NULL, err)) fail(L, c, "%s", err);
  luaL_pushresultsize(&b, (size_t)e->usize);
}

static const pz_entry *find_rec(ldctx *c, const char *prefix, const char *name) {
  char full[2 * PZ_MAX_NAME + 128];
  size_t pl = strlen(prefix), nl = strlen(name);
  if (pl + nl + 2 > sizeof full) return NULL;
  memcpy(full, prefix, pl);
  full[pl] = '/';
  memcpy(full + pl + 1, name, nl + 1);
  return pz_find(&c->z, full);
}

/* ---- loading: the steps of core._pt_load --------------------------------------- */

/* What a load was asked for and what its steps found. The resources are in
   the ldctx box c; this lives on the C stack of l_pt_load. */
typedef struct loader {
  lua_State *L;
  ldctx *c;
  int null, odict, select, progress;  /* stack indices of the options (0: absent) */
  int use_mmap, verify, inert;
  int remote;                         /* the file mirrors a remote object: records are deferred */
  int torchscript;                    /* opts.torchscript: TorchScript archives are read */
  lt_progress pg;
  uint64_t fsize;
  const unsigned char *head;          /* the whole file, mapped */
  int legacy, big_endian;
  const char *prefix;                 /* the archive's folder ("<folder>/data.pkl") */
  char prefix_buf[PZ_MAX_NAME + 1];
  int extras;                         /* stack index of the .ltorch/ records; 0: none */
  int code;                           /* stack index of a TorchScript archive's code/ records; 0: none */
  needed *need;                       /* the storages to read, in file order */
  size_t nneed;
  maptab *mt;                         /* mmap: the records mapped, made storages on first use */
  int mt_idx;                         /* its stack index; 0: none */
} loader;

/* 1. the options; pushes their values (and the progress slot) on the stack */
static void read_load_opts(loader *ld, int opts) {
  lua_State *L = ld->L;
  ld->null = opt_field(L, opts, "null", LUA_TNONE);
  ld->odict = opt_field(L, opts, "odict_from", LUA_TFUNCTION);
  ld->select = opt_field(L, opts, "select", LUA_TFUNCTION);
  ld->progress = opt_field(L, opts, "progress", LUA_TFUNCTION);
  lua_getfield(L, opts, "mmap"); ld->use_mmap = lua_toboolean(L, -1); lua_pop(L, 1);
  lua_getfield(L, opts, "verify"); ld->verify = lua_toboolean(L, -1); lua_pop(L, 1);
  lua_getfield(L, opts, "torchscript"); ld->torchscript = lua_toboolean(L, -1); lua_pop(L, 1);
  lua_getfield(L, opts, "unknown");
  const char *unk = lua_tostring(L, -1);
  if (unk && !strcmp(unk, "inert")) ld->inert = 1;
  else if (unk && strcmp(unk, "error")) luaL_error(L, "bad option 'unknown' (\"error\" or \"inert\" expected, got \"%s\")", unk);
  lua_pop(L, 1);
  if (!ld->null || !ld->odict) luaL_error(L, "_pt_load: options 'null' and 'odict_from' are required");
  lt_progress_init(L, &ld->pg, ld->progress, 0);
}

/* 2. open the file and map it whole: zip headers, the pickle and small
   records are read in place; mmap loads point tensors into it */
static void open_file(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
  if (c->fd < 0) fail(L, c, "%s", lt_errno_text(errno));
  struct stat sb;
  if (fstat(c->fd, &sb)) fail(L, c, "%s", lt_errno_text(errno));
  if (!S_ISREG(sb.st_mode)) fail(L, c, "%s", S_ISDIR(sb.st_mode) ? lt_errno_text(EISDIR) : "not a regular file");
  ld->fsize = (uint64_t)sb.st_size;
  if (ld->fsize == 0) fail(L, c, "empty file");
  ld->remote = lt_fd_is_remote(c->fd);
  char err[LT_MSG];
  c->map = lt_map_file(c->fd, (size_t)ld->fsize, c->path, err);
  if (!c->map) fail(L, c, "%s", err);
  ld->head = c->map->base;
  c->arena = pk_arena_new();
  if (!c->arena) fail(L, c, "out of memory");
}

/* the archive's version record: 1 to 10 */
static void check_version(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  const pz_entry *ve = find_rec(c, ld->prefix, ".data/version");
  if (!ve) ve = find_rec(c, ld->prefix, "version");
  if (!ve) fail(L, c, "missing record '%s/version'", ld->prefix);
  push_record(L, c, ve, 64);
  char vs[65];
  snprintf(vs, sizeof vs, "%s", lua_tostring(L, -1));
  for (size_t k = strlen(vs); k > 0 && (vs[k - 1] == '\n' || vs[k - 1] == '\r'); k--) vs[k - 1] = 0;
  char *end;
  long ver = strtol(vs, &end, 10);
  while (*end == '\n' || *end == '\r' || *end == ' ') end++;
  if (end == vs || *end || ver < 1 || ver > 10)
    fail(L, c, "entry '%s': unsupported version '%s' (ltorch reads versions 1 to 10)", ve->name, vs);
  lua_pop(L, 1);
}

/* a TorchScript archive: its objects (__torch__.* classes) load inert, and
   the class definitions, the "code/...py" records, into a table (ld->code),
   at most MAX_EXTRA bytes in all. The debug_pkl records are not read. */
static void read_code(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  char cp[PZ_MAX_NAME + 16];
  snprintf(cp, sizeof cp, "%s/code/", ld->prefix);
  size_t cpl = strlen(cp);
  uint64_t total = 0;
  ld->inert = 1;
  lua_newtable(L);
  ld->code = lua_gettop(L);
  for (size_t i = 0; i < c->z.n; i++) {
    const pz_entry *e = &c->z.entries[i];
    if (e->name_len <= cpl + 3 || strncmp(e->name, cp, cpl) || strcmp(e->name + e->name_len - 3, ".py")) continue;
    if (e->usize > MAX_EXTRA - total)
      fail(L, c, "entry '%s': the code records exceed the limit of %llu bytes", e->name,
           (unsigned long long)MAX_EXTRA);
    total += e->usize;
    push_record(L, c, e, MAX_EXTRA);
    lua_setfield(L, ld->code, e->name + cpl);
  }
}

/* 3a. a zip archive: its folder, version and byte order, data.pkl run, and
   the ".ltorch/" records into a table (ld->extras) */
/* A big archive's directory and its pickle, read at once on two threads
   (the pool's): an open of 20,000 small tensors spent a quarter of its time
   in the directory before the pickle began. torch.save writes data.pkl
   first, so the pickle's place and size are known from the first central
   entry (pz_peek_first) before the directory is read. The pickle read
   beside it is used only when the directory, validated whole, names that
   same stored entry as data.pkl and nothing else would have come first
   (TorchScript code); otherwise, on any error of either, it is dropped and
   the archive is read in order, so errors and results are those of the
   sequential read. The thread that reads the directory then takes the
   pickle's second half when it is big (pk_split, pickle.h): the parse was
   three quarters of the open. */
#define SPEC_MIN 1024      /* entries from which the two are read at once */

typedef struct spec_read {
  ldctx *c;
  uint64_t fsize;
  pz_entry first;
  char name[PZ_MAX_NAME + 1];
  const unsigned char *pkl;
  pk_split *split;        /* the pickle read by both threads (pickle.h), or NULL */
  int pk_rc, z_rc, crc_ok;
  char pk_err[LT_MSG], z_err[LT_MSG];
} spec_read;

static void spec_job(void *ctx, int64_t i) {
  spec_read *r = ctx;
  ldctx *c = r->c;
  if (i == 0) {
    if (r->split) pk_split_first(r->split);
    else r->pk_rc = pk_load(c->spec_arena, r->pkl, (size_t)r->first.usize, &c->spec_res, r->pk_err);
    return;
  }
  r->z_rc = pz_open(&c->z, c->fd, r->fsize, c->map->base, r->z_err);
  if (r->z_rc == 0) {
    const pz_entry *e = &c->z.entries[0];
    r->crc_ok = e->method == 0 && e->data_off == r->first.data_off && e->usize == r->first.usize &&
                (e->crc == 0 || lt_crc32(0, r->pkl, (size_t)e->usize) == e->crc);
    if (r->split) pk_split_second(r->split);
  }
}

/* the directory, read with the pickle beside it when it is big: 1 when the
   pickle was read too (in c->spec_arena/spec_res, r->pk_rc its result) */
static int open_directory(loader *ld, spec_read *r) {
  ldctx *c = ld->c;
  uint64_t count = 0;
  r->c = c;
  r->fsize = ld->fsize;
  r->first.name = r->name;
  int spec = pz_peek_first(c->map->base, ld->fsize, &r->first, &count) == 0 && count >= SPEC_MIN &&
             r->first.method == 0 && r->first.usize <= MAX_PKL && r->first.name_len > 9 &&
             !strcmp(r->first.name + r->first.name_len - 9, "/data.pkl") &&
             (c->spec_arena = pk_arena_new()) != NULL;
  if (spec) {
    r->pkl = (const unsigned char *)c->map->base + r->first.data_off;
    r->split = pk_split_new(c->spec_arena, r->pkl, (size_t)r->first.usize, &c->spec_res, r->pk_err);
    lt_parallel(2, spec_job, r);
    if (r->split) r->pk_rc = pk_split_finish(r->split);
    if (r->z_rc) fail(ld->L, c, "%s", r->z_err);
  } else if (pz_open(&c->z, c->fd, ld->fsize, c->map->base, r->z_err)) {
    fail(ld->L, c, "%s", r->z_err);
  }
  c->zopen = 1;
  return spec;
}

/* data.pkl, checked and read in order */
static void read_pickle(loader *ld, const pz_entry *pe) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  char err[LT_MSG];
  const unsigned char *pkl;
  if (pe->method == 0) {
    pkl = (const unsigned char *)c->map->base + pe->data_off;
    uint32_t crc = lt_crc32(0, pkl, (size_t)pe->usize);
    if (pe->crc != 0 && crc != pe->crc)
      fail(L, c, "entry '%s': crc32 mismatch (expected %08x, found %08x)", pe->name, pe->crc, (unsigned)crc);
  } else {
    c->pkl_size = (size_t)pe->usize;
    c->pkl = lt_alloc_bytes(c->pkl_size, 0);
    if (!c->pkl) fail(L, c, "out of memory");
    if (pz_read(&c->z, pe, c->pkl, 1, NULL, NULL, err)) fail(L, c, "%s", err);
    pkl = c->pkl;
  }
  if (pk_load(c->arena, pkl, (size_t)pe->usize, &c->res, err)) {
    if (c->res.nunknown && !ld->inert) unknown_error(L, c);
    fail(L, c, "entry '%s': %s", pe->name, err);
  }
}

static void open_archive(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  spec_read sr;
  memset(&sr, 0, sizeof sr);
  int spec = open_directory(ld, &sr);
  int code = 0;
  if (c->z.n == 0) fail(L, c, "empty zip archive");
  const char *first = c->z.entries[0].name, *slash = strchr(first, '/');
  if (!slash) fail(L, c, "entry '%s' is not in a folder (expected '<folder>/data.pkl')", first);
  memcpy(ld->prefix_buf, first, (size_t)(slash - first));
  ld->prefix_buf[slash - first] = 0;
  ld->prefix = ld->prefix_buf;
  if (find_rec(c, ld->prefix, "constants.pkl")) {
    if (!ld->torchscript)
      fail(L, c, "a TorchScript archive (constants.pkl), not a torch.save file; ltorch cannot run TorchScript");
    read_code(ld);
    code = 1;
  }
  check_version(ld);
  const pz_entry *bo = find_rec(c, ld->prefix, "byteorder");
  if (bo) {
    push_record(L, c, bo, 64);
    const char *b = lua_tostring(L, -1);
    if (!strcmp(b, "big")) ld->big_endian = 1;
    else if (strcmp(b, "little")) fail(L, c, "entry '%s': expected 'little' or 'big', found '%s'", bo->name, b);
    lua_pop(L, 1);
  }
  const pz_entry *pe = find_rec(c, ld->prefix, "data.pkl");
  if (!pe) fail(L, c, "missing record '%s/data.pkl'", ld->prefix);
  if (pe->usize > MAX_PKL) fail(L, c, "entry '%s' of %llu bytes exceeds the limit", pe->name, (unsigned long long)pe->usize);
  if (spec && !code && pe == &c->z.entries[0] && sr.crc_ok && sr.pk_rc == 0) {
    /* the pickle read beside the directory is this entry's, checked */
    pk_arena_free(c->arena);
    c->arena = c->spec_arena;
    c->res = c->spec_res;
    c->spec_arena = NULL;
    memset(&c->spec_res, 0, sizeof c->spec_res);
  } else {
    if (spec) {   /* not used: read again in order */
      pk_result_free(&c->spec_res);
      pk_arena_free(c->spec_arena);
      c->spec_arena = NULL;
    }
    read_pickle(ld, pe);
  }
  char lp[PZ_MAX_NAME + 16];
  snprintf(lp, sizeof lp, "%s/.ltorch/", ld->prefix);
  size_t lpl = strlen(lp);
  for (size_t i = 0; i < c->z.n; i++) {
    const pz_entry *e = &c->z.entries[i];
    if (e->name_len > lpl && !strncmp(e->name, lp, lpl)) {
      if (!ld->extras) { lua_newtable(L); ld->extras = lua_gettop(L); }
      push_record(L, c, e, MAX_EXTRA);
      lua_setfield(L, ld->extras, e->name + lpl);
    }
  }
}

/* 3b. the legacy format (layout, 2.): its four pickles, then the storages
   in key-list order, each an int64 numel and then its bytes, located here */
static void open_legacy(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  char err[LT_MSG];
  ld->legacy = 1;
  if (ld->fsize < sizeof LEGACY_MAGIC || memcmp(ld->head, LEGACY_MAGIC, sizeof LEGACY_MAGIC))
    fail(L, c, "not a PyTorch file (neither a zip archive nor the legacy magic number)");
  size_t pos = sizeof LEGACY_MAGIC;
  static const char *what[] = {"protocol version", "sys_info", "main", "storage keys"};
  pk_obj *keylist = NULL;
  for (int part = 0; part < 4; part++) {
    pk_result tmp;
    memset(&tmp, 0, sizeof tmp);
    pk_result *r = part == 2 ? &c->res : &tmp;
    int rc = pk_load(c->arena, ld->head + pos, (size_t)(ld->fsize - pos), r, err);
    pk_obj *val = r->value;
    size_t used = r->consumed;
    int foreign = part != 2 && tmp.nunknown;
    pk_result_free(&tmp);
    if (rc) {
      if (part == 2 && c->res.nunknown && !ld->inert) unknown_error(L, c);
      fail(L, c, "legacy %s pickle at offset %zu: %s", what[part], pos, err);
    }
    if (foreign) fail(L, c, "legacy %s pickle at offset %zu names a global", what[part], pos);
    if (part == 0 && (val->kind != PK_INT || val->i != 1001)) fail(L, c, "legacy protocol version is not 1001");
    if (part == 3) keylist = val;
    pos += used;
  }
  if (keylist->kind != PK_LIST) fail(L, c, "legacy storage key list is a %s, not a list", "non-list value");
  pk_obj **byname = lua_newuserdatauv(L, (c->res.nstorages ? c->res.nstorages : 1) * sizeof *byname, 0);
  /* no tensors: c->res.storages may be NULL (memcpy from NULL is UB even for 0) */
  if (c->res.nstorages) {
    memcpy(byname, c->res.storages, c->res.nstorages * sizeof *byname);
    qsort(byname, c->res.nstorages, sizeof *byname, cmp_key);
  }
  for (size_t i = 0; i < keylist->n; i++) {
    pk_obj *k = keylist->items[i], *s = NULL;
    if (k->kind != PK_STR) fail(L, c, "legacy storage key %zu is not a string", i);
    pk_storage probe = {0};
    pk_obj po;
    memset(&po, 0, sizeof po);
    probe.key = k->s;
    po.st = &probe;
    pk_obj *pp = &po, **hit = bsearch(&pp, byname, c->res.nstorages, sizeof *byname, cmp_key);
    if (hit && !(*hit)->st->root) s = *hit;
    if (!s) fail(L, c, "legacy storage key '%s' is not used by the pickle", k->s);
    if (ld->fsize - pos < 8) fail(L, c, "storage '%s': the file ends at offset %zu before its size", k->s, pos);
    int64_t numel;
    memcpy(&numel, ld->head + pos, 8);
    uint64_t isz = lt_dtypes[s->st->dtype].size;
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / isz || (uint64_t)numel * isz != s->st->nbytes)
      fail(L, c, "storage '%s' at offset %zu: expected %llu elements, found %lld", k->s, pos,
           (unsigned long long)(s->st->nbytes / isz), (long long)numel);
    pos += 8;
    if (ld->fsize - pos < s->st->nbytes)
      fail(L, c, "storage '%s': expected %llu bytes at offset %zu, the file ends first", k->s,
           (unsigned long long)s->st->nbytes, pos);
    s->st->file_off = pos;
    s->st->located = 1;
    pos += s->st->nbytes;
  }
  lua_pop(L, 1);   /* byname */
}

/* 4. which storages are needed: those of the top-level entries select
   keeps, or all; with unknown = "error", the unsupported globals among what
   is kept are refused (an entry select leaves out may hold any) */
static void mark_selected(loader *ld) {
  lua_State *L = ld->L;
  pk_obj *root = ld->c->res.value;
  int depthfail = 0;
  reached rc = {.n = 0}, *r = &rc;
  if (ld->select && (root->kind == PK_DICT || root->kind == PK_ODICT)) {
    root->mark |= MK_SEEN;
    for (size_t i = 0; i + 1 < root->n; i += 2) {
      pk_obj *k = root->items[i];
      if (k->kind == PK_STR || k->kind == PK_BYTES) lua_pushlstring(L, k->s, k->len);
      else if (k->kind == PK_INT) lua_pushinteger(L, (lua_Integer)k->i);
      else { if (mark_needed(root->items[i + 1], 1, r)) depthfail = 1; continue; }
      lua_pushvalue(L, ld->select);
      lua_insert(L, -2);
      lua_call(L, 1, 1);
      int keep = lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (keep && mark_needed(root->items[i + 1], 1, r)) depthfail = 1;
    }
  } else if (mark_needed(root, 0, r)) depthfail = 1;
  if (depthfail) fail(L, ld->c, "nesting exceeds the limit of %d", PK_MAX_DEPTH);
  if (!ld->inert && rc.n) unknown_error_of(L, ld->c, r);
}

/* 5. where each needed storage lies (its zip record, or the legacy offset
   found by open_legacy), in file order; the progress total */
/* the records "<prefix>/data/<k>" by k (torch.save's storage keys are
   0, 1, ...): one pass over the entries in file order instead of a hashed
   lookup per storage, whose misses were a tenth of opening 20,000 small
   tensors. NULL where an entry is missing or the keys are not numbers. */
static const pz_entry **data_index(loader *ld, const pz_entry **ix, size_t lim) {
  ldctx *c = ld->c;
  memset(ix, 0, lim * sizeof *ix);
  size_t pl = strlen(ld->prefix);
  for (size_t i = 0; i < c->z.n; i++) {
    const pz_entry *e = &c->z.entries[i];
    if (e->name_len <= pl + 6 || memcmp(e->name, ld->prefix, pl) || memcmp(e->name + pl, "/data/", 6)) continue;
    int64_t k = lt_decimal_key(e->name + pl + 6, e->name_len - pl - 6, lim);
    if (k >= 0) ix[k] = e;   /* names are unique (pz_open) */
  }
  return ix;
}

static void locate_records(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  uint64_t total = 0;
  size_t lim = 2 * c->res.nstorages + 16, nb = (c->res.nstorages ? c->res.nstorages : 1) * sizeof *ld->need;
  int indexed = !ld->legacy && c->res.nstorages >= 64;
  /* the storages to read, then the index of records by number */
  if (!(c->scratch = scratch_alloc(nb + (indexed ? lim * sizeof(pz_entry *) : 0), &c->scratch_bytes)))
    fail(L, c, "out of memory");
  ld->need = c->scratch;
  const pz_entry **ix = indexed ? data_index(ld, (const pz_entry **)((char *)c->scratch + nb), lim) : NULL;
  for (size_t i = 0; i < c->res.nstorages; i++) {
    pk_obj *s = c->res.storages[i];
    if (!s->st->needed || s->st->root) continue;
    if (!ld->legacy) {
      char name[PZ_MAX_NAME + 64];
      if (s->st->key_len > PZ_MAX_NAME) fail(L, c, "storage key of %zu bytes is too long", (size_t)s->st->key_len);
      int64_t k = ix ? lt_decimal_key(s->st->key, s->st->key_len, lim) : -1;
      const pz_entry *e = k >= 0 ? ix[k] : NULL;
      memcpy(name, "data/", 5);
      memcpy(name + 5, s->st->key, s->st->key_len + 1);
      if (!e) e = find_rec(c, ld->prefix, name);
      if (!e) fail(L, c, "missing record '%s/%s'", ld->prefix, name);
      if (e->usize < s->st->nbytes)
        fail(L, c, "entry '%s': expected %llu bytes, found %llu", e->name,
             (unsigned long long)s->st->nbytes, (unsigned long long)e->usize);
      s->st->entry = e;
      s->st->file_off = e->data_off;
      s->st->located = 1;
    } else if (!s->st->located) {
      fail(L, c, "storage '%s' has no data in the file", s->st->key);
    }
    ld->need[ld->nneed].off = s->st->file_off;
    ld->need[ld->nneed++].s = s;
    total += s->st->nbytes;
  }
  /* file order, for reads that go forward. An mmap open reads nothing
     here: its order does not matter. torch.save writes the records sorted
     by key as strings ("0", "1", "10", ...), so storages, numbered as met,
     are out of order; when the directory lists records in file order, each
     storage's entry index places it (no sort of 20,000 items). */
  int in_order = 1;
  for (size_t i = 1; i < ld->nneed && in_order; i++) in_order = ld->need[i - 1].off <= ld->need[i].off;
  if (in_order || ld->use_mmap) { /* as it is */ }
  else if (!ld->legacy && c->z.in_order) {
    needed *byent = lua_newuserdatauv(L, c->z.n * sizeof *byent, 0);
    memset(byent, 0, c->z.n * sizeof *byent);
    for (size_t i = 0; i < ld->nneed; i++)
      byent[(const pz_entry *)ld->need[i].s->st->entry - c->z.entries] = ld->need[i];
    size_t k = 0;
    for (size_t i = 0; i < c->z.n; i++) if (byent[i].s) ld->need[k++] = byent[i];
    lua_pop(L, 1);
  } else qsort(ld->need, ld->nneed, sizeof *ld->need, cmp_off);
  ld->pg.total = total;
}

/* 6a. one needed storage: mapped (mmap, usable as it lies), deferred (mmap,
   not mappable: read when first used), copied from the mapping (small
   records close together), queued in jobs (big stored records, read in
   parallel by read_records), or read now (deflated, or checked) */
static void read_record(loader *ld, pk_obj *s, lt_readjob *jobs, size_t *njobs) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  char err[LT_MSG];
  uint64_t off = s->st->file_off, nb = s->st->nbytes;
  const pz_entry *e = s->st->entry;
  int legacy = ld->legacy, stored = legacy || e->method == 0;
  if (ld->use_mmap && lt_may_map(ld->remote, stored, ld->big_endian, off, MAP_ALIGN, nb)) {
    maptab *t = ld->mt;
    t->slot[t->n].s = NULL;
    t->slot[t->n].off = off;
    t->slot[t->n].nbytes = nb;
    s->st->slot = (uint32_t)++t->n;
    lt_progress_add(&ld->pg, nb);
    return;
  }
  /* a record longer than its storage (a deflate bomb's usize) is read, and
     inflated, only as far as the storage needs: its crc covers bytes that
     are never read, so it is not checked */
  int check = ld->verify && !legacy && e->usize == nb;
  if (ld->use_mmap && nb > 0) {
    if (!c->lf && !(c->lf = lt_file_new(c->fd, c->path))) fail(L, c, "cannot keep the file open: %s", strerror(errno));
    size_t w = lt_part_size((lt_dtype)s->st->dtype);
    lt_source src = {.off = off, .csize = legacy ? nb : e->csize, .usize = legacy ? nb : e->usize,
                     .crc = legacy ? 0 : e->crc, .method = legacy ? 0 : e->method, .check_crc = check,
                     .swap = ld->big_endian && w > 1 ? (int)w : 0, .what = legacy ? s->st->key : e->name};
    s->st->data = lt_storage_deferred(c->lf, (size_t)nb, &src);
    if (!s->st->data) fail(L, c, "out of memory");
    lt_progress_add(&ld->pg, nb);
    return;
  }
  lt_gc_account(L);
  lt_storage *st = lt_storage_new((size_t)nb, 0);
  if (!st) fail(L, c, "not enough memory for storage '%s' of %llu bytes", s->st->key, (unsigned long long)nb);
  s->st->data = st;
  if (legacy || (stored && !check && nb <= SMALL_RECORD && !c->z.sparse)) {
    /* many small records close together: copies from the mapping (a fault
       maps many) cost less than a read system call each */
    memcpy(st->data, (const char *)c->map->base + off, (size_t)nb);
    lt_progress_add(&ld->pg, nb);
  } else if (stored && !check) {
    jobs[(*njobs)++] = (lt_readjob){st->data, off, nb, e->name};
  } else {
    pz_entry part = *e;
    if (stored) part.usize = part.csize = nb;
    if (pz_read_range(c->fd, &part, 0, st->data, nb, check, stored ? lt_progress_step : NULL, &ld->pg, err)) {
      lt_progress_check(&ld->pg);
      fail(L, c, "%s", err);
    }
    if (!stored) lt_progress_add(&ld->pg, nb);
  }
}

/* 6. read the needed storages in file order; then the queued big records
   in parallel, and the byte swap of a big-endian archive */
static void read_records(loader *ld) {
  lua_State *L = ld->L;
  ldctx *c = ld->c;
  char err[LT_MSG];
  if (ld->use_mmap) {
    if (ld->nneed >= UINT32_MAX) fail(L, c, "too many storages");
    if (!(ld->mt = maptab_push(L, c->map, ld->nneed))) fail(L, c, "out of memory");
    ld->mt_idx = lua_gettop(L);
  }
  lt_readjob *jobs = lua_newuserdatauv(L, (ld->nneed ? ld->nneed : 1) * sizeof *jobs, 0);
  size_t njobs = 0;
  for (size_t i = 0; i < ld->nneed; i++) read_record(ld, ld->need[i].s, jobs, &njobs);
  if (njobs) {
    ld->pg.base = ld->pg.done;
    int rc = lt_read_jobs(c->fd, jobs, njobs, ld->progress ? lt_progress_jobs : NULL, &ld->pg, err);
    if (rc < 0) fail(L, c, "%s", err);
    if (rc > 0) lt_progress_check(&ld->pg);
  }
  lua_pop(L, 1);   /* jobs */
  if (ld->big_endian)
    for (size_t i = 0; i < ld->nneed; i++) {
      lt_storage *st = ld->need[i].s->st->data;
      if (!st || st->deferred || st->mapped) continue;   /* mapped records are native; deferred ones swapped when read */
      size_t w = lt_part_size((lt_dtype)ld->need[i].s->st->dtype);
      lt_byteswap(st->data, (size_t)ld->need[i].s->st->nbytes / w, w);
    }
  if (!ld->use_mmap && c->map) { lt_mapping_release(c->map); c->map = NULL; }
}

static int gc_resume(lua_State *L) {
  lua_gc(L, LUA_GCRESTART);
  return 0;
}

/* core._pickle_splits() -> joined, ran_on: pickles read by two threads
   (pickle.h) in this process, and those the first thread finished */
static int l_pickle_splits(lua_State *L) {
  unsigned j, r;
  pk_split_counts(&j, &r);
  lua_pushinteger(L, (lua_Integer)j);
  lua_pushinteger(L, (lua_Integer)r);
  return 2;
}

/* core._pt_load(path, opts): the steps above, then 7. convert the pickle's
   value to Lua */
static int l_pt_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  ldctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->path = path;
  lua_newtable(L);
  lua_pushcfunction(L, ld_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  loader ld;
  memset(&ld, 0, sizeof ld);
  ld.L = L;
  ld.c = c;
  read_load_opts(&ld, 2);
  open_file(&ld);
  if (ld.fsize >= 4 && !memcmp(ld.head, "PK\3\4", 4)) open_archive(&ld);
  else open_legacy(&ld);
  if (!ld.inert && c->res.nunknown && !ld.select) unknown_error(L, c);
  mark_selected(&ld);
  locate_records(&ld);
  read_records(&ld);
  lua_newtable(L);
  conv v = {L, c, ld.null, ld.odict, lua_gettop(L), ld.select, ld.mt, ld.mt_idx};
  /* the collector paused while the value is built: everything made here
     is kept (it is the value), and its incremental steps over a heap
     growing by 20,000 tensors were a sixth of an open. A to-be-closed slot
     restarts it, on an error too. */
  int gc_slot = 0;
  if (lua_gc(L, LUA_GCISRUNNING)) {
    lua_newuserdatauv(L, 0, 0);
    if (luaL_newmetatable(L, "ltorch.gc_pause")) {
      lua_pushcfunction(L, gc_resume);
      lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    gc_slot = lua_gettop(L);
    lua_toclose(L, gc_slot);
    lua_gc(L, LUA_GCSTOP);
  }
  push_obj(&v, c->res.value, 0);
  if (gc_slot) lua_closeslot(L, gc_slot);
  if (ld.code) {
    if (ld.extras) lua_pushvalue(L, ld.extras); else lua_pushnil(L);
    lua_pushvalue(L, ld.code);
    return 3;
  }
  if (ld.extras) { lua_pushvalue(L, ld.extras); return 2; }
  return 1;
}

/* ---- saving ------------------------------------------------------------------ */

typedef struct svst { lt_storage *s; lt_dtype dt, out; } svst;   /* out: the dtype written */

/* address -> number: the pickle's memo of tensors and tables (by
   lua_topointer) and the storage keys (by lt_storage). Open addressing, at
   most half full. What is memoized stays alive in the saver's refs list, so
   no address is reused during a save. A save of 20,000 tensors spent a
   fifth of its pickling in the Lua tables that did this before. */
typedef struct ptrmap { const void **k; uint32_t *v; size_t cap, n; } ptrmap;

static size_t pm_slot(const ptrmap *m, const void *k) {
  uint64_t h = ((uint64_t)(uintptr_t)k >> 3) * UINT64_C(0x9E3779B97F4A7C15);
  size_t i = (size_t)(h >> 32) & (m->cap - 1);
  while (m->k[i] && m->k[i] != k) i = (i + 1) & (m->cap - 1);
  return i;
}

/* the number of k, or -1 */
static int64_t pm_get(const ptrmap *m, const void *k) {
  if (!m->cap) return -1;
  size_t i = pm_slot(m, k);
  return m->k[i] ? (int64_t)m->v[i] : -1;
}

/* k -> v, for a k not in m: 0, or -1 out of memory */
static int pm_put(ptrmap *m, const void *k, uint32_t v) {
  if (2 * (m->n + 1) > m->cap) {
    size_t nc = m->cap ? 2 * m->cap : 64;
    ptrmap g = {calloc(nc, sizeof *g.k), malloc(nc * sizeof *g.v), nc, m->n};
    if (!g.k || !g.v) { free(g.k); free(g.v); return -1; }
    for (size_t i = 0; i < m->cap; i++)
      if (m->k[i]) {
        size_t j = pm_slot(&g, m->k[i]);
        g.k[j] = m->k[i];
        g.v[j] = m->v[i];
      }
    free(m->k);
    free(m->v);
    *m = g;
  }
  size_t i = pm_slot(m, k);
  m->k[i] = k;
  m->v[i] = v;
  m->n++;
  return 0;
}

static void pm_free(ptrmap *m) {
  free(m->k);
  free(m->v);
  memset(m, 0, sizeof *m);
}

typedef struct svctx {
  int fd;
  pk_buf b;
  pz_writer w;
  int winit;
  svst *st;
  size_t nst, capst;
  ptrmap memo, stmap;   /* the memo index of an object; the key of a storage */
  char *tmp_path;   /* removed on failure by the Lua side */
} svctx;

static void sv_free(svctx *c) {
  pk_buf_free(&c->b);
  pm_free(&c->memo);
  pm_free(&c->stmap);
  if (c->winit) { pz_writer_free(&c->w); c->winit = 0; }
  free(c->st); c->st = NULL;
  if (c->fd >= 0) { close(c->fd); c->fd = -1; }
}

static int sv_gc(lua_State *L) { sv_free(lua_touserdata(L, 1)); return 0; }

typedef struct saver {
  lua_State *L;
  svctx *c;
  int null, odict_parts, ordered_keys, refs;
  lua_Integer nrefs;      /* the memoized objects, kept alive in the list at refs */
  const void *tensor_mt;  /* the tensors' metatable */
  int cast;               /* opts.cast: dtype floating tensors are written as, or -1 */
  uint32_t gmemo[64];     /* memo index + 1 of repeated globals and strings */
  /* where the value being written lies, for errors (built only then):
     per level the key's stack index, or 0 and a list index, or 0 and the
     bytes of a lazy dict's key (ks, kl) */
  int nlev;
  struct { int kidx; lua_Integer li; const char *ks; size_t kl; } lev[PK_MAX_DEPTH + 2];
} saver;

enum { M_V2, M_V3, M_PARAM, M_ODICT, M_UNTYPED, M_STORAGE_STR, M_CPU, M_CLASS = 8, M_DTYPE = 8 + LT_NDTYPES };

/* a GLOBAL (or, with module NULL, a str) written once and then fetched from
   the memo, as CPython's pickler does for repeated objects */
static void w_memo_global(saver *s, int slot, const char *module, const char *name) {
  pk_buf *b = &s->c->b;
  if (s->gmemo[slot]) { pk_w_get(b, s->gmemo[slot] - 1); return; }
  if (module) pk_w_global(b, module, name);
  else pk_w_str(b, name, strlen(name));
  s->gmemo[slot] = pk_w_put(b) + 1;
}

static void save_value(saver *s, int idx, int depth);

static int serr(saver *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* the object at idx is memo index v from now on */
static void memo_put(saver *s, int idx, uint32_t v) {
  lua_State *L = s->L;
  if (pm_put(&s->c->memo, lua_topointer(L, idx), v)) serr(s, "out of memory");
  lua_pushvalue(L, idx);
  lua_rawseti(L, s->refs, ++s->nrefs);
}

static void path_push(char *p, lua_State *L, int kidx) {
  size_t n = strlen(p);
  if (n > 200) return;
  if (lua_type(L, kidx) == LUA_TSTRING) snprintf(p + n, 256 - n, "%s%.100s", n ? "." : "", lua_tostring(L, kidx));
  else if (lua_isinteger(L, kidx)) snprintf(p + n, 256 - n, "[%lld]", (long long)lua_tointeger(L, kidx));
  else snprintf(p + n, 256 - n, "[?]");
}

static int serr(saver *s, const char *fmt, ...) {
  char msg[LT_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char path[256] = "";
  for (int i = 0; i < s->nlev; i++) {
    if (s->lev[i].kidx) path_push(path, s->L, s->lev[i].kidx);
    else if (s->lev[i].ks) {
      size_t n = strlen(path);
      if (n <= 200) snprintf(path + n, sizeof path - n, "%s%.*s", n ? "." : "", (int)(s->lev[i].kl > 100 ? 100 : s->lev[i].kl), s->lev[i].ks);
    } else {
      size_t n = strlen(path);
      snprintf(path + n, sizeof path - n, "[%lld]", (long long)s->lev[i].li);
    }
  }
  if (path[0]) return raise(s->L, "%s (at %s)", msg, path);
  return raise(s->L, "%s", msg);
}

/* the decimal digits of v at p (no terminator); their count */
static size_t utoa(char *p, size_t v) {
  char t[24];
  size_t n = 0;
  do t[n++] = (char)('0' + v % 10); while ((v /= 10));
  for (size_t i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

static void w_tuple(pk_buf *b, int n, const int64_t *v) {
  if (n == 0) { pk_w_op(b, ')'); return; }
  if (n > 3) pk_w_op(b, '(');
  for (int i = 0; i < n; i++) pk_w_int(b, v[i]);
  pk_w_op(b, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
}

/* the pickle of tensor t (usable, on the CPU), up to its memo PUT */
static void write_tensor(saver *s, const lt_tensor *t) {
  pk_buf *b = &s->c->b;
  /* the storage key: one per storage, in first-encounter order */
  int64_t sk = pm_get(&s->c->stmap, t->storage);
  size_t key;
  if (sk >= 0) {
    key = (size_t)sk;
    if (s->c->st[key].dt != t->dtype)
      serr(s, "cannot save tensors that view the same storage as different types (%s and %s)",
           lt_dtypes[s->c->st[key].dt].name, lt_dtypes[t->dtype].name);
  } else {
    svctx *c = s->c;
    if (c->nst == c->capst) {
      size_t nc = c->capst ? c->capst * 2 : 16;
      svst *ns = realloc(c->st, nc * sizeof *ns);
      if (!ns) serr(s, "out of memory");
      c->st = ns; c->capst = nc;
    }
    if (c->nst >= UINT32_MAX) serr(s, "too many storages");
    key = c->nst++;
    c->st[key].s = t->storage;
    c->st[key].dt = t->dtype;
    if (pm_put(&c->stmap, t->storage, (uint32_t)key)) serr(s, "out of memory");
  }
  /* opts.cast: a floating tensor is written as that dtype; its storage is
     converted record by record when the archive is written */
  lt_dtype out = s->cast >= 0 && lt_dtypes[t->dtype].kind == LT_KIND_FLOAT ? (lt_dtype)s->cast : t->dtype;
  s->c->st[key].out = out;
  /* dtypes with no legacy storage class (torch.storage._new_dtypes: float8,
     uint16/32/64) go as PyTorch >= 2.1/2.3 writes them: _rebuild_tensor_v3
     over an untyped storage, the dtype a global */
  int fp8 = out == LT_FLOAT8_E4M3FN || out == LT_FLOAT8_E5M2 || lt_is_wide_unsigned(out);
  /* PyTorch lets only floating and complex tensors require grad */
  int param = t->requires_grad && (lt_dtypes[out].kind == LT_KIND_FLOAT || lt_dtypes[out].kind == LT_KIND_COMPLEX);
  size_t isz = lt_dtypes[t->dtype].size;
  int64_t numel = (int64_t)(t->storage->nbytes / isz);
  char keys[32];
  keys[utoa(keys, key)] = 0;
  if (param) w_memo_global(s, M_PARAM, "torch._utils", "_rebuild_parameter");
  if (fp8) w_memo_global(s, M_V3, "torch._utils", "_rebuild_tensor_v3");
  else w_memo_global(s, M_V2, "torch._utils", "_rebuild_tensor_v2");
  pk_w_op(b, '(');
  pk_w_op(b, '(');
  w_memo_global(s, M_STORAGE_STR, NULL, "storage");
  if (fp8) w_memo_global(s, M_UNTYPED, "torch.storage", "UntypedStorage");
  else if (s->gmemo[M_CLASS + out]) pk_w_get(b, s->gmemo[M_CLASS + out] - 1);   /* no lookup of the name */
  else w_memo_global(s, M_CLASS + out, "torch", pk_storage_class(out));
  pk_w_str(b, keys, strlen(keys));
  w_memo_global(s, M_CPU, NULL, "cpu");
  pk_w_int(b, fp8 ? numel * (int64_t)lt_dtypes[out].size : numel);
  pk_w_op(b, 't');
  pk_w_op(b, 'Q');
  pk_w_int(b, t->offset);
  w_tuple(b, t->ndim, t->shape);
  w_tuple(b, t->ndim, t->stride);
  pk_w_op(b, 0x89);
  w_memo_global(s, M_ODICT, "collections", "OrderedDict");
  pk_w_op(b, ')');
  pk_w_op(b, 'R');
  if (fp8) w_memo_global(s, M_DTYPE + out, "torch", lt_dtypes[out].name);
  pk_w_op(b, 't');
  pk_w_op(b, 'R');
  if (param) {
    pk_w_op(b, 0x88);
    w_memo_global(s, M_ODICT, "collections", "OrderedDict");
    pk_w_op(b, ')');
    pk_w_op(b, 'R');
    pk_w_op(b, 0x87);
    pk_w_op(b, 'R');
  }
}

static void save_tensor(saver *s, int idx, lt_tensor *t) {
  pk_buf *b = &s->c->b;
  t = lt_usable_meta(s->L, t);
  if (t->storage->device != LT_CPU) serr(s, "cannot save a %s tensor: move it to the CPU first", "cuda");
  /* memo: the same tensor twice is one Python object */
  int64_t m = pm_get(&s->c->memo, t);
  if (m >= 0) { pk_w_get(b, (uint32_t)m); return; }
  write_tensor(s, t);
  memo_put(s, idx, pk_w_put(b));
}

/* A dict of a load whose tensors are still lazy entries (lazy_index has
   not made them: "A dict's tensors are made on first access" above) is
   written from the entries: a save of a loaded state dict makes no tensor
   objects nor key strings (a load then save of 20,000 tensors made 20,000
   of each, most of the save's time). The bytes are those of the same dict
   with every tensor made. */

/* the lazy block behind an odict's data table at idx, or NULL */
static lazy_blk *lazy_of(lua_State *L, int idx) {
  lazy_blk *b = NULL;
  if (!lua_getmetatable(L, idx)) return NULL;
  if (lua_getfield(L, -1, "__index") == LUA_TFUNCTION && lua_tocfunction(L, -1) == lazy_index &&
      lua_getupvalue(L, -1, 1)) {
    b = luaL_testudata(L, -1, "ltorch.lazy_tensors");
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return b && b->mem ? b : NULL;
}

/* the key's string (valid UTF-8) or bytes, as save_value writes a Lua string */
static void write_key_bytes(pk_buf *b, const char *p, size_t n) {
  if (lt_utf8_valid(p, n)) pk_w_str(b, p, n); else pk_w_bytes(b, p, n);
}

/* entry e of block lb (not yet made) as the tensor lazy_index would make */
static void save_lazy(saver *s, lazy_blk *lb, const lazy_ent *e) {
  lt_tensor t;
  if (!(t.storage = lazy_storage(lb, e))) serr(s, "out of memory");
  t.dtype = (lt_dtype)e->dtype;
  t.ndim = e->ndim;
  t.requires_grad = e->requires_grad;
  t.offset = e->offset;
  const int64_t *d = lb->dims + e->dims;
  memcpy(t.shape, d, (size_t)e->ndim * sizeof *d);
  memcpy(t.stride, d + e->ndim, (size_t)e->ndim * sizeof *d);
  lt_usable_meta(s->L, &t);
  write_tensor(s, &t);
  pk_w_put(&s->c->b);   /* the memo slot a made tensor takes: the same bytes */
}

static void save_key(saver *s, int idx) {
  lua_State *L = s->L;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN || lua_rawequal(L, idx, s->null)) {
    save_value(s, idx, 0);
    return;
  }
  serr(s, "cannot save a dict key of type %s", luaL_typename(L, idx));
}

/* is the table at idx a list: keys exactly 1..n (n >= 1) */
static int is_list(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) { lua_pop(L, 1); return 0; }
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1 || k > n) { lua_pop(L, 1); return 0; }
    count++;
  }
  return n > 0 && count == n;
}

/* push the list opts.ordered_keys(t) of the table at idx; its stack index */
static int ordered_keys(saver *s, int idx) {
  lua_State *L = s->L;
  lua_pushvalue(L, s->ordered_keys);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1)) serr(s, "ordered_keys returned a %s, not a list", luaL_typename(L, -1));
  return lua_gettop(L);
}

/* the entries of lazy block lb in order, as the dict's items (its key
   list not made yet: it is the block's entries, each made one in data) */
static void save_lazy_items(saver *s, lazy_blk *lb, int data, int depth) {
  lua_State *L = s->L;
  pk_buf *b = &s->c->b;
  int lv = s->nlev;
  size_t n = lb->n;
  for (size_t i = 0; i < n; i++) {
    if (i % 1000 == 0) pk_w_op(b, '(');
    const lazy_ent *e = &lb->e[i];
    const char *k = lb->names + e->key;
    s->lev[lv].kidx = 0;
    s->lev[lv].ks = k;
    s->lev[lv].kl = e->klen;
    s->nlev = lv + 1;
    write_key_bytes(b, k, e->klen);
    if (!e->done) save_lazy(s, lb, e);
    else {
      lua_pushlstring(L, k, e->klen);
      lua_rawget(L, data);    /* a made entry's value was stored by rawset */
      save_value(s, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    s->lev[lv].ks = NULL;
    s->nlev = lv;
    if ((i + 1) % 1000 == 0 || i + 1 == n) pk_w_op(b, 'u');
  }
}

static void save_table(saver *s, int idx, int depth) {
  lua_State *L = s->L;
  pk_buf *b = &s->c->b;
  int64_t m = pm_get(&s->c->memo, lua_topointer(L, idx));
  if (m >= 0) { pk_w_get(b, (uint32_t)m); return; }
  /* an odict: its key list (or the function making it) and data table */
  int top = lua_gettop(L);
  lua_pushvalue(L, s->odict_parts);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 2);
  int keys = top + 1, data = top + 2;
  int od = lua_istable(L, data);
  int lv = s->nlev;
  if (od) {
    w_memo_global(s, M_ODICT, "collections", "OrderedDict");
    pk_w_op(b, ')');
    pk_w_op(b, 'R');
  } else if (is_list(L, idx)) {
    lua_settop(L, top);
    pk_w_op(b, ']');
    memo_put(s, idx, pk_w_put(b));
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
      if ((i - 1) % 1000 == 0) pk_w_op(b, '(');
      lua_rawgeti(L, idx, i);
      s->lev[lv].kidx = 0;
      s->lev[lv].li = i;
      s->nlev = lv + 1;
      save_value(s, lua_gettop(L), depth + 1);
      s->nlev = lv;
      lua_pop(L, 1);
      if (i % 1000 == 0 || i == n) pk_w_op(b, 'e');
    }
    return;
  } else {
    pk_w_op(b, '}');
  }
  memo_put(s, idx, pk_w_put(b));
  lazy_blk *lb = od ? lazy_of(L, data) : NULL;
  if (lb && lua_tocfunction(L, keys) == lazy_keys && lua_getupvalue(L, keys, 1)) {
    int same = lua_touserdata(L, -1) == (void *)lb;
    lua_pop(L, 1);
    if (same) {
      save_lazy_items(s, lb, data, depth);
      lua_settop(L, top);
      return;
    }
  }
  /* the keys in order (odict.ordered_keys: an odict's insertion order; a
     plain table's 1..#t, then the other keys by type name, then value), not
     next()'s order, which differs between equal tables and processes */
  if (!od) data = idx;
  if (!od || !lua_istable(L, keys)) keys = ordered_keys(s, idx);
  lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
  for (lua_Integer i = 1; i <= nk; i++) {
    if ((i - 1) % 1000 == 0) pk_w_op(b, '(');
    lua_rawgeti(L, keys, i);
    int k = lua_gettop(L);
    s->lev[lv].kidx = k;
    s->nlev = lv + 1;
    save_key(s, k);
    lua_pushvalue(L, k);
    if (lua_rawget(L, data) == LUA_TNIL && od) {
      /* an odict's value not in its data table: a lazy entry, or what the
         data table's __index gives */
      const lazy_ent *e = NULL;
      if (lb && lua_type(L, k) == LUA_TSTRING) {
        size_t kl;
        const char *ks = lua_tolstring(L, k, &kl);
        uint32_t x = *lazy_slot(lb, ks, kl);
        if (x && !lb->e[x - 1].done) e = &lb->e[x - 1];
      }
      lua_pop(L, 1);
      if (e) save_lazy(s, lb, e);
      else {
        lua_pushvalue(L, k);
        lua_gettable(L, data);
      }
    }
    if (lua_gettop(L) > k) save_value(s, lua_gettop(L), depth + 1);
    s->nlev = lv;
    lua_settop(L, k - 1);
    if (i % 1000 == 0 || i == nk) pk_w_op(b, 'u');
  }
  lua_settop(L, top);
}

static void save_value(saver *s, int idx, int depth) {
  lua_State *L = s->L;
  pk_buf *b = &s->c->b;
  if (depth > PK_MAX_DEPTH) serr(s, "nesting exceeds the limit of %d (a cycle?)", PK_MAX_DEPTH);
  luaL_checkstack(L, 10, "nesting");
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: pk_w_op(b, lua_toboolean(L, idx) ? 0x88 : 0x89); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) pk_w_int(b, (int64_t)lua_tointeger(L, idx));
      else pk_w_float(b, (double)lua_tonumber(L, idx));
      return;
    case LUA_TSTRING: {
      size_t n;
      const char *p = lua_tolstring(L, idx, &n);
      if (n > UINT32_MAX) serr(s, "string of %zu bytes is too long", n);
      if (lt_utf8_valid(p, n)) pk_w_str(b, p, n); else pk_w_bytes(b, p, n);
      return;
    }
    case LUA_TTABLE:
      if (lua_rawequal(L, idx, s->null)) { pk_w_op(b, 'N'); return; }
      save_table(s, idx, depth);
      return;
    case LUA_TUSERDATA:
      if (lua_getmetatable(L, idx)) {
        const void *mt = lua_topointer(L, -1);
        lua_pop(L, 1);
        if (mt == s->tensor_mt) {
          lt_tensor *t = lua_touserdata(L, idx);
          if (!t->storage) serr(s, "attempt to use a freed tensor");
          save_tensor(s, idx, t);
          return;
        }
      }
      /* fallthrough */
    default:
      serr(s, "cannot save a value of type %s", luaL_typename(L, idx));
  }
}

/* Write storage v as the record name through rawio's cast stream (lt_cast:
   as it is, or cast to v->out chunk by chunk; never a whole cast copy), its
   crc computed as it goes. A deferred storage is read first; with release,
   the pages of a mapped one are dropped behind the writer and a deferred
   one's bytes freed after. Frees what it allocates. 0 ok; -1 with err (or
   the progress callback failed: pg->failed). */
static int write_storage(pz_writer *w, const char *name, const svst *v, int release, lt_progress *pg,
                         char *err) {
  if (lt_storage_fill(v->s, err)) return -1;
  lt_tensor t;
  lt_storage_tensor(&t, v->s, v->dt);
  /* memory of this process: its crc may be computed beside the write (a
     mapping's pages are read by the writing thread alone, mapguard.c) */
  w->crc_thread = !v->s->mapped;
  if (!release && !pg->fn && v->out == v->dt) {
    /* nothing listens and nothing is cast: the bytes in one piece */
    size_t n = v->s->nbytes;
    int rc1 = pz_record_begin(w, name, (uint64_t)n, err);
    if (!rc1 && n) rc1 = pz_record_data(w, lt_data(&t), n, err);
    return rc1 ? rc1 : pz_record_end(w, err);
  }
  lt_cast cs;
  int rc = lt_cast_init(&cs, &t, v->out, release, NULL, 0, err);
  if (!rc) rc = pz_record_begin(w, name, (uint64_t)t.shape[0] * lt_dtypes[v->out].size, err);
  const char *p;
  size_t k;
  while (!rc && (k = lt_cast_next(&cs, &p))) {
    rc = pz_record_data(w, p, k, err);
    if (!rc && lt_progress_step(pg, k)) rc = -1;
  }
  if (!rc) rc = pz_record_end(w, err);
  lt_cast_free(&cs);
  if (release) lt_storage_evict(v->s);
  return rc;
}

/* one record "<folder>/<nm>" of n bytes at p; raises on failure */
static void write_record(svctx *c, lua_State *L, const char *folder, const char *nm, const void *p,
                         uint64_t n) {
  char err[LT_MSG], name[2 * PZ_MAX_NAME + 64];
  snprintf(name, sizeof name, "%s/%s", folder, nm);
  if (pz_write_entry(&c->w, name, p, n, NULL, NULL, err)) raise(L, "%s", err);
}

/* c10::hash_combine (c10/util/hash.h) */
static uint64_t hash_combine(uint64_t seed, uint64_t value) {
  return seed ^ (value + 0x9e3779b9u + (seed << 6) + (seed >> 2));
}

/* the record .data/serialization_id, as PyTorch 2.1+ writes it last
   (caffe2/serialize/inline_container.cc writeSerializationId): 20 decimal
   digits of a hash of the record names, then 20 of the crc32s of the records
   written with a data descriptor (the non-empty ones), folded in write order
   with c10::hash_combine. PyTorch hashes the names with libstdc++'s
   std::hash in the iteration order of an unordered_set, which cannot be
   reproduced; ltorch sums mixed FNV-1a hashes of the names (without the
   folder): an order-free fold, where sorting 20,000 names was a tenth of a
   save of 20,000 tensors. No reader checks the id: it names one save. */
static void write_serialization_id(svctx *c, lua_State *L, const char *folder) {
  size_t n = c->w.n, fl = strlen(folder) + 1;
  uint64_t crc = 0, h = 0;
  for (size_t i = 0; i < n; i++) {
    const pz_wentry *e = &c->w.entries[i];
    const char *name = pz_wentry_name(&c->w, e);
    if (e->name_len >= fl) name += fl;
    if (e->size) crc = hash_combine(crc, e->crc);
    uint64_t f = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) f = (f ^ *p) * 0x100000001b3u;
    f ^= f >> 33; f *= 0xff51afd7ed558ccdu; f ^= f >> 33;   /* mixed: all 64 bits feed the sum */
    h += f;
  }
  char id[48];
  snprintf(id, sizeof id, "%020llu%020llu", (unsigned long long)h, (unsigned long long)crc);
  write_record(c, L, folder, ".data/serialization_id", id, 40);
}

/* the archive's records, in torch.save's order: data.pkl, byteorder, the
   storages (data/0, ...: progress and opts.release), the extra records
   (in ordered_keys' order, names sorted, as the dicts), version,
   .data/serialization_id (PyTorch 2.1-2.6's order). Raises on failure; the
   svctx box closes the file. */
static void write_records(saver *s, const char *folder, int f_progress, int f_extra, int release) {
  lua_State *L = s->L;
  svctx *c = s->c;
  char err[LT_MSG], name[PZ_MAX_NAME + 64];
  uint64_t total = 0;
  for (size_t i = 0; i < c->nst; i++) total += (c->st[i].s->nbytes / lt_dtypes[c->st[i].dt].size) * lt_dtypes[c->st[i].out].size;
  lt_progress pg;
  lt_progress_init(L, &pg, f_progress, total);
  write_record(c, L, folder, "data.pkl", c->b.out.p, c->b.out.n);
  write_record(c, L, folder, "byteorder", "little", 6);
  int pre = snprintf(name, sizeof name, "%s/data/", folder);
  if (pre < 0 || (size_t)pre + 24 > sizeof name) raise(L, "bad entry name");
  for (size_t i = 0; i < c->nst; i++) {
    name[(size_t)pre + utoa(name + pre, i)] = 0;
    if (write_storage(&c->w, name, &c->st[i], release, &pg, err)) {
      lt_progress_check(&pg);
      raise(L, "%s", err);
    }
  }
  if (f_extra) {
    int ek = ordered_keys(s, f_extra);
    lua_Integer ne = (lua_Integer)lua_rawlen(L, ek);
    for (lua_Integer i = 1; i <= ne; i++) {
      lua_rawgeti(L, ek, i);
      lua_pushvalue(L, -1);
      lua_rawget(L, f_extra);
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        raise(L, "extra records must map names to strings");
      size_t n;
      const char *p = lua_tolstring(L, -1, &n);
      char rn[PZ_MAX_NAME];
      snprintf(rn, sizeof rn, ".ltorch/%s", lua_tostring(L, -2));
      write_record(c, L, folder, rn, p, n);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  write_record(c, L, folder, "version", "3\n", 2);
  write_serialization_id(c, L, folder);
}

static int l_pt_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 2);
  const char *folder = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  int opts = 4;
  lua_settop(L, 4);
  int f_null = opt_field(L, opts, "null", LUA_TNONE);
  int f_parts = opt_field(L, opts, "odict_parts", LUA_TFUNCTION);
  int f_keys = opt_field(L, opts, "ordered_keys", LUA_TFUNCTION);
  int f_progress = opt_field(L, opts, "progress", LUA_TFUNCTION);
  int f_extra = opt_field(L, opts, "extra", LUA_TTABLE);
  int cast = -1;
  lua_getfield(L, opts, "cast");
  if (!lua_isnil(L, -1)) {
    const char *cn = lua_tostring(L, -1);
    cast = cn ? lt_dtype_from_name(cn) : -1;
    if (cast < 0) return raise(L, "bad option 'dtype' (unknown dtype '%s')", cn ? cn : luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  lua_getfield(L, opts, "release");
  int release = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!f_null || !f_parts || !f_keys) luaL_error(L, "_pt_save: options 'null', 'odict_parts', 'ordered_keys' are required");
  svctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  lua_newtable(L);
  lua_pushcfunction(L, sv_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_newtable(L);
  int refs = lua_gettop(L);
  luaL_getmetatable(L, LT_TENSOR_MT);
  const void *tensor_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  saver s = {L, c, f_null, f_parts, f_keys, refs, 0, tensor_mt, cast, {0}, 0, {{0, 0, NULL, 0}}};
  /* 1. the pickle, before the file is touched */
  pk_w_op(&c->b, 0x80); pk_w_op(&c->b, 2);
  save_value(&s, 1, 0);
  pk_w_op(&c->b, '.');
  if (c->b.out.oom) return raise(L, "out of memory");
  /* 2. the archive */
  int anon;   /* an unnamed O_TMPFILE file, named path when complete (lio.c) */
  c->fd = lt_open_temp(path, 0666, &anon);   /* a new file, never through a link */
  if (c->fd < 0) return raise(L, "cannot create: %s", strerror(errno));   /* path is the temporary file: the Lua side names the file saved */
  uint64_t data = c->b.out.n;
  for (size_t i = 0; i < c->nst; i++)
    data += (c->st[i].s->nbytes / lt_dtypes[c->st[i].dt].size) * lt_dtypes[c->st[i].out].size;
  lt_preallocate(c->fd, data);   /* no more than the archive's size */
  pz_writer_init(&c->w, c->fd);
  c->winit = 1;
  write_records(&s, folder, f_progress, f_extra, release);
  char err[LT_MSG];
  if (pz_write_finish(&c->w, err)) return raise(L, "%s", err);
  if (anon && lt_link_temp(c->fd, path)) return raise(L, "cannot create: %s", strerror(errno));
  if (close(c->fd)) { c->fd = -1; return raise(L, "close failed: %s", strerror(errno)); }
  c->fd = -1;
  sv_free(c);
  return 0;
}

/* core._pickle_loads(bytes, opts) -> value: run the VM on a string (opts as
   for _pt_load: null, odict_from, unknown). Persistent ids give storages
   that were never read, so tensors are refused; for tests and inspection. */
static int l_pickle_loads(lua_State *L) {
  size_t n;
  const char *buf = luaL_checklstring(L, 1, &n);
  luaL_checktype(L, 2, LUA_TTABLE);
  ldctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->path = "pickle";
  lua_newtable(L);
  lua_pushcfunction(L, ld_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int f_null = opt_field(L, 2, "null", LUA_TNONE);
  int f_odict = opt_field(L, 2, "odict_from", LUA_TFUNCTION);
  if (!f_null || !f_odict) luaL_error(L, "_pickle_loads: options 'null' and 'odict_from' are required");
  lua_getfield(L, 2, "unknown");
  const char *unk = lua_tostring(L, -1);
  int inert = unk && !strcmp(unk, "inert");
  lua_pop(L, 1);
  c->arena = pk_arena_new();
  if (!c->arena) return luaL_error(L, "out of memory");
  char err[LT_MSG];
  if (pk_load(c->arena, (const unsigned char *)buf, n, &c->res, err)) {
    if (c->res.nunknown && !inert) unknown_error(L, c);
    return fail(L, c, "%s", err);
  }
  if (!inert && c->res.nunknown) unknown_error(L, c);
  if (mark_needed(c->res.value, 0, NULL)) return fail(L, c, "nesting exceeds the limit of %d", PK_MAX_DEPTH);
  lua_newtable(L);
  conv v = {L, c, f_null, f_odict, lua_gettop(L), 0, NULL, 0};
  push_obj(&v, c->res.value, 0);
  lua_pushinteger(L, (lua_Integer)c->res.consumed);
  return 2;
}

/* core._pt_utf8(s): is s valid UTF-8 (as the writer decides str vs bytes) */
static int l_pt_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, lt_utf8_valid(s, n));
  return 1;
}

/* core._pt_crc32(s [, crc]): the crc32 the zip records use (for tests) */
static int l_pt_crc32(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, lt_crc32((uint32_t)luaL_optinteger(L, 2, 0), s, n));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"_pt_crc32", l_pt_crc32},
  {"_pt_load", l_pt_load},
  {"_pickle_splits", l_pickle_splits},
  {"_pt_save", l_pt_save},
  {"_pt_utf8", l_pt_utf8},
  {"_pickle_loads", l_pickle_loads},
  {NULL, NULL}
};

const lt_binding lt_pt_binding = {funcs, NULL, NULL, NULL, NULL};
