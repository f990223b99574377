/*
** fuzz_util.h: helpers shared by the libFuzzer targets (fuzz/fuzz_NAME.c): the
** input as a file descriptor (a memfd, rewritten for every input), and the
** Lua host of the targets that go through torch.load (fuzz_lua.c).
*/
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* libFuzzer's entry points */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* an fd holding exactly the size bytes at data (one memfd per process,
   truncated and rewritten each call); aborts when the write fails */
int fz_memfd(const uint8_t *data, size_t size);

/* ---- the Lua host (fuzz_lua.c) ------------------------------------------ */

/* Start the process's one lua_State: package.path from the checkout (the
   folder above the fuzzer binary's build-fuzz/, or $LTORCH_ROOT), ltorch's
   core from the sanitizer build linked into the binary; setup(L) when not
   NULL (to add globals), then runs chunk, which must return a function:
   that function is called for each input. */
void fz_lua_init(const char *chunk, void (*setup)(lua_State *L));
/* write the input to a file named "input<ext>" in the process's own
   folder (under $TMPDIR, else /dev/shm; no file when ext is NULL), then
   call the function with its path (or nil) and the input as a string; Lua errors are ignored (bad input is
   meant to raise), the state is collected after each call */
void fz_lua_run(const uint8_t *data, size_t size, const char *ext);

#endif
