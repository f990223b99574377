-- defects_spec.lua: regressions for defects found by an outside audit
-- (TorchSharp duplicate check, .pt entry limit, R special_dtype sizes,
-- stride overflow of zero-element shapes, empty legacy .pt). Files are built
-- here with string.pack; the legacy .pt is written by PyTorch.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmdir(dir) end)

local function leb(v)
  local out = {}
  repeat
    local b = v & 0x7f
    v = v >> 7
    out[#out + 1] = string.char(v ~= 0 and (b | 0x80) or b)
  until v == 0
  return table.concat(out)
end

local function ts_str(s) return leb(#s) .. s end

-- a TorchSharp state dict of n float32 scalars-as-[1] named p1..pn (or by names[i])
local function ts_file(n, name_of)
  local parts = {leb(n)}
  for i = 1, n do
    parts[#parts + 1] = ts_str(name_of(i)) .. leb(6) .. leb(1) .. leb(1) .. string.pack("<f", i)
  end
  return table.concat(parts)
end

describe("TorchSharp duplicate names (defect 3)", function()
  local N = 200000
  it("loads a 200k-entry state dict (the duplicate check is not quadratic)", function()
    local p = dir .. "/many.dat"
    H.write(p, ts_file(N, function(i) return "layer." .. i .. ".w" end))
    local d = torch.load(p)
    local keys = odict.keys(d)
    assert.equal(N, #keys)
    assert.equal("layer.1.w", keys[1])
    assert.equal(N * 1.0, d["layer." .. N .. ".w"]:tolist()[1])
  end)

  it("still refuses a duplicate name, at the end of a 200k-entry file", function()
    local p = dir .. "/dup.dat"
    H.write(p, ts_file(N, function(i) return i == N and "layer.17.w" or "layer." .. i .. ".w" end))
    local err = H.err(torch.load, p)
    assert.truthy(err:find("state dict: entry " .. N .. " 'layer.17.w': duplicate name", 1, true), err)
  end)

  it("names the first entry that repeats an earlier name", function()
    local names = {"a", "b", "c", "b", "a"}
    local p = dir .. "/dup2.dat"
    H.write(p, ts_file(#names, function(i) return names[i] end))
    local err = H.err(torch.load, p)
    assert.truthy(err:find("state dict: entry 4 'b': duplicate name", 1, true), err)
  end)
end)

describe(".pt zip entry count (defect 4)", function()
  it("has no fixed limit of 1,000,000 entries: the count is bounded by the central directory", function()
    -- a local header for a/data.pkl, then a zip64 end record claiming
    -- 1000001 entries in an empty central directory
    local name = "a/data.pkl"
    local lh = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0, 0, 0, 0, #name, 0) .. name
    local z64off = #lh
    local count = 1000001
    local z64 = string.pack("<I4I8I2I2I4I4I8I8I8I8", 0x06064b50, 44, 45, 45, 0, 0, count, count, 0, z64off)
    local loc = string.pack("<I4I4I8I4", 0x07064b50, 0, z64off, 1)
    local eocd = string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0, 0xFFFFFFFF, 0)
    local p = dir .. "/count.pt"
    H.write(p, lh .. z64 .. loc .. eocd)
    local err = H.err(torch.load, p)
    assert.falsy(err:find("exceed the limit", 1, true), err)
    assert.truthy(err:find("central directory of 0 bytes is too small for 1000001 entries", 1, true), err)
  end)
end)

-- safetensors file from a header (a JSON string) and data bytes
local function st(header, data)
  header = header .. string.rep(" ", -#header % 8)
  return string.pack("<I8", #header) .. header .. data
end

describe("R torch special_dtype sizes (defect 5)", function()
  local function r_file(shape_json, zbytes)
    local r = '{"type":"module","version":3,"requires_grad":{},' ..
      '"special_dtype":{"z":{"shape":' .. shape_json .. ',"dtype":"cfloat"}}}'
    local zlen = #zbytes
    local hdr = '{"z":{"shape":[' .. zlen .. '],"dtype":"U8","data_offsets":[0,' .. zlen .. ']},' ..
      '"w":{"shape":[6],"dtype":"F32","data_offsets":[' .. zlen .. ',' .. (zlen + 24) .. ']},' ..
      '"__metadata__":{"__r__":"' .. r:gsub('"', '\\"') .. '"}}'
    return st(hdr, zbytes .. string.pack("<ffffff", 1, 2, 3, 4, 5, 6))
  end

  it("refuses a shape needing more bytes than the entry holds, naming the tensor", function()
    local p = dir .. "/r_big.safetensors"
    H.write(p, r_file("[4]", string.pack("<ff", 1, 2)))   -- 8 bytes, [4] complex64 needs 32
    local err = H.err(torch.load, p)
    assert.truthy(err:find(p, 1, true), err)
    assert.truthy(err:find("tensor 'z': R special_dtype shape [4] of complex64 needs 32 bytes, the entry holds 8",
      1, true), err)
  end)

  it("refuses a shape needing fewer bytes, and a negative dim", function()
    local p = dir .. "/r_small.safetensors"
    H.write(p, r_file("[1]", string.pack("<ffff", 1, 2, 3, 4)))
    assert.truthy(H.err(torch.load, p):find("needs 8 bytes, the entry holds 16", 1, true))
    H.write(p, r_file("[-1]", string.pack("<ffff", 1, 2, 3, 4)))
    assert.truthy(H.err(torch.load, p):find("tensor 'z': R special_dtype shape dim 1 is -1", 1, true))
  end)

  it("loads a shape that matches", function()
    local p = dir .. "/r_ok.safetensors"
    H.write(p, r_file("[2]", string.pack("<ffff", 1, 2, 3, 4)))
    local d = torch.load(p)
    assert.equal("complex64", d.z:dtype())
    assert.same({2}, d.z:size())
    assert.same({1, 2, 3, 4, 5, 6}, d.w:tolist())
  end)
end)

describe("zero-element shapes whose strides overflow (defect 6)", function()
  local BIG = 1 << 62
  it("are refused in .npy headers", function()
    local h = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, " .. BIG .. ", 4), }"
    h = h .. string.rep(" ", -(10 + #h + 1) % 64) .. "\n"
    local p = dir .. "/zero.npy"
    H.write(p, "\x93NUMPY\1\0" .. string.pack("<I2", #h) .. h)
    local err = H.err(torch.load, p)
    assert.truthy(err:find(p, 1, true), err)
    assert.truthy(err:find("overflows", 1, true), err)
  end)

  it("are refused in safetensors headers, naming the tensor", function()
    -- JSON numbers stop at 2^53: 2^52 * 2^12 overflows the strides
    local p, B52 = dir .. "/zero.safetensors", 1 << 52
    H.write(p, st('{"w":{"dtype":"F32","shape":[0,' .. B52 .. ',4096],"data_offsets":[0,0]}}', ""))
    local err = H.err(torch.load, p)
    assert.truthy(err:find(p, 1, true), err)
    assert.truthy(err:find("tensor 'w': shape overflows", 1, true), err)
    -- the order of the dims does not matter
    H.write(p, st('{"w":{"dtype":"F32","shape":[' .. B52 .. ',4096,0],"data_offsets":[0,0]}}', ""))
    assert.truthy(H.err(torch.load, p):find("tensor 'w': shape overflows", 1, true))
  end)

  it("are refused in TorchSharp files", function()
    local p = dir .. "/zero.dat"
    H.write(p, leb(1) .. ts_str("w") .. leb(6) .. leb(3) .. leb(0) .. leb(BIG) .. leb(4))
    local err = H.err(torch.load, p)
    assert.truthy(err:find("entry 1 'w': shape overflows", 1, true), err)
  end)

  it("still load with sane strides when the strides fit", function()
    local p = dir .. "/zero_ok.safetensors"
    H.write(p, st('{"w":{"dtype":"F32","shape":[0,' .. (1 << 40) .. ',4],"data_offsets":[0,0]}}', ""))
    local w = torch.load(p).w
    assert.same({0, 1 << 40, 4}, w:size())
    assert.same({(1 << 40) * 4, 4, 1}, w:stride())
  end)
end)

describe("legacy .pt without tensors (defect 7)", function()
  it("loads torch.save({'x': 1}) in the legacy format", function()
    local p = dir .. "/legacy_empty.pt"
    H.py("import torch, sys\ntorch.save({'x': 1}, sys.argv[1], _use_new_zipfile_serialization=False)\n", p)
    local d = torch.load(p)
    assert.equal(1, d.x)
  end)
end)

-- the peak resident memory (VmHWM, MiB) of a fresh process running code
-- (which gets torch and the path p)
local function peak_mib(code, p)
  local sh = require("sh_helper")
  local build = os.getenv("LTORCH_BUILD") or "build"
  local script = dir .. "/peak.lua"
  H.write(script, "local torch = require('ltorch')\nlocal p = arg[1]\n" .. code .. "\n"
    .. "print(io.open('/proc/self/status'):read('a'):match('VmHWM:%s*(%d+)'))\n")
  -- under make asan: no quarantine (ASan would keep 256 MiB of freed blocks)
  local asan = (os.getenv("LD_PRELOAD") or ""):find("libasan") ~= nil
  local env = asan and ("ASAN_OPTIONS=" .. sh.quote((os.getenv("ASAN_OPTIONS") or "") .. ":quarantine_size_mb=0") .. " ") or ""
  local out, status, err = sh.run(env .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=" .. sh.quote(build .. "/?.so;;")
    .. " lua5.4 " .. sh.quote(script) .. " " .. sh.quote(p))
  assert.equals(0, status, err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  -- ASan's redzones and shadow memory: half as much again on small blocks
  return tonumber(lines[#lines]) / 1024 / (asan and 1.5 or 1), lines
end

describe("memory on hostile inputs (defect 10)", function()
  it("a deflate bomb: a .pt record inflating to 256 MiB for a 4-byte storage is read only as far as the storage needs", function()
    local p = dir .. "/bomb.pt"
    -- PyTorch's file with its one record rewritten deflated and 256 MiB long
    H.py([[
import sys, torch, zipfile
src = sys.argv[1] + ".src"
torch.save({"w": torch.tensor([1.5])}, src)
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(sys.argv[1], "w") as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename.endswith("/data/0"):
            zi = zipfile.ZipInfo(info.filename)
            zi.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(zi, "w", force_zip64=True) as f:
                f.write(data)
                chunk = bytes(1 << 20)
                for _ in range(256):
                    f.write(chunk)
        else:
            zout.writestr(info, data)
]], p)
    local size = #H.read(p)
    assert.is_true(size < 2 * 1024 * 1024, "the bomb is small: " .. size)
    for _, opts in ipairs({"nil", "{mmap = true}"}) do
      local mib, lines = peak_mib("local v = torch.load(p, " .. opts .. ")\nprint(v.w[1]:item())", p)
      assert.equals("1.5", lines[1])
      assert.is_true(mib < 128, opts .. ": peak " .. mib .. " MiB")
    end
  end)

  it("a safetensors header of 200k tensors is parsed a member at a time, not as one JSON tree", function()
    local p = dir .. "/many.safetensors"
    local n = 200000
    local parts = {}
    for i = 0, n - 1 do
      parts[#parts + 1] = string.format('"%x":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}', i, 4 * i, 4 * i + 4)
    end
    local json = "{" .. table.concat(parts, ",") .. "}"
    H.write(p, string.pack("<I8", #json) .. json .. string.rep("\0", 4 * n))
    parts, json = nil, nil
    collectgarbage()
    -- the table of contents alone (core._st_header): a whole-header cJSON
    -- tree took some 700 bytes a tensor (190 MiB here) on top of the tables
    local mib, lines = peak_mib("local core = require('ltorch.core')\n"
      .. "local toc = core._st_header(core._fopen(p))\nprint(#toc)", p)
    assert.equals(tostring(n), lines[1])
    assert.is_true(mib < 150, "peak " .. mib .. " MiB")
  end)
end)

describe("duplicate names, sorted or hashed in every format (defect 3)", function()
  it("safetensors: __metadata__ of 16384 keys is checked by sorting; a repeated key is an error", function()
    local function file(keys)
      local meta = {}
      for i, k in ipairs(keys) do meta[i] = string.format('"%s":"v"', k) end
      local json = '{"__metadata__":{' .. table.concat(meta, ",") .. '},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
      return string.pack("<I8", #json) .. json .. string.pack("<f", 1)
    end
    local keys = {}
    for i = 1, 16384 do keys[i] = "k" .. i end
    local p = dir .. "/meta.safetensors"
    H.write(p, file(keys))
    assert.equals(1, torch.load(p).w[1]:item())
    keys[16384] = "k77"
    H.write(p, file(keys))
    assert.equals(p .. ": '__metadata__': duplicate key 'k77'", H.err(torch.load, p))
  end)
end)
