-- lazyopen_spec.lua: the fast paths of a .pt load of many tensors, checked
-- against real PyTorch 1.13 (/usr/bin/python3): the tensor run of opcodes
-- that pickle.c parses without its stack (fast_tensor), the tensors a dict
-- makes on first access (lpt.c, push_dict), and the fallbacks of both.

local torch = require("ltorch")
local json = require("ltorch.json")
local sh = require("sh_helper")

-- run a script with real PyTorch; raises with its output on failure
local function py(dir, script)
  sh.spit(dir .. "/script.py", script)
  local out, code, err = sh.run("/usr/bin/python3 " .. dir .. "/script.py")
  if code ~= 0 then error("python failed:\n" .. out .. err, 2) end
  return out
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- every tensor of sd as PyTorch describes it in meta (key -> shape, stride,
-- offset, requires_grad, dtype, bytes of the contiguous values)
local function check_against(sd, meta)
  local n = 0
  for k, m in pairs(meta) do
    n = n + 1
    local t = sd[k]
    assert.is_not_nil(t, k)
    assert.are.same(m.shape, t:size(), k)
    assert.are.same(m.stride, t:stride(), k)
    assert.are.equal(m.offset, t:storage_offset(), k)
    assert.are.equal(m.requires_grad, t:requires_grad(), k)
    assert.are.equal(m.dtype, t:dtype(), k)
    assert.are.equal(m.hex, hex(t:contiguous():tobytes()), k)
  end
  return n
end

-- the json a DESCRIBE script wrote
local function read_json(path)
  local f = assert(io.open(path))
  local m = json.decode(f:read("a"))
  f:close()
  return m
end

local DESCRIBE = [[
import json, torch
def describe(sd, path):
    out = {}
    for k, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        out[k] = {"shape": list(t.shape), "stride": list(t.stride()), "offset": t.storage_offset(),
                  "requires_grad": t.requires_grad, "dtype": str(t.dtype).replace("torch.", ""),
                  "hex": t.detach().contiguous().numpy().tobytes().hex() if t.dtype != torch.bfloat16
                         else t.detach().contiguous().view(torch.int16).numpy().tobytes().hex()}
    json.dump(out, open(path, "w"))
]]

