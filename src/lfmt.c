/*
** lfmt.c: the Lua binding of safetensors, TorchSharp and Torch7, and the
** file handles, shapes and write options the format bindings share
** (lfmt.h; NumPy's binding is lnpy.c). Core functions (leading
** underscore, used by the format modules in lua/ltorch/formats):
**   _fopen(path) -> file handle: h:size(), h:read(off, n), h:tensor(off,
**     dtype, shape [, mmap [, widen [, swap [, what]]]]), h:close()  (mmap:
**     a view into one shared read-only-private mapping, released with the
**     last tensor, or for bytes unfit to map, read on first use)
**   _st_header(h) -> entries, meta_keys, meta_vals, data_start
**   _st_save(path, names, tensors, meta_keys, meta_vals [, wopts])
**   wopts: {dtype = cast floating tensors to it, release = drop the pages
**     of file-mapped sources once written, progress = function(done, total)}
**   _fill(tensor): read a deferred tensor's bytes now
**   _release(tensor): free a deferred tensor's bytes, drop a mapped one's pages
**   _ts_scan(h) -> {{name, dtype, shape, offset}, ...}
**   _ts_save(path, names, tensors [, wopts])
**   _ts_scan_tensor(h) -> {dtype, shape, offset}: a file of one tensor
**   _ts_scan_optim(h) -> {optimizer = class name, param_groups = {{field =
**     value}}, state = {{field = value}}}: an optimizer state, its tensors
**     as {dtype, shape, offset} (an absent conditional one nil)
**   _ts_layouts() -> {{name, options = {{field, kind}}, state = {...}}}:
**     kind "f64" | "bool" | "i64" | "tensor" | "tensor?"
**   _ts_write(path, parts [, wopts]): strings as they are, tensors as
**     TorchSharp tensor records (dtype code, rank, dims, data)
**   _t7_detect(head, size) -> whether the first bytes of a file of size
**     bytes look like Torch7's
**   _t7_scan(h [, long_size]) -> root, nodes, info: the object graph of a
**     Torch7 file (t7.c; long_size 4 or 8, nil: 8, else 4 when only that
**     parses). Values are nil, booleans, numbers (integral ones as
**     integers, -0.0 and beyond 2^63 excepted), strings and node tables;
**     nodes[i] is {kind = "table" | "object" | "tensor" | "storage" |
**     "hash" | "vec" | "function", index, at (byte offset), class, version}
**     plus: table, hash: n, pairs = {k1, v1, ...}; vec: n, items; object:
**     payload; function: tag, bytecode, upvalues; tensor: dtype, size,
**     stride, offset (0-based), storage (its node, or nil); storage: dtype,
**     count, and offset (byte of its data) and widen (-4: 4-byte longs) in a
**     binary file, or tensor (a 1-D tensor of its values) in an ascii one.
**     info: {ascii = boolean, long_size = 4 | 8}
**   _write_parts(path, parts [, wopts]): writes parts in order, strings as
**     they are and tensors' elements (a view gathered) as native bytes (the
**     Torch7 and GGUF writers lay out their headers in Lua)
** Errors are raised without the path; the Lua side prefixes it.
*/
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lt_lua.h"
#include "fmt.h"
#include "t7.h"
#include "lfmt.h"

/* raise a file error without a position prefix (the Lua side adds the
   path); text from files goes through %s only */
int fmt_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* ---- file handles ------------------------------------------------------------ */

fhandle *fmt_checkfile(lua_State *L, int i) {
  fhandle *h = luaL_checkudata(L, i, FILE_MT);
  if (h->fd < 0) fmt_error(L, "attempt to use a closed file");
  return h;
}

static int f_close(lua_State *L) {
  fhandle *h = luaL_checkudata(L, 1, FILE_MT);
  if (h->map) { lt_mapping_release(h->map); h->map = NULL; }
  lt_file_release(h->lf);
  h->lf = NULL;
  free(h->path);
  h->path = NULL;
  if (h->fd >= 0) { close(h->fd); h->fd = -1; }
  return 0;
}

/* the handle's file kept open for deferred storages */
lt_file *fmt_handle_file(lua_State *L, fhandle *h) {
  if (!h->lf && !(h->lf = lt_file_new(h->fd, h->path ? h->path : "?")))
    fmt_error(L, "cannot keep the file open: %s", strerror(errno));
  return h->lf;
}

