-- savefast_spec.lua: the .pt writer's fast paths (issue 19) write what the
-- plain paths wrote: small records gathered into big writes, the crc32 of
-- big records computed on a second thread during their write, error paths
-- built only on error, and the open of many small tensors.
local torch = require("ltorch")
local core = require("ltorch.core")
local sh = require("sh_helper")

local dir = sh.mkdir()
-- a fresh lua5.4 with this checkout's modules and core
local LUA = "LUA_PATH=" .. sh.quote("lua/?.lua;lua/?/init.lua;;")
  .. " LUA_CPATH=" .. sh.quote((os.getenv("LTORCH_BUILD") or "build") .. "/?.so;;") .. " lua5.4"

local function read(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- the stored records of a zip archive from its central directory:
-- {name = {crc = ..., data = bytes}}
local function records(bytes)
  local out = {}
  local eocd = bytes:find("PK\5\6", #bytes - 22 - 65535, true)
  local pos = 1
  while true do
    local at = bytes:find("PK\1\2", pos, true)
    if not at or at > eocd then break end
    local crc, csize, usize, nl, xl, cl = string.unpack("<I4I4I4I2I2I2", bytes, at + 16)
    local loff = string.unpack("<I4", bytes, at + 42)
    local name = bytes:sub(at + 46, at + 45 + nl)
    if xl > 0 then   -- ZIP64: sizes, then the offset
      local x = at + 46 + nl
      local q = x + 4
      if usize == 0xFFFFFFFF then usize = string.unpack("<I8", bytes, q); q = q + 8 end
      if csize == 0xFFFFFFFF then q = q + 8 end
      if loff == 0xFFFFFFFF then loff = string.unpack("<I8", bytes, q) end
    end
    local lnl, lxl = string.unpack("<I2I2", bytes, loff + 1 + 26)
    local d = loff + 30 + lnl + lxl
    out[name] = {crc = crc, data = bytes:sub(d + 1, d + usize), off = d}
    pos = at + 46 + nl + xl + cl
  end
  return out
end

describe("the .pt writer", function()
  it("gives big records (crc on a second thread) and small ones the crc32 of their bytes", function()
    local p = dir .. "/mixed.pt"
    local sd = require("ltorch.odict").new()
    sd.big = torch.arange(0, 3 * 262144 + 5, 1, {dtype = "float32"})   -- 3 MiB and 20 bytes
    sd.mid = torch.arange(0, 20000, 1, {dtype = "float64"})            -- 160 KB: written directly
    for i = 1, 300 do sd["s" .. i] = torch.full({i % 7 + 1}, i) end       -- gathered
    torch.save(sd, p)
    local bytes = read(p)
    local recs = records(bytes)
    local n = 0
    for name, r in pairs(recs) do
      n = n + 1
      assert.are.equal(core._pt_crc32(r.data), r.crc, name)
      if name:find("/data/%d+$") then assert.are.equal(0, r.off % 64, name) end
    end
    assert.are.equal(302 + 4, n)   -- and data.pkl, byteorder, version, .data/serialization_id
    local back = torch.load(p, {verify = true})
    assert.is_true(torch.equal(back.big, sd.big))
    assert.is_true(torch.equal(back.mid, sd.mid))
    for i = 1, 300 do assert.is_true(torch.equal(back["s" .. i], sd["s" .. i])) end
    -- the same value saved again: the same bytes
    torch.save(sd, p)
    assert.are.equal(bytes, read(p))
  end)

  it("names the key of a value it cannot save, nested in lists and dicts", function()
    local p = dir .. "/bad.pt"
    assert.has_error(function() torch.save({a = {b = {1, 2, {c = print}}}}, p) end,
      p .. ": cannot save a value of type function (at a.b[3].c)")
    assert.has_error(function() torch.save({x = torch.zeros(2), [1] = {coroutine.create(print)}}, p) end,
      p .. ": cannot save a value of type thread (at [1][1])")
    assert.is_nil(io.open(p))
  end)
end)

describe("opening many small tensors", function()
  local p = dir .. "/many.pt"
  local sd = require("ltorch.odict").new()
  for i = 1, 300 do sd["b" .. (i // 10) .. ".p" .. i] = torch.full({3}, i) end
  sd.tied = sd["b1.p10"]

  it("gives the keys in order, each storage's record, and views that share storage", function()
    torch.save(sd, p)
    for _, mmap in ipairs({false, true}) do
      local back = torch.load(p, {mmap = mmap})
      local ks = require("ltorch.odict").keys(back)
      assert.are.same(require("ltorch.odict").keys(sd), ks)
      for _, k in ipairs(ks) do assert.is_true(torch.equal(back[k], sd[k]), k) end
      back.tied:fill(-1)
      assert.are.equal(-1, back["b1.p10"][1]:item())
    end
  end)

  it("leaves the collector running when building the value fails", function()
    torch.save(sd, p)
    assert.is_true(collectgarbage("isrunning"))
    -- a float key 1.5 made NaN in data.pkl (its crc32 fixed): the
    -- conversion to Lua fails on it, after the storages are read
    local q = dir .. "/nan_key.pt"
    local d = require("ltorch.odict").new()
    d.w = torch.zeros(2)
    d[1.5] = torch.ones(2)
    torch.save(d, q)
    local bytes = read(q)
    local recs = records(bytes)
    local pkl = recs["nan_key/data.pkl"]
    local one5 = "G" .. string.pack(">d", 1.5)
    local a = assert(bytes:find(one5, pkl.off + 1, true))
    local nan = "G" .. string.pack(">I8", 0x7FF8000000000000)
    local fixed = pkl.data:gsub(one5:gsub("%p", "%%%0"), (nan:gsub("%%", "%%%%")))
    local old_crc, new_crc = string.pack("<I4", pkl.crc), string.pack("<I4", core._pt_crc32(fixed))
    bytes = bytes:sub(1, a - 1) .. nan .. bytes:sub(a + #nan)
    bytes = bytes:gsub(old_crc:gsub("%W", "%%%0"), (new_crc:gsub("%%", "%%%%")))
    local f = assert(io.open(q, "wb"))
    f:write(bytes)
    f:close()
    assert.has_error(function() torch.load(q, {mmap = true}) end, q .. ": dict key is NaN")
    assert.is_true(collectgarbage("isrunning"))
    assert.has_error(function() torch.load(q) end, q .. ": dict key is NaN")
    assert.is_true(collectgarbage("isrunning"))
    collectgarbage("stop")   -- and a stopped collector stays stopped
    torch.load(p, {mmap = true})
    assert.is_false(collectgarbage("isrunning"))
    collectgarbage("restart")
  end)
end)

describe("the safetensors writer", function()
  it("gathers small tensors into big writes with the same bytes and layout", function()
    local p = dir .. "/many.safetensors"
    local sd = {}
    for i = 1, 400 do sd["t" .. i] = torch.arange(0, i % 9 + 1, 1, {dtype = i % 2 == 0 and "float32" or "int64"}) end
    sd.big = torch.arange(0, 70000, 1, {dtype = "float32"})   -- past the gathering size: written alone
    sd.view = torch.arange(0, 40, 1, {dtype = "float64"}):reshape(5, 8):t()   -- not contiguous: gathered as elements
    sd.cast = torch.arange(0, 6, 1, {dtype = "float64"})
    torch.save(sd, p)
    local back = torch.load(p)
    for k, v in pairs(sd) do assert.is_true(torch.equal(back[k], v), k) end
    -- the file is its header, then each tensor's bytes at its data_offsets
    local bytes = read(p)
    local hn = string.unpack("<I8", bytes)
    local header = require("ltorch.json").decode(bytes:sub(9, 8 + hn))
    local total = 0
    for k, e in pairs(header) do
      if k ~= "__metadata__" then total = math.max(total, e.data_offsets[2]) end
    end
    assert.are.equal(8 + hn + total, #bytes)
    -- saved with a cast (float16 for the floating ones): nothing gathered in the wrong dtype
    local q = dir .. "/cast.safetensors"
    torch.save(sd, q, {dtype = "float16"})
    local c = torch.load(q)
    assert.are.equal("float16", c.cast:dtype())
    assert.is_true(torch.equal(c.cast:to("float64"), sd.cast))
    assert.is_true(torch.equal(c.t5, sd.t5))
  end)

  it("fails a save of small tensors from a mapping cut short, the old file intact", function()
    local script = dir .. "/cut_small.lua"
    sh.spit(script, [[
local torch = require("ltorch")
local d = arg[1]
local p = d .. "/small_src.safetensors"
local sd = {a = torch.ones(8)}
for i = 1, 8 do sd["w" .. i] = torch.full({2048}, i) end   -- 8 KiB each, past the first page
torch.save(sd, p)
local m = torch.load(p, {mmap = true})
assert(os.execute("truncate -s 4096 '" .. p .. "'"))
for _, ext in ipairs({"safetensors", "pt"}) do
  local out = d .. "/small_out." .. ext
  local f = assert(io.open(out, "wb")); f:write("old"); f:close()
  local ok, err = pcall(torch.save, m, out)
  f = assert(io.open(out, "rb")); local s = f:read("a"); f:close()
  print(ext, ok and "returned" or err, s)
end
]])
    local out = sh.run(LUA .. " " .. sh.quote(script) .. " " .. sh.quote(dir) .. " 2>&1")
    local src = dir .. "/small_src.safetensors"
    for _, ext in ipairs({"safetensors", "pt"}) do
      local line = out:match(ext .. "\t([^\n]*)")
      assert.is_truthy(line, out)
      assert.is_truthy(line:find(src .. ": the file changed under its mapping", 1, true), line)
      assert.are.equal("old", line:match("(%S+)$"), line)
    end
    assert.are.equal("", sh.run("ls -A " .. sh.quote(dir) .. " | grep tmp- || true"))
  end)
end)

describe("a fresh process", function()
  -- what a save or load of a .pt file costs includes the Lua it loads: no
  -- other format's code, nor the module-file code while no module exists
  it("loads no other format's code, nor modsave.lua, for a save and load of .pt", function()
    local script = dir .. "/loaded.lua"
    sh.spit(script, [[
local torch = require("ltorch")
local p = arg[1]
torch.save({a = torch.ones(3), b = {torch.zeros(2)}}, p)
assert(torch.load(p, {mmap = true}).a:sum():item() == 3)
assert(torch.load(p).b[1]:numel() == 2)
local names = {}
for k in pairs(package.loaded) do if k:find("^ltorch") then names[#names + 1] = k end end
table.sort(names)
print(table.concat(names, " "))
]])
    local out = sh.run(LUA .. " " .. sh.quote(script) .. " " .. sh.quote(dir .. "/loaded.pt") .. " 2>&1")
    assert.is_truthy(out:find("ltorch.formats.pt", 1, true), out)
    for _, m in ipairs({"safetensors", "npy", "npz", "gguf", "t7", "torchsharp", "index"}) do
      assert.is_falsy(out:find("ltorch.formats." .. m, 1, true), out)
    end
    for _, m in ipairs({"ltorch.modsave", "ltorch.nn.module", "ltorch.remote"}) do
      assert.is_falsy(out:find(m .. "[%s]") or out:find(m .. "$"), out)
    end
    -- and a module made in the process is still saved whole
    sh.spit(script, [[
local torch = require("ltorch")
local nn = require("ltorch.nn")
torch.save(nn.Linear(2, 3), arg[1])
print(require("ltorch.nn.module").is_module(torch.load(arg[1])))
]])
    assert.are.equal("true\n", sh.run(LUA .. " " .. sh.quote(script) .. " " .. sh.quote(dir .. "/lin.pt") .. " 2>&1"))
  end)
end)

describe("preallocated saves", function()
  it("allocate no blocks past the end of the file (.pt, .safetensors, .npy)", function()
    local t = torch.arange(0, 600000, 1, {dtype = "float32"})   -- 2.4 MB
    for _, ext in ipairs({"pt", "safetensors", "npy"}) do
      local p = dir .. "/prealloc." .. ext
      if ext == "npy" then torch.save(t, p) else torch.save({w = t, b = torch.ones(3)}, p) end
      local size, blocks, bsize = sh.run("stat -c '%s %b %B' " .. sh.quote(p)):match("(%d+) (%d+) (%d+)")
      size, blocks, bsize = tonumber(size), tonumber(blocks), tonumber(bsize)
      assert.is_true(blocks * bsize <= (size + 65535) // 65536 * 65536, ext .. ": " .. size .. " bytes in " .. blocks * bsize)
      local back = torch.load(p)
      assert.is_true(torch.equal(ext == "npy" and back or back.w, t), ext)
    end
  end)
end)

describe("the .npz writer", function()
  it("buffers libzip's header rewrites: small and big members, stored and deflated", function()
    local sd = require("ltorch.odict").new()
    for i = 1, 500 do sd["s" .. i] = torch.full({i % 5 + 1}, i) end
    sd.big = torch.arange(0, 100000, 1, {dtype = "int64"})      -- 800 KB: straight to the file
    sd.mid = torch.arange(0, 30000, 1, {dtype = "float32"})     -- 120 KB: through the buffer
    sd.last = torch.ones(2)
    for _, compress in ipairs({false, true}) do
      local p = dir .. "/buffered" .. (compress and "_z" or "") .. ".npz"
      torch.save(sd, p, compress and {compress = true} or nil)
      local back = torch.load(p)
      for k, v in pairs(sd) do assert.is_true(torch.equal(back[k], v), k) end
      -- NumPy reads it, each member's crc checked by Python's zipfile
      local out = sh.run("/usr/bin/python3 -c " .. sh.quote(
        "import sys, zipfile, numpy as np\n" ..
        "z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None\n" ..
        "d = np.load(sys.argv[1]); print(len(d.files), int(d['big'].sum()), float(d['s7'][0]))") ..
        " " .. sh.quote(p))
      assert.are.equal("503 4999950000 7.0\n", out)
    end
  end)
end)
