/*
** lnpy.c: the Lua binding of NumPy's .npy and .npz (npy.c has the header
** layout; lfmt.h the file handles and write options). Core functions
** (used by lua/ltorch/formats/npy.lua and npz.lua):
**   _npy_header(h) -> {dtype, shape, fortran, big_endian, data_offset, version}
**   _npy_save(path, tensor [, wopts])
**   _npz_load(path, mmap [, select]) -> {{name, key, tensor, fortran}, ...}
**     (select(name) -> key or nil, before a member's header is read;
**     string/object members: {name, key, kind, ..., bytes}; tensors unread: see
**     _fill(tensor), lfmt.c, which reads a deferred tensor's bytes now)
**   _npz_save(path, names, values, compress [, wopts]) (values: tensors,
**     or strings: whole .npy members)
**   _npy_strings(data, offset, kind, itemsize, shape, fortran, big_endian)
**     -> flat list of the strings of a U/S array; _npy_nest(items, shape)
**     -> nested lists; _npy_pack_strings(v) -> the .npy bytes of a string
**     or nested lists of strings (as '<U<n>')
** Errors are raised without the path; the Lua side prefixes it.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include "lt_lua.h"
#include "fmt.h"
#include "ptzip.h"
#include "lfmt.h"

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
  fmt_push_shape(L, hd->ndim, hd->shape); lua_setfield(L, -2, "shape");
  lua_pushboolean(L, hd->fortran); lua_setfield(L, -2, "fortran");
  lua_pushboolean(L, hd->big_endian); lua_setfield(L, -2, "big_endian");
  lua_pushinteger(L, (lua_Integer)hd->data_offset); lua_setfield(L, -2, "data_offset");
  lua_pushstring(L, hd->descr); lua_setfield(L, -2, "descr");
  lua_pushfstring(L, "%d.%d", hd->major, hd->minor); lua_setfield(L, -2, "version");
}

static int l_npy_header(lua_State *L) {
  fhandle *h = fmt_checkfile(L, 1);
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
  int ndim = fmt_table_shape(L, 5, shape);
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
  int ndim = fmt_table_shape(L, 2, shape);
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
  fmt_read_wopts(L, 3, &w);
  lt_dtype dt = fmt_out_dtype(&w, t);
  if (!lt_npy_descr(dt))
    return fmt_error(L, "dtype %s cannot be stored in .npy (.pt or safetensors can)", lt_dtypes[dt].name);
  if (t->storage->device != LT_CPU) return fmt_error(L, "the tensor is on the GPU: move it to the CPU first");
  w.pg.total = (uint64_t)lt_numel(t) * lt_dtypes[dt].size;
  size_t hn = lt_npy_format_header(hdr, sizeof hdr, dt, t->ndim, t->shape);
  int fd = fmt_create_out(L, path, &w);
  lt_preallocate(fd, w.pg.total);   /* the elements' bytes: less than the file */
  int rc = lt_write_full(fd, hdr, hn, err);
  if (!rc) rc = lt_write_tensor_as(fd, t, dt, &w.ws, err);
  fmt_finish_out(L, &w, fd, rc, err, path);
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
  fhandle *h = fmt_open_handle(L, path);
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
      st = lt_storage_deferred(fmt_handle_file(L, h), (size_t)nbytes, &src);
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
  fmt_read_wopts(L, 5, w);
  for (size_t i = 0; i < n; i++) {
    if (!ts[i]) continue;
    lt_dtype dt = fmt_out_dtype(w, ts[i]);
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
  o->fd = fmt_create_out(L, path, w);
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
      s->to = fmt_out_dtype(w, t);
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
  return fmt_finish_out(L, w, fd, 0, NULL, path);
}

/* ---- registration ------------------------------------------------------------ */

static const luaL_Reg funcs[] = {
  {"_npy_header", l_npy_header}, {"_npy_save", l_npy_save},
  {"_npz_load", l_npz_load}, {"_npz_save", l_npz_save},
  {"_npy_strings", l_npy_strings}, {"_npy_nest", l_npy_nest}, {"_npy_pack_strings", l_npy_pack_strings},
  {NULL, NULL}
};

const lt_binding lt_npy_binding = {funcs, NULL, NULL, NULL, NULL};