/* push a handle on path, open for reading */
fhandle *fmt_open_handle(lua_State *L, const char *path) {
  fhandle *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->fd = -1;
  luaL_setmetatable(L, FILE_MT);
  h->path = strdup(path);
  if (!h->path) fmt_error(L, "not enough memory");
  h->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (h->fd < 0) lt_file_error(L, path, NULL, "%s", lt_errno_text(errno));
  struct stat st;
  if (fstat(h->fd, &st) != 0) lt_file_error(L, path, NULL, "%s", lt_errno_text(errno));
  if (!S_ISREG(st.st_mode))
    lt_file_error(L, path, NULL, "%s", S_ISDIR(st.st_mode) ? lt_errno_text(EISDIR) : "not a regular file");
  h->size = (uint64_t)st.st_size;
  h->remote = lt_fd_is_remote(h->fd);
  return h;
}

static int l_fopen(lua_State *L) {
  fmt_open_handle(L, luaL_checkstring(L, 1));
  return 1;
}

static int f_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)fmt_checkfile(L, 1)->size);
  return 1;
}

static int f_read(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2), n = luaL_checkinteger(L, 3);
  char err[LT_MSG];
  luaL_argcheck(L, off >= 0 && n >= 0, 2, "negative offset or length");
  if ((uint64_t)off > h->size || (uint64_t)n > h->size - (uint64_t)off)
    return fmt_error(L, "truncated: expected %I bytes at byte %I, the file has %I", n, off,
                      (lua_Integer)h->size);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)n);
  if (lt_pread_full(h->fd, p, (size_t)n, (uint64_t)off, err)) return fmt_error(L, "%s", err);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* shape from the table at idx into shape; returns the rank */
int fmt_table_shape(lua_State *L, int idx, int64_t *shape) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer nd = luaL_len(L, idx);
  luaL_argcheck(L, nd <= LT_MAX_DIMS, idx, "too many dimensions");
  for (lua_Integer i = 0; i < nd; i++) {
    lua_geti(L, idx, i + 1);
    shape[i] = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, shape[i] >= 0, idx, "negative dimension");
  }
  return (int)nd;
}

/* widen n little-endian signed 4-byte elements at the start of p (Torch7's
   4-byte longs) to int64 in place, from the end backwards */
static void widen_long4(void *p, size_t n) {
  unsigned char *b = p;
  for (size_t i = n; i-- > 0;) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) v |= (uint32_t)b[i * 4 + (size_t)k] << (8 * k);
    int64_t x = (int32_t)v;
    memcpy(b + i * 8, &x, 8);
  }
}

/* h:tensor(off, dtype, shape [, mmap [, widen [, swap [, what]]]]): the
   tensor whose bytes start at off. widen = -4 reads signed int32 elements
   as int64, copying (Torch7's 4-byte longs); swap: the data is big-endian. With mmap the tensor points into
   the mapped file when its bytes can be used as they are (aligned for the
   dtype, not swapped), and is read on first use otherwise (a deferred
   storage, named by what in errors) */
static int f_tensor(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  lt_dtype dt = lt_check_dtype(L, 3, -1);
  int64_t shape[LT_MAX_DIMS];
  int nd = fmt_table_shape(L, 4, shape);
  int use_map = lua_toboolean(L, 5);
  int widen = (int)luaL_optinteger(L, 6, 0);
  luaL_argcheck(L, widen == 0 || (widen == -4 && dt == LT_INT64), 6, "bad widening");
  if (widen) widen = 4;   /* stored bytes per element */
  size_t isz = lt_dtypes[dt].size, part = lt_part_size(dt);
  int swap = lua_toboolean(L, 7) && part > 1 ? (int)part : 0;
  const char *what = luaL_optstring(L, 8, "tensor data");
  char err[LT_MSG];
  int64_t numel = lt_shape_numel(nd, shape);
  size_t sz = widen ? (size_t)widen : isz;
  luaL_argcheck(L, !widen || !swap, 7, "widened data is little-endian");
  if (widen) use_map = 0;
  if (numel < 0 || (uint64_t)numel > (uint64_t)INT64_MAX / sz) return fmt_error(L, "shape overflows");
  uint64_t nbytes = (uint64_t)numel * sz;
  if (off < 0 || (uint64_t)off > h->size || nbytes > h->size - (uint64_t)off)
    return fmt_error(L, "truncated: expected %I bytes at byte %I, the file has %I",
                      (lua_Integer)nbytes, off, (lua_Integer)h->size);
  lt_storage *s;
  size_t align = part > 8 ? 8 : part;
  if (use_map && nbytes > 0 && !lt_may_map(h->remote, 1, swap, (uint64_t)off, align, nbytes)) {
    lt_source src = {.off = (uint64_t)off, .csize = nbytes, .usize = nbytes, .swap = swap, .what = what};
    s = lt_storage_deferred(fmt_handle_file(L, h), (size_t)nbytes, &src);
    if (!s) return fmt_error(L, "not enough memory");
  } else if (use_map && nbytes > 0) {
    if (!h->map) {
      h->map = lt_map_file(h->fd, (size_t)h->size, h->path, err);
      if (!h->map) return fmt_error(L, "%s", err);
    }
    s = lt_storage_from_mapping(h->map, (size_t)off, (size_t)nbytes);
    if (!s) return fmt_error(L, "not enough memory");
  } else {
    size_t full = (size_t)numel * isz;
    s = lt_storage_new(full, 0);
    if (!s) return fmt_error(L, "not enough memory for %I bytes", (lua_Integer)full);
    if (nbytes && lt_pread_full(h->fd, s->data, (size_t)nbytes, (uint64_t)off, err)) {
      lt_storage_release(s);
      return fmt_error(L, "%s", err);
    }
    if (widen) widen_long4(s->data, (size_t)numel);
    if (swap) lt_byteswap(s->data, full / (size_t)swap, (size_t)swap);
    nbytes = full;
  }
  lt_push_storage(L, s, dt, nd, shape, NULL, 0);
  if (!s->mapped && !s->deferred) lt_gc_account(L);
  return 1;
}

