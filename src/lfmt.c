/*
** lfmt.c: the Lua binding of safetensors, NumPy (.npy, .npz), TorchSharp
** and Torch7. Core functions (leading underscore, used by
** the format modules in lua/ltorch/formats):
**   _fopen(path) -> file handle: h:size(), h:read(off, n), h:tensor(off,
**     dtype, shape [, mmap [, widen [, swap [, what]]]]), h:close()  (mmap:
**     a view into one shared read-only-private mapping, released with the
**     last tensor, or for bytes unfit to map, read on first use)
**   _st_header(h) -> entries, meta_keys, meta_vals, data_start
**   _st_save(path, names, tensors, meta_keys, meta_vals [, wopts])
**   _npy_header(h) -> {dtype, shape, fortran, big_endian, data_offset, version}
**   _npy_save(path, tensor [, wopts])
**   wopts: {dtype = cast floating tensors to it, release = drop the pages
**     of file-mapped sources once written, progress = function(done, total)}
**   _npz_load(path, mmap [, select]) -> {{name, key, tensor, fortran}, ...}
**     (select(name) -> key or nil, before a member's header is read;
**     string/object members: {name, key, kind, ..., bytes}; tensors unread: see
**     _fill(tensor), which reads a deferred tensor's bytes now)
**   _release(tensor): free a deferred tensor's bytes, drop a mapped one's pages
**   _npz_save(path, names, values, compress [, wopts]) (values: tensors,
**     or strings: whole .npy members)
**   _npy_strings(data, offset, kind, itemsize, shape, fortran, big_endian)
**     -> flat list of the strings of a U/S array; _npy_nest(items, shape)
**     -> nested lists; _npy_pack_strings(v) -> the .npy bytes of a string
**     or nested lists of strings (as '<U<n>')
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
#include <zip.h>
#include "lt_lua.h"
#include "fmt.h"
#include "ptzip.h"
#include "t7.h"

#define FILE_MT "ltorch.fmtfile"

/* raise a file error without a position prefix (the Lua side adds the
   path); text from files goes through %s only */
static int fmt_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* ---- file handles ------------------------------------------------------------ */

typedef struct fhandle {
  int fd;                  /* -1 once closed */
  uint64_t size;
  lt_mapping *map;         /* created on the first mmap'ed tensor */
  lt_file *lf;             /* created on the first deferred tensor */
  char *path;
  int remote;              /* mirrors a remote object: nothing is mapped, all is deferred */
} fhandle;

static fhandle *checkfile(lua_State *L, int i) {
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
static lt_file *handle_file(lua_State *L, fhandle *h) {
  if (!h->lf && !(h->lf = lt_file_new(h->fd, h->path ? h->path : "?")))
    fmt_error(L, "cannot keep the file open: %s", strerror(errno));
  return h->lf;
}

/* push a handle on path, open for reading */
static fhandle *open_handle(lua_State *L, const char *path) {
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
  open_handle(L, luaL_checkstring(L, 1));
  return 1;
}

static int f_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkfile(L, 1)->size);
  return 1;
}

