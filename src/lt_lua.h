/*
** lt_lua.h: what the Lua binding files (l*.c) share. The C core does not
** include this header.
*/
#ifndef LT_LUA_H
#define LT_LUA_H

#include <stdarg.h>
#include <lua.h>
#include <lauxlib.h>
#include "lt.h"
#include "ltorch.h"
#include "rawio.h"

/* the tensor metatable's name is the public one */
#define LT_TENSOR_MT LTORCH_TENSOR

/* the limits the public header promises are the core's */
_Static_assert(LTORCH_MAX_DIMS == LT_MAX_DIMS, "ltorch.h and lt.h disagree on the highest rank");

/* the tensor at idx; raises a type error, or "attempt to use a freed tensor".
   Its bytes are in memory: a deferred storage is read here (and raises when
   its file cannot give them) */
lt_tensor *lt_check(lua_State *L, int idx);
/* lt_check for what needs only the tensor's metadata (shape, dtype, storage
   identity, views): a deferred storage stays in its file. The data pointer
   may be NULL. */
lt_tensor *lt_check_meta(lua_State *L, int idx);
/* lt_check_meta's checks of a tensor userdata t already known to be one */
lt_tensor *lt_usable_meta(lua_State *L, lt_tensor *t);
/* raise "path: the file changed under its mapping ..." (mapguard.c): every
   binding after a call during which its thread faulted in a mapping, and
   lt_check_meta on a tensor of a changed mapping */
int lt_mapguard_raise(lua_State *L, const char *path);
/* replace the C function on top with a closure that runs it and raises
   after a mapping fault (linit.c wraps every binding so) */
void lt_push_guarded(lua_State *L);
/* the C function at idx, a wrapped binding's own one (NULL if none): for a
   binding that runs another in its own call */
lua_CFunction lt_tocfunction(lua_State *L, int idx);
/* the tensor at idx, or NULL when it is not a tensor (freed ones included);
   its bytes are in memory, as with lt_check */
lt_tensor *lt_test(lua_State *L, int idx);
/* push a new tensor userdata viewing proto's storage (retained) with proto's
   dtype, shape, strides and offset */
lt_tensor *lt_push_view(lua_State *L, const lt_tensor *proto);
/* push a new contiguous tensor with fresh storage; raises on out of memory */
lt_tensor *lt_push_new(lua_State *L, lt_dtype dt, int ndim, const int64_t *shape, int zero);
/* push a tensor that takes over the reference to s (released on error) */
lt_tensor *lt_push_storage(lua_State *L, lt_storage *s, lt_dtype dt, int ndim,
                           const int64_t *shape, const int64_t *stride, int64_t offset);
/* a dtype name at idx, or def when absent; raises on an unknown name */
lt_dtype lt_check_dtype(lua_State *L, int idx, int def);
/* sizes given as varargs from 'first' or as one table there; returns rank */
int lt_check_sizes(lua_State *L, int first, int64_t *shape);
/* a 1-based (or negative) dim argument to a 0-based dim of a rank-ndim tensor */
int lt_check_dim(lua_State *L, int arg, lua_Integer d, int ndim);
/* push one element as a Lua value: integer, number, boolean or {re, im} */
void lt_push_elem(lua_State *L, lt_dtype dt, const void *p);
/* read a Lua value into an element of dt */
void lt_to_elem(lua_State *L, int idx, lt_dtype dt, void *p);
/* push a zeroed userdata of size bytes whose metatable (named mt, made once)
   has gc as __gc: the "UBox" for C memory that must be freed if a call raises */
void *lt_newbox(lua_State *L, size_t size, const char *mt, lua_CFunction gc);
/* push a box (lt_newbox) for one C object p, NULL at first: its __gc calls
   release(p) when p is not NULL. The caller sets p once it owns the object
   and sets it back to NULL once the object is released or handed on */
typedef struct lt_ptrbox { void *p; void (*release)(void *); } lt_ptrbox;
lt_ptrbox *lt_newptrbox(lua_State *L, void (*release)(void *));
/* the bytes of the file handle (core._fopen, lfmt.c) at idx: one private
   read-only mapping of the whole file, made on the first call and kept by
   the handle; *len its size */