/* ---- safetensors ----------------------------------------------------------- */

typedef struct hbox { lt_st_header h; char *json; } hbox;

static int hbox_gc(lua_State *L) {
  hbox *b = lua_touserdata(L, 1);
  lt_st_free(&b->h);
  free(b->json);
  b->json = NULL;
  return 0;
}

static hbox *newhbox(lua_State *L) {
  hbox *b = lt_newbox(L, sizeof *b, "ltorch.sthdr", hbox_gc);
  return b;
}

void fmt_push_shape(lua_State *L, int nd, const int64_t *shape) {
  lua_createtable(L, nd, 0);
  for (int d = 0; d < nd; d++) {
    lua_pushinteger(L, shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
}

/* push {name =, dtype =, shape =} with room for nfields fields in all:
   the start of an entry of a scanned file's table of contents */
static void push_entry(lua_State *L, int nfields, const char *name, lt_dtype dt, int nd,
                       const int64_t *shape) {
  lua_createtable(L, 0, nfields);
  lua_pushstring(L, name); lua_setfield(L, -2, "name");
  lua_pushstring(L, lt_dtypes[dt].name); lua_setfield(L, -2, "dtype");
  fmt_push_shape(L, nd, shape); lua_setfield(L, -2, "shape");
}

static int l_st_header(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  char err[LT_MSG];
  unsigned char len8[8];
  if (h->size < 8) return fmt_error(L, "file too small for a safetensors header (%I bytes)", (lua_Integer)h->size);
  if (lt_pread_full(h->fd, len8, 8, 0, err)) return fmt_error(L, "%s", err);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= (uint64_t)len8[i] << (8 * i);
  if (n > LT_ST_MAX_HEADER)
    return fmt_error(L, "header length %I exceeds the limit of %I", (lua_Integer)(n > INT64_MAX ? INT64_MAX : n),
                      (lua_Integer)LT_ST_MAX_HEADER);
  if (n > h->size - 8)
    return fmt_error(L, "truncated: header length %I but the file has %I bytes after the length",
                      (lua_Integer)n, (lua_Integer)(h->size - 8));
  hbox *b = newhbox(L);
  b->json = malloc(n ? n : 1);
  if (!b->json) return fmt_error(L, "not enough memory");
  if (lt_pread_full(h->fd, b->json, (size_t)n, 8, err)) return fmt_error(L, "%s", err);
  if (lt_st_parse(b->json, (size_t)n, h->size - 8 - n, &b->h, err)) return fmt_error(L, "%s", err);
  free(b->json);   /* the entries own copies of what they need */
  b->json = NULL;
  lua_createtable(L, (int)b->h.n, 0);
  for (size_t i = 0; i < b->h.n; i++) {
    const lt_st_entry *e = &b->h.e[i];
    push_entry(L, 5, e->name, e->dtype, e->ndim, e->shape);
    lua_pushinteger(L, (lua_Integer)e->begin); lua_setfield(L, -2, "begin");
    lua_pushinteger(L, (lua_Integer)e->end); lua_setfield(L, -2, "end");
    if (e->unsupported) { lua_pushstring(L, e->unsupported); lua_setfield(L, -2, "unsupported"); }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, (int)b->h.nmeta, 0);
  lua_createtable(L, 0, (int)b->h.nmeta);
  for (size_t i = 0; i < b->h.nmeta; i++) {
    lua_pushstring(L, b->h.meta_key[i]);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
    lua_pushstring(L, b->h.meta_val[i]);
    lua_setfield(L, -2, b->h.meta_key[i]);
  }
  lua_pushinteger(L, (lua_Integer)(8 + n));
  /* the tables hold all of it now: the entries' memory goes at once, not at
     the box's collection */
  lt_st_free(&b->h);
  return 4;
}

/* names (strings) and tensors of two parallel lists at a and b, into
   arrays owned by GC'd userdata on the stack; returns the count */
static size_t gather_lists(lua_State *L, int a, int b, const char ***names, const lt_tensor ***ts) {
  luaL_checktype(L, a, LUA_TTABLE);
  luaL_checktype(L, b, LUA_TTABLE);
  size_t n = (size_t)luaL_len(L, a);
  luaL_argcheck(L, (size_t)luaL_len(L, b) == n, b, "names and tensors differ in length");
  *names = lua_newuserdatauv(L, (n ? n : 1) * sizeof(char *), 0);
  *ts = lua_newuserdatauv(L, (n ? n : 1) * sizeof(lt_tensor *), 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, a, (lua_Integer)i + 1);
    (*names)[i] = luaL_checkstring(L, -1);   /* anchored by the list */
    lua_pop(L, 1);
    lua_rawgeti(L, b, (lua_Integer)i + 1);
    const lt_tensor *t = lt_check_meta(L, -1);
    if (t->storage->device != LT_CPU) fmt_error(L, "tensor '%s' is on the GPU: move it to the CPU first", (*names)[i]);
    (*ts)[i] = t;
    lua_pop(L, 1);
  }
  return n;
}

/* ---- write options: {dtype =, release =, progress =} ------------------------ */

/* read the options at idx (none or nil: the defaults) into w; pushes the
   progress callback's slots on the stack, where they stay */
void fmt_read_wopts(lua_State *L, int idx, wopts *w) {
  memset(w, 0, sizeof *w);
  w->cast = -1;
  int fn = 0;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
      const char *name = lua_tostring(L, -1);
      w->cast = name ? lt_dtype_from_name(name) : -1;
      if (w->cast < 0) fmt_error(L, "bad option 'dtype' (unknown dtype '%s')", name ? name : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "release");
    w->ws.release = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "progress") == LUA_TFUNCTION) fn = lua_gettop(L);   /* stays on the stack */
    else lua_pop(L, 1);
  }
  lt_progress_init(L, &w->pg, fn, 0);
  if (fn) {
    w->ws.progress = lt_progress_step;
    w->ws.ud = &w->pg;
  }
}

