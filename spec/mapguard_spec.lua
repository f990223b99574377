-- mapguard_spec.lua: a file cut short under an mmap = true load (defect 9
-- of issue 18). Before src/mapguard.c the next read of a mapped page past
-- the new end killed the process with SIGBUS; now every op, copy, save and
-- tobytes that reads such a page raises an error naming the file, every
-- later use of its tensors raises the same, and a save from it leaves the
-- old target file as it was. A SIGBUS outside ltorch's mappings still
-- reaches the host's own handler, or kills the process as before. Each
-- case runs in its own process (sh_helper), so a crash fails the spec.
local torch = require("ltorch")
local sh = require("sh_helper")

local BUILD = os.getenv("LTORCH_BUILD") or "build"
local LUA = "LUA_PATH=" .. sh.quote("lua/?.lua;lua/?/init.lua;;")
  .. " LUA_CPATH=" .. sh.quote(BUILD .. "/?.so;;") .. " lua5.4"

local mkdir, spit, slurp = sh.mkdir, sh.spit, sh.slurp

-- the mmap loads: the tensor w of a file of each format, and whether it
-- is mapped (Torch7 and TorchSharp tensors are read from the file on first
-- use instead, which fails as a read: "the file ends first")
local FORMATS = {
  pt = {"torch.load(p, {mmap = true}).w", true},
  safetensors = {"torch.load(p, {mmap = true}).w", true},
  npy = {"torch.load(p, {mmap = true})", true},
  gguf = {"torch.load(p, {mmap = true}).tensors.w", true},
  t7 = {"torch.load(p, {mmap = true}).w", false},
  dat = {"torch.load(p, {mmap = true}).w", false},
}

-- what reads the mapped bytes after the cut
local OPS = {
  sum = "w:sum()",
  clone = "w:clone()",
  add = "w + 1",
  matmul = "w:matmul(w)",             -- OpenBLAS's threads read it
  tobytes = "w:tobytes()",
  element = "w[300][2]:item()",
  tolist = "w:tolist()",
  save_pt = "torch.save({w = w}, d .. '/out.pt')",
  save_safetensors = "torch.save({w = w}, d .. '/out.safetensors')",
  save_npy = "torch.save(w, d .. '/out.npy')",
}

local SCRIPT = [[
local torch = require("ltorch")
local fmt, op, d = arg[1], arg[2], arg[3]
local p = d .. "/m." .. fmt
local v = torch.arange(1, 512 * 512 + 1, {dtype = "float32"}):reshape(512, 512)
if fmt == "npy" then torch.save(v, p) else torch.save({w = v}, p) end
local w = (load("local torch, p = ...; return " .. arg[4]))(torch, p)
assert(w:_storage_info() and select(3, w:_storage_info()) == (arg[6] == "mapped"), "mapping")
-- a mapped tensor's first page is read now; a deferred one is read whole on first use
if arg[6] == "mapped" then assert(w[1][1]:item() == 1) end
local f = assert(io.open(p, "r+b")); f:close()
assert(os.execute("truncate -s 4096 '" .. p .. "'"))
local ok, err = pcall(load("local torch, w, d = ...; return " .. arg[5]), torch, w, d)
print(ok and "returned" or err)
local ok2, err2 = pcall(function() return w:sum() end)   -- any later use
print(ok2 and "returned" or err2)
]]