const unsigned char *lt_fmt_map(lua_State *L, int idx, size_t *len);
/* pace the GC by tensor memory, around an allocation of it: a full
   collection once the heap storages alive (lt_storage_live_bytes) have grown
   by 64 MiB, or by half, since the last one (ltorch.c) */
void lt_gc_account(lua_State *L);
/* a pseudo-random generator shared by creation functions and dropout */
uint64_t lt_rand_u64(lua_State *L);
double lt_rand_uniform(lua_State *L);
double lt_rand_normal(lua_State *L);

/* ---- usage errors: one path, Lua's luaL_argerror ----------------------- */

/* raise the usage error "bad argument #N to 'f' (message)" on stack index
   arg of the running C function through luaL_argerror, which names the
   function as it was called and numbers its arguments as Lua does: in a
   method call t:f(...) self is not counted, and an error on self itself
   reads "calling 'f' on bad self (message)". The caller's "file:line:" is
   prepended (as luaL_error does). message is formatted from fmt by
   vsnprintf (printf's conversions, checked by the compiler: %lld for a
   lua_Integer, %.14g for a lua_Number as Lua prints it); fmt is a literal,
   text from a file goes in the arguments. Raises; the int return is for
   "return lt_argerror(...)" */
int lt_argerror(lua_State *L, int arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* lt_argerror under a fixed function name: for a C function reached under
   a name of its own (core._class_loss raising as F.cross_entropy or
   F.nll_loss), where luaL_argerror's name would be wrong. The same method
   rule (lt_argnum) applies. A NULL name is lt_argerror's: the call's */
int lt_argerror_in(lua_State *L, int arg, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* the number luaL_argerror gives stack index arg of the running C function:
   arg - 1 in a method call (0: self), else arg. For an argument number said
   inside another message ("given twice: as argument #1 and as an option") */
int lt_argnum(lua_State *L, int arg);
/* push fmt and ap formatted by vsnprintf (no length limit); returns the
   pushed string */
const char *lt_pushvf(lua_State *L, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* raise the file error "path: entry 'entry': message" ("path: message" when
   entry is NULL) with no "file:line:" position (lua_error, not luaL_error):
   the one format every binding reports a damaged or unreadable file in.
   fmt is printf's; text from the file goes in the arguments, never in fmt.
   Raises; the int return is for "return lt_file_error(...)" */
int lt_file_error(lua_State *L, const char *path, const char *entry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* what errno e says about a file: "no such file", "is a directory",
   "permission denied", ..., else strerror(e) */
const char *lt_errno_text(int e);
/* lio.c: creates a save's temporary file: O_CREAT|O_EXCL|O_NOFOLLOW, so a
   name taken or a planted symbolic link fails (-1, errno) */
int lt_create_temp(const char *path, int mode);
/* lio.c: an unnamed O_TMPFILE file in path's folder (*anon = 1) that
   lt_link_temp names path when complete, or lt_create_temp (*anon = 0) */
int lt_open_temp(const char *path, int mode, int *anon);
int lt_link_temp(int fd, const char *path);
/* lio.c: a watch on a temporary file's name: when a writer makes the file
   for path (lt_open_temp, lt_create_temp), fn(ud, fd) is given a new
   read-only descriptor of it, which fn owns (an S3 save follows the file as
   it is written, lremote.c), and, with stopped, the writer's writes stop
   once stopped(ud) says so (lt_write_stop_add: an upload that failed ends
   its save). At most 8 at once: -1 when full. */
typedef void (*lt_temp_fn)(void *ud, int fd);
int lt_temp_watch(const char *path, lt_temp_fn fn, lt_write_stop_fn stopped, void *ud);
void lt_temp_unwatch(const char *path);

/* What a binding file registers: luaL_Reg arrays (each ending in {NULL,
   NULL}; any may be NULL) and an opener for the metatables of its own
   userdata (NULL when it has none). luaopen_ltorch_core (ltorch.c) builds
   the module table and the tensor metatable from all of them in one place;
   no binding file touches either. */
typedef struct lt_binding {
  const luaL_Reg *funcs;        /* module functions: core.NAME */
  const luaL_Reg *methods;      /* tensor methods: t:NAME() */
  const luaL_Reg *both;         /* module functions that are tensor methods too */
  const luaL_Reg *meta;         /* tensor metamethods: __add, ... */
  void (*open)(lua_State *L);   /* makes the file's other metatables; keeps the stack */
} lt_binding;

extern const lt_binding lt_core_binding;   /* ltorch.c: tensors, creation, views */
extern const lt_binding lt_ops_binding;    /* lops.c: math */
extern const lt_binding lt_reduce_binding; /* lreduce.c: reductions, scans, sorting */
extern const lt_binding lt_shape_binding;  /* lshape.c: indexing and shape ops, bmm */
extern const lt_binding lt_nn_binding;     /* lnn.c: functional ops that need C */
extern const lt_binding lt_pt_binding;     /* lpt.c: PyTorch zip, legacy, pickle */
extern const lt_binding lt_fmt_binding;    /* lfmt.c: safetensors, TorchSharp, Torch7, file handles */
extern const lt_binding lt_npy_binding;    /* lnpy.c: NumPy .npy and .npz */
extern const lt_binding lt_quant_binding;  /* lquant.c: ggml's quantized block types */
extern const lt_binding lt_gguf_binding;   /* lgguf.c: GGUF headers */
extern const lt_binding lt_json_binding;   /* ljson.c: JSON */
extern lua_CFunction lt_tensor_index;       /* ltorch.c: the metatable's __index (upvalue: methods) */
extern const lt_binding lt_remote_binding; /* lremote.c: objects behind URLs */
extern const lt_binding lt_cuda_binding;   /* lcuda.c: CUDA tensors, moves between devices */
/* ltorch.c: "cpu" -> -1, "cuda" -> 0, "cuda:N" -> N; -2 when s names no device */
int lt_parse_device(const char *s);
/* ltorch.c: the dtype field of an options table (def when absent) */
lt_dtype lt_opt_dtype(lua_State *L, int opts, lt_dtype def);
/* ltorch.c: push a contiguous copy of CPU tensor t converted to dt */
lt_tensor *lt_push_contiguous_copy(lua_State *L, const lt_tensor *t, lt_dtype dt);
extern const lt_binding lt_io_binding;     /* lio.c: a file's first bytes, putting a saved file in place */

/* ---- progress (lprogress.c): one policy for every load and save ---------- */

/* The Lua callback fn(done, total) of a load or save, run protected between
   chunks: its error is kept, stops the C loop that reported, and is raised
   once, unchanged, by lt_progress_check after the binding has freed and
   closed what it holds. */
typedef struct lt_progress {
  lua_State *L;
  int fn;                   /* stack index of the callback; 0: none (counts only) */
  int slot;                 /* stack index that keeps the callback's error */
  int failed;               /* the callback raised: it is not called again */
  uint64_t done, total;
  uint64_t base;            /* bytes done before lt_read_jobs started (lt_progress_jobs) */
} lt_progress;

/* set p up for the callback at stack index fn (0: none) and push the slot
   that keeps its error: the stack grows by one */
void lt_progress_init(lua_State *L, lt_progress *p, int fn, uint64_t total);
/* an lt_progress_fn (rawio.h): ud is an lt_progress; adds n bytes and
   reports; nonzero once the callback has failed */
int lt_progress_step(void *ud, uint64_t n);
/* lt_read_jobs' progress (done: bytes of its jobs so far, after p->base) */
int lt_progress_jobs(void *ud, uint64_t done);
/* lt_progress_step that raises the callback's error at once: only where
   everything held is in GC-owned boxes */
void lt_progress_add(lt_progress *p, uint64_t n);
/* raise the callback's error if it failed; returns otherwise */
void lt_progress_check(lt_progress *p);

#endif
