-- faults_spec.lua: saves that fail for want of room (issue 18): a file size
-- limit (RLIMIT_FSIZE, `ulimit -f`) and a full disk (a small tmpfs, where
-- this machine lets the suite mount one). Every writer must fail with a
-- clear error naming the file, leave the old file byte for byte, and leave
-- no temporary file. (SIGKILL during saves and concurrent saves to one
-- path: savesafe_spec.lua; threads saving at once: threads_spec.lua.)
local sh = require("sh_helper")

local BUILD = os.getenv("LTORCH_BUILD") or "build"
local ENV = "LUA_PATH=" .. sh.quote("lua/?.lua;lua/?/init.lua;;") .. " LUA_CPATH=" .. sh.quote(BUILD .. "/?.so;;")

local mkdir, spit, slurp = sh.mkdir, sh.spit, sh.slurp

local function listing(d)
  local out = sh.run("ls -A " .. sh.quote(d))
  local t = {}
  for n in out:gmatch("[^\n]+") do t[#t + 1] = n end
  table.sort(t)
  return t
end

-- every writer: the file name, the value saved
local WRITERS = {
  {"m.pt", "{w = big}"}, {"m.safetensors", "{w = big}"}, {"m.npy", "big"}, {"m.npz", "{w = big}"},
  {"m.t7", "{w = big}"}, {"m.gguf", "{w = big}"}, {"m.dat", "{w = big}"},
}

-- save.lua DIR NAME VALUE MIB: saves VALUE (big: MIB MiB of float32) to
-- DIR/NAME; prints "saved" or the error
local SCRIPT = [[
local torch = require("ltorch")
local d, name, value, mib = arg[1], arg[2], arg[3], tonumber(arg[4])
local big = torch.full({mib * 262144}, 7, {dtype = "float32"})
local v = load("local big = ...; return " .. value)(big)
local ok, err = pcall(torch.save, v, d .. "/" .. name)
print(ok and "saved" or err)
]]

local function check_failed(d, name, out, old, why)
  local msg = out:match("^([^\n]*)")
  assert.is_truthy(msg:find(d .. "/" .. name, 1, true), name .. ": " .. out)
  assert.is_truthy(msg:lower():find(why, 1, true), name .. ": " .. out)
  assert.equals(old, slurp(d .. "/" .. name), name .. ": the old file changed")
end

describe("a save past RLIMIT_FSIZE", function()
  local d, script
  setup(function()
    d = mkdir()
    script = d .. "/save.lua"
    spit(script, SCRIPT)
  end)
  teardown(function() os.execute("rm -rf " .. sh.quote(d)) end)

  for _, w in ipairs(WRITERS) do
    local name, value = w[1], w[2]
    it("fails with 'file too large' and leaves the old file: " .. name, function()
      local old = "the old " .. name
      spit(d .. "/" .. name, old)
      -- SIGXFSZ ignored, so the write fails with EFBIG instead of killing
      local out, code, err = sh.run(string.format("sh -c %s", sh.quote(string.format(
        "trap '' XFSZ; ulimit -f 1024; %s lua5.4 %s %s %s %s 4", ENV, sh.quote(script), sh.quote(d),
        sh.quote(name), sh.quote(value)))))
      assert.equals(0, code, err)
      check_failed(d, name, out, old, "file too large")
      assert.same({name, "save.lua"}, listing(d))
      os.remove(d .. "/" .. name)
    end)
  end

  it("killed by SIGXFSZ mid-save, leaves the old file and no temporary file", function()
    for _, w in ipairs(WRITERS) do
      local name, value = w[1], w[2]
      local old = "the old " .. name
      spit(d .. "/" .. name, old)
      local _, code = sh.run(string.format("sh -c %s", sh.quote(string.format(
        "ulimit -f 1024; %s lua5.4 %s %s %s %s 4", ENV, sh.quote(script), sh.quote(d),
        sh.quote(name), sh.quote(value)))))
      assert.are_not.equal(0, code, name)
      assert.equals(old, slurp(d .. "/" .. name), name)
      assert.same({name, "save.lua"}, listing(d), name)
      os.remove(d .. "/" .. name)
    end
  end)
end)

describe("a save to a full disk", function()
  local d, mnt, mounted, why
  setup(function()
    d = mkdir()
    spit(d .. "/save.lua", SCRIPT)
    mnt = d .. "/small"
    assert(os.execute("mkdir -p " .. sh.quote(mnt)))
    local _, code, err = sh.run("mount -t tmpfs -o size=3m tmpfs " .. sh.quote(mnt))
    mounted = code == 0
    why = err:gsub("\n$", "")
  end)
  teardown(function()
    if mounted then sh.run("umount " .. sh.quote(mnt)) end
    os.execute("rm -rf " .. sh.quote(d))
  end)

  for _, w in ipairs(WRITERS) do
    local name, value = w[1], w[2]
    it("fails with 'no space left' and leaves the old file: " .. name, function()
      if not mounted then
        pending("cannot mount a tmpfs here (" .. why .. "): the full-disk case is not run")
        return
      end
      local old = "the old " .. name
      spit(mnt .. "/" .. name, old)
      local out, code, err = sh.run(string.format("%s lua5.4 %s %s %s %s 4", ENV, sh.quote(d .. "/save.lua"),
        sh.quote(mnt), sh.quote(name), sh.quote(value)))
      assert.equals(0, code, err)
      check_failed(mnt, name, out, old, "no space left")
      assert.same({name}, listing(mnt))
      -- the space is back: a save that fits succeeds
      out = sh.run(string.format("%s lua5.4 %s %s %s %s 1", ENV, sh.quote(d .. "/save.lua"),
        sh.quote(mnt), sh.quote(name), sh.quote(value)))
      assert.equals("saved\n", out)
      assert.same({name}, listing(mnt))
      os.remove(mnt .. "/" .. name)
    end)
  end
end)
