/*
** threads.c: ltorch loading and saving in 8 threads at once, each with its
** own lua_State (the embedding of host.c), checking every result. `make
** tsan` runs it under ThreadSanitizer; spec/threads_spec.lua runs the
** normal build.
**   build/threads [-n ITERATIONS] [-k]   (-k keeps the work folder)
** Before the threads start, a child process writes seed files in every
** format ltorch writes (and a .pt past 16 MiB, which an eager load reads
** with several threads, readjobs.c, reporting progress; and a .pt of 1,100
** records, whose directory and pickle a load reads at once on the pool's
** threads, lpt.c), so that this process's first crc32, first zip read and
** first load of each format happen in 8 threads together. Then
** every iteration, in every thread and every format (.pt, .safetensors,
** .npy, .npz, .gguf, .t7, TorchSharp .dat):
**   own files   save a value of its own (and a deflated .npz, read lazily
**               from an mmap load), load it eager and {mmap = true},
**               compare, compute on it (sum, matmul, clone, conversions),
**               and read one back through ltorch_load and ltorch_data;
**               a matmul big enough for OpenBLAS's threads;
**   one file    all threads load the same file (thread 0 wrote it) at once;
**   one path    all threads save to ONE path at once, then each loads what
**               is there: it must be one thread's value, whole; an mmap
**               view of the last iteration's file must still read the same
**               after the file is replaced.
** Any mismatch or Lua error prints "threads: thread N: what" on stderr and
** exits 1; success prints one line per thread and a summary line.
*/
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "ltorch.h"
#include "host_state.h"

#define NTHREADS 8
#define NFORMATS 7

static pthread_barrier_t barrier;
static atomic_long checks;   /* results checked, all threads together */
static char workdir[4096];   /* the files' folder (left for a look on failure) */

typedef struct job { int id; const char *root, *dir; int iters; long checked; } job;

/* sync(): wait for every thread (a pthread barrier) */
static int l_sync(lua_State *L) {
  (void)L;
  pthread_barrier_wait(&barrier);
  return 0;
}

/* ccheck(path, base): load the .npy at path through ltorch_load and check
   from C that it is the float32 {3, 4} tensor base + 0 .. base + 11 */
static int l_ccheck(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  double base = luaL_checknumber(L, 2);
  if (ltorch_load(L, path) != LUA_OK) return lua_error(L);
  ltorch_Tensor *t = ltorch_checktensor(L, -1);
  if (strcmp(ltorch_dtype(t), "float32") != 0 || ltorch_ndim(t) != 2 || ltorch_size(t, 0) != 3 ||
      ltorch_size(t, 1) != 4 || !ltorch_is_contiguous(t))
    return luaL_error(L, "%s: ltorch_load gave a %s tensor of %d dims", path, ltorch_dtype(t), ltorch_ndim(t));
  const float *d = ltorch_data(t);
  for (int k = 0; k < 12; k++)
    if (d[k] != (float)(base + k))
      return luaL_error(L, "%s: ltorch_data [%d] is %f, not %f", path, k, (double)d[k], base + k);
  lua_pop(L, 1);
  return 0;
}

/* a new state (host_state.h) with the sync and ccheck globals */
static lua_State *thread_state(const char *root) {
  lua_State *L = new_state(root);
  if (!L) return NULL;
  lua_pushcfunction(L, l_sync);
  lua_setglobal(L, "sync");
  lua_pushcfunction(L, l_ccheck);
  lua_setglobal(L, "ccheck");
  return L;
}

/* The work. Called as chunk(id, nthreads, dir, iterations, mode); mode
   "seed" writes the seed files (no sync), "run" is a thread's loop.
   Returns the number of results checked. Errors are plain messages. */
