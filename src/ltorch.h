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

#define LTORCH_TENSOR "ltorch.Tensor"
#define LTORCH_MAX_DIMS 16

typedef struct lt_tensor ltorch_Tensor;

#if defined(__GNUC__)
#define LTORCH_API __attribute__((visibility("default")))
#else
#define LTORCH_API
#endif

/* the module opener: require("ltorch.core") calls it */
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
** Returns LUA_OK, or an error code with the message on the stack.
*/
LTORCH_API int ltorch_load(lua_State *L, const char *path);

#endif
