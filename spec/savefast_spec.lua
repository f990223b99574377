-- savefast_spec.lua: the .pt writer's fast paths (issue 19) write what the
-- plain paths wrote: small records gathered into big writes, the crc32 of
-- big records computed on a second thread during their write, error paths
-- built only on error, and the open of many small tensors.
local torch = require("ltorch")
local core = require("ltorch.core")
local sh = require("sh_helper")

local dir = sh.mkdir()

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