describe("a file cut short under an mmap load", function()
  local d, script
  setup(function()
    d = mkdir()
    script = d .. "/cut.lua"
    spit(script, SCRIPT)
  end)
  teardown(function() os.execute("rm -rf " .. sh.quote(d)) end)

  for fmt, how in pairs(FORMATS) do
    local getter, mapped = how[1], how[2]
    for op, code in pairs(OPS) do
      it("raises an error naming the file: " .. fmt .. ", " .. op, function()
        for _, ext in ipairs({"pt", "safetensors", "npy"}) do spit(d .. "/out." .. ext, "old") end
        local out, status, err = sh.run(table.concat({LUA, sh.quote(script), fmt, op, sh.quote(d),
          sh.quote(getter), sh.quote(code), mapped and "mapped" or "read"}, " "))
        assert.equals(0, status, "the process died: " .. err)
        local first, later = out:match("^([^\n]*)\n([^\n]*)\n$")
        local want = d .. "/m." .. fmt .. (mapped and ": the file changed under its mapping" or ": ")
        assert.is_truthy(first and first:find(want, 1, true), out)
        if mapped then assert.is_truthy(later:find(want, 1, true), out)
        else assert.is_truthy(first:find("the file ends first", 1, true), out) end
        -- a save from it failed before replacing the old file, and left nothing
        for _, ext in ipairs({"pt", "safetensors", "npy"}) do
          assert.equals("old", slurp(d .. "/out." .. ext))
        end
        local tmp = sh.run("ls -A " .. sh.quote(d) .. " | grep -c tmp-")
        assert.equals("0", tmp:match("%d+"))
      end)
    end
  end

  it("is no error for a file rewritten in place at its size (pages not yet read show the new bytes)", function()
    local p = d .. "/same.safetensors"
    torch.save({w = torch.zeros(4096)}, p)
    local w = torch.load(p, {mmap = true}).w
    local raw = slurp(p)
    spit(p, raw:sub(1, #raw - 4) .. string.pack("<f", 2.5))   -- the last element, rewritten
    assert.equals(2.5, w[4096]:item())
    assert.equals(2.5, w:sum():item())
  end)
end)

-- a C host with SIGBUS handling of its own
local HOST = [[
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static void mine(int sig) { (void)sig; static const char m[] = "host handler\n"; write(1, m, sizeof m - 1); _exit(3); }

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[2], "handler") == 0) signal(SIGBUS, mine);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  /* ltorch installs its handler with its first mapping */
  lua_pushstring(L, argv[1]);
  lua_setglobal(L, "P");
  if (luaL_dostring(L, "local torch = require('ltorch'); torch.save({w = torch.ones(8)}, P .. '/a.safetensors');"
                       "W = torch.load(P .. '/a.safetensors', {mmap = true}).w; assert(W:sum():item() == 8)") != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 11;
  }
  /* a mapping of the host's own, cut short */
  char path[4096];
  snprintf(path, sizeof path, "%s/own.bin", argv[1]);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ftruncate(fd, 1 << 16)) return 12;
  volatile char *m = mmap(NULL, 1 << 16, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return 13;
  if (ftruncate(fd, 0)) return 14;
  printf("read %d\n", m[1 << 15]);   /* SIGBUS: not ltorch's */
  return 0;
}
]]

describe("a SIGBUS outside ltorch's mappings", function()
  local d, exe
  setup(function()
    d = mkdir()
    spit(d .. "/host.c", HOST)
    exe = d .. "/host"
    local lib = BUILD:sub(1, 1) == "/" and BUILD or (io.popen("pwd"):read("l") .. "/" .. BUILD)
    local _, code, err = sh.run(string.format(
      "cc -std=c11 -D_GNU_SOURCE -w -I/usr/include/lua5.4 -o %s %s -llua5.4", sh.quote(exe), sh.quote(d .. "/host.c")))
    assert.equals(0, code, err)
    exe = "LUA_PATH=" .. sh.quote("lua/?.lua;lua/?/init.lua;;") .. " LUA_CPATH=" .. sh.quote(lib .. "/?.so;;") .. " " .. sh.quote(exe)
  end)
  teardown(function() os.execute("rm -rf " .. sh.quote(d)) end)

  it("reaches the handler the host installed before ltorch", function()
    local out, code = sh.run(exe .. " " .. sh.quote(d) .. " handler")
    assert.equals(3, code)
    assert.equals("host handler\n", out)
  end)

  it("kills the process as SIGBUS does without ltorch", function()
    local out, code, err = sh.run("sh -c " .. sh.quote(exe .. " " .. sh.quote(d) .. "; echo status $?"))
    assert.equals(0, code)
    assert.is_nil(out:find("read ", 1, true))
    if (os.getenv("LD_PRELOAD") or ""):find("libasan") then
      -- make asan: AddressSanitizer's handler was there first, and reports it
      assert.is_truthy(err:find("AddressSanitizer:%s*BUS"), err)
    else
      assert.equals("status 135", out:match("status %d+"))   -- 128 + SIGBUS (7)
    end
  end)
end)