static int f_read(lua_State *L) {
  fhandle *h = checkfile(L, 1);
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
static int table_shape(lua_State *L, int idx, int64_t *shape) {
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
  fhandle *h = checkfile(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  lt_dtype dt = lt_check_dtype(L, 3, -1);
  int64_t shape[LT_MAX_DIMS];
  int nd = table_shape(L, 4, shape);
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
    s = lt_storage_deferred(handle_file(L, h), (size_t)nbytes, &src);
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

static void push_shape(lua_State *L, int nd, const int64_t *shape) {
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
  push_shape(L, nd, shape); lua_setfield(L, -2, "shape");
}

static int l_st_header(lua_State *L) {
  fhandle *h = checkfile(L, 1);
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

typedef struct wopts {
  int cast;                /* target of floating tensors, or -1 */
  lt_wstream ws;
  lt_progress pg;          /* opts.progress, run protected (lprogress.c) */
  char fill_err[LT_MSG];   /* a deferred source that could not be read (npz) */
  int anon;                /* the output is an unnamed O_TMPFILE file (create_out) */
} wopts;

/* read the options at idx (none or nil: the defaults) into w; pushes the
   progress callback's slots on the stack, where they stay */
static void read_wopts(lua_State *L, int idx, wopts *w) {
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
static lt_dtype out_dtype(const wopts *w, const lt_tensor *t) {
  if (w->cast >= 0 && lt_dtypes[t->dtype].kind == LT_KIND_FLOAT) return (lt_dtype)w->cast;
  return t->dtype;
}

/* the output for the temporary file path: an unnamed O_TMPFILE file that
   finish_out names path, or path created with O_EXCL|O_NOFOLLOW (lio.c) */
static int create_out(lua_State *L, const char *path, wopts *w) {
  int fd = lt_open_temp(path, 0644, &w->anon);   /* a new file, never through a link */
  if (fd < 0) fmt_error(L, "cannot create: %s", strerror(errno));   /* the Lua side names the file saved */
  return fd;
}

/* close the written file, then raise the progress callback's error (which
   stopped the write) or the write's; durability is the save's sync option
   (core._replace) */
static int finish_out(lua_State *L, wopts *w, int fd, int rc, const char *err, const char *path) {
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
  read_wopts(L, 6, &w);
  lt_dtype *out = lua_newuserdatauv(L, (n ? n : 1) * sizeof *out, 0);
  for (size_t i = 0; i < n; i++) {
    out[i] = out_dtype(&w, ts[i]);
    if (!lt_st_dtype_name(out[i]))
      return fmt_error(L, "tensor '%s': dtype %s cannot be stored in safetensors (.pt can)",
                        names[i], lt_dtypes[out[i]].name);
    w.pg.total += (uint64_t)lt_numel(ts[i]) * lt_dtypes[out[i]].size;
  }
  int fd = create_out(L, path, &w);
  lt_preallocate(fd, w.pg.total);   /* the tensors' bytes: less than the file */
  int rc = lt_st_write_as(fd, n, names, ts, out, nm, keys, vals, &w.ws, err);
  finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* ---- NumPy ---------------------------------------------------------------- */

static void push_npy_header(lua_State *L, const lt_npy_header *hd) {
  lua_createtable(L, 0, 10);
  if (hd->kind) {
    char k[2] = {(char)hd->kind, 0};
    lua_pushstring(L, k); lua_setfield(L, -2, "kind");
  } else {
    lua_pushstring(L, lt_dtypes[hd->dtype].name); lua_setfield(L, -2, "dtype");
  }
  lua_pushinteger(L, (lua_Integer)hd->itemsize); lua_setfield(L, -2, "itemsize");
  push_shape(L, hd->ndim, hd->shape); lua_setfield(L, -2, "shape");
  lua_pushboolean(L, hd->fortran); lua_setfield(L, -2, "fortran");
  lua_pushboolean(L, hd->big_endian); lua_setfield(L, -2, "big_endian");
  lua_pushinteger(L, (lua_Integer)hd->data_offset); lua_setfield(L, -2, "data_offset");
  lua_pushstring(L, hd->descr); lua_setfield(L, -2, "descr");
  lua_pushfstring(L, "%d.%d", hd->major, hd->minor); lua_setfield(L, -2, "version");
}

static int l_npy_header(lua_State *L) {
  fhandle *h = checkfile(L, 1);
  char err[LT_MSG];
  unsigned char pre[12];
  size_t need, got = h->size < 12 ? (size_t)h->size : 12;
  if (got < 10) return fmt_error(L, "truncated: %I bytes is too short for a .npy header", (lua_Integer)h->size);
  if (lt_pread_full(h->fd, pre, got, 0, err)) return fmt_error(L, "%s", err);
  if (lt_npy_preamble(pre, got, &need, err)) return fmt_error(L, "%s", err);
  if (need > h->size)
    return fmt_error(L, "truncated header: expected %I bytes, found %I", (lua_Integer)need, (lua_Integer)h->size);
  luaL_Buffer b;
  unsigned char *buf = (unsigned char *)luaL_buffinitsize(L, &b, need);
  if (lt_pread_full(h->fd, buf, need, 0, err)) return fmt_error(L, "%s", err);
  lt_npy_header hd;
  if (lt_npy_parse(buf, need, &hd, err)) return fmt_error(L, "%s", err);
  if (hd.kind == 'O' && h->size - need > LT_NPY_MAX_PICKLE)
    return fmt_error(L, "the pickle of %I bytes exceeds the limit of %I", (lua_Integer)(h->size - need),
                      (lua_Integer)LT_NPY_MAX_PICKLE);
  push_npy_header(L, &hd);
  return 1;
}

/* ---- NumPy string arrays ------------------------------------------------------ */

/* _npy_strings(data, offset, kind, itemsize, shape, fortran, big_endian) ->
   the elements of a U or S array, whose data starts at byte offset of the
   string data, as a flat list of Lua strings in C order (Fortran-order
   data gathered): U as UTF-8, S as bytes, trailing NULs dropped as NumPy
   shows them. The data must hold exactly prod(shape) * itemsize bytes;
   a U code unit that is no code point is an error naming the element. */
static int l_npy_strings(lua_State *L) {
  size_t len;
  const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 1, &len);
  lua_Integer off = luaL_checkinteger(L, 2);
  const char *kind = luaL_checkstring(L, 3);
  lua_Integer isz = luaL_checkinteger(L, 4);
  int64_t shape[LT_MAX_DIMS];
  int ndim = table_shape(L, 5, shape);
  int fortran = lua_toboolean(L, 6), big = lua_toboolean(L, 7);
  luaL_argcheck(L, off >= 0 && (size_t)off <= len, 2, "offset out of range");
  luaL_argcheck(L, isz >= 0 && isz <= (lua_Integer)LT_NPY_MAX_ITEM && (kind[0] != 'U' || isz % 4 == 0), 4,
                "bad item size");
  int64_t numel = lt_shape_numel(ndim, shape);
  if (numel < 0) return fmt_error(L, "'shape' overflows");
  uint64_t want = (uint64_t)numel * (uint64_t)isz, have = len - (size_t)off;
  if (isz && (uint64_t)numel > UINT64_MAX / (uint64_t)isz) return fmt_error(L, "'shape' overflows");
  if (want != have)
    return fmt_error(L, "expected %I bytes of data, found %I", (lua_Integer)want, (lua_Integer)have);
  if (numel > (int64_t)LT_NPY_MAX_VALUES)
    return fmt_error(L, "%I strings exceed the limit of %I", (lua_Integer)numel, (lua_Integer)LT_NPY_MAX_VALUES);
  data += off;
  /* element strides in the data, by dimension */
  int64_t stride[LT_MAX_DIMS], idx[LT_MAX_DIMS] = {0};
  int64_t acc = 1;
  for (int d = 0; d < ndim; d++) {
    int dd = fortran ? d : ndim - 1 - d;
    stride[dd] = acc;
    acc *= shape[dd] ? shape[dd] : 1;
  }
  char *tmp = kind[0] == 'U' ? lua_newuserdatauv(L, isz ? (size_t)isz : 1, 0) : NULL;
  lua_createtable(L, numel > 1 << 24 ? 1 << 24 : (int)numel, 0);
  for (int64_t i = 0; i < numel; i++) {
    int64_t at = 0;
    for (int d = 0; d < ndim; d++) at += idx[d] * stride[d];
    const unsigned char *p = data + (size_t)at * (size_t)isz;
    if (kind[0] == 'U') {
      char err[LT_MSG];
      size_t n = lt_npy_utf32_to_utf8(p, (size_t)isz / 4, big, tmp, err);
      if (n == (size_t)-1) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, "element (");
        for (int d = 0; d < ndim; d++) {
          lua_pushfstring(L, d ? ", %I" : "%I", (lua_Integer)idx[d]);
          luaL_addvalue(&b);
        }
        luaL_addstring(&b, ndim == 1 ? ",): " : "): ");
        luaL_addstring(&b, err);
        luaL_pushresult(&b);
        return lua_error(L);
      }
      lua_pushlstring(L, tmp, n);
    } else {
      size_t n = (size_t)isz;
      while (n && !p[n - 1]) n--;
      lua_pushlstring(L, (const char *)p, n);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    for (int d = ndim - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;   /* C order */
  }
  return 1;
}

/* the values nesting prod(shape) items makes: the items and the lists */
static int64_t nest_count(int ndim, const int64_t *shape) {
  int64_t total = 1, level = 1;
  for (int d = 0; d < ndim && level; d++) {
    if (shape[d] && level > INT64_MAX / shape[d]) return INT64_MAX;
    level *= shape[d];
    total = total > INT64_MAX - level ? INT64_MAX : total + level;
  }
  return total;
}

static void nest(lua_State *L, int items, int ndim, const int64_t *shape, int d, lua_Integer *next) {
  if (d == ndim) { lua_rawgeti(L, items, (*next)++); return; }
  luaL_checkstack(L, 4, "nesting");
  lua_createtable(L, shape[d] > 1 << 24 ? 1 << 24 : (int)shape[d], 0);
  for (int64_t i = 0; i < shape[d]; i++) {
    nest(L, items, ndim, shape, d + 1, next);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* _npy_nest(items, shape) -> the flat list items (C order, prod(shape) of
   them) as nested lists following shape; a 0-d shape gives items[1]. The
   lists made are bounded (LT_NPY_MAX_VALUES), whatever shape says. */
static int l_npy_nest(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int64_t shape[LT_MAX_DIMS];
  int ndim = table_shape(L, 2, shape);
  int64_t numel = lt_shape_numel(ndim, shape);
  if (numel < 0) return fmt_error(L, "'shape' overflows");
  if ((lua_Integer)numel != luaL_len(L, 1))
    return fmt_error(L, "'shape' holds %I elements, the data %I", (lua_Integer)numel, (lua_Integer)luaL_len(L, 1));
  int64_t count = nest_count(ndim, shape);
  if (count > (int64_t)LT_NPY_MAX_VALUES)
    return fmt_error(L, "'shape' makes %I lists and elements, exceeding the limit of %I",
                     (lua_Integer)(count == INT64_MAX ? LUA_MAXINTEGER : count), (lua_Integer)LT_NPY_MAX_VALUES);
  lua_Integer next = 1;
  nest(L, 1, ndim, shape, 0, &next);
  return 1;
}

/* a walk over a nested list of strings: its shape, longest string, and
   (pass 2) the strings as UTF-32LE into out */
typedef struct strwalk {
  int ndim;
  int64_t shape[LT_MAX_DIMS];
  int64_t idx[LT_MAX_DIMS];
  size_t maxchars;
  unsigned char *out;        /* pass 2: the next element's bytes */
} strwalk;

/* "[2][1]": where the walk is, 1-based as Lua indexes */
static void push_where(lua_State *L, const strwalk *w, int depth) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int d = 0; d < depth; d++) {
    lua_pushfstring(L, "[%I]", (lua_Integer)w->idx[d] + 1);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

static void walk_strings(lua_State *L, strwalk *w, int depth) {
  int t = lua_type(L, -1);
  if (depth == w->ndim) {
    if (t != LUA_TSTRING) {
      push_where(L, w, depth);
      fmt_error(L, "item %s is a %s: a string array holds strings only", lua_tostring(L, -1), luaL_typename(L, -2));
    }
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!w->out) {
      int64_t c = lt_npy_utf8_chars(s, n);
      if (c < 0) {
        push_where(L, w, depth);
        fmt_error(L, "string %s is not valid UTF-8 (NumPy's '<U' holds text)", lua_tostring(L, -1));
      }
      if ((size_t)c > w->maxchars) w->maxchars = (size_t)c;
    } else {
      lt_npy_utf8_to_utf32(s, n, w->out, w->maxchars);
      w->out += 4 * w->maxchars;
    }
    return;
  }
  if (t != LUA_TTABLE || lua_getmetatable(L, -1)) {
    if (t == LUA_TTABLE) lua_pop(L, 1);
    push_where(L, w, depth);
    fmt_error(L, "item %s is a %s, expected a list of %I (the lists of a string array have equal lengths)",
              lua_tostring(L, -1), luaL_typename(L, -2), (lua_Integer)w->shape[depth]);
  }
  luaL_checkstack(L, 6, "nesting");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1), pairs = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) { pairs++; lua_pop(L, 1); }
  if (pairs != n) {
    push_where(L, w, depth);
    fmt_error(L, "%s%s is not a list (it has keys besides 1..%I)", depth ? "item " : "the value",
              lua_tostring(L, -1), n);
  }
  if (n != w->shape[depth]) {
    push_where(L, w, depth);
    fmt_error(L, "list %s has %I items, expected %I (the lists of a string array have equal lengths)",
              lua_tostring(L, -1), n, (lua_Integer)w->shape[depth]);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    w->idx[depth] = i - 1;
    lua_rawgeti(L, -1, i);
    walk_strings(L, w, depth + 1);
    lua_pop(L, 1);
  }
}

/* _npy_pack_strings(v) -> the .npy file (header and data) of v, a string
   (a 0-d array) or nested lists of equal lengths of strings, as NumPy's
   '<U<longest>' ('<U1' at least, as np.array gives for ''); strings must be
   valid UTF-8. Errors name the item ("item [2][1] is a number: ..."). */
static int l_npy_pack_strings(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  strwalk w;
  memset(&w, 0, sizeof w);
  /* the shape: down the first items */
  lua_pushvalue(L, 1);
  while (lua_type(L, -1) == LUA_TTABLE && !lua_getmetatable(L, -1)) {
    if (w.ndim == LT_MAX_DIMS) return fmt_error(L, "a string array's rank exceeds the limit of %d", LT_MAX_DIMS);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    w.shape[w.ndim++] = n;
    if (!n) break;
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_settop(L, 1);
  if (w.ndim == 0 && lua_type(L, 1) != LUA_TSTRING)
    return fmt_error(L, "a %s is not a string array (a string, or nested lists of strings)", luaL_typename(L, 1));
  walk_strings(L, &w, 0);
  if (!w.maxchars) w.maxchars = 1;
  int64_t numel = lt_shape_numel(w.ndim, w.shape);
  if (numel < 0 || w.maxchars > LT_NPY_MAX_ITEM / 4 || (uint64_t)numel > SIZE_MAX / 4 / w.maxchars)
    return fmt_error(L, "the string array is too large");
  char descr[32], hdr[128 + LT_MAX_DIMS * 24];
  snprintf(descr, sizeof descr, "<U%zu", w.maxchars);
  size_t hn = lt_npy_format_header_descr(hdr, sizeof hdr, descr, w.ndim, w.shape);
  size_t dn = (size_t)numel * 4 * w.maxchars;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, hn + dn);
  memcpy(p, hdr, hn);
  w.out = (unsigned char *)p + hn;
  memset(w.idx, 0, sizeof w.idx);
  lua_pushvalue(L, 1);        /* the walk's value, above the buffer */
  walk_strings(L, &w, 0);     /* valid now: cannot raise */
  lua_pop(L, 1);
  luaL_pushresultsize(&b, hn + dn);
  return 1;
}

static int l_npy_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const lt_tensor *t = lt_check_meta(L, 2);
  char hdr[64 + LT_MAX_DIMS * 24 + 128], err[LT_MSG];
  wopts w;
  read_wopts(L, 3, &w);
  lt_dtype dt = out_dtype(&w, t);
  if (!lt_npy_descr(dt))
    return fmt_error(L, "dtype %s cannot be stored in .npy (.pt or safetensors can)", lt_dtypes[dt].name);
  if (t->storage->device != LT_CPU) return fmt_error(L, "the tensor is on the GPU: move it to the CPU first");
  w.pg.total = (uint64_t)lt_numel(t) * lt_dtypes[dt].size;
  size_t hn = lt_npy_format_header(hdr, sizeof hdr, dt, t->ndim, t->shape);
  int fd = create_out(L, path, &w);
  lt_preallocate(fd, w.pg.total);   /* the elements' bytes: less than the file */
  int rc = lt_write_full(fd, hdr, hn, err);
  if (!rc) rc = lt_write_tensor_as(fd, t, dt, &w.ws, err);
  finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* the release of the libzip archive being written, kept in a GC-owned box
   (lt_newptrbox) so that a raise never leaks it */
static void discard_zip(void *za) { zip_discard(za); }


/* the zip reader of an .npz in a GC-owned box */
typedef struct pzbox { pz_reader z; int open; } pzbox;

static int pzbox_gc(lua_State *L) {
  pzbox *b = lua_touserdata(L, 1);
  if (b->open) pz_close(&b->z);
  b->open = 0;
  return 0;
}

/* _npz_load(path, mmap [, select [, tensors_only]]) -> {{name, key, tensor,
   fortran}, ...}:
   the .npy members of an .npz (read with ltorch's zip reader, ptzip.c).
   select(name) -> key or nil is called with each member's name before its
   header is read: a member it drops is never parsed (its header may be
   damaged, its dtype unsupported). Numeric members are not read yet: a
   stored little-endian member whose data suits its dtype's alignment is
   mapped under mmap; every other one is a deferred storage, read
   (inflated, crc-checked, byte-swapped) on first use: a load that needs
   the bytes now fills the tensors it keeps (_fill). A string or object
   member (header kind 'U', 'S', 'O') is read whole at once, its crc
   checked, and given as {name, key, kind, itemsize, shape, fortran,
   big_endian, bytes = the member, data_offset}, or left out with
   tensors_only. */
static int l_npz_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int use_map = lua_toboolean(L, 2);
  int select = lua_isnoneornil(L, 3) ? 0 : 3;
  if (select) luaL_checktype(L, 3, LUA_TFUNCTION);
  int tensors_only = lua_toboolean(L, 4);
  fhandle *h = open_handle(L, path);
  char err[LT_MSG];
  if (h->size == 0) return fmt_error(L, "not a valid zip archive: the file is empty");
  h->map = lt_map_file(h->fd, (size_t)h->size, h->path, err);
  if (!h->map) return fmt_error(L, "%s", err);
  pzbox *b = lt_newbox(L, sizeof *b, "ltorch.pzbox", pzbox_gc);
  if (pz_open(&b->z, h->fd, h->size, h->map->base, err)) return fmt_error(L, "not a valid zip archive: %s", err);
  b->open = 1;
  lua_createtable(L, (int)b->z.n, 0);
  int out = lua_gettop(L);
  for (size_t i = 0; i < b->z.n; i++) {
    const pz_entry *e = &b->z.entries[i];
    const char *name = e->name;
    if (name[e->name_len - 1] == '/') continue;   /* directory */
    if (select) {
      lua_pushvalue(L, select);
      lua_pushstring(L, name);
      lua_call(L, 1, 1);
      if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
    } else {
      lua_pushstring(L, name);
    }
    int key = lua_gettop(L);
    unsigned char pre[12];
    size_t need;
    if (e->usize < 12 || pz_read_range(h->fd, e, 0, pre, 12, 0, NULL, NULL, err))
      return fmt_error(L, "entry '%s': truncated .npy header", name);
    if (lt_npy_preamble(pre, 12, &need, err)) return fmt_error(L, "entry '%s': %s", name, err);
    if (need > e->usize) return fmt_error(L, "entry '%s': truncated header: expected %I bytes, found %I",
                                          name, (lua_Integer)need, (lua_Integer)e->usize);
    luaL_Buffer lb;
    unsigned char *buf = (unsigned char *)luaL_buffinitsize(L, &lb, need);
    if (pz_read_range(h->fd, e, 0, buf, need, 0, NULL, NULL, err)) return fmt_error(L, "%s", err);
    lt_npy_header hd;
    if (lt_npy_parse(buf, need, &hd, err)) return fmt_error(L, "entry '%s': %s", name, err);
    lua_pop(L, 1);   /* the buffer */
    if (hd.kind && tensors_only) { lua_settop(L, key - 1); continue; }
    if (hd.kind) {
      uint64_t have = e->usize - need;
      if (hd.kind != 'O' && have != (uint64_t)lt_shape_numel(hd.ndim, hd.shape) * hd.itemsize)
        return fmt_error(L, "entry '%s': expected %I bytes of data, found %I", name,
                          (lua_Integer)((uint64_t)lt_shape_numel(hd.ndim, hd.shape) * hd.itemsize), (lua_Integer)have);
      if (hd.kind == 'O' && have > LT_NPY_MAX_PICKLE)
        return fmt_error(L, "entry '%s': the pickle of %I bytes exceeds the limit of %I", name, (lua_Integer)have,
                          (lua_Integer)LT_NPY_MAX_PICKLE);
      push_npy_header(L, &hd);
      luaL_Buffer mb;
      char *mp = luaL_buffinitsize(L, &mb, (size_t)e->usize);
      if (pz_read_range(h->fd, e, 0, mp, e->usize, 1, NULL, NULL, err)) return fmt_error(L, "%s", err);
      luaL_pushresultsize(&mb, (size_t)e->usize);
      lua_setfield(L, -2, "bytes");
      lua_pushstring(L, name);
      lua_setfield(L, -2, "name");
      lua_pushvalue(L, key);
      lua_setfield(L, -2, "key");
      lua_rawseti(L, out, (lua_Integer)luaL_len(L, out) + 1);
      lua_settop(L, key - 1);
      continue;
    }
    size_t isz = lt_dtypes[hd.dtype].size, part = lt_part_size(hd.dtype);
    uint64_t nbytes = (uint64_t)lt_shape_numel(hd.ndim, hd.shape) * isz;
    if (e->usize - need != nbytes)
      return fmt_error(L, "entry '%s': expected %I bytes of data, found %I", name, (lua_Integer)nbytes,
                        (lua_Integer)(e->usize - need));
    int64_t shape[LT_MAX_DIMS];
    for (int d = 0; d < hd.ndim; d++) shape[d] = hd.fortran ? hd.shape[hd.ndim - 1 - d] : hd.shape[d];
    uint64_t at = e->data_off + need;
    lt_storage *st;
    if (nbytes == 0) {
      st = lt_storage_new(0, 0);
    } else if (use_map && lt_may_map(h->remote, e->method == 0, hd.big_endian, at, part > 8 ? 8 : part, nbytes)) {
      st = lt_storage_from_mapping(h->map, (size_t)at, (size_t)nbytes);
    } else {
      lt_source src = {.off = e->data_off, .csize = e->csize, .usize = e->usize, .skip = need,
                       .crc = e->crc, .method = e->method, .check_crc = 1,
                       .swap = hd.big_endian && part > 1 ? (int)part : 0, .what = name};
      st = lt_storage_deferred(handle_file(L, h), (size_t)nbytes, &src);
    }
    if (!st) return fmt_error(L, "not enough memory");
    lua_createtable(L, 0, 3);
    lt_push_storage(L, st, hd.dtype, hd.ndim, shape, NULL, 0);
    lua_setfield(L, -2, "tensor");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, hd.fortran);
    lua_setfield(L, -2, "fortran");
    lua_pushvalue(L, key);
    lua_setfield(L, -2, "key");
    lua_rawseti(L, out, (lua_Integer)luaL_len(L, out) + 1);
    lua_settop(L, key - 1);
  }
  lua_settop(L, out);
  return 1;
}

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

/* One .npz member as a libzip source that produces its bytes when libzip
   writes the archive (in zip_close): the .npy header, then the tensor's
   elements through rawio's cast stream (lt_cast: gathered and converted
   chunk by chunk into one pair of bounded buffers for the whole archive,
   as libzip writes members one after another). So no member is held in
   memory whole. The tensor is anchored by the Lua list during the call. */
#define NPZ_BUF LT_STREAM_CHUNK
#define NPZ_DOSTIME 0                        /* 00:00:00 */
#define NPZ_DOSDATE ((0 << 9) | (1 << 5) | 1)  /* 1980-01-01 */
typedef struct npzsrc {
  const lt_tensor *t;
  lt_dtype to;
  wopts *w;
  char hdr[64 + LT_MAX_DIMS * 24 + 128];
  size_t hn;
  uint64_t total;          /* header + data bytes */
  size_t hpos;             /* header bytes produced */
  char *bufs;              /* 2 * NPZ_BUF bytes, shared by the members */
  lt_cast cast;            /* the elements, from ZIP_SOURCE_OPEN on */
  const char *chunk;       /* the cast stream's current chunk */
  size_t blen, bpos;
  zip_error_t error;
} npzsrc;

static zip_int64_t npz_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
  npzsrc *s = ud;
  switch (cmd) {
    case ZIP_SOURCE_OPEN:
      if (lt_storage_fill(s->t->storage, s->w->fill_err)) { zip_error_set(&s->error, ZIP_ER_READ, 0); return -1; }
      s->hpos = 0; s->blen = s->bpos = 0;
      lt_cast_init(&s->cast, s->t, s->to, s->w->ws.release, s->bufs, NPZ_BUF, NULL);   /* given buffers: cannot fail */
      return 0;
    case ZIP_SOURCE_READ: {
      char *out = data;
      zip_uint64_t got = 0;
      while (got < len) {
        if (s->hpos < s->hn) {
          size_t k = s->hn - s->hpos < len - got ? s->hn - s->hpos : (size_t)(len - got);
          memcpy(out + got, s->hdr + s->hpos, k);
          s->hpos += k; got += k;
          continue;
        }
        if (s->bpos == s->blen) {
          s->bpos = 0;
          if (!(s->blen = lt_cast_next(&s->cast, &s->chunk))) break;
        }
        size_t k = s->blen - s->bpos < len - got ? s->blen - s->bpos : (size_t)(len - got);
        memcpy(out + got, s->chunk + s->bpos, k);
        s->bpos += k; got += k;
        if (s->w->ws.progress && s->w->ws.progress(s->w->ws.ud, k)) {   /* it raised: stop the write */
          zip_error_set(&s->error, ZIP_ER_CANCELLED, 0);
          return -1;
        }
      }
      return (zip_int64_t)got;
    }
    case ZIP_SOURCE_CLOSE:
      lt_cast_free(&s->cast);
      if (s->w->ws.release) lt_storage_evict(s->t->storage);
      return 0;
    case ZIP_SOURCE_STAT: {
      if (len < sizeof(zip_stat_t)) { zip_error_set(&s->error, ZIP_ER_INVAL, 0); return -1; }
      zip_stat_t *st = data;
      zip_stat_init(st);
      st->size = s->total;
      st->valid |= ZIP_STAT_SIZE;
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data(&s->error, data, len);
    case ZIP_SOURCE_FREE:
      zip_error_fini(&s->error);
      free(s);
      return 0;
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                            ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default:
      zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

/* The archive's output for libzip: a write source over the writer's
   output file (create_out: unnamed O_TMPFILE where it can be), which
   starts empty. libzip writes its own mkstemp file beside the target and
   renames it when it owns the path, and a killed save left that file
   behind; through this source it writes straight into the file that
   finish_out names, so a killed save leaves nothing.
   libzip writes each member's local header, its data, then seeks back to
   write the header again with the crc and sizes: two writes and two seeks
   a member, 260,000 system calls for 20,000 small tensors. The source
   keeps the bytes of the file range [boff, boff + bn) in buf and its own
   position, so the headers are rewritten in memory and the file gets big
   writes; data too big for the buffer goes straight to the file (through
   lt_write_all, so a cut-short mapping fails the write as elsewhere). */
#define NPZ_WBUF ((size_t)256 << 10)
typedef struct npzout {
  int fd;
  zip_error_t error;
  uint64_t pos, end;     /* libzip's position and the file's length */
  uint64_t boff;
  size_t bn;
  unsigned char buf[NPZ_WBUF];
} npzout;

static int npz_put(int fd, uint64_t off, const void *p, size_t n) {
  if (lseek(fd, (off_t)off, SEEK_SET) < 0) return -1;
  return lt_write_all(fd, p, n);
}

static int npz_flush(npzout *o) {
  if (!o->bn) return 0;
  int rc = npz_put(o->fd, o->boff, o->buf, o->bn);
  o->bn = 0;
  return rc;
}

static int npz_write(npzout *o, const void *data, size_t len) {
  if (o->pos >= o->boff && o->pos - o->boff <= o->bn && len <= NPZ_WBUF - (o->pos - o->boff)) {
    size_t at = (size_t)(o->pos - o->boff);
    memcpy(o->buf + at, data, len);
    if (at + len > o->bn) o->bn = at + len;
  } else {
    if (npz_flush(o)) return -1;
    if (len >= NPZ_WBUF / 2) {
      if (npz_put(o->fd, o->pos, data, len)) return -1;
    } else {
      o->boff = o->pos;
      memcpy(o->buf, data, len);
      o->bn = len;
    }
  }
  o->pos += len;
  if (o->pos > o->end) o->end = o->pos;
  return 0;
}

static int npzout_gc(lua_State *L) {
  npzout *o = lua_touserdata(L, 1);
  if (o->fd >= 0) close(o->fd);
  o->fd = -1;
  return 0;
}

static zip_int64_t npzout_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
  npzout *o = ud;
  switch (cmd) {
    case ZIP_SOURCE_COMMIT_WRITE:
      if (npz_flush(o)) { zip_error_set(&o->error, ZIP_ER_WRITE, errno); return -1; }
      return 0;
    case ZIP_SOURCE_OPEN: case ZIP_SOURCE_CLOSE: case ZIP_SOURCE_FREE: case ZIP_SOURCE_REMOVE:
    case ZIP_SOURCE_BEGIN_WRITE:
    case ZIP_SOURCE_READ: case ZIP_SOURCE_SEEK: case ZIP_SOURCE_TELL:   /* nothing to read */
      return 0;
    case ZIP_SOURCE_STAT: {
      if (len < sizeof(zip_stat_t)) { zip_error_set(&o->error, ZIP_ER_INVAL, 0); return -1; }
      zip_stat_t *st = data;
      zip_stat_init(st);
      st->size = 0;
      st->valid |= ZIP_STAT_SIZE;
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_WRITE:
      if (npz_write(o, data, (size_t)len)) { zip_error_set(&o->error, ZIP_ER_WRITE, errno); return -1; }
      return (zip_int64_t)len;
    case ZIP_SOURCE_SEEK_WRITE: {
      zip_source_args_seek_t *a = ZIP_SOURCE_GET_ARGS(zip_source_args_seek_t, data, len, &o->error);
      if (!a) return -1;
      int64_t base = a->whence == SEEK_SET ? 0 : a->whence == SEEK_CUR ? (int64_t)o->pos
                   : a->whence == SEEK_END ? (int64_t)o->end : -1;
      if (base < 0 || (a->offset < 0 && base + a->offset < 0)) { zip_error_set(&o->error, ZIP_ER_SEEK, EINVAL); return -1; }
      o->pos = (uint64_t)(base + a->offset);
      return 0;
    }
    case ZIP_SOURCE_TELL_WRITE: {
      return (zip_int64_t)o->pos;
    }
    case ZIP_SOURCE_ROLLBACK_WRITE:
      o->bn = 0;
      o->pos = o->end = o->boff = 0;
      if (ftruncate(o->fd, 0) || lseek(o->fd, 0, SEEK_SET) < 0) { zip_error_set(&o->error, ZIP_ER_WRITE, errno); return -1; }
      return 0;
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data(&o->error, data, len);
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                            ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL,
                                            ZIP_SOURCE_SUPPORTS, ZIP_SOURCE_BEGIN_WRITE, ZIP_SOURCE_WRITE,
                                            ZIP_SOURCE_COMMIT_WRITE, ZIP_SOURCE_ROLLBACK_WRITE,
                                            ZIP_SOURCE_SEEK_WRITE, ZIP_SOURCE_TELL_WRITE, ZIP_SOURCE_REMOVE, -1);
    default:
      zip_error_set(&o->error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

/* _npz_save(path, names, values, compress [, wopts]): values[i] is a
   tensor, or a string: a whole .npy member made already (_npy_pack_strings),
   anchored by the list until the archive is closed */
static int l_npz_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t n = (size_t)luaL_len(L, 2);
  luaL_argcheck(L, (size_t)luaL_len(L, 3) == n, 3, "names and values differ in length");
  const char **names = lua_newuserdatauv(L, (n ? n : 1) * sizeof(char *), 0);
  const lt_tensor **ts = lua_newuserdatauv(L, (n ? n : 1) * sizeof(lt_tensor *), 0);
  const char **raw = lua_newuserdatauv(L, (n ? n : 1) * sizeof(char *), 0);
  size_t *rawlen = lua_newuserdatauv(L, (n ? n : 1) * sizeof(size_t), 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    names[i] = luaL_checkstring(L, -1);   /* anchored by the list */
    lua_pop(L, 1);
    ts[i] = NULL;
    raw[i] = NULL;
    if (lua_rawgeti(L, 3, (lua_Integer)i + 1) == LUA_TSTRING) {
      raw[i] = lua_tolstring(L, -1, &rawlen[i]);
    } else {
      const lt_tensor *t = lt_check_meta(L, -1);
      if (t->storage->device != LT_CPU) fmt_error(L, "tensor '%s' is on the GPU: move it to the CPU first", names[i]);
      ts[i] = t;
    }
    lua_pop(L, 1);
  }
  int compress = lua_toboolean(L, 4);
  wopts *w = lua_newuserdatauv(L, sizeof *w, 0);   /* outlives libzip's calls */
  read_wopts(L, 5, w);
  for (size_t i = 0; i < n; i++) {
    if (!ts[i]) continue;
    lt_dtype dt = out_dtype(w, ts[i]);
    if (!lt_npy_descr(dt))
      return fmt_error(L, "tensor '%s': dtype %s cannot be stored in .npz (.pt or safetensors can)",
                        names[i], lt_dtypes[dt].name);
    w->pg.total += (uint64_t)lt_numel(ts[i]) * lt_dtypes[dt].size;
  }
  char *bufs = lua_newuserdatauv(L, 2 * NPZ_BUF, 0);   /* the members' chunk buffers */
  lt_ptrbox *z = lt_newptrbox(L, discard_zip);
  npzout *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->fd = -1;
  o->pos = o->end = o->boff = 0;
  o->bn = 0;
  zip_error_init(&o->error);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, npzout_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  o->fd = create_out(L, path, w);
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_source_t *out = zip_source_function_create(npzout_cb, o, &zerr);
  zip_t *za = out ? zip_open_from_source(out, ZIP_CREATE | ZIP_TRUNCATE, &zerr) : NULL;
  if (!za) {
    if (out) zip_source_free(out);
    const char *why = zip_error_strerror(&zerr);
    lua_pushstring(L, why);
    zip_error_fini(&zerr);
    return fmt_error(L, "cannot create the archive: %s", lua_tostring(L, -1));
  }
  zip_error_fini(&zerr);
  z->p = za;
  for (size_t i = 0; i < n; i++) {
    const lt_tensor *t = ts[i];
    zip_source_t *src;
    if (!t) {
      src = zip_source_buffer(za, raw[i], rawlen[i], 0);   /* the string outlives zip_close */
      if (!src) return fmt_error(L, "%s", zip_strerror(za));
    } else {
      npzsrc *s = calloc(1, sizeof *s);
      if (!s) return fmt_error(L, "not enough memory");
      s->t = t;
      s->bufs = bufs;
      s->to = out_dtype(w, t);
      s->w = w;
      s->hn = lt_npy_format_header(s->hdr, sizeof s->hdr, s->to, t->ndim, t->shape);
      s->total = s->hn + (uint64_t)lt_numel(t) * lt_dtypes[s->to].size;
      zip_error_init(&s->error);
      src = zip_source_function(za, npz_cb, s);
      if (!src) { zip_error_fini(&s->error); free(s); return fmt_error(L, "%s", zip_strerror(za)); }
    }
    lua_pushfstring(L, "%s.npy", names[i]);
    zip_int64_t idx = zip_file_add(za, lua_tostring(L, -1), src, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    lua_pop(L, 1);
    if (idx < 0) {
      zip_source_free(src);
      return fmt_error(L, "entry '%s': %s", names[i], zip_strerror(za));
    }
    zip_set_file_compression(za, (zip_uint64_t)idx, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    /* a fixed modification time, 1980-01-01 00:00:00 (the earliest DOS date,
       as np.savez writes): libzip would stamp each member with the time of
       the save, and saving one value twice must give the same bytes */
    if (zip_file_set_dostime(za, (zip_uint64_t)idx, NPZ_DOSTIME, NPZ_DOSDATE, 0) != 0)
      return fmt_error(L, "entry '%s': %s", names[i], zip_strerror(za));
  }
  if (zip_close(za) != 0) {
    lt_progress_check(&w->pg);   /* it stopped the write */
    if (w->fill_err[0]) return fmt_error(L, "%s", w->fill_err);
    return fmt_error(L, "%s", zip_strerror(za));
  }
  z->p = NULL;
  int fd = o->fd;
  o->fd = -1;
  return finish_out(L, w, fd, 0, NULL, path);
}

/* ---- TorchSharp ---------------------------------------------------------------- */

typedef struct tsbox { lt_ts_file f; } tsbox;

static int tsbox_gc(lua_State *L) {
  tsbox *b = lua_touserdata(L, 1);
  lt_ts_free(&b->f);
  return 0;
}

static int l_ts_scan(lua_State *L) {
  fhandle *h = checkfile(L, 1);
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
  read_wopts(L, 4, &w);
  for (size_t i = 0; i < n; i++) {
    lt_dtype dt = out_dtype(&w, ts[i]);
    if (lt_ts_code(dt) < 0)
      return fmt_error(L, "tensor '%s': dtype %s cannot be stored in TorchSharp .dat (.pt can)",
                        names[i], lt_dtypes[dt].name);
    w.pg.total += (uint64_t)lt_numel(ts[i]) * lt_dtypes[dt].size;
  }
  char err[LT_MSG];
  unsigned char hb[16 + 11 * (LT_MAX_DIMS + 2)];
  int fd = create_out(L, path, &w);
  size_t k = lt_leb128(n, hb);
  int rc = lt_write_full(fd, hb, k, err);
  for (size_t i = 0; i < n && !rc; i++) {
    const lt_tensor *t = ts[i];
    lt_dtype dt = out_dtype(&w, t);
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
  finish_out(L, &w, fd, rc, err, path);
  return 0;
}

/* {dtype, shape, offset} of a tensor record */
static void ts_push_tensor(lua_State *L, const lt_ts_entry *e) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, lt_dtypes[e->dtype].name); lua_setfield(L, -2, "dtype");
  push_shape(L, e->ndim, e->shape); lua_setfield(L, -2, "shape");
  lua_pushinteger(L, (lua_Integer)e->data_off); lua_setfield(L, -2, "offset");
}

static int l_ts_scan_tensor(lua_State *L) {
  fhandle *h = checkfile(L, 1);
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
  fhandle *h = checkfile(L, 1);
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
  fhandle *h = checkfile(L, idx);
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
  fhandle *h = checkfile(L, 1);
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
  read_wopts(L, 3, &w);
  for (size_t i = 0; i < n; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i + 1) != LUA_TSTRING) {
      const lt_tensor *t = ts_records ? lt_check_meta(L, -1) : lt_check(L, -1);
      lt_dtype dt = ts_records ? out_dtype(&w, t) : t->dtype;
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
  int fd = create_out(L, path, &w);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i + 1) == LUA_TSTRING) {
      size_t k;
      const char *p = lua_tolstring(L, -1, &k);
      rc = lt_write_full(fd, p, k, err);
    } else {
      const lt_tensor *t = lt_check_meta(L, -1);   /* checked above */
      lt_dtype dt = ts_records ? out_dtype(&w, t) : t->dtype;
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
  finish_out(L, &w, fd, rc, err, path);
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
  {"_npy_header", l_npy_header}, {"_npy_save", l_npy_save}, {"_fill", l_fill}, {"_release", l_release},
  {"_npz_load", l_npz_load}, {"_npz_save", l_npz_save},
  {"_npy_strings", l_npy_strings}, {"_npy_nest", l_npy_nest}, {"_npy_pack_strings", l_npy_pack_strings},
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