/* the dtype t is written as: floating tensors cast to opts.dtype */
lt_dtype fmt_out_dtype(const wopts *w, const lt_tensor *t) {
  if (w->cast >= 0 && lt_dtypes[t->dtype].kind == LT_KIND_FLOAT) return (lt_dtype)w->cast;
  return t->dtype;
}

/* the output for the temporary file path: an unnamed O_TMPFILE file that
   finish_out names path, or path created with O_EXCL|O_NOFOLLOW (lio.c) */
int fmt_create_out(lua_State *L, const char *path, wopts *w) {
  int fd = lt_open_temp(path, 0644, &w->anon);   /* a new file, never through a link */
  if (fd < 0) fmt_error(L, "cannot create: %s", strerror(errno));   /* the Lua side names the file saved */
  return fd;
}

/* close the written file, then raise the progress callback's error (which
   stopped the write) or the write's; durability is the save's sync option
   (core._replace) */
int fmt_finish_out(lua_State *L, wopts *w, int fd, int rc, const char *err, const char *path) {
  if (rc == 0 && w->anon && lt_link_temp(fd, path)) { rc = -1; err = strerror(errno); }
  if (close(fd) != 0 && rc == 0) { rc = -1; err = strerror(errno); }
  lt_progress_check(&w->pg);
  if (rc) return fmt_error(L, "%s", err);   /* the Lua side names the file */
  return 0;
}

