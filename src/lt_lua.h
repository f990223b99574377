/*
** lt_lua.h: what the Lua binding files (l*.c) share. The C core does not
** include this header.
*/
#ifndef LT_LUA_H
#define LT_LUA_H

#include <lua.h>
#include <lauxlib.h>
#include "lt.h"

#define LT_TENSOR_MT "ltorch.Tensor"

/* the tensor at idx; raises a type error, or "attempt to use a freed tensor".
   Its bytes are in memory: a deferred storage is read here (and raises when
   its file cannot give them) */
lt_tensor *lt_check(lua_State *L, int idx);
/* lt_check for what needs only the tensor's metadata (shape, dtype, storage
   identity, views): a deferred storage stays in its file. The data pointer
   may be NULL. */
lt_tensor *lt_check_meta(lua_State *L, int idx);
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
/* tell the GC that nbytes of tensor memory were just allocated */
void lt_gc_account(lua_State *L, size_t nbytes);
/* a pseudo-random generator shared by creation functions and dropout */
uint64_t lt_rand_u64(lua_State *L);
double lt_rand_uniform(lua_State *L);
double lt_rand_normal(lua_State *L);

/* registration hooks of the other binding files: each adds functions to the
   module table at index mod and to the tensor methods table at index methods */
void lt_open_ops(lua_State *L, int mod, int methods);
void lt_open_io(lua_State *L, int mod, int methods);
void lt_open_pt(lua_State *L, int mod, int methods);
void lt_open_fmt(lua_State *L, int mod, int methods);

#endif