static const char CHUNK[] =
  "local torch = require('ltorch')\n"
  "local id, n, dir, iters, mode = ...\n"
  "local EXTS = {'pt', 'safetensors', 'npy', 'npz', 'gguf', 't7', 'dat'}\n"
  "local checked = 0\n"
  "local function fail(...) error(string.format(...), 0) end\n"
  /* the value writer w writes in iteration it: w = n is thread 0 for all,
     w = n + 1 the seed; every number in it is exact in float16 .. float64 */
  "local function base(w, it) return w * 100 + it end\n"
  "local function value(ext, w, it)\n"
  "  local b = base(w, it)\n"
  "  local wt = (torch.arange(12):view(3, 4) + b):to('float32')\n"
  "  if ext == 'npy' then return wt end\n"
  "  return {w = wt, b = torch.full({4}, b + 0.5, {dtype = 'float64'}),\n"
  "          i = torch.arange(5, {dtype = 'int32'}) + w}\n"
  "end\n"
  "local function tensors(ext, v)\n"
  "  if ext == 'gguf' and v.tensors then return v.tensors end\n"
  "  if ext == 'npy' then return {w = v} end\n"
  "  return v\n"
  "end\n"
  "local function same(a, b)\n"
  "  return torch.is_tensor(a) and a:dtype() == b:dtype() and torch.equal(a, b)\n"
  "end\n"
  /* got (a load) equals want; what names it in a message */
  "local function check(ext, got, want, what)\n"
  "  got, want = tensors(ext, got), tensors(ext, want)\n"
  "  for k, t in pairs(want) do\n"
  "    if not same(got[k], t) then\n"
  "      fail('%s: tensor %s: %s, not %s', what, k, tostring(got[k]), tostring(t))\n"
  "    end\n"
  "  end\n"
  "  checked = checked + 1\n"
  "end\n"
  /* the writer of a loaded value (from its values alone) */
  "local function writer(ext, got, it)\n"
  "  local t = tensors(ext, got)\n"
  "  if ext == 'npy' then return (math.tointeger(t.w[1][1]:item()) - it) // 100 end\n"
  "  return t.i[1]:item()\n"
  "end\n"
  /* math on a loaded value, checked against closed forms */
  "local function ops(ext, got, w, it, what)\n"
  "  local x = tensors(ext, got).w\n"
  "  local b = base(w, it)\n"
  "  local s = x:sum():item()\n"
  "  if s ~= 66 + 12 * b then fail('%s: sum %s, not %d', what, s, 66 + 12 * b) end\n"
  "  local x64 = x:to('float64')\n"
  "  local mm = torch.matmul(x64, x64:t())\n"
  "  for r = 0, 2 do\n"
  "    local e = 0\n"
  "    for c = 0, 3 do e = e + (b + 4 * r + c) ^ 2 end\n"
  "    if mm[r + 1][r + 1]:item() ~= e then fail('%s: matmul [%d][%d] %s, not %s', what, r + 1, r + 1, mm[r + 1][r + 1]:item(), e) end\n"
  "  end\n"
  "  local m32 = x:matmul(x:t())\n"
  "  if not torch.equal(m32, mm:to('float32')) then fail('%s: float32 matmul differs', what) end\n"
  "  local c = x:clone()\n"
  "  c:fill(-1)\n"                      /* the loaded tensor (an mmap view too) is untouched */
  "  if x[1][1]:item() ~= b then fail('%s: clone shares memory', what) end\n"
  "  for _, dt in ipairs({'float16', 'int64', 'int16', 'float64'}) do\n"   /* exact in each */
  "    local y = x:to(dt)\n"
  "    local ys = y:to('float64'):sum():item()\n"
  "    if y:dtype() ~= dt or ys ~= 66 + 12 * b then fail('%s: to(%s) sum %s', what, dt, ys) end\n"
  "  end\n"
  "  local bf = x:to('bfloat16')\n"       /* 8 bits: within 1/256 */
  "  if bf:dtype() ~= 'bfloat16' or not torch.allclose(bf:to('float32'), x, 1 / 256, 0) then fail('%s: to(bfloat16)', what) end\n"
  "  local r = torch.rand(3, 4)\n"           /* the state's own generator */
  "  if not torch.equal((x + r - r):to('float32'):round(), x) then fail('%s: x + r - r', what) end\n"
  "  checked = checked + 1\n"
  "end\n"
  "local function path(name, ext) return dir .. '/' .. name .. '.' .. ext end\n"
  /* a .pt past 16 MiB: its eager load reads with several threads (readjobs.c) */
  "local function big() return {big = (torch.arange(4500000) % 4093):to('float32')} end\n"
  /* a .pt of 1,100 records: its directory and pickle are read at once on
     the pool's threads (lpt.c, open_directory) */
  "local function many()\n"
  "  local t = {}\n"
  "  for i = 1, 1100 do t['m' .. i] = torch.full({2}, i, {dtype = 'int32'}) end\n"
  "  return t\n"
  "end\n"
  "if mode == 'seed' then\n"
  "  for _, ext in ipairs(EXTS) do torch.save(value(ext, n + 1, 0), path('seed', ext)) end\n"
  "  torch.save(big(), path('big', 'pt'))\n"
  "  torch.save(many(), path('many', 'pt'))\n"
  "  return 0\n"
  "end\n"
  /* every thread's first load of each format at once (the first .pt load
     in the process: the crc32 setup) */
  "sync()\n"
  /* first the crc32 alone, in every thread at once: a load passes atomics
     (reference counts) that order the threads for TSan before it */
  "local crc = require('ltorch.core')._pt_crc32(string.rep('ltorch', 40))\n"
  "if crc ~= 786073143 then fail('crc32 %s, not 786073143', crc) end\n"
  "for _, ext in ipairs(EXTS) do\n"
  "  local what = 'seed.' .. ext\n"
  "  check(ext, torch.load(path('seed', ext)), value(ext, n + 1, 0), what)\n"
  "  local m = torch.load(path('seed', ext), {mmap = true})\n"
  "  check(ext, m, value(ext, n + 1, 0), what .. ' (mmap)')\n"
  "  ops(ext, m, n + 1, 0, what)\n"
  "end\n"
  "sync()\n"
  "do\n"
  "  local want = big()\n"
  "  local calls, last = 0, 0\n"
  "  local function progress(done, total) calls = calls + 1; last = done; assert(done <= total) end\n"
  "  for _, opts in ipairs({{}, {mmap = true}, {progress = progress}}) do\n"
  "    local got = torch.load(path('big', 'pt'), opts)\n"
  "    check('pt', got, want, 'big.pt' .. (opts.mmap and ' (mmap)' or ''))\n"
  /* kernels split over the thread pool (pool.c), 8 states calling at once */
  "    local x, q, r = got.big, 4500000 // 4093, 4500000 % 4093\n"
  "    local s = q * (4092 * 4093 // 2) + (r - 1) * r // 2\n"
  "    local function want_eq(what, a, b) if a ~= b then fail('big.pt: %s %s, not %s', what, a, b) end end\n"
  "    want_eq('sum', x:sum():item(), torch.tensor(s):to('float32'):item())\n"   /* rounded once to float32 */
  "    want_eq('max', x:max():item(), 4092)\n"
  "    want_eq('min', x:min():item(), 0)\n"
  "    want_eq('count above 4000', x:gt(4000):sum():item(), q * 92 + math.max(0, r - 4001))\n"
  "    want_eq('sum of x + x', (x + x):sum():item(), torch.tensor(2 * s):to('float32'):item())\n"
  "    want_eq('float64 sum', x:to('float64'):sum():item(), s)\n"
  "    checked = checked + 1\n"
  "    got.big:free()\n"                    /* big blocks go to the freed-block cache (storage.c) */
  "  end\n"
  "  if calls < 1 or last ~= 18000000 then fail('big.pt: progress called %d times, last %d', calls, last) end\n"
  "  want.big:free()\n"
  "end\n"
  "for _, opts in ipairs({{}, {mmap = true}}) do\n"
  "  local got, s = torch.load(path('many', 'pt'), opts), 0\n"
  "  for _, t in pairs(got) do s = s + t:sum():item() end\n"
  "  if s ~= 1100 * 1101 then fail('many.pt: sum %s, not %d', s, 1100 * 1101) end\n"
  "  if got.m7[2]:item() ~= 7 then fail('many.pt: m7 is %s', tostring(got.m7)) end\n"
  "  checked = checked + 1\n"
  "end\n"
  "local views = {}\n"                   /* mmap views of the last iteration's one-path files */
  "for it = 1, iters do\n"
  "  for _, ext in ipairs(EXTS) do\n"
  /* own files */
  "    local p = path('own' .. id, ext)\n"
  "    local v = value(ext, id, it)\n"
  "    torch.save(v, p)\n"
  "    local e = torch.load(p)\n"
  "    check(ext, e, v, p)\n"
  "    ops(ext, e, id, it, p)\n"
  "    local m = torch.load(p, {mmap = true})\n"
  "    check(ext, m, v, p .. ' (mmap)')\n"
  "    ops(ext, m, id, it, p .. ' (mmap)')\n"
  "    if ext == 'npy' then ccheck(p, base(id, it)); checked = checked + 1 end\n"
  /* deflated .npz entries: an mmap load reads them when first used (deferred.c) */
  "    if ext == 'npz' then\n"
  "      local z = path('zip' .. id, ext)\n"
  "      torch.save(v, z, {compress = true})\n"
  "      local d = torch.load(z, {mmap = true})\n"
  "      check(ext, d, v, z .. ' (deflated, mmap)')\n"
  "      ops(ext, d, id, it, z)\n"
  "    end\n"
  "  end\n"
  /* a matmul big enough for OpenBLAS's own threads, float32 against float64 */
  "  local a, b = torch.rand(160, 96), torch.rand(96, 128)\n"
  "  local m32, m64 = a:matmul(b), a:to('float64'):matmul(b:to('float64'))\n"
  "  if not torch.allclose(m32:to('float64'), m64, 1e-5, 1e-5) then fail('thread %d: a 160x96x128 matmul differs', id) end\n"
  "  checked = checked + 1\n"
  /* one file, loaded by all */
  "  if id == 0 then\n"
  "    for _, ext in ipairs(EXTS) do torch.save(value(ext, n, it), path('common', ext)) end\n"
  "  end\n"
  "  sync()\n"
  "  for _, ext in ipairs(EXTS) do\n"
  "    local p = path('common', ext)\n"
  "    local mode_ = (id + it) % 2 == 0 and {mmap = true} or nil\n"
  "    local got = torch.load(p, mode_)\n"
  "    check(ext, got, value(ext, n, it), p)\n"
  "    ops(ext, got, n, it, p)\n"
  "  end\n"
  /* one path, saved by all */
  "  sync()\n"
  "  for _, ext in ipairs(EXTS) do torch.save(value(ext, id, it), path('race', ext)) end\n"
  "  sync()\n"
  "  for _, ext in ipairs(EXTS) do\n"
  "    local p = path('race', ext)\n"
  "    local old = views[ext]\n"
  "    if old then check(ext, old.value, value(ext, old.w, it - 1), p .. ' (an mmap view of the replaced file)') end\n"
  "    local got = torch.load(p, {mmap = true})\n"
  "    local w = writer(ext, got, it)\n"
  "    if math.type(w) ~= 'integer' or w < 0 or w >= n then fail('%s: written by no thread (%s)', p, tostring(w)) end\n"
  "    check(ext, got, value(ext, w, it), p .. ' (thread ' .. w .. \"'s value)\")\n"
  "    check(ext, torch.load(p), value(ext, w, it), p .. ' (eager)')\n"
  "    views[ext] = {value = got, w = w}\n"
  "  end\n"
  "  sync()\n"
  "  collectgarbage()\n"
  "end\n"
  "return checked\n";

