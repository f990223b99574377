/*
** lio.c: what the file-format bindings (lpt.c: PyTorch zip, legacy and
** pickle; lfmt.c: safetensors, TorchSharp, Torch7; lnpy.c: NumPy) share: their file errors
** (lt_file_error), reading the first bytes of a file for format detection,
** and the last step of every save: putting the finished temporary file in
** place.
*/
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include "lt_lua.h"
#include "rawio.h"

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
    /* lt_pread_all: a remote object's mirror may be in memory (remote.c) */
    size_t g = 0;
    if (lt_pread_all(fd, buf, (size_t)n, 0, &g) && errno) e = errno;
    got = (ssize_t)g;
  }
  close(fd);
  if (e) return lt_file_error(L, path, NULL, "%s", lt_errno_text(e));
  lua_pushlstring(L, buf, (size_t)got);
  lua_pushinteger(L, (lua_Integer)sb.st_size);
  return 2;
}

/* ---- temporary files of a save --------------------------------------------------- */

/* core._random_hex(n) -> 2n hex digits from getrandom(2): the random part
   of a save's temporary name, which no other process can predict */
static int l_random_hex(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 8);
  luaL_argcheck(L, n >= 1 && n <= 64, 1, "byte count out of range (1 to 64)");
  unsigned char b[64];
  size_t got = 0;
  while (got < (size_t)n) {
    ssize_t r = getrandom(b + got, (size_t)n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return luaL_error(L, "getrandom: %s", strerror(errno));
    got += (size_t)r;
  }
  char hex[129];
  for (size_t i = 0; i < got; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
  lua_pushlstring(L, hex, 2 * got);
  return 1;
}

/* watches on temporary files' names (lt_temp_watch) */
typedef struct twatch { char *path; lt_temp_fn fn; lt_write_stop_fn stopped; void *ud; } twatch;
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static twatch watches[8];

int lt_temp_watch(const char *path, lt_temp_fn fn, lt_write_stop_fn stopped, void *ud) {
  int rc = -1;
  pthread_mutex_lock(&watch_mu);
  for (int i = 0; i < 8; i++)
    if (!watches[i].path) {
      watches[i].path = strdup(path);
      if (watches[i].path) { watches[i].fn = fn; watches[i].stopped = stopped; watches[i].ud = ud; rc = 0; }
      break;
    }
  pthread_mutex_unlock(&watch_mu);
  return rc;
}

void lt_temp_unwatch(const char *path) {
  pthread_mutex_lock(&watch_mu);
  for (int i = 0; i < 8; i++)
    if (watches[i].path && !strcmp(watches[i].path, path)) {
      if (watches[i].stopped) lt_write_stop_remove(watches[i].ud);
      free(watches[i].path);
      watches[i].path = NULL;
    }
  pthread_mutex_unlock(&watch_mu);
}

/* a writer made fd for path: a watcher of path gets a descriptor of its
   own that reads the file (through /proc: an unnamed file has no name yet) */
static int watched(const char *path, int fd) {
  if (fd < 0) return fd;
  pthread_mutex_lock(&watch_mu);
  for (int i = 0; i < 8; i++)
    if (watches[i].path && !strcmp(watches[i].path, path)) {
      char proc[64];
      snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
      int r = open(proc, O_RDONLY | O_CLOEXEC);
      if (r >= 0) watches[i].fn(watches[i].ud, r);
      /* no room for the stop: the writer runs to its end, as before */
      if (watches[i].stopped) (void)lt_write_stop_add(fd, watches[i].stopped, watches[i].ud);
    }
  pthread_mutex_unlock(&watch_mu);
  return fd;
}

/* lt_create_temp(path, mode) -> fd | -1 (errno): the one way a writer
   creates its temporary file: a new file or nothing (O_EXCL), never through
   a symbolic link planted at the name (O_NOFOLLOW) */
int lt_create_temp(const char *path, int mode) {
  return watched(path, open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode));
}

