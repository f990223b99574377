/*
** lio.c: registers the file-format bindings (lpt.c: PyTorch zip, legacy and
** pickle; lfmt.c: safetensors, NumPy, TorchSharp), and the last step of
** every save: putting the finished temporary file in place.
*/
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "lt_lua.h"

static void *closer(void *ud) {
  close((int)(intptr_t)ud);
  return NULL;
}

/* The closing thread runs code of this library, which Lua unloads when its
   state closes: pin the library (RTLD_NODELETE) before the first thread. */
static void pin_self(void) {
  Dl_info info;
  if (dladdr((void *)(intptr_t)pin_self, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}
static pthread_once_t pinned = PTHREAD_ONCE_INIT;

/* close fd on a detached thread, or now if no thread can start; a process
   that exits first closes it on exit */
static void close_later(int fd) {
  pthread_once(&pinned, pin_self);
  pthread_t t;
  pthread_attr_t a;
  if (pthread_attr_init(&a) == 0) {
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, closer, (void *)(intptr_t)fd);
    pthread_attr_destroy(&a);
    if (rc == 0) return;
  }
  close(fd);
}

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
    /* the old file, now under the temporary name: its name goes now, its
       blocks when the last descriptor closes, which a background thread
       does (freeing a big file's blocks took as long as writing it) */
    int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (unlink(tmp)) { int e = errno; if (fd >= 0) close(fd); errno = e; goto fail; }
    if (fd >= 0) close_later(fd);
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