/* run the chunk in L; on an error print it and exit the process */
static long run_chunk(lua_State *L, int id, const char *dir, int iters, const char *mode) {
  if (luaL_loadbuffer(L, CHUNK, sizeof CHUNK - 1, "=threads") != LUA_OK) goto fail;
  lua_pushinteger(L, id);
  lua_pushinteger(L, NTHREADS);
  lua_pushstring(L, dir);
  lua_pushinteger(L, iters);
  lua_pushstring(L, mode);
  if (lua_pcall(L, 5, 1, 0) != LUA_OK) goto fail;
  long n = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
fail:
  /* the other threads may wait at a barrier: no joining, out at once */
  fprintf(stderr, "threads: thread %d: %s\nthreads: files left in %s\n", id, lua_tostring(L, -1), workdir);
  fflush(stdout);
  _exit(1);
}

static void *thread_main(void *arg) {
  job *j = arg;
  lua_State *L = thread_state(j->root);
  if (!L) { fprintf(stderr, "threads: thread %d: no memory for a lua_State\n", j->id); _exit(1); }
  j->checked = run_chunk(L, j->id, j->dir, j->iters, "run");
  lua_close(L);
  atomic_fetch_add(&checks, j->checked);
  return NULL;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  return remove(p) ? -1 : 0;
}