/* lt_open_temp(path, mode, &anon) -> fd | -1 (errno): a writer's output
   for the temporary file path. Where the filesystem has O_TMPFILE, an
   unnamed file in path's folder (*anon = 1): a save killed before
   lt_link_temp leaves nothing at all. Else lt_create_temp (*anon = 0). */
int lt_open_temp(const char *path, int mode, int *anon) {
  *anon = 0;
#ifdef O_TMPFILE
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  else dir[0] = 0;
  if (dir[0] && access("/proc/self/fd", X_OK) == 0) {
    int fd = open(dir, O_WRONLY | O_TMPFILE | O_CLOEXEC, (mode_t)mode);
    if (fd >= 0) { *anon = 1; return watched(path, fd); }
  }
#endif
  return lt_create_temp(path, mode);
}

/* lt_link_temp(fd, path) -> 0 | -1 (errno): gives the unnamed file of
   lt_open_temp the name path; like O_EXCL, a name taken (a planted link
   included: linkat never follows the new name) fails with EEXIST */
int lt_link_temp(int fd, const char *path) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* core._create_temp(path) -> true | nil, message: creates path as
   lt_create_temp does (empty) */
static int l_create_temp(lua_State *L) {
  int fd = lt_create_temp(luaL_checkstring(L, 1), 0644);
  if (fd < 0) { lua_pushnil(L); lua_pushstring(L, strerror(errno)); return 2; }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* the time this process started, in seconds since the epoch (Linux:
   /proc/self/stat starttime after /proc/stat btime), else the time this
   library was first asked. Found once (pthread_once): threads of one
   process may save at once, each asking. */
static double start_t;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static void find_start_time(void) {
  double now = (double)time(NULL), t = now;
  start_t = now;
  FILE *f = fopen("/proc/stat", "r");
  long long btime = -1;
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "btime %lld", &btime) == 1) break;
    fclose(f);
  }
  f = fopen("/proc/self/stat", "r");
  if (!f || btime < 0) { if (f) fclose(f); return; }
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');   /* the command name may hold spaces */
  unsigned long long ticks;
  long hz = sysconf(_SC_CLK_TCK);
  /* after ')': state (field 3) ... starttime (field 22) */
  if (p && hz > 0 && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &ticks) == 1) {
    double s = (double)btime + (double)ticks / (double)hz;
    if (s <= now + 1) t = s;
  }
  start_t = t;
}

static double start_time(void) {
  pthread_once(&start_once, find_start_time);
  return start_t;
}

static int l_start_time(lua_State *L) {
  lua_pushnumber(L, start_time());
  return 1;
}

/* core._clean_temps(dir, prefix [, before]) -> count removed: the regular
   files in dir whose name starts with prefix (a save's temporary names for
   one target, ".NAME.tmp-") and whose modification time is older than
   before (default: this process's start): what killed saves left. A file
   of a save still running was written after that save started, and a save
   that started before this process writes on (its mtime moves); nothing
   else in dir is touched, links and folders included. */
static int l_clean_temps(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  size_t plen;
  const char *prefix = luaL_checklstring(L, 2, &plen);
  double before = luaL_optnumber(L, 3, start_time());
  luaL_argcheck(L, plen >= 6, 2, "prefix too short");
  int dfd = open(*dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  lua_Integer removed = 0;
  if (dfd < 0) { lua_pushinteger(L, 0); return 1; }
  DIR *d = fdopendir(dfd);
  if (!d) { close(dfd); lua_pushinteger(L, 0); return 1; }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, prefix, plen) != 0) continue;
    struct stat sb;
    if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW)) continue;
    if (!S_ISREG(sb.st_mode)) continue;
    double mt = (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec * 1e-9;
    if (mt >= before) continue;
    if (unlinkat(dfd, e->d_name, 0) == 0) removed++;
  }
  closedir(d);
  lua_pushinteger(L, removed);
  return 1;
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
  {"_random_hex", l_random_hex}, {"_create_temp", l_create_temp},
  {"_start_time", l_start_time}, {"_clean_temps", l_clean_temps},
  {NULL, NULL}
};

const lt_binding lt_io_binding = {funcs, NULL, NULL, NULL, NULL};
