/*
** lfmt.h: what the format bindings share (lfmt.c defines it; lnpy.c uses
** it): the file handles of core._fopen, tensor shapes from and to Lua
** lists, and the write options {dtype =, release =, progress =} with the
** temporary output file they write. Errors are raised without the path;
** the Lua side prefixes it.
*/
#ifndef LFMT_H
#define LFMT_H

#include "lt_lua.h"
#include "fmt.h"

#define FILE_MT "ltorch.fmtfile"

typedef struct fhandle {
  int fd;                  /* -1 once closed */
  uint64_t size;
  lt_mapping *map;         /* created on the first mmap'ed tensor */
  lt_file *lf;             /* created on the first deferred tensor */
  char *path;
  int remote;              /* mirrors a remote object: nothing is mapped, all is deferred */
} fhandle;

typedef struct wopts {
  int cast;                /* target of floating tensors, or -1 */
  lt_wstream ws;
  lt_progress pg;          /* opts.progress, run protected (lprogress.c) */
  char fill_err[LT_MSG];   /* a deferred source that could not be read (npz) */
  int anon;                /* the output is an unnamed O_TMPFILE file (create_out) */
} wopts;

/* raise a file error (lua_pushfstring's formats) without a position prefix */
int fmt_error(lua_State *L, const char *fmt, ...);
/* the open handle at stack index i */
fhandle *fmt_checkfile(lua_State *L, int i);
/* the handle's file kept open for deferred storages */
lt_file *fmt_handle_file(lua_State *L, fhandle *h);
/* push a handle on path, open for reading */
fhandle *fmt_open_handle(lua_State *L, const char *path);
/* the shape list at idx into shape; its length */
int fmt_table_shape(lua_State *L, int idx, int64_t *shape);
/* push shape as a list */
void fmt_push_shape(lua_State *L, int nd, const int64_t *shape);
/* read the options at idx (none or nil: the defaults) into w; pushes the
   progress callback's slots on the stack, where they stay */
void fmt_read_wopts(lua_State *L, int idx, wopts *w);
/* the dtype t is written as: floating tensors cast to opts.dtype */
lt_dtype fmt_out_dtype(const wopts *w, const lt_tensor *t);
/* the output for the temporary file path (fmt_finish_out names it path) */
int fmt_create_out(lua_State *L, const char *path, wopts *w);
/* close the written file, then raise the progress callback's error or the write's */
int fmt_finish_out(lua_State *L, wopts *w, int fd, int rc, const char *err, const char *path);

#endif
