-- savesafe_spec.lua: kill-safe, race-free saves (docs/formats.md "Atomic
-- saves"): unpredictable temporary names created with O_EXCL|O_NOFOLLOW,
-- stale temporary files of killed saves removed, SIGKILL mid-save and two
-- processes saving to one path leave the old or a new file, whole
local torch = require("ltorch")
local core = require("ltorch.core")
local serialize = require("ltorch.serialize")
local sh = require("sh_helper")

local mkdir, spit, slurp = sh.mkdir, sh.spit, sh.slurp

-- the names in dir (ls -A)
local function names(dir)
  local out = sh.run("ls -A " .. sh.quote(dir))
  local t = {}
  for n in out:gmatch("[^\n]+") do t[#t + 1] = n end
  table.sort(t)
  return t
end

local function temps(dir)
  local t = {}
  for _, n in ipairs(names(dir)) do if n:find("%.tmp%-") then t[#t + 1] = n end end
  return t
end

-- lua5.4 running code with this checkout's modules
local LUA = "LUA_PATH=" .. sh.quote("lua/?.lua;lua/?/init.lua;;")
  .. " LUA_CPATH=" .. sh.quote((os.getenv("LTORCH_BUILD") or "build") .. "/?.so;;") .. " lua5.4"

local FORMATS = {"pt", "safetensors", "npz", "npy", "t7", "dat"}

local function value(fmt, k, n)
  local t = torch.full({n or 16}, k, {dtype = "float32"})
  if fmt == "npy" then return t end
  return {w = t}
end

describe("temporary names", function()
  it("come from getrandom: 32 hex digits, never twice", function()
    local seen = {}
    for _ = 1, 200 do
      local p = serialize.temp_path("/x/y/model.pt")
      local hex = p:match("^/x/y/%.model%.pt%.tmp%-(%x+)%-%d+$")
      assert.equals(32, #hex)
      assert.is_nil(seen[hex])
      seen[hex] = true
    end
    assert.equals(16, #core._random_hex(8))
  end)

  it("are created exclusively, never through a link (core._create_temp)", function()
    local d = mkdir()
    spit(d .. "/victim", "precious")
    assert(os.execute("ln -s victim " .. sh.quote(d .. "/link")))
    assert(os.execute("ln -s nowhere " .. sh.quote(d .. "/dangling")))
    local ok, err = core._create_temp(d .. "/link")
    assert.is_nil(ok)
    assert.truthy(err)
    assert.is_nil((core._create_temp(d .. "/dangling")))
    assert.is_nil((core._create_temp(d .. "/victim")))
    assert.equals("precious", slurp(d .. "/victim"))
    assert.is_nil(slurp(d .. "/nowhere"))
    assert.is_true(core._create_temp(d .. "/fresh"))
    assert.equals("", slurp(d .. "/fresh"))
    os.execute("rm -rf " .. sh.quote(d))
  end)

  for _, fmt in ipairs(FORMATS) do
    it("a link planted at the temporary name is not followed (" .. fmt .. ")", function()
      local d = mkdir()
      local target = d .. "/m." .. fmt
      torch.save(value(fmt, 1), target)
      local before = slurp(target)
      spit(d .. "/victim", "precious")
      local planted = d .. "/.m." .. fmt .. ".tmp-planted-1"
      assert(os.execute("ln -s victim " .. sh.quote(planted)))
      local real = serialize.temp_path
      serialize.temp_path = function() return planted end
      local ok, err = pcall(torch.save, value(fmt, 2), target)
      serialize.temp_path = real
      assert.is_false(ok)
      assert.matches("m%." .. fmt, tostring(err))
      assert.equals("precious", slurp(d .. "/victim"))
      assert.equals(before, slurp(target))
      os.execute("rm -rf " .. sh.quote(d))
    end)
  end
end)

describe("stale temporary files", function()
  it("of killed saves to the same path are removed by the next save; nothing else", function()
    local d = mkdir()
    local q = function(n) return sh.quote(d .. "/" .. n) end
    spit(d .. "/.m.pt.tmp-dead-1", "old")
    spit(d .. "/.m.pt.tmp-dead-2.Ab12Cd", "old")      -- libzip's own beside ours
    spit(d .. "/.m.pt.tmp-live-1", "a save running now")
    spit(d .. "/.other.pt.tmp-dead-1", "old")          -- another target's
    spit(d .. "/m.pt.tmp-dead-1", "old")               -- not the pattern
    assert(os.execute("mkdir " .. q(".m.pt.tmp-dir")))
    assert(os.execute("ln -s m.pt " .. q(".m.pt.tmp-link")))
    for _, n in ipairs({".m.pt.tmp-dead-1", ".m.pt.tmp-dead-2.Ab12Cd", ".other.pt.tmp-dead-1",
                        "m.pt.tmp-dead-1", ".m.pt.tmp-dir"}) do
      assert(os.execute("touch -d '2 hours ago' " .. q(n)))
    end
    assert(os.execute("touch -h -d '2 hours ago' " .. q(".m.pt.tmp-link")))
    torch.save(value("pt", 1), d .. "/m.pt")
    assert.same({".m.pt.tmp-dir", ".m.pt.tmp-link", ".m.pt.tmp-live-1", ".other.pt.tmp-dead-1",
                 "m.pt", "m.pt.tmp-dead-1"}, names(d))
    os.execute("rm -rf " .. sh.quote(d))
  end)

  it("are looked for once per target and process: what a later look finds is newer", function()
    local d = mkdir()
    torch.save(value("pt", 1), d .. "/m.pt")
    spit(d .. "/.m.pt.tmp-dead-1", "old")
    assert(os.execute("touch -d '2 hours ago' " .. sh.quote(d .. "/.m.pt.tmp-dead-1")))
    torch.save(value("pt", 2), d .. "/m.pt")            -- this process looked already
    assert.same({".m.pt.tmp-dead-1", "m.pt"}, names(d))
    torch.save(value("pt", 2), d .. "/n.pt")            -- another target's look
    assert.same({".m.pt.tmp-dead-1", "m.pt", "n.pt"}, names(d))
    local out, code, err = sh.run(LUA .. " -e " .. sh.quote("require('ltorch').save({w = require('ltorch').zeros(2)}, '"
      .. d .. "/m.pt')"))
    assert.are.equal(0, code, out .. err)
    assert.same({"m.pt", "n.pt"}, names(d))            -- a new process's first save
    os.execute("rm -rf " .. sh.quote(d))
  end)

  it("start at this process's start", function()
    local s = core._start_time()
    assert.is_true(s <= os.time() + 1)
    assert.is_true(s > os.time() - 24 * 3600 * 365)
  end)
end)

describe("a save killed with SIGKILL", function()
  local N = 16 * 1024 * 1024   -- 64 MiB of float32
  local KILL = {"pt", "safetensors", "npz"}

  it("leaves the old file or the new one, whole; the next save leaves no temporary file", function()
    local d = mkdir()
    local old, new = {}, {}
    for _, fmt in ipairs(KILL) do
      -- the same name: a .pt archive's folder is the file's stem
      torch.save(value(fmt, 2, N), d .. "/m." .. fmt)
      new[fmt] = slurp(d .. "/m." .. fmt)
      torch.save(value(fmt, 1, N), d .. "/m." .. fmt)
      old[fmt] = slurp(d .. "/m." .. fmt)
    end
    local script = d .. "/save.lua"
    spit(script, string.format([[
local torch = require("ltorch")
local fmt, k = arg[1], tonumber(arg[2])
torch.save({w = torch.full({%d}, k, {dtype = "float32"})}, %q .. "/m." .. fmt)
]], N, d))
    local runs, replaced = 0, 0
    for i = 1, 21 do
      local fmt = KILL[(i - 1) % #KILL + 1]
      -- the write lies at about 0.04 to 0.12 s (.npz: 0.05 later)
      local delay = 0.02 + 0.005 * i + (fmt == "npz" and 0.05 or 0)
      sh.run(string.format("%s %s %s 2 & sleep %.2f; kill -9 $! 2>/dev/null; wait",
        LUA, script, fmt, delay))
      local got = slurp(d .. "/m." .. fmt)
      assert.is_true(got == old[fmt] or got == new[fmt], fmt .. " after kill " .. i)
      if got == new[fmt] then replaced = replaced + 1 end
      if os.getenv("SAVESAFE_DEBUG") then io.stderr:write(fmt, " ", delay, " ", tostring(got == new[fmt]), " ", #temps(d), "\n") end
      runs = runs + 1
    end
    assert.equals(21, runs)
    assert.is_true(replaced < runs, "no save was killed in time")
    -- one clean save per format, in a process started after the killed ones
    for _, fmt in ipairs(KILL) do
      local _, code, err = sh.run(string.format("%s %s %s 3", LUA, script, fmt))
      assert.equals(0, code, err)
      local v = torch.load(d .. "/m." .. fmt)
      assert.equals(3, v.w[1]:item())
      assert.equals(3, v.w[N]:item())
    end
    os.remove(script)
    assert.same({}, temps(d))
    os.execute("rm -rf " .. sh.quote(d))
  end)
end)

describe("two processes saving to one path", function()
  it("leave exactly one of the two values", function()
    local d = mkdir()
    local N = 2 * 1024 * 1024
    local refs = {}
    for k = 1, 2 do
      torch.save(value("pt", k, N), d .. "/m.pt")
      refs[k] = slurp(d .. "/m.pt")
    end
    local script = d .. "/save.lua"
    spit(script, string.format([[
local torch = require("ltorch")
torch.save({w = torch.full({%d}, tonumber(arg[1]), {dtype = "float32"})}, %q)
]], N, d .. "/m.pt"))
    for i = 1, 4 do
      local _, code, err = sh.run(string.format("%s %s 1 & %s %s 2 & wait", LUA, script, LUA, script))
      assert.equals(0, code, err)
      local got = slurp(d .. "/m.pt")
      assert.is_true(got == refs[1] or got == refs[2], "round " .. i)
    end
    os.remove(script)
    assert.same({}, temps(d))
    os.execute("rm -rf " .. sh.quote(d))
  end)
end)