static int usage(void) {
  fprintf(stderr, "usage: threads [-n ITERATIONS] [-k]\n");
  return 2;
}

int main(int argc, char **argv) {
  int iters = 10, keep = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 100000) return usage();
      iters = (int)v;
    } else if (!strcmp(argv[i], "-k")) {
      keep = 1;
    } else {
      return usage();
    }
  }
  char rootbuf[4096], *dir = workdir;
  const char *root = find_root(rootbuf, sizeof rootbuf);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof workdir, "%s/ltorch-threads-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) { fprintf(stderr, "threads: %s: %s\n", dir, strerror(errno)); return 1; }

  /* the seed files, from a child: this process has no ltorch state yet */
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { fprintf(stderr, "threads: fork: %s\n", strerror(errno)); return 1; }
  if (pid == 0) {
    lua_State *L = thread_state(root);
    if (!L) _exit(1);
    run_chunk(L, -1, dir, 0, "seed");
    lua_close(L);
    _exit(0);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "threads: writing the seed files failed\n");
    return 1;
  }

  pthread_barrier_init(&barrier, NULL, NTHREADS);
  pthread_t th[NTHREADS];
  job jobs[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    jobs[i] = (job){i, root, dir, iters, 0};
    int rc = pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    if (rc) { fprintf(stderr, "threads: pthread_create: %s\n", strerror(rc)); _exit(1); }
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < NTHREADS; i++) printf("thread %d: ok, %ld results checked\n", i, jobs[i].checked);
  printf("threads: %d threads x %d iterations x %d formats: %ld results checked, all equal\n", NTHREADS,
         iters, NFORMATS, (long)atomic_load(&checks));
  if (keep) printf("threads: files kept in %s\n", dir);
  else if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS)) fprintf(stderr, "threads: cannot remove %s\n", dir);
  return 0;
}