static int l_st_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char **names, **keys, **vals;
  const lt_tensor **ts;
  size_t n = gather_lists(L, 2, 3, &names, &ts);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  size_t nm = (size_t)luaL_len(L, 4);
  keys = lua_newuserdatauv(L, (nm ? nm : 1) * sizeof(char *), 0);
  vals = lua_newuserdatauv(L, (nm ? nm : 1) * sizeof(char *), 0);
  for (size_t i = 0; i < nm; i++) {
    lua_rawgeti(L, 4, (lua_Integer)i + 1);
    keys[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 5, keys[i]);
    if (lua_type(L, -1) != LUA_TSTRING)
      return fmt_error(L, "metadata value of '%s' must be a string, got %s", keys[i], luaL_typename(L, -1));
    vals[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  char err[LT_MSG];
  wopts w;
  fmt_read_wopts(L, 6, &w);
  lt_dtype *out = lua_newuserdatauv(L, (n ? n : 1) * sizeof *out, 0);
  for (size_t i = 0; i < n; i++) {
    out[i] = fmt_out_dtype(&w, ts[i]);
    if (!lt_st_dtype_name(out[i]))
      return fmt_error(L, "tensor '%s': dtype %s cannot be stored in safetensors (.pt can)",
                        names[i], lt_dtypes[out[i]].name);
    w.pg.total += (uint64_t)lt_numel(ts[i]) * lt_dtypes[out[i]].size;
  }
  int fd = fmt_create_out(L, path, &w);
  lt_preallocate(fd, w.pg.total);   /* the tensors' bytes: less than the file */
  int rc = lt_st_write_as(fd, n, names, ts, out, nm, keys, vals, &w.ws, err);
  fmt_finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* ---- deferred and mapped tensors ---------------------------------------------- */

/* _fill(t): read a deferred tensor's bytes now (what a first use would do) */
static int l_fill(lua_State *L) {
  lt_check(L, 1);
  return 0;
}

/* _release(t): give back the memory of a tensor from an mmap load that the
   tools have read and will not change (inspect --stats, diff): a deferred
   storage's bytes are freed, a mapped storage's whole pages dropped. A later
   use reads them from the file again. */
static int l_release(lua_State *L) {
  lt_storage *s = lt_check_meta(L, 1)->storage;
  lt_storage_evict(s);
  if (s->mapped) lt_drop_pages(s, s->data, (const char *)s->data + s->nbytes);
  return 0;
}

/* ---- TorchSharp ---------------------------------------------------------------- */

typedef struct tsbox { lt_ts_file f; } tsbox;

static int tsbox_gc(lua_State *L) {
  tsbox *b = lua_touserdata(L, 1);
  lt_ts_free(&b->f);
  return 0;
}

static int l_ts_scan(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  char err[LT_MSG];
  tsbox *b = lt_newbox(L, sizeof *b, "ltorch.tsbox", tsbox_gc);
  if (lt_ts_scan(h->fd, h->size, &b->f, err)) return fmt_error(L, "%s", err);
  lua_createtable(L, (int)b->f.n, 0);
  for (size_t i = 0; i < b->f.n; i++) {
    const lt_ts_entry *e = &b->f.e[i];
    push_entry(L, 5, e->name, e->dtype, e->ndim, e->shape);
    lua_pushinteger(L, (lua_Integer)e->data_off); lua_setfield(L, -2, "offset");
    if (e->unsupported >= 0) { lua_pushinteger(L, e->unsupported); lua_setfield(L, -2, "unsupported"); }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_ts_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char **names;
  const lt_tensor **ts;
  size_t n = gather_lists(L, 2, 3, &names, &ts);
  wopts w;
  fmt_read_wopts(L, 4, &w);
  for (size_t i = 0; i < n; i++) {
    lt_dtype dt = fmt_out_dtype(&w, ts[i]);
    if (lt_ts_code(dt) < 0)
      return fmt_error(L, "tensor '%s': dtype %s cannot be stored in TorchSharp .dat (.pt can)",
                        names[i], lt_dtypes[dt].name);
    w.pg.total += (uint64_t)lt_numel(ts[i]) * lt_dtypes[dt].size;
  }
  char err[LT_MSG];
  unsigned char hb[16 + 11 * (LT_MAX_DIMS + 2)];
  int fd = fmt_create_out(L, path, &w);
  size_t k = lt_leb128(n, hb);
  int rc = lt_write_full(fd, hb, k, err);
  for (size_t i = 0; i < n && !rc; i++) {
    const lt_tensor *t = ts[i];
    lt_dtype dt = fmt_out_dtype(&w, t);
    size_t nl = strlen(names[i]);
    k = lt_leb128(nl, hb);
    rc = lt_write_full(fd, hb, k, err);
    if (!rc) rc = lt_write_full(fd, names[i], nl, err);
    if (rc) break;
    k = lt_leb128((uint64_t)lt_ts_code(dt), hb);
    k += lt_leb128((uint64_t)t->ndim, hb + k);
    for (int d = 0; d < t->ndim; d++) k += lt_leb128((uint64_t)t->shape[d], hb + k);
    rc = lt_write_full(fd, hb, k, err);
    if (!rc) rc = lt_write_tensor_as(fd, t, dt, &w.ws, err);
  }
  fmt_finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* {dtype, shape, offset} of a tensor record */
static void ts_push_tensor(lua_State *L, const lt_ts_entry *e) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, lt_dtypes[e->dtype].name); lua_setfield(L, -2, "dtype");
  fmt_push_shape(L, e->ndim, e->shape); lua_setfield(L, -2, "shape");
  lua_pushinteger(L, (lua_Integer)e->data_off); lua_setfield(L, -2, "offset");
}

static int l_ts_scan_tensor(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  char err[LT_MSG];
  lt_ts_entry e;
  if (lt_ts_scan_tensor(h->fd, h->size, &e, err)) return fmt_error(L, "%s", err);
  ts_push_tensor(L, &e);
  return 1;
}

typedef struct tsobox { lt_ts_optim o; } tsobox;

static int tsobox_gc(lua_State *L) {
  tsobox *b = lua_touserdata(L, 1);
  lt_ts_optim_free(&b->o);
  return 0;
}

/* n records of the fields fs from v into a new list on the stack */
static const lt_ts_value *ts_push_records(lua_State *L, const lt_ts_optim *o, uint64_t n,
                                          const lt_ts_field *fs, int nf, const lt_ts_value *v) {
  lua_createtable(L, (int)n, 0);   /* n <= LT_TS_MAX_STATES */
  for (uint64_t i = 0; i < n; i++) {
    lua_createtable(L, 0, nf);
    for (int k = 0; k < nf; k++, v++) {
      switch (fs[k].kind) {
        case LT_TS_F64: lua_pushnumber(L, v->f); break;
        case LT_TS_I64: lua_pushinteger(L, (lua_Integer)v->i); break;
        case LT_TS_BOOL: lua_pushboolean(L, v->b); break;
        default:
          if (v->tensor < 0) lua_pushnil(L);
          else ts_push_tensor(L, &o->t.e[v->tensor]);
          break;
      }
      lua_setfield(L, -2, fs[k].name);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return v;
}

static int l_ts_scan_optim(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  char err[LT_MSG];
  tsobox *b = lt_newbox(L, sizeof *b, "ltorch.tsobox", tsobox_gc);
  if (lt_ts_scan_optim(h->fd, h->size, &b->o, err)) return fmt_error(L, "%s", err);
  const lt_ts_optim *o = &b->o;
  const lt_ts_layout *ly = o->layout;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ly->name); lua_setfield(L, -2, "optimizer");
  const lt_ts_value *v = ts_push_records(L, o, o->ngroups, ly->options, ly->noptions, o->v);
  lua_setfield(L, -2, "param_groups");
  ts_push_records(L, o, o->nstates, ly->state, ly->nstate, v);
  lua_setfield(L, -2, "state");
  return 1;
}

static const char *const TS_KINDS[] = {"f64", "bool", "i64", "tensor", "tensor?"};

static void ts_push_fields(lua_State *L, const lt_ts_field *fs, int n) {
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, fs[k].name); lua_rawseti(L, -2, 1);
    lua_pushstring(L, TS_KINDS[fs[k].kind]); lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, k + 1);
  }
}