describe("opening a .pt file of many tensors", function()
  local dir
  setup(function()
    dir = sh.mkdir()
    -- every form of size and stride the fast path reads, every integer
    -- opcode for numel and offset, views sharing a storage, parameters,
    -- a tensor under two keys
    py(dir, DESCRIBE .. [[
g = torch.Generator().manual_seed(3)
base = torch.randn(70000, generator=g)
sd = {}
sd["scalar"] = torch.tensor(2.5)
sd["empty"] = torch.zeros(0, 3)
sd["d1"] = torch.arange(5, dtype=torch.int64)
sd["d2"] = torch.randn(3, 4, generator=g)
sd["d3"] = torch.randn(2, 3, 4, generator=g).to(torch.float16)
sd["d5"] = torch.randn(2, 1, 3, 1, 2, generator=g).to(torch.bfloat16)
sd["transposed"] = torch.randn(4, 6, generator=g).t()
sd["numel_m"] = torch.randn(300, generator=g)
sd["big"] = base                      # numel 70000: BININT
sd["view_tail"] = base[65600:]        # offset past 65535: BININT, shares big's storage
sd["view_mid"] = base[300:310]        # offset 300: BININT2
sd["bools"] = torch.tensor([True, False, True])
sd["bytes"] = torch.arange(200, dtype=torch.uint8)
sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
sd["frozen"] = torch.nn.Parameter(torch.randn(3, generator=g), requires_grad=False)
sd["strided"] = torch.randn(8, 8, generator=g)[::2, 1::3]
tied = torch.randn(4, generator=g)
sd["tied_a"] = tied
sd["tied_b"] = tied
sd["scalar2"] = torch.tensor(-1.5)
for i in range(20):
    sd["filler.%d" % i] = torch.full((2,), float(i))
torch.save(sd, "]] .. dir .. [[/many.pt")
describe(sd, "]] .. dir .. [[/many.json")
]])
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)


  it("gives every tensor as PyTorch has it, mapped or read", function()
    local m = read_json(dir .. "/many.json")
    for _, mmap in ipairs({true, false}) do
      local sd = torch.load(dir .. "/many.pt", {mmap = mmap})
      assert.are.equal(39, count(sd))
      assert.are.equal(39, check_against(sd, m))
    end
  end)

  it("keeps a tensor saved under two keys one tensor", function()
    local sd = torch.load(dir .. "/many.pt", {mmap = true})
    assert.is_true(rawequal(sd.tied_a, sd.tied_b))
    -- views of one storage share it: a write through one shows in the other
    local sd2 = torch.load(dir .. "/many.pt")
    sd2.big:view(-1)[65601]:fill(7)
    assert.are.equal(7, sd2.view_tail[1]:item())
    -- mapped, made on first access in any order, they share one storage
    assert.are.equal(sd.view_tail:_storage_info(), sd.big:_storage_info())
    assert.are.equal(sd.view_mid:_storage_info(), sd.big:_storage_info())
  end)

  it("shares a record's storage between a dict's lazy tensors and one built whole", function()
    py(dir, [[
import torch
base = torch.arange(100, dtype=torch.float32)
model = {"w%d" % i: torch.full((3,), float(i)) for i in range(20)}
model["base"] = base
torch.save({"model": model, "extra": {"tail": base[90:]}}, "]] .. dir .. [[/nested.pt")
]])
    local ck = torch.load(dir .. "/nested.pt", {mmap = true})
    local tail = ck.extra.tail   -- a small dict: built whole, at the load
    assert.are.equal(tail:_storage_info(), ck.model.base:_storage_info())
    assert.are.same({90, 91}, {tail[1]:item(), tail[2]:item()})
    -- saved again, the two stay one record
    torch.save(ck, dir .. "/nested2.pt")
    local out = py(dir, [[
import torch
ck = torch.load("]] .. dir .. [[/nested2.pt")
print(ck["extra"]["tail"].storage().data_ptr() == ck["model"]["base"].storage().data_ptr(), ck["extra"]["tail"][0].item())
]])
    assert.are.equal("True 90.0\n", out)
  end)

  it("keeps the file's key order, and a key removed or replaced before it is read stays so", function()
    local sd = torch.load(dir .. "/many.pt", {mmap = true})
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    assert.are.same({"scalar", "empty", "d1", "d2"}, {keys[1], keys[2], keys[3], keys[4]})
    assert.are.equal("filler.19", keys[#keys])
    sd["filler.3"] = nil
    sd["filler.4"] = torch.zeros(9)
    assert.is_nil(sd["filler.3"])
    assert.are.same({9}, sd["filler.4"]:size())
    local seen = {}
    for k, v in pairs(sd) do seen[k] = v end
    assert.is_nil(seen["filler.3"])
    assert.are.equal(38, count(sd))
    assert.are.same({9}, seen["filler.4"]:size())
    assert.are.same({2}, seen["filler.5"]:size())
    -- every entry once through the C walk too (ltorch_next: the saver)
    torch.save(sd, dir .. "/again.pt")
    local back = torch.load(dir .. "/again.pt")
    assert.are.equal(38, count(back))
    assert.is_nil(back["filler.3"])
    assert.are.equal(5.0, back["filler.5"][1]:item())
  end)

  it("makes the key list of a dict of tensors only when walked, changes made before it kept", function()
    py(dir, [[
import torch
torch.save({"k%d" % i: torch.full((2,), float(i)) for i in range(24)}, "]] .. dir .. [[/plain.pt")
]])
    local odict = require("ltorch.odict")
    local sd = torch.load(dir .. "/plain.pt", {mmap = true})
    -- read, removed, replaced and added before anything walks the keys
    assert.are.equal(7.0, sd.k7[2]:item())
    sd.k5 = nil
    sd.k9 = torch.zeros(3)
    sd.extra = torch.ones(1)
    assert.is_nil(sd.k5)
    assert.are.equal(24, odict.count(sd))
    local keys = odict.keys(sd)
    local want = {}
    for i = 0, 23 do if i ~= 5 then want[#want + 1] = "k" .. i end end
    want[#want + 1] = "extra"
    assert.are.same(want, keys)
    local seen = {}
    for k, v in pairs(sd) do seen[#seen + 1] = k .. "=" .. v:sum():item() end
    assert.are.equal("k0=0.0", seen[1])
    assert.are.equal("k9=0.0", seen[9])
    assert.are.equal("k23=46.0", seen[23])
    assert.are.equal("extra=1.0", seen[24])
    -- a fresh open walked first: the file's order
    local again = torch.load(dir .. "/plain.pt", {mmap = true})
    local n = 0
    for k, v in pairs(again) do
      n = n + 1
      assert.are.equal("k" .. (n - 1), k)
      assert.are.equal(2.0 * (n - 1), v:sum():item())
    end
    assert.are.equal(24, n)
  end)

  it("selects and renames keys of a dict of many tensors", function()
    local sd = torch.load(dir .. "/many.pt", {keys = {"d2", "filler.7"}, rename = {{"^filler%.7$", "seven"}}})
    assert.are.equal(2, count(sd))
    assert.are.same({3, 4}, sd.d2:size())
    assert.are.equal(7.0, sd.seven[2]:item())
  end)

  it("refuses two keys renamed to one, as every reader does", function()
    for _, mmap in ipairs({false, true}) do
      assert.has_error(function()
        torch.load(dir .. "/many.pt", {mmap = mmap, rename = {{"^filler%.7$", "filler.2"}}})
      end, dir .. "/many.pt: two tensors are renamed to 'filler.2'")
      -- and the other way round: a name kept as it is, then one renamed to it
      assert.has_error(function()
        torch.load(dir .. "/many.pt", {mmap = mmap, rename = {{"^filler%.2$", "filler.7"}}})
      end, dir .. "/many.pt: two tensors are renamed to 'filler.7'")
    end
    -- renames that meet nothing load as before
    local sd = torch.load(dir .. "/many.pt", {rename = {{"^filler%.", "f."}}})
    assert.are.equal(39, count(sd))
    assert.are.equal(7.0, sd["f.7"][1]:item())
  end)

  it("keeps a key the pickle repeats once, at its first place, with its last value", function()
    -- a hand-made pickle: one dict of 20 tensors whose SETITEMS names k3
    -- twice (Python's unpickler keeps the last value; the key's place is
    -- its first)
    py(dir, [[
import collections, io, pickle, zipfile, torch
class Storage:
    def __init__(self, key, n): self.key, self.n = key, n
class T:
    def __init__(self, st, n): self.a = (st, 0, (n,), (1,), False, collections.OrderedDict())
    def __reduce__(self): return (torch._utils._rebuild_tensor_v2, self.a)
class P(pickle._Pickler):
    def persistent_id(self, o):
        return ("storage", torch.FloatStorage, o.key, "cpu", o.n) if isinstance(o, Storage) else None
items = [("k%d" % i, T(Storage(str(i), 1), 1)) for i in range(20)]
items.insert(10, ("k3", T(Storage("20", 1), 1)))
buf = io.BytesIO()
p = P(buf, protocol=2)
p.write(b"\x80\x02}(")
for k, v in items:
    p.save(k)
    p.save(v)
buf.write(b"u.")
import struct
with zipfile.ZipFile("]] .. dir .. [[/rep.pt", "w") as z:
    z.writestr("rep/data.pkl", buf.getvalue())
    for i in range(21):
        z.writestr("rep/data/%d" % i, struct.pack("<f", float(i)))
    z.writestr("rep/version", "3\n")
sd = torch.load("]] .. dir .. [[/rep.pt")
print(list(sd.keys()).index("k3"), len(sd), float(sd["k3"]))
]])
    for _, mmap in ipairs({false, true}) do
      local sd = torch.load(dir .. "/rep.pt", {mmap = mmap})
      local keys = {}
      for k in pairs(sd) do keys[#keys + 1] = k end
      assert.are.equal(20, #keys)
      assert.are.equal("k3", keys[4])
      assert.are.equal(20.0, sd.k3:item())
      assert.are.equal(19.0, sd.k19:item())
    end
  end)

  it("reads a pickle that uses again a value the fast path does not build", function()
    -- a hand-made pickle in torch.save's layout where the size tuple of one
    -- tensor is a dict value too (torch.save never does this): the GET of it
    -- sends the pickle back through the VM; an unknown global before it is
    -- named once
    py(dir, DESCRIBE .. [[
import collections, io, pickle, zipfile
class Storage:
    def __init__(self, key, n): self.key, self.n = key, n
class T:
    def __init__(self, st, off, size, stride): self.a = (st, off, size, stride, False, collections.OrderedDict())
    def __reduce__(self): return (torch._utils._rebuild_tensor_v2, self.a)
import sys, types
class Thing:
    def __reduce__(self): return (Thing, ())
mymod = types.ModuleType("mymod")
sys.modules["mymod"] = mymod
mymod.Thing = Thing
Thing.__module__ = "mymod"
class P(pickle.Pickler):
    def persistent_id(self, o):
        return ("storage", torch.FloatStorage, o.key, "cpu", o.n) if isinstance(o, Storage) else None
st = Storage("0", 24)
shared = (2, 3)
d = {"thing": Thing()}
for i in range(18):
    d["t%d" % i] = T(st, i, (2, 2), (2, 1))
d["t_shared"] = T(st, 1, shared, (3, 1))
d["size"] = shared
buf = io.BytesIO()
P(buf, protocol=2).dump(d)
with zipfile.ZipFile("]] .. dir .. [[/reuse.pt", "w") as z:
    z.writestr("reuse/data.pkl", buf.getvalue())
    z.writestr("reuse/byteorder", "little")
    z.writestr("reuse/data/0", torch.arange(24, dtype=torch.float32).numpy().tobytes())
    z.writestr("reuse/version", "3\n")
]])
    local ok, err = pcall(torch.load, dir .. "/reuse.pt")
    assert.is_false(ok)
    local _, n = tostring(err):gsub("mymod%.Thing", "")
    assert.are.equal(1, n)
    local sd = torch.load_state_dict(dir .. "/reuse.pt")
    assert.are.same({2, 3}, sd.size)
    assert.are.same({2, 3}, sd.t_shared:size())
    assert.are.same({1, 2, 3, 4, 5, 6}, sd.t_shared:contiguous():view(-1):tolist())
    assert.are.same({17, 18, 19, 20}, sd.t17:contiguous():view(-1):tolist())
  end)

  -- a save of a loaded dict writes its tensors not made yet from the load's
  -- entries (lpt.c, save_lazy): the bytes of the same dict with every tensor made
  local function saved(sd, name)
    os.execute("mkdir -p " .. dir .. "/" .. name)
    local p = dir .. "/" .. name .. "/out.pt"   -- one archive folder name for every case
    torch.save(sd, p)
    return sh.slurp(p), p
  end
  local function touch(sd) for _ in pairs(sd) do end return sd end

  it("saves a dict whose tensors are not made yet as the same dict made", function()
    for _, mmap in ipairs({true, false}) do
      local lazy, p = saved(torch.load(dir .. "/many.pt", {mmap = mmap}), "lazy")
      assert.are.equal(saved(touch(torch.load(dir .. "/many.pt", {mmap = mmap})), "made"), lazy)
      -- PyTorch reads it as the file it came from: values, views, the storage shared
      local out = py(dir, [[
import torch
a = torch.load("]] .. dir .. [[/many.pt")
b = torch.load("]] .. p .. [[")
assert list(a) == list(b), (list(a), list(b))
for k in a:
    x, y = a[k], b[k]
    assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), k
    assert x.storage_offset() == y.storage_offset() and x.requires_grad == y.requires_grad, k
    assert torch.equal(x.detach(), y.detach()), k
print(b["view_tail"].storage().data_ptr() == b["big"].storage().data_ptr(), b["tied_a"] is b["tied_b"])
]])
      assert.are.equal("True True\n", out)
    end
  end)

  it("saves a lazy dict read, changed, or walked in part as the same dict made", function()
    py(dir, [[
import torch
g = torch.Generator().manual_seed(5)
base = torch.randn(64, generator=g)
sd = {"k%d" % i: torch.randn(3, generator=g) for i in range(30)}
sd["view_a"] = base[:8]
sd["view_b"] = base[8:].view(7, 8)
torch.save(sd, "]] .. dir .. [[/lazy30.pt")
]])
    local changes = {
      function(sd) return sd end,
      function(sd) local _ = sd.k3 + sd.view_b[1][1]; return sd end,   -- read: keys still lazy
      function(sd) sd.k4 = torch.zeros(2); return sd end,                -- replaced: keys still lazy
      function(sd) sd.k5 = nil; sd.new = torch.ones(1); return sd end,   -- the key list made
      function(sd) local n = 0; for _ in pairs(sd) do n = n + 1; if n == 10 then break end end; return sd end,
    }
    for i, change in ipairs(changes) do
      for _, mmap in ipairs({true, false}) do
        local lazy = saved(change(torch.load(dir .. "/lazy30.pt", {mmap = mmap})), "lazy")
        local made = saved(touch(change(torch.load(dir .. "/lazy30.pt", {mmap = mmap}))), "made")
        assert.are.equal(#made, #lazy, "change " .. i)
        assert.is_true(made == lazy, "change " .. i)
      end
    end
    local back = torch.load(dir .. "/made/out.pt")
    assert.are.same({7, 8}, back.view_b:size())
    assert.are.equal(back.view_a:_storage_info(), back.view_b:_storage_info())
  end)

  it("makes no tensor objects to save a loaded dict", function()
    py(dir, [[
import torch
torch.save({"p%d" % i: torch.full((4,), float(i)) for i in range(2000)}, "]] .. dir .. [[/p2000.pt")
]])
    -- KB of Lua memory f(sd) adds, the collector stopped
    local function growth(sd, f)
      collectgarbage()
      collectgarbage("stop")
      local before = collectgarbage("count")
      f(sd)
      local kb = collectgarbage("count") - before
      collectgarbage("restart")
      return kb
    end
    local function save(sd) torch.save(sd, dir .. "/p2000_out.pt") end
    local walk_fresh = growth(torch.load(dir .. "/p2000.pt"), touch)
    local sd = torch.load(dir .. "/p2000.pt")
    local saving = growth(sd, save)
    local walk_after = growth(sd, touch)
    -- the walk makes 2,000 tensors and key strings: hundreds of KB, after
    -- the save as before it; the save itself next to nothing
    assert.is_true(walk_fresh > 400, walk_fresh)
    assert.is_true(walk_after > 0.9 * walk_fresh, walk_after .. " " .. walk_fresh)
    assert.is_true(saving < 64, saving)
    sd = torch.load(dir .. "/p2000_out.pt")
    assert.are.equal(1999.0, sd.p1999[4]:item())
  end)
end)

-- an archive of 1,024 entries or more has its directory and its pickle read
-- at once on two threads (lpt.c, open_directory); what is read must be what
-- the sequential read gives, and its errors the same
describe("a big archive's directory and pickle read at once", function()
  local dir = os.tmpname() .. "_big"
  local N = 1100
  setup(function()
    os.execute("mkdir -p " .. dir)
    py(dir, [[
import io, struct, zipfile, torch
sd = {"w%d" % i: torch.full((3,), float(i)) for i in range(]] .. N .. [[)}
torch.save(sd, "]] .. dir .. [[/big.pt")
raw = open("]] .. dir .. [[/big.pt", "rb").read()
with zipfile.ZipFile("]] .. dir .. [[/big.pt") as z:
    info = z.getinfo("big/data.pkl")
    names = z.namelist()
# a byte of data.pkl changed: its crc no longer matches
nl, xl = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
at = info.header_offset + 30 + nl + xl + 40
open("]] .. dir .. [[/badpkl.pt", "wb").write(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])
# the 500th central directory entry's signature broken
pos = raw.find(b"PK\x01\x02")
for _ in range(500): pos = raw.find(b"PK\x01\x02", pos + 4)
open("]] .. dir .. [[/badcd.pt", "wb").write(raw[:pos] + b"PX" + raw[pos + 2:])
# the same records with data.pkl written last (zipfile's own layout): the
# first entry is not the pickle
with zipfile.ZipFile("]] .. dir .. [[/big.pt") as z, zipfile.ZipFile("]] .. dir .. [[/last.pt", "w") as out:
    for n in names:
        if n != "big/data.pkl": out.writestr(n, z.read(n))
    out.writestr("big/data.pkl", z.read("big/data.pkl"))
# and again as torch.save lays it out but with the pickle deflated
with zipfile.ZipFile("]] .. dir .. [[/big.pt") as z, zipfile.ZipFile("]] .. dir .. [[/deflated.pt", "w") as out:
    for n in names:
        out.writestr(n, z.read(n), compress_type=zipfile.ZIP_DEFLATED if n.endswith("data.pkl") else zipfile.ZIP_STORED)
]])
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function check(sd, what)
    local n = 0
    for k, v in pairs(sd) do
      assert.are.equal("w" .. n, k, what)
      assert.are.same({n, n, n}, v:tolist(), what)
      n = n + 1
    end
    assert.are.equal(N, n, what)
  end

  it("gives every tensor, eager and mapped, whichever entry comes first", function()
    for _, name in ipairs({"big.pt", "last.pt", "deflated.pt"}) do
      for _, mmap in ipairs({false, true}) do
        check(torch.load(dir .. "/" .. name, {mmap = mmap}), name .. (mmap and " mmap" or ""))
      end
    end
    -- selected keys, and a load in a loop (the pool's threads reused)
    local sd = torch.load(dir .. "/big.pt", {keys = {"w7", "w1099"}})
    assert.are.same({7, 7, 7}, sd.w7:tolist())
    assert.are.same({1099, 1099, 1099}, sd.w1099:tolist())
    for _ = 1, 5 do assert.are.same({5, 5, 5}, torch.load(dir .. "/big.pt", {mmap = true}).w5:tolist()) end
  end)

  it("reports a bad pickle or directory as the sequential read does", function()
    for _, mmap in ipairs({false, true}) do
      local ok, err = pcall(torch.load, dir .. "/badpkl.pt", {mmap = mmap})
      assert.is_false(ok)
      assert.matches("badpkl.pt: entry 'big/data.pkl': crc32 mismatch", tostring(err), 1, true)
      ok, err = pcall(torch.load, dir .. "/badcd.pt", {mmap = mmap})
      assert.is_false(ok)
      assert.matches("badcd.pt: central directory entry 500: bad signature", tostring(err), 1, true)
    end
  end)
end)

-- a pickle of 1 MB and more in an archive of 1,024 records and more is read
-- by two threads (pickle.h, pk_split): the second starts at an entry ahead
-- of the first and the two join, or the first runs on. Whether a load
-- splits depends on when the pool's worker starts, so each case loads until
-- the counters (core._pickle_splits) show the path taken.
describe("a big pickle read by two threads", function()
  local core = require("ltorch.core")
  local BUILD = os.getenv("LTORCH_BUILD") or "build"
  local dir
  local N = 20000
  setup(function()
    dir = sh.mkdir()
    py(dir, DESCRIBE .. [[
import collections, zipfile
D = "]] .. dir .. [["
g = torch.Generator().manual_seed(5)
plain = {"block%d.p%d" % (i // 100, i % 100): torch.randn(4, generator=g) for i in range(]] .. N .. [[)}
torch.save(plain, D + "/plain.pt")
describe(plain, D + "/plain.json")
# a state dict: an OrderedDict with _metadata, of parameters, ints, halves
sd = collections.OrderedDict()
for i in range(]] .. N .. [[):
    k = i % 4
    sd["m%d.%s" % (i, "wbrh"[k])] = (torch.nn.Parameter(torch.randn(2, 3, generator=g)) if k == 0 else
        torch.arange(i, i + 3) if k == 1 else torch.randn(3, generator=g).half() if k == 2 else
        torch.randn(2, 2, generator=g).t())
sd._metadata = collections.OrderedDict({"": {"version": 1}})
torch.save(sd, D + "/odict.pt")
describe(sd, D + "/odict.json")
# views of one storage, first and after 1,100 tensors of their own (the
# archive's records): the views read the string of the storage's key from
# the memo, the second part among them
base = torch.randn(4 * ]] .. 2 * N .. [[, generator=g)
shared = {"v0": base[0:4]}
shared.update({"own%d" % i: torch.randn(3, generator=g) for i in range(1100)})
shared.update({"v%d" % i: base[4 * i:4 * i + 4] for i in range(1, ]] .. 2 * N .. [[)})
torch.save(shared, D + "/shared.pt")
describe(shared, D + "/shared.json")
# an unknown opcode at 80% of the pickle, the archive rewritten stored
z = zipfile.ZipFile(D + "/plain.pt")
names = z.namelist()
orig = z.read(names[0])
def rewrite(path, pkl):
    with zipfile.ZipFile(path, "w") as out:
        for n in names:
            out.writestr(n, bytes(pkl) if n == names[0] else z.read(n), compress_type=zipfile.ZIP_STORED)
pkl = bytearray(orig)
at = pkl.index(b"X", len(pkl) * 4 // 5)
pkl[at] = 0xff
rewrite(D + "/bad.pt", pkl)
# mutants: one byte of the second half made an opcode that takes marks,
# items or memo slots (most give errors, some other values)
import random
r = random.Random(7)
for m in range(8):
    pkl = bytearray(orig)
    at = r.randrange(len(pkl) // 2, len(pkl) - 1)
    pkl[at] = r.choice(b"tlduse0122ahjqr()R.b\x94X}")
    rewrite(D + "/mut%d.pt" % m, pkl)
]])
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)


  -- load name until the counter which (1: joined, 2: ran on) moves; the last load
  local function load_until(name, which)
    local before = select(which, core._pickle_splits())
    for _ = 1, 200 do
      local sd = torch.load(dir .. "/" .. name, {mmap = true})
      if select(which, core._pickle_splits()) > before then return sd end
    end
    error(name .. ": no load took that path in 200 tries")
  end

  local function keys(sd)
    local ks = {}
    for k in pairs(sd) do ks[#ks + 1] = k end
    return ks
  end

  it("joins the two parts into the tensors PyTorch saved, in their order", function()
    local sd = load_until("plain.pt", 1)
    assert.are.equal(N, check_against(sd, read_json(dir .. "/plain.json")))
    local ks = keys(sd)
    assert.are.equal(N, #ks)
    for i = 0, N - 1, 997 do assert.are.equal(string.format("block%d.p%d", i // 100, i % 100), ks[i + 1]) end
    assert.are.equal("block199.p99", ks[N])
    -- read, not mapped: the same values
    assert.are.equal(N, check_against(torch.load(dir .. "/plain.pt"), read_json(dir .. "/plain.json")))
  end)

  it("joins a state dict's OrderedDict of parameters, ints and halves", function()
    local sd = load_until("odict.pt", 1)
    assert.are.equal(N, check_against(sd, read_json(dir .. "/odict.json")))
    assert.are.equal("m0.w", keys(sd)[1])
    assert.are.equal("m" .. (N - 1) .. ".h", keys(sd)[N])
  end)

  it("runs on with the first thread when the second meets a storage of the first", function()
    local sd = load_until("shared.pt", 2)
    assert.are.equal(2 * N + 1100, check_against(sd, read_json(dir .. "/shared.json")))
    assert.are.equal(sd.v0:_storage_info(), sd["v" .. (2 * N - 1)]:_storage_info())
  end)

  it("reports a bad opcode in the second part as one thread does", function()
    local out = sh.run("LTORCH_NUM_THREADS=1 lua5.4 -e " .. sh.quote(
      "package.path='lua/?.lua;lua/?/init.lua;'..package.path; package.cpath='" .. BUILD .. "/?.so;'..package.cpath;" ..
      "print(select(2, pcall(require('ltorch').load, " .. string.format("%q", dir .. "/bad.pt") .. ", {mmap = true})))"))
    local want = out:match("^(.-)\n?$")
    assert.matches("bad.pt: entry 'plain/data.pkl': at byte %d+: unknown opcode 0xff", want)
    -- until a load's first part stopped at the second's place and ran on
    -- (the second failed there), each load's error the same
    local ran = select(2, core._pickle_splits())
    for _ = 1, 200 do
      local ok, err = pcall(torch.load, dir .. "/bad.pt", {mmap = true})
      assert.is_false(ok)
      assert.are.equal(want, tostring(err))
      if select(2, core._pickle_splits()) > ran then return end
    end
    error("bad.pt: no load split in 200 tries")
  end)

  -- a digest of a load: its keys in order with each tensor's values, or its error
  local DIGEST = [[
local torch = require("ltorch")
return function(path)
  local ok, sd = pcall(torch.load, path, {mmap = true})
  if not ok then return "error: " .. tostring(sd) end
  local out = {}
  for k, v in pairs(sd) do
    out[#out + 1] = tostring(k) .. "=" .. (torch.is_tensor(v) and table.concat(v:view(-1):tolist(), ",") or tostring(v))
  end
  return table.concat(out, ";")
end
]]

  it("gives one thread's value or error for pickles changed in their second half", function()
    sh.spit(dir .. "/digest.lua", DIGEST)
    local digest = dofile(dir .. "/digest.lua")
    local j0, r0 = core._pickle_splits()
    for m = 0, 7 do
      local path = dir .. "/mut" .. m .. ".pt"
      local want = sh.run("LTORCH_NUM_THREADS=1 lua5.4 -e " .. sh.quote(
        "package.path='lua/?.lua;lua/?/init.lua;'..package.path; package.cpath='" .. BUILD .. "/?.so;'..package.cpath;" ..
        "io.write(dofile(" .. string.format("%q", dir .. "/digest.lua") .. ")(" .. string.format("%q", path) .. "))"))
      assert.is_true(#want > 0, path)
      for _ = 1, 3 do assert.are.equal(want, digest(path), path) end
    end
    -- some of those loads were split
    local j1, r1 = core._pickle_splits()
    assert.is_true(j1 + r1 > j0 + r0)
  end)
end)
