/*
** ltorch.h: the public C API for host programs that embed ltorch in a
** lua_State. Tensors are Lua userdata with metatable LTORCH_TENSOR; these
** functions read them without knowing their layout.
*/
#ifndef LTORCH_H
#define LTORCH_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

#define LTORCH_TENSOR "ltorch.Tensor"   /* the tensors' metatable (luaL_checkudata) */
#define LTORCH_MAX_DIMS 16              /* the highest rank a tensor may have */

typedef struct lt_tensor ltorch_Tensor;

#if defined(__GNUC__)
#define LTORCH_API __attribute__((visibility("default")))
#else
#define LTORCH_API
#endif

/* the module opener: require("ltorch.core") calls it. A host linked with
   core.so can make require use that copy of the library (rather than
   opening core.so again through package.cpath) by storing this function
   as package.preload["ltorch.core"]. */
LTORCH_API int luaopen_ltorch_core(lua_State *L);

/* the tensor at index idx; raises when it is not a live tensor. Its data
   is in memory: a tensor from an mmap load whose bytes were left in the
   file (compressed or misaligned records) is read here, and this raises
   when the file cannot give them. */
LTORCH_API ltorch_Tensor *ltorch_checktensor(lua_State *L, int idx);
/* the tensor at index idx, or NULL when it is not one; its data is read as
   for ltorch_checktensor (which may raise) */
LTORCH_API ltorch_Tensor *ltorch_totensor(lua_State *L, int idx);

LTORCH_API const char *ltorch_dtype(const ltorch_Tensor *t);     /* "float32", ... */
LTORCH_API size_t ltorch_elemsize(const ltorch_Tensor *t);
LTORCH_API int ltorch_ndim(const ltorch_Tensor *t);
LTORCH_API int64_t ltorch_size(const ltorch_Tensor *t, int dim);    /* 0-based dim */
LTORCH_API int64_t ltorch_stride(const ltorch_Tensor *t, int dim);  /* in elements */
LTORCH_API int64_t ltorch_numel(const ltorch_Tensor *t);
LTORCH_API int ltorch_is_contiguous(const ltorch_Tensor *t);
LTORCH_API const char *ltorch_device(const ltorch_Tensor *t);     /* "cpu" or "cuda" */
LTORCH_API void *ltorch_data(const ltorch_Tensor *t);            /* first element */
/* The bytes of a tensor loaded with mmap = true are the file's pages: if
   another program cuts the file short, reading past the new end raises
   SIGBUS. ltorch's handler (installed with its first mapping) turns those
   pages into zeros and marks the tensor changed, so ltorch's next use of it
   raises; faults outside ltorch's mappings go to the handler installed
   before it. A host installing its own SIGBUS handler later must chain to
   the previous one (docs/formats.md, "A mapped file cut short"). */

/*
** Push a tensor over host memory the caller owns. strides may be NULL
** (contiguous). release(ctx) is called when the last view is gone; it may
** be NULL. Returns NULL (pushing nothing) on a bad dtype or shape.
*/
LTORCH_API ltorch_Tensor *ltorch_pushwrap(lua_State *L, void *data, const char *dtype,
                               int ndim, const int64_t *shape, const int64_t *strides,
                               void (*release)(void *ctx), void *ctx);

/*
** Run require("ltorch").load(path) and leave its result on the stack.
** Returns LUA_OK, or an error code with the message on the stack: for a
** file that cannot be loaded the one torch.load raises, "path: what is
** wrong" ("model.pt: no such file", "model.pt: entry 'archive/data/0':
** expected 4096 bytes, found 100"), the path once and no Lua source position.
*/
LTORCH_API int ltorch_load(lua_State *L, const char *path);

/*
** Walk the table at idx as lua_next does: pops a key, pushes the next key
** and its value and returns 1, or returns 0 (pushing nothing) after the
** last entry; start with nil. A loaded dict (a state dict, any dict read
** from a file) is an ordered dict whose entries lua_next cannot see (they
** live behind a proxy): ltorch_next walks it in its order, the file's.
** Any other table is walked with lua_next. A value that is itself a dict
** is walked the same way:
**
**   lua_pushnil(L);
**   while (ltorch_next(L, t)) {        (key at -2, value at -1)
**     ...
**     lua_pop(L, 1);                   (keep the key for the next call)
**   }
**
** Keys must not be added or removed during the walk. It may raise (as
** lua_next does for a key that is not in the table).
*/
LTORCH_API int ltorch_next(lua_State *L, int idx);

#endif
