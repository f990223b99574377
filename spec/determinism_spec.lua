-- determinism_spec.lua: saving the same value twice gives byte-identical
-- files in every format ltorch writes (.pt, module .pt, .safetensors, .npy,
-- .npz stored and deflated, TorchSharp .dat), in one process and across
-- fresh processes (Lua 5.4 seeds its string hashes per process, so next()
-- order differs between them); dicts are written in the documented key
-- order (docs/pt-format.md, "Key order"), which ltorch and PyTorch read back.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("nn_helpers")

-- Builds the values; run in this process (load) and in fresh processes
-- (prepended to their script). A variant builds the same value with its
-- plain tables filled in another order (forward, backward, odd positions
-- first after junk keys that are then removed), which changes next()'s
-- order but not the value. Odicts keep one insertion order: it is part of
-- their value.
local BUILDER = [==[
local torch = require("ltorch")
local odict = require("ltorch.odict")
local nn = require("ltorch.nn")
local B = {}

local function fill(t, kv, variant)
  local n, order = #kv, {}
  if variant == 2 then
    for j = n, 1, -1 do order[#order + 1] = j end
  elseif variant == 3 then
    for j = 1, 97 do t["junk" .. j] = j end
    for j = 1, n, 2 do order[#order + 1] = j end
    for j = 2, n, 2 do order[#order + 1] = j end
  else
    for j = 1, n do order[j] = j end
  end
  for _, j in ipairs(order) do t[kv[j][1]] = kv[j][2] end
  if variant == 3 then for j = 1, 97 do t["junk" .. j] = nil end end
  return t
end

-- a nested table: many string keys, integer keys 1..n and others, float,
-- negative and boolean keys, nested tables and lists, tensors (one shared
-- by two keys), an odict
function B.pt_value(variant)
  local z = torch.arange(6):view(2, 3):to("float32")
  local mixed = fill({}, {{1, "one"}, {2, "two"}, {3, "three"}, {"b", 1}, {"a", 2}, {10, "ten"},
    {-5, "neg"}, {0.5, "half"}, {0, "zero"}}, variant)
  local flags = fill({}, {{true, "yes"}, {false, "no"}, {"name", "flags"}, {7, 1}}, variant)
  local inner = fill({}, {{"zz", z}, {"list", {3, 2, 1, {q = 1, p = 2}}},
    {"x", torch.arange(5):to("float64")}, {"s", "text"}, {"f", 1.25}}, variant)
  local od = odict.new()
  od.zeta = 1
  od.alpha = torch.zeros(3)
  od.mid = fill({}, {{"m2", 2}, {"m1", 1}, {"m3", torch.ones(2)}}, variant)
  local kv = {}
  for i = 1, 60 do kv[#kv + 1] = {"key" .. i, i * 3} end
  for i = 1, 5 do kv[#kv + 1] = {i, "item" .. i} end
  for _, e in ipairs({{100, "hundred"}, {-1, "minus one"}, {2.5, "two and a half"},
      {"mixed", mixed}, {"flags", flags}, {"inner", inner}, {"od", od},
      {"alias", z}, {"grid", torch.arange(12):view(3, 4)}}) do
    kv[#kv + 1] = e
  end
  return fill({}, kv, variant)
end

-- many named tensors in a plain table
function B.flat_value(variant)
  local kv = {}
  for i = 1, 40 do
    kv[#kv + 1] = {"layer" .. i .. ".weight", torch.arange(i * 2):view(i, 2):to("float32")}
    kv[#kv + 1] = {"layer" .. i .. ".bias", torch.arange(i):to("int64")}
  end
  kv[#kv + 1] = {"emb", torch.arange(24):view(2, 3, 4):to("float64")}
  return fill({}, kv, variant)
end

function B.module()
  torch.manual_seed(7)
  return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
end

function B.save_all(dir, variant)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  torch.save(B.pt_value(variant), dir .. "/value.pt")
  local flat = B.flat_value(variant)
  torch.save(flat, dir .. "/flat.safetensors")
  torch.save(flat, dir .. "/flat.npz")
  torch.save(flat, dir .. "/flatz.npz", {compress = true})
  torch.save(flat, dir .. "/flat.dat")
  torch.save(torch.arange(24):view(2, 3, 4):transpose(1, 3), dir .. "/one.npy")
  local m = B.module()
  torch.save(m, dir .. "/model.pt")
  torch.save(m, dir .. "/model.safetensors")
  -- the .pt writer with extra records (what a module file stores beside
  -- its state dict), called as formats/pt.lua calls it
  local extra = {}
  for i = 1, 20 do extra[#extra + 1] = {"rec" .. i, string.rep("x", i)} end
  require("ltorch.core")._pt_save(B.flat_value(variant), dir .. "/pack.pt", "pack", {null = torch.null,
    odict_parts = odict.parts, ordered_keys = odict.ordered_keys, extra = fill({}, extra, variant)})
end

return B
]==]

local FILES = {"value.pt", "flat.safetensors", "flat.npz", "flatz.npz", "flat.dat", "one.npy",
  "model.pt", "model.safetensors", "pack.pt"}

local slurp = require("fmt_helper").read

-- the documented order, written out: 1..#t, then the other keys by type
-- name (boolean < number < string), false before true, numbers and
-- strings ascending
local function documented(t)
  local n, keys, rest = #t, {}, {}
  for i = 1, n do keys[i] = i end
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then rest[#rest + 1] = k end
  end
  local rank = {boolean = 1, number = 2, string = 3}
  table.sort(rest, function(a, b)
    if type(a) ~= type(b) then return rank[type(a)] < rank[type(b)] end
    if type(a) == "boolean" then return not a and b end
    return a < b
  end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function loaded_keys(d)
  local ks = {}
  for k in pairs(d) do ks[#ks + 1] = k end
  return ks
end

-- Python's repr of a key
local function pyrepr(k)
  if type(k) == "string" then return "'" .. k .. "'" end
  if type(k) == "boolean" then return k and "True" or "False" end
  return tostring(k)
end
local function pylist(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = pyrepr(k) end
  return "[" .. table.concat(out, ", ") .. "]"
end

-- DOS time and date of every member of a zip (local headers and central
-- directory), read through the end record (no archive comment)
local function zip_times(s)
  local eocd = #s - 21
  assert(s:sub(eocd, eocd + 3) == "PK\5\6", "no end record")
  local count, _, cdoff = string.unpack("<I2I4I4", s, eocd + 10)
  local out, p = {}, cdoff + 1
  for _ = 1, count do
    assert(s:sub(p, p + 3) == "PK\1\2", "bad central directory entry")
    local time, date = string.unpack("<I2I2", s, p + 12)
    local nl, xl, cl = string.unpack("<I2I2I2", s, p + 28)
    local lho = string.unpack("<I4", s, p + 42)
    local name = s:sub(p + 46, p + 45 + nl)
    local ltime, ldate = string.unpack("<I2I2", s, lho + 1 + 10)
    out[#out + 1] = {name = name, time = time, date = date, ltime = ltime, ldate = ldate}
    p = p + 46 + nl + xl + cl
  end
  return out
end

describe("deterministic saves", function()
  local dir, B
  local dirs = {}

  setup(function()
    dir = H.tmpdir()
    B = assert(load(BUILDER, "=builder"))()
    -- three builds of the value in this process, saved twice each
    for variant = 1, 3 do
      for rep = 1, 2 do
        local d = string.format("%s/here_%d_%d", dir, variant, rep)
        B.save_all(d, variant)
        dirs[#dirs + 1] = d
      end
    end
    -- three fresh processes (each its own string hash seed), three variants each
    for p = 1, 3 do
      local pd = string.format("%s/proc%d", dir, p)
      assert(os.execute("mkdir -p '" .. pd .. "'"))
      local code = string.format("local B = (function()\n%s\nend)()\nfor v = 1, 3 do B.save_all(%q .. v, v) end\n",
        BUILDER, pd .. "/v")
      local ok, out = H.lua(code, pd)
      assert(ok, out)
      for v = 1, 3 do dirs[#dirs + 1] = pd .. "/v" .. v end
    end
  end)

  teardown(function() if dir then H.rmdir(dir) end end)

  for _, name in ipairs(FILES) do
    it("gives byte-identical " .. name .. " files, in this process and in fresh ones", function()
      local first = slurp(dirs[1] .. "/" .. name)
      assert.is_true(#first > 0)
      local differ = {}
      for i = 2, #dirs do
        if slurp(dirs[i] .. "/" .. name) ~= first then differ[#differ + 1] = dirs[i]:sub(#dir + 2) end
      end
      assert.are.same({}, differ)
    end)
  end

  it("stamps every .npz member with 1980-01-01 00:00:00, not the time of the save", function()
    for _, name in ipairs({"flat.npz", "flatz.npz"}) do
      local zs = zip_times(slurp(dirs[1] .. "/" .. name))
      assert.are.equal(81, #zs)
      for _, z in ipairs(zs) do
        assert.are.same({name = z.name, time = 0, date = 0x21, ltime = 0, ldate = 0x21}, z)
      end
    end
  end)

  it("writes dicts in the documented key order, which ltorch's loader keeps", function()
    local v = B.pt_value(2)
    local l = torch.load(dirs[1] .. "/value.pt")
    -- the order spelled out for two of the tables
    assert.are.same({1, 2, 3, -5, 0, 0.5, 10, "a", "b"}, loaded_keys(l.mixed))
    assert.are.same({false, true, 7, "name"}, loaded_keys(l.flags))
    -- and the same rule for every dict, as odict.ordered_keys has it
    for _, path in ipairs({{}, {"mixed"}, {"flags"}, {"inner"}, {"od", "mid"}}) do
      local a, b = v, l
      for _, k in ipairs(path) do a, b = a[k], b[k] end
      assert.is_true(odict.is(b))
      assert.are.same(documented(a), loaded_keys(b))
      assert.are.same(odict.ordered_keys(a), loaded_keys(b))
    end
    -- an odict keeps its insertion order
    assert.are.same({"zeta", "alpha", "mid"}, loaded_keys(l.od))
    local top = loaded_keys(l)
    assert.are.same({1, 2, 3, 4, 5, -1, 2.5, 100, "alias", "flags", "grid", "inner", "key1", "key10"},
      {table.unpack(top, 1, 14)})
    -- lists stay lists, values and sharing survive
    assert.are.same({3, 2, 1}, {table.unpack(l.inner.list, 1, 3)})
    assert.are.same({"p", "q"}, loaded_keys(l.inner.list[4]))
    assert.are.same({{0, 1, 2}, {3, 4, 5}}, l.alias:tolist())
    l.alias:fill(9)
    assert.are.equal(9, l.inner.zz:tolist()[2][3])
  end)

  it("writes the .ltorch/ records of a module file in name order", function()
    local names = {}
    for _, z in ipairs(zip_times(slurp(dirs[1] .. "/pack.pt"))) do names[#names + 1] = z.name end
    assert.are.equal("pack/data.pkl", names[1])
    assert.are.equal("pack/version", names[#names - 1])
    assert.are.equal("pack/.data/serialization_id", names[#names])
    local extra, want = {}, {}
    for _, n in ipairs(names) do if n:find("/.ltorch/", 1, true) then extra[#extra + 1] = n end end
    for i = 1, 20 do want[i] = "pack/.ltorch/rec" .. i end
    table.sort(want)
    assert.are.same(want, extra)
    local _, extras = require("ltorch.core")._pt_load(dirs[1] .. "/pack.pt",
      {null = torch.null, odict_from = odict.from})
    assert.are.equal(string.rep("x", 13), extras.rec13)
  end)

  it("is read by PyTorch with the keys in the same order", function()
    if not H.has_python() then pending("no " .. H.PYTHON) return end
    local v = B.pt_value(3)
    local out = H.python(string.format([[
import torch
d = torch.load(%q)
for k in (None, 'mixed', 'flags', 'inner', 'od'):
    print(list((d if k is None else d[k]).keys()))
print(list(d['od']['mid'].keys()))
print(d['inner']['list'][:3], d['mixed'][0.5], d['key60'], d['alias'].tolist(), d['alias'] is d['inner']['zz'])
]], dirs[#dirs] .. "/value.pt"), dir)
    local want = {}
    for _, t in ipairs({v, v.mixed, v.flags, v.inner, v.od, v.od.mid}) do
      want[#want + 1] = pylist(documented(t))
    end
    want[5] = "['zeta', 'alpha', 'mid']"
    want[#want + 1] = "[3, 2, 1] half 180 [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] True"
    local got = {}
    for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
    assert.are.same(want, got)
  end)
end)
