/*
** lio.c: what the file-format bindings (lpt.c: PyTorch zip, legacy and
** pickle; lfmt.c: safetensors, NumPy, TorchSharp) share: their file errors
** (lt_file_error), reading the first bytes of a file for format detection,
** and the last step of every save: putting the finished temporary file in
** place.
*/
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "lt_lua.h"

/* ---- file errors ------------------------------------------------------------ */

int lt_file_error(lua_State *L, const char *path, const char *entry, const char *fmt, ...) {
  char msg[LT_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (entry) lua_pushfstring(L, "%s: entry '%s': %s", path, entry, msg);
  else lua_pushfstring(L, "%s: %s", path, msg);
  return lua_error(L);
}

const char *lt_errno_text(int e) {
  switch (e) {
    case ENOENT: return "no such file";
    case EISDIR: return "is a directory";
    case EACCES: return "permission denied";
    case ENOTDIR: return "not a directory";
    default: return strerror(e);
  }
}

/* core._head(path, n) -> the first n bytes (fewer in a shorter file), the
   file's size. Raises "path: no such file", "path: is a directory", ...
   (lt_file_error): the first read of every load, so these messages are the
   same whatever the format and whoever loads (torch.load, the CLI, a C host
   through ltorch_load) */
static int l_head(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 64);
  luaL_argcheck(L, n >= 0 && n <= 4096, 2, "byte count out of range (0 to 4096)");
  char buf[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lt_file_error(L, path, NULL, "%s", lt_errno_text(errno));
  struct stat sb;
  int e = 0;
  ssize_t got = 0;
  if (fstat(fd, &sb)) e = errno;
  else if (S_ISDIR(sb.st_mode)) e = EISDIR;
  else {
    while (got < n) {
      ssize_t r = read(fd, buf + got, (size_t)(n - got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) { e = errno; break; }
      if (r == 0) break;
      got += r;
    }
  }
  close(fd);
  if (e) return lt_file_error(L, path, NULL, "%s", lt_errno_text(e));
  lua_pushlstring(L, buf, (size_t)got);
  lua_pushinteger(L, (lua_Integer)sb.st_size);
  return 2;
}

/* ---- replacing a file ---------------------------------------------------------- */

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

static const luaL_Reg funcs[] = {
  {"_head", l_head}, {"_replace", l_replace},
  {NULL, NULL}
};

const lt_binding lt_io_binding = {funcs, NULL, NULL, NULL, NULL};
