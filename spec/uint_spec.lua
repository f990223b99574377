-- uint_spec.lua: the unsigned dtypes uint16, uint32 and uint64 (PyTorch >=
-- 2.3's): dtype traits, conversion, elements, printing, promotion and
-- arithmetic, and their load/save in .pt, safetensors, .npy, GGUF,
-- TorchSharp and Torch7
local torch = require("ltorch")
local H = require("fmt_helper")

local U = {"uint16", "uint32", "uint64"}

describe("uint dtypes", function()
  it("have their sizes and PyTorch's printing", function()
    for i, dt in ipairs(U) do
      local t = torch.tensor({1, 2}, {dtype = dt})
      assert.equal(dt, t:dtype())
      assert.equal(2 ^ i, t:element_size())
      assert.equal("tensor([1, 2], dtype=torch." .. dt .. ")", tostring(t))
    end
    assert.equal("tensor([], dtype=torch.uint32)", tostring(torch.zeros(0, {dtype = "uint32"})))
  end)

  it("convert to and from every dtype", function()
    for _, dt in ipairs(U) do
      for _, o in ipairs({"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
                          "uint8", "complex64", "complex128", "uint16", "uint32", "uint64"}) do
        local t = torch.tensor({0, 3, 100}, {dtype = o}):to(dt)
        assert.equal(dt, t:dtype())
        assert.same({0, 3, 100}, t:tolist(), o)
        local back = t:to(o)
        assert.equal(o, back:dtype())
        assert.is_true(torch.equal(back, torch.tensor({0, 3, 100}, {dtype = o})), o)
      end
      assert.same({false, true}, torch.tensor({0, 7}, {dtype = dt}):to("bool"):tolist())
    end
  end)

  it("wrap modulo 2^bits as C unsigned", function()
    assert.same({65535, 1}, torch.tensor({-1, 65537}):to("uint16"):tolist())
    assert.same({4294967295}, torch.tensor({-1}, {dtype = "uint32"}):tolist())
    -- uint64 past 2^63 - 1 comes out as a wrapping Lua integer
    local big = torch.tensor({-1, math.mininteger}, {dtype = "uint64"})
    assert.same({-1, math.mininteger}, big:tolist())
    assert.equal(-1, big[1]:item())
    assert.same({18446744073709551615.0, 9223372036854775808.0}, big:to("float64"):tolist())
    assert.same({18446744073709551616.0}, torch.tensor({-1}, {dtype = "uint64"}):to("float32"):tolist())
    assert.same({-1 << 11}, torch.tensor({2.0 ^ 64 - 2048}, {dtype = "float64"}):to("uint64"):tolist())
    assert.equal("tensor([18446744073709551615,  9223372036854775808], dtype=torch.uint64)", tostring(big))
  end)

  it("add, sub, mul, floor-divide and compare in their own dtype", function()
    local a = torch.tensor({65535, 2, 7}, {dtype = "uint16"})
    local b = torch.tensor({1, 3, 2}, {dtype = "uint16"})
    assert.same({0, 5, 9}, (a + b):tolist())
    assert.equal("uint16", (a + b):dtype())
    assert.same({65534, 65535, 5}, (a - b):tolist())
    assert.same({65535, 6, 14}, (a * b):tolist())
    assert.same({65535, 0, 3}, (a // b):tolist())
    assert.equal("float32", (a / b):dtype())
    assert.same({65535.0, 3.5}, {(a / b):tolist()[1], (a / b):tolist()[3]})
    assert.same({true, false, true}, a:gt(b):tolist())
    assert.same({false, false, true}, a:eq(7):tolist())
    assert.same({0, 4294967295}, (torch.tensor({1, 0}, {dtype = "uint32"}) - 1):tolist())
    -- uint64 compares, divides and takes extremes as unsigned
    local x = torch.tensor({-1, 10}, {dtype = "uint64"})
    local y = torch.tensor({1, 3}, {dtype = "uint64"})
    assert.same({true, true}, x:gt(y):tolist())
    assert.same({0, 13}, (x + y):tolist())
    assert.same({-1, 3}, (x // y):tolist())                     -- (2^64 - 1) // 1
    assert.same({-1 >> 1, 3}, (x // torch.tensor({2, 3}, {dtype = "uint64"})):tolist())
    assert.equal(-1, x:maximum(y):tolist()[1])
    assert.equal(1, x:minimum(y):tolist()[1])
    assert.is_true(torch.equal(x, torch.tensor({-1, 10}, {dtype = "uint64"})))
    assert.is_false(torch.equal(x, y))
    assert.has_error(function() return x // torch.tensor({0, 1}, {dtype = "uint64"}) end)
  end)

  it("promote as PyTorch 2.3: only with themselves and floating dtypes", function()
    local a = torch.tensor({1, 2}, {dtype = "uint16"})
    assert.equal("uint16", (a + 1):dtype())                      -- Lua integers keep the tensor's dtype
    assert.equal("float32", (a + 0.5):dtype())
    assert.equal("float64", (a + torch.tensor({1}, {dtype = "float64"})):dtype())
    assert.equal("float16", (a * torch.tensor({1}, {dtype = "float16"})):dtype())
    assert.equal("uint16", (a + torch.tensor(1)):dtype())      -- a 0-dim int64 does not decide
    assert.equal("int64", (torch.tensor({1}) + torch.tensor(1, {dtype = "uint32"})):dtype())
    local function refused(x, y)
      return "promotion for uint16, uint32, uint64 types is not supported, attempted to promote "
        .. x .. " and " .. y
    end
    local ok, e = pcall(function() return a + torch.tensor({1}, {dtype = "int32"}) end)
    assert.is_false(ok)
    assert.truthy(tostring(e):find(refused("uint16", "int32"), 1, true))
    for _, o in ipairs({"uint8", "int64", "bool", "complex64", "uint32"}) do
      ok, e = pcall(torch.add, a, torch.zeros(2, {dtype = o}))
      assert.is_false(ok, o)
      assert.truthy(tostring(e):find(refused("uint16", o), 1, true), o)
    end
    ok, e = pcall(torch.cat, {a, torch.tensor({1})})
    assert.truthy(tostring(e):find(refused("uint16", "int64"), 1, true))
  end)
end)

describe("uint dtypes in files", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  local function sample()
    return {a = torch.tensor({1, 65535}, {dtype = "uint16"}), b = torch.tensor({7, 4294967295}, {dtype = "uint32"}),
            c = torch.tensor({1, -1}, {dtype = "uint64"})}
  end

  it("round-trip through safetensors, .npy/.npz and .pt", function()
    for _, ext in ipairs({".safetensors", ".npz", ".pt"}) do
      local p = dir .. "/u" .. ext
      torch.save(sample(), p)
      for _, mm in ipairs({false, true}) do
        local l = torch.load(p, {mmap = mm})
        for k, t in pairs(sample()) do assert.is_true(H.same(t, l[k]), ext .. " " .. k) end
      end
    end
    local p = dir .. "/u.npy"
    torch.save(sample().c, p)
    assert.is_true(H.same(sample().c, torch.load(p)))
  end)

  it("are written to .pt as PyTorch >= 2.3 does, which PyTorch 1.13 cannot read", function()
    local p = dir .. "/w.pt"
    torch.save({a = torch.tensor({1, 65535}, {dtype = "uint16"})}, p)
    local out = H.py([[
import sys, zipfile, pickletools, io, torch
z = zipfile.ZipFile(sys.argv[1])
pkl = z.read([n for n in z.namelist() if n.endswith('/data.pkl')][0])
ops = [(op.name, arg) for op, arg, _ in pickletools.genops(pkl)]
g = [a for n, a in ops if n == 'GLOBAL']
print(g)
print(z.read([n for n in z.namelist() if n.endswith('/data/0')][0]).hex())
try:
    torch.load(sys.argv[1])
except Exception as e:
    print(type(e).__name__, e)
]], p)
    assert.equal("['torch._utils _rebuild_tensor_v3', 'torch.storage UntypedStorage', "
      .. "'collections OrderedDict', 'torch uint16']\n0100ffff\n"
      .. "AttributeError Can't get attribute '_rebuild_tensor_v3' on <module 'torch._utils' from "
      .. "'/usr/lib/python3/dist-packages/torch/_utils.py'>\n", out)
  end)

  it("load the .pt files PyTorch >= 2.3 writes", function()
    -- PyTorch 2.3's pickle (protocol 2, through Python's own pickler) of
    -- {"a": uint16, "b": uint32 transposed view, "c": uint64} built with
    -- stand-in torch globals, in a zip as torch.save lays it out
    local p = dir .. "/pt23.pt"
    H.py([[
import sys, types, pickle, io, zipfile, struct, collections
torch = types.ModuleType('torch'); utils = types.ModuleType('torch._utils'); st = types.ModuleType('torch.storage')
sys.modules.update({'torch': torch, 'torch._utils': utils, 'torch.storage': st})
def _rebuild_tensor_v3(*a): pass
_rebuild_tensor_v3.__module__ = 'torch._utils'; utils._rebuild_tensor_v3 = _rebuild_tensor_v3
class UntypedStorage: pass
UntypedStorage.__module__ = 'torch.storage'; st.UntypedStorage = UntypedStorage
class dtype:
    def __init__(self, n): self.n = n
    def __reduce__(self): return self.n
dtype.__module__ = 'torch'
for n in ('uint16', 'uint32', 'uint64'): setattr(torch, n, dtype(n))
class Storage:
    def __init__(self, key, data): self.key, self.data = key, data
class T:
    def __init__(self, s, off, size, stride, dt): self.a = (s, off, size, stride, False, collections.OrderedDict(), dt)
    def __reduce__(self): return (_rebuild_tensor_v3, self.a)
s0 = Storage('0', struct.pack('<2H', 1, 65535))
s1 = Storage('1', struct.pack('<6I', 0, 1, 2, 3, 4, 4294967295))
s2 = Storage('2', struct.pack('<2Q', 2**64 - 1, 5))
d = {'a': T(s0, 0, (2,), (1,), torch.uint16), 'b': T(s1, 0, (3, 2), (1, 3), torch.uint32),
     'c': T(s2, 1, (1,), (1,), torch.uint64)}
class P(pickle.Pickler):
    def persistent_id(self, o):
        if isinstance(o, Storage): return ('storage', UntypedStorage, o.key, 'cpu', len(o.data))
        return None
b = io.BytesIO(); P(b, protocol=2).dump(d)
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('pt23/data.pkl', b.getvalue())
    z.writestr('pt23/byteorder', 'little')
    for s in (s0, s1, s2): z.writestr('pt23/data/' + s.key, s.data)
    z.writestr('pt23/version', '3\n')
]], p)
    for _, mm in ipairs({false, true}) do
      local l = torch.load(p, {mmap = mm})
      assert.equal("uint16", l.a:dtype())
      assert.same({1, 65535}, l.a:tolist())
      assert.equal("uint32", l.b:dtype())
      assert.same({{0, 3}, {1, 4}, {2, 4294967295}}, l.b:tolist())
      assert.same({1, 3}, l.b:stride())
      assert.equal("uint64", l.c:dtype())
      assert.same({5}, l.c:tolist())
    end
  end)

  it("are refused by GGUF, TorchSharp and Torch7, which have no such types", function()
    local t = torch.tensor({1}, {dtype = "uint32"})
    local p = dir .. "/x"
    assert.equal(p .. ".dat: tensor 'w': dtype uint32 cannot be stored in TorchSharp .dat (.pt can)",
                 H.err(torch.save, {w = t}, p .. ".dat"))
    assert.equal(p .. ".gguf: tensor 'w': a uint32 tensor has no ggml type (float32, float16, bfloat16, "
      .. "float64, int8, int16, int32, int64)", H.err(torch.save, {w = t}, p .. ".gguf"))
    assert.equal(p .. ".t7: w: a uint64 tensor has no Torch7 type (Byte, Char, Short, Int, Long, Float, "
      .. "Double or Half)", H.err(torch.save, {w = torch.tensor({1}, {dtype = "uint64"})}, p .. ".t7"))
  end)
end)

describe("uint64 order-based ops", function()
  it("max, min, argmax, argmin, amax, amin, sort, argsort and topk order values past 2^63 as unsigned", function()
    local t = torch.tensor({1, -1, 5}, {dtype = "uint64"})   -- -1 is 2^64 - 1
    local big = torch.tensor({-1}, {dtype = "uint64"})[1]
    assert.is_true(torch.equal(t:max(), big))
    assert.are.equal(1, t:min():item())
    assert.are.equal(2, t:argmax():item())
    assert.are.equal(1, t:argmin():item())
    assert.is_true(torch.equal(t:amax(), big))
    local v, i = t:sort()
    assert.are.equal("uint64", v:dtype())
    assert.are.same({1, 5, -1}, v:tolist())
    assert.are.same({1, 3, 2}, i:tolist())
    assert.are.same({1, 3, 2}, t:argsort():tolist())
    local tv, ti = t:topk(2)
    assert.are.same({-1, 5}, tv:tolist())
    assert.are.same({2, 3}, ti:tolist())
    local mv, mi = t:max(1)
    assert.are.same({-1, 2}, {mv:item(), mi:item()})
    assert.are.same({1, -1, 5}, t:tolist())   -- the argument is left as it was
  end)
end)
