/*
** lio.c: registers the file-format bindings (lpt.c: PyTorch zip, legacy and
** pickle; lfmt.c: safetensors, NumPy, TorchSharp), and the last step of
** every save: putting the finished temporary file in place.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "lt_lua.h"

static int sync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* core._replace(tmp, path, sync) -> true | nil, message
   Atomically puts tmp at path. An existing file is swapped out with
   renameat2(RENAME_EXCHANGE) and then unlinked: on ext4, renaming over a
   file first forces the new file's delayed allocation and writeback, which
   made big saves several times slower than writing them. Filesystems
   without the exchange get a plain rename. sync: fsync the file before and
   its folder after, so a power loss cannot lose both versions. */
static int l_replace(lua_State *L) {
  const char *tmp = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
  int sync = lua_toboolean(L, 3);
  if (sync && sync_path(tmp)) goto fail;
  struct stat sb;
  int exists = lstat(path, &sb) == 0;
  if (exists && S_ISDIR(sb.st_mode)) { errno = EISDIR; goto fail; }
  if (exists && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
    if (unlink(tmp)) goto fail;   /* the old file, now under the temporary name */
  } else if (rename(tmp, path)) {
    goto fail;
  }
  if (sync) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (sync_path(dir)) goto fail;
  }
  lua_pushboolean(L, 1);
  return 1;
fail:
  lua_pushnil(L);
  lua_pushstring(L, strerror(errno));
  return 2;
}

void lt_open_io(lua_State *L, int mod, int methods) {
  lt_open_pt(L, mod, methods);
  lt_open_fmt(L, mod, methods);
  lua_pushcfunction(L, l_replace);
  lua_setfield(L, mod, "_replace");
}