static int l_ts_layouts(lua_State *L) {
  size_t n;
  const lt_ts_layout *ly = lt_ts_layouts(&n);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, ly[i].name); lua_setfield(L, -2, "name");
    ts_push_fields(L, ly[i].options, ly[i].noptions); lua_setfield(L, -2, "options");
    ts_push_fields(L, ly[i].state, ly[i].nstate); lua_setfield(L, -2, "state");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* _ts_write(path, parts [, wopts]): the parts writer (below) with each
   tensor as a TorchSharp tensor record (dtype code, rank, dims, bytes) */
static int write_parts(lua_State *L, int ts_records);
static int l_ts_write(lua_State *L) { return write_parts(L, 1); }

/* ---- Torch7 ------------------------------------------------------------------------ */

typedef struct t7box { lt_t7_file f; } t7box;

static int t7box_gc(lua_State *L) {
  t7box *b = lua_touserdata(L, 1);
  lt_t7_free(&b->f);
  return 0;
}

static void t7_push_value(lua_State *L, const lt_t7_file *f, const lt_t7_value *v, int nodes) {
  switch (v->kind) {
    case LT_T7_NUMBER: {
      double x = v->num;
      /* integral doubles are Lua integers, as Torch7 under Lua 5.3 wrote them */
      if (x == floor(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0 &&
          !(x == 0 && signbit(x)))
        lua_pushinteger(L, (lua_Integer)x);
      else
        lua_pushnumber(L, x);
      break;
    }
    case LT_T7_STRING: lua_pushlstring(L, f->pool.p + v->s.off, (size_t)v->s.len); break;
    case LT_T7_BOOLEAN: lua_pushboolean(L, v->b); break;
    case LT_T7_NODE: lua_rawgeti(L, nodes, (lua_Integer)v->node + 1); break;
    default: lua_pushnil(L); break;
  }
}

static void t7_push_ints(lua_State *L, const int64_t *x, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)x[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static const char *const T7_KINDS[] = {"table", "object", "tensor", "storage", "hash", "vec", "function"};

/* node i's fields into the table on top */
static void t7_fill(lua_State *L, const lt_t7_file *f, size_t i, int nodes) {
  const lt_t7_node *nd = &f->nodes[i];
  lua_pushstring(L, T7_KINDS[nd->kind]); lua_setfield(L, -2, "kind");
  lua_pushinteger(L, nd->index); lua_setfield(L, -2, "index");
  lua_pushinteger(L, (lua_Integer)nd->at); lua_setfield(L, -2, "at");
  if (nd->kind != LT_T7_TABLE && nd->kind != LT_T7_FUNCTION) {
    lua_pushlstring(L, f->pool.p + nd->name, (size_t)nd->name_len); lua_setfield(L, -2, "class");
    lua_pushnumber(L, nd->version); lua_setfield(L, -2, "version");
  }
  switch (nd->kind) {
    case LT_T7_TABLE: case LT_T7_HASH: case LT_T7_VEC: {
      size_t k = nd->kind == LT_T7_VEC ? nd->n : 2 * nd->n;
      lua_pushinteger(L, (lua_Integer)nd->n); lua_setfield(L, -2, "n");
      lua_createtable(L, (int)k, 0);
      for (size_t j = 0; j < k; j++) {
        t7_push_value(L, f, &f->items[nd->first + j], nodes);
        lua_rawseti(L, -2, (lua_Integer)j + 1);
      }
      lua_setfield(L, -2, nd->kind == LT_T7_VEC ? "items" : "pairs");
      break;
    }
    case LT_T7_OBJECT:
      t7_push_value(L, f, &f->items[nd->first], nodes); lua_setfield(L, -2, "payload");
      break;
    case LT_T7_FUNCTION:
      lua_pushinteger(L, nd->tag); lua_setfield(L, -2, "tag");
      lua_pushlstring(L, f->pool.p + nd->name, (size_t)nd->name_len); lua_setfield(L, -2, "bytecode");
      t7_push_value(L, f, &f->items[nd->first], nodes); lua_setfield(L, -2, "upvalues");
      break;
    case LT_T7_TENSOR:
      lua_pushstring(L, lt_dtypes[nd->dtype].name); lua_setfield(L, -2, "dtype");
      {
        const int64_t *d = nd->ndim ? f->dims + nd->first_dim : NULL;   /* no dims: none allocated */
        t7_push_ints(L, d, nd->ndim); lua_setfield(L, -2, "size");
        t7_push_ints(L, d ? d + nd->ndim : NULL, nd->ndim); lua_setfield(L, -2, "stride");
      }
      lua_pushinteger(L, (lua_Integer)nd->offset); lua_setfield(L, -2, "offset");
      if (nd->storage != LT_T7_NONE) {
        lua_rawgeti(L, nodes, (lua_Integer)nd->storage + 1);
        lua_setfield(L, -2, "storage");
      }
      break;
    case LT_T7_STORAGE: {
      lt_dtype dt = (lt_dtype)nd->dtype;
      lua_pushstring(L, lt_dtypes[dt].name); lua_setfield(L, -2, "dtype");
      lua_pushinteger(L, (lua_Integer)nd->count); lua_setfield(L, -2, "count");
      if (f->ascii) {
        int64_t shape[1] = {nd->count};
        lt_tensor *t = lt_push_new(L, dt, 1, shape, 0);
        if (nd->count) memcpy(lt_data(t), f->pool.p + nd->data, (size_t)nd->count * lt_dtypes[dt].size);
        lua_setfield(L, -2, "tensor");
      } else {
        lua_pushinteger(L, (lua_Integer)nd->data); lua_setfield(L, -2, "offset");
        /* 4-byte longs: signed int32 read as int64 (h:tensor's widen -4) */
        if ((size_t)nd->esize != lt_dtypes[dt].size) { lua_pushinteger(L, -nd->esize); lua_setfield(L, -2, "widen"); }
      }
      break;
    }
    default: break;
  }
}

const unsigned char *lt_fmt_map(lua_State *L, int idx, size_t *len) {
  fhandle *h = fmt_checkfile(L, idx);
  char err[LT_MSG];
  if (!h->map && h->size > 0) {
    h->map = lt_map_file(h->fd, (size_t)h->size, h->path, err);
    if (!h->map) fmt_error(L, "%s", err);
  }
  *len = (size_t)h->size;
  return h->map ? h->map->base : (const unsigned char *)"";
}

static int l_t7_detect(lua_State *L) {
  size_t n;
  const char *head = luaL_checklstring(L, 1, &n);
  lua_Integer size = luaL_checkinteger(L, 2);
  int ascii;
  lua_pushboolean(L, size >= 0 && lt_t7_detect((const unsigned char *)head, n, (uint64_t)size, &ascii));
  return 1;
}

static int l_t7_scan(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
  int force = (int)luaL_optinteger(L, 2, 0);
  char err[LT_MSG], err4[LT_MSG];
  size_t len;
  const unsigned char *buf = lt_fmt_map(L, 1, &len);
  int ascii = 0;
  if (!lt_t7_detect(buf, len < 64 ? len : 64, h->size, &ascii))
    return fmt_error(L, "not a Torch7 file");
  t7box *b = lt_newbox(L, sizeof *b, "ltorch.t7box", t7box_gc);
  int lsz = force ? force : 8;
  if (lt_t7_parse(buf, len, lsz, ascii, &b->f, err)) {
    /* 4-byte longs (Windows' Torch7) when the file parses only so */
    if (force || ascii || lt_t7_parse(buf, len, 4, 0, &b->f, err4)) return fmt_error(L, "%s", err);
  }
  const lt_t7_file *f = &b->f;
  lua_createtable(L, (int)f->nnodes, 0);
  int nodes = lua_gettop(L);
  for (size_t i = 0; i < f->nnodes; i++) {
    lua_createtable(L, 0, 8);
    lua_rawseti(L, nodes, (lua_Integer)i + 1);
  }
  for (size_t i = 0; i < f->nnodes; i++) {
    lua_rawgeti(L, nodes, (lua_Integer)i + 1);
    t7_fill(L, f, i, nodes);
    lua_pop(L, 1);
  }
  t7_push_value(L, f, &f->root, nodes);
  lua_pushvalue(L, nodes);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, f->ascii); lua_setfield(L, -2, "ascii");
  lua_pushinteger(L, f->long_size); lua_setfield(L, -2, "long_size");
  return 3;
}

/* parts in order: strings as they are, tensors' elements (a view gathered)
   as native bytes, each preceded by its TorchSharp record header when
   ts_records (the floating ones then cast to wopts.dtype) */
static int write_parts(lua_State *L, int ts_records) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)luaL_len(L, 2);
  wopts w;
  fmt_read_wopts(L, 3, &w);
  for (size_t i = 0; i < n; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i + 1) != LUA_TSTRING) {
      const lt_tensor *t = ts_records ? lt_check_meta(L, -1) : lt_check(L, -1);
      lt_dtype dt = ts_records ? fmt_out_dtype(&w, t) : t->dtype;
      if (ts_records) {
        if (t->storage->device != LT_CPU) return fmt_error(L, "a tensor is on the GPU: move it to the CPU first");
        if (lt_ts_code(dt) < 0)
          return fmt_error(L, "dtype %s cannot be stored in TorchSharp .dat (.pt can)", lt_dtypes[dt].name);
      }
      w.pg.total += (uint64_t)lt_numel(t) * lt_dtypes[dt].size;
    }
    lua_pop(L, 1);
  }
  char err[LT_MSG] = "";
  unsigned char hb[11 * (LT_MAX_DIMS + 2)];
  int fd = fmt_create_out(L, path, &w);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i + 1) == LUA_TSTRING) {
      size_t k;
      const char *p = lua_tolstring(L, -1, &k);
      rc = lt_write_full(fd, p, k, err);
    } else {
      const lt_tensor *t = lt_check_meta(L, -1);   /* checked above */
      lt_dtype dt = ts_records ? fmt_out_dtype(&w, t) : t->dtype;
      if (ts_records) {
        size_t k = lt_leb128((uint64_t)lt_ts_code(dt), hb);
        k += lt_leb128((uint64_t)t->ndim, hb + k);
        for (int d = 0; d < t->ndim; d++) k += lt_leb128((uint64_t)t->shape[d], hb + k);
        rc = lt_write_full(fd, hb, k, err);
      }
      if (!rc) rc = lt_write_tensor_as(fd, t, dt, &w.ws, err);
    }
    lua_pop(L, 1);
  }
  fmt_finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* _write_parts(path, parts [, wopts]) (the Torch7 and GGUF writers) */
static int l_write_parts(lua_State *L) { return write_parts(L, 0); }

/* ---- registration ------------------------------------------------------------ */

static const luaL_Reg file_methods[] = {
  {"size", f_size}, {"read", f_read}, {"tensor", f_tensor}, {"close", f_close},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"_fopen", l_fopen}, {"_st_header", l_st_header}, {"_st_save", l_st_save},
  {"_fill", l_fill}, {"_release", l_release},
  {"_ts_scan", l_ts_scan}, {"_ts_save", l_ts_save}, {"_ts_scan_tensor", l_ts_scan_tensor},
  {"_ts_scan_optim", l_ts_scan_optim}, {"_ts_layouts", l_ts_layouts}, {"_ts_write", l_ts_write},
  {"_t7_detect", l_t7_detect}, {"_t7_scan", l_t7_scan}, {"_write_parts", l_write_parts},
  {NULL, NULL}
};

/* the metatable of the file handles of _fopen */
static void open_file_meta(lua_State *L) {
  if (luaL_newmetatable(L, FILE_MT)) {
    luaL_newlib(L, file_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, f_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, f_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

const lt_binding lt_fmt_binding = {funcs, NULL, NULL, NULL, open_file_meta};
