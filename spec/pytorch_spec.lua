-- pytorch_spec.lua: torch.save / torch.load in PyTorch's format, checked
-- against real PyTorch 1.13 (/usr/bin/python3) in both directions.

local torch = require("ltorch")
local odict = require("ltorch.odict")
local core = require("ltorch.core")

local PY = "/usr/bin/python3"
local FIX = "spec/fixtures/pt/"

local function tmpdir()
  local n = os.tmpname()
  os.remove(n)
  assert(os.execute("mkdir -p " .. n))
  return n
end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a"); f:close(); return s
end

-- run a python script; returns its output; raises with the output on failure
local function py(dir, script)
  local f = dir .. "/script.py"
  write(f, script)
  local p = io.popen(PY .. " " .. f .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("python failed:\n" .. out, 2) end
  return out
end

local DTYPES = {"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32",
  "int64", "uint8", "bool", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2",
  "uint16", "uint32", "uint64"}

local function same(a, b)
  return a:dtype() == b:dtype() and a:tobytes() == b:tobytes()
    and table.concat(a:size(), ",") == table.concat(b:size(), ",")
end

describe("torch.save and torch.load (pt)", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("round-trips tensors of every dtype, 0-dim and empty", function()
    local sd = odict.new()
    for _, dt in ipairs(DTYPES) do
      sd[dt] = torch.arange(12):to(dt):view(3, 4)
      sd[dt .. "_scalar"] = torch.tensor(1):to(dt):view({})
      sd[dt .. "_empty"] = torch.zeros(0, 3, {dtype = dt})
    end
    local f = dir .. "/dtypes.pt"
    torch.save(sd, f)
    local r = torch.load(f)
    assert.same(odict.keys(sd), odict.keys(r))
    for k, v in pairs(sd) do assert.is_true(same(v, r[k]), k) end
    assert.equal(0, r.float32_scalar:dim())
  end)

  it("keeps views of one storage shared, with offsets and strides", function()
    local a = torch.arange(12):to("float32"):view(3, 4)
    local sd = odict.new()
    sd.a = a; sd.at = a:t(); sd.row = a[2]; sd.col = a:select(2, 3)
    local f = dir .. "/views.pt"
    torch.save(sd, f)
    local r = torch.load(f)
    local p = r.a:_storage_info()
    for _, k in ipairs({"at", "row", "col"}) do assert.equal(p, (r[k]:_storage_info())) end
    assert.same({1, 4}, r.at:stride())
    assert.equal(4, r.row:storage_offset())
    assert.equal(2, r.col:storage_offset())
    assert.same(a:select(2, 3):tolist(), r.col:tolist())
    r.a:fill(5)
    assert.equal(5, r.row[1]:item())
  end)

  it("round-trips nested tables, integers, floats, strings, booleans and null", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local v = {
      ints = {0, 255, 256, 65535, 65536, -1, 2147483647, -2147483648, 2147483648,
        math.maxinteger, math.mininteger},
      floats = {0.1, -0.0, 1 / 0, -1 / 0, 1e308, 5e-324, 3.0},
      strs = {"", "plain", "unicode é ☃ 😀", table.concat(bytes)},
      bools = {true, false},
      null = torch.null,
      nested = {a = {b = {c = {1, 2, {d = "e"}}}}},
    }
    local f = dir .. "/values.pt"
    torch.save(v, f)
    local r = torch.load(f)
    assert.same(v.ints, r.ints)
    for i, x in ipairs(r.ints) do assert.equal("integer", math.type(x), i) end
    for i, x in ipairs(v.floats) do
      assert.equal(string.pack("<d", x), string.pack("<d", r.floats[i]))
      assert.equal("float", math.type(r.floats[i]))
    end
    local nan = torch.load((function() torch.save({0 / 0}, f); return f end)())[1]
    assert.is_true(nan ~= nan)
    assert.same(v.strs, r.strs)
    assert.same(v.bools, r.bools)
    assert.equal(torch.null, r.null)
    assert.same(v.nested, r.nested)
  end)

  it("keeps the key order of ordered dicts", function()
    local sd = odict.new()
    for _, k in ipairs({"z", "a", "m", "b", "y"}) do sd[k] = #k end
    local f = dir .. "/order.pt"
    torch.save(sd, f)
    assert.same({"z", "a", "m", "b", "y"}, odict.keys(torch.load(f)))
  end)

  it("saves tensors that require grad as Parameters and keeps the flag", function()
    local w = torch.ones(2, 2):requires_grad(true)
    local f = dir .. "/param.pt"
    torch.save({w = w, b = torch.zeros(2)}, f)
    local r = torch.load(f)
    assert.is_true(r.w:requires_grad())
    assert.is_false(r.b:requires_grad())
  end)

  it("refuses values it cannot write and leaves the old file intact", function()
    local f = dir .. "/atomic.pt"
    torch.save({x = 1}, f)
    local before = read(f)
    assert.has_error(function() torch.save({x = 1, f = print}, f) end,
      f .. ": cannot save a value of type function (at f)")
    assert.equal(before, read(f))
    local left = io.popen("ls -a " .. dir .. " | grep -c tmp"):read("a")
    assert.equal("0\n", left)
  end)

  it("swaps a new file in over the old one, leaving other links and no temporary files", function()
    local f, link = dir .. "/swap.pt", dir .. "/swap-link.pt"
    torch.save({v = torch.tensor({1, 2})}, f)
    assert(os.execute("ln " .. f .. " " .. link))
    torch.save({v = torch.tensor({3, 4, 5})}, f)
    assert.same({3, 4, 5}, torch.load(f).v:tolist())
    assert.same({1, 2}, torch.load(link).v:tolist())   -- the old file lives on under its other name
    torch.save({v = torch.tensor({6})}, f, {sync = true})
    assert.same({6}, torch.load(f).v:tolist())
    local left = io.popen("ls -a " .. dir .. " | grep -c tmp"):read("a")
    assert.equal("0\n", left)
    os.remove(link)
  end)

  it("exits cleanly right after replacing a file (the old file is closed in the background)", function()
    local f = dir .. "/exit.pt"
    local script = "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; " ..
      "package.cpath = (os.getenv('LTORCH_BUILD') or 'build') .. '/?.so;' .. package.cpath; " ..
      "local torch = require('ltorch'); local sd = {w = torch.zeros(1 << 20)}; " ..
      "for _ = 1, 3 do torch.save(sd, '" .. f .. "') end"
    for _ = 1, 5 do
      assert.is_true(os.execute("lua5.4 -e \"" .. script .. "\""))
    end
    assert.equal(1048576, torch.load(f).w:numel())
  end)

  it("refuses to replace a folder", function()
    local d = dir .. "/folder.pt"
    assert(os.execute("mkdir " .. d))
    assert.has_error(function() torch.save({v = torch.ones(1)}, d) end, d .. ": cannot replace the file: Is a directory")
    local left = io.popen("ls -a " .. dir .. " | grep -c tmp"):read("a")
    assert.equal("0\n", left)
    os.execute("rmdir " .. d)
  end)

  it("refuses a freed tensor", function()
    local t = torch.ones(2)
    t:free()
    assert.has_error(function() torch.save({t}, dir .. "/freed.pt") end,
      dir .. "/freed.pt: attempt to use a freed tensor (at [1])")
  end)

  it("reports save progress up to the bytes of the storages", function()
    local f = dir .. "/progress.pt"
    local calls, last, total = 0, 0, nil
    torch.save({a = torch.zeros(1000), b = torch.ones(10, {dtype = "int64"})}, f,
      {progress = function(d, t) calls = calls + 1; assert.is_true(d >= last); last, total = d, t end})
    assert.equal(4080, total)
    assert.equal(total, last)
    assert.equal(2, calls)
  end)

  it("computes the crc32 zip readers check, at any length", function()
    local parts, lens = {}, {0, 1, 15, 16, 63, 64, 65, 127, 128, 1000, 4099}
    local out = py(dir, [[
import zlib
for n in (0, 1, 15, 16, 63, 64, 65, 127, 128, 1000, 4099):
    s = bytes((i * 7 + 3) % 256 for i in range(n))
    print(zlib.crc32(s), zlib.crc32(s[n // 2:], zlib.crc32(s[:n // 2])))
]])
    for _, n in ipairs(lens) do
      local t = {}
      for i = 0, n - 1 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
      local s = table.concat(t)
      local half = core._pt_crc32(s:sub(n // 2 + 1), core._pt_crc32(s:sub(1, n // 2)))
      parts[#parts + 1] = core._pt_crc32(s) .. " " .. half
    end
    assert.equal(out, table.concat(parts, "\n") .. "\n")
  end)

  it("writes the zip layout torch.save writes", function()
    local f = dir .. "/my.model.pt"
    torch.save({w = torch.arange(5)}, f)
    local out = py(dir, ([[
import zipfile, struct
z = zipfile.ZipFile(%q)
raw = open(%q, 'rb').read()
for i in z.infolist():
    n, x = struct.unpack('<HH', raw[i.header_offset + 26:i.header_offset + 30])
    print(i.filename, i.compress_type, (i.header_offset + 30 + n + x) %% 64, i.flag_bits)
print(z.read('my.model/version'), z.read('my.model/byteorder'), len(z.read('my.model/data/0')), z.testzip())
sid = z.read('my.model/.data/serialization_id')
print(len(sid), sid.isdigit())
]]):format(f, f))
    assert.equal([[
my.model/data.pkl 0 0 2056
my.model/byteorder 0 0 2056
my.model/data/0 0 0 2056
my.model/version 0 0 2056
my.model/.data/serialization_id 0 0 2056
b'3\n' b'little' 40 None
40 True
]], out)
  end)
end)

describe("PyTorch reads what ltorch writes", function()
  -- every file is written first, then checked by one python process
  local dir, results = nil, {}
  setup(function()
    dir = tmpdir()
    local sd = odict.new()
    for _, dt in ipairs(DTYPES) do
      if not dt:find("float8") and not dt:find("^uint%d%d") then   -- PyTorch 1.13 has neither
        sd[dt] = torch.arange(12):to(dt):view(3, 4)
        sd[dt .. "_t"] = sd[dt]:t()
        sd[dt .. "_0d"] = torch.tensor(3):to(dt):view({})
        sd[dt .. "_empty"] = torch.zeros(0, 2, {dtype = dt})
      end
    end
    sd.nested = {list = {1, 2, 3}, big = math.maxinteger, neg = -70000, s = "ünï", t = true,
      n = torch.null}
    torch.save(sd, dir .. "/all.pt")
    torch.save({f = 0.1, inf = 1 / 0, raw = "\xff\xfe", t = torch.ones(2)}, dir .. "/floats.pt")
    torch.save({w = torch.ones(2, 2):requires_grad(true), b = torch.zeros(2)}, dir .. "/param.pt")
    local m = odict.new()
    m["fc.weight"] = torch.ones(2, 3)
    require("ltorch.formats.pt").save(m, dir .. "/mod.pt", {}, dir .. "/mod.pt", {structure = "return {}"})
    local out = py(dir, ([[
import torch, zipfile, pickletools, io, os
os.chdir(%q)
def check(name, fn):
    try:
        fn()
        print(name, 'ok')
    except Exception as e:
        print(name, 'FAIL', repr(e))

def all_():
    d = torch.load('all.pt', weights_only=True)
    names = ['float32','float64','float16','bfloat16','int8','int16','int32','int64','uint8','bool','complex64','complex128']
    assert list(d.keys())[:4] == ['float32', 'float32_t', 'float32_0d', 'float32_empty'], list(d.keys())
    for n in names:
        dt = getattr(torch, n)
        want = torch.arange(12).to(dt).reshape(3, 4)
        t = d[n]
        assert t.dtype == dt and t.shape == (3, 4) and torch.equal(t, want), n
        assert torch.equal(d[n + '_t'], want.t()) and d[n + '_t'].stride() == (1, 4), n
        assert d[n + '_t'].data_ptr() == t.data_ptr()
        assert d[n + '_0d'].dim() == 0 and d[n + '_0d'].item() == torch.tensor(3).to(dt).item(), n
        assert d[n + '_empty'].shape == (0, 2) and d[n + '_empty'].dtype == dt, n
    assert d['nested'] == {'list': [1, 2, 3], 'big': 2**63 - 1, 'neg': -70000, 's': 'ünï', 't': True, 'n': None}, d['nested']
check('all', all_)

def floats():
    d = torch.load('floats.pt')
    assert d['f'] == 0.1 and d['inf'] == float('inf') and d['raw'] == b'\xff\xfe', d
    assert torch.equal(d['t'], torch.ones(2))
    pkl = zipfile.ZipFile('floats.pt').read('floats/data.pkl')
    allowed = {'torch._utils _rebuild_tensor_v2', 'torch FloatStorage', 'collections OrderedDict', '_codecs encode'}
    for op, arg, pos in pickletools.genops(io.BytesIO(pkl)):
        if op.name == 'GLOBAL':
            assert arg in allowed, arg
check('floats', floats)

def param():
    d = torch.load('param.pt', weights_only=True)
    assert type(d['w']) is torch.nn.Parameter and d['w'].requires_grad
    assert type(d['b']) is torch.Tensor and not d['b'].requires_grad
check('param', param)

def mod():
    d = torch.load('mod.pt', weights_only=True)
    assert list(d.keys()) == ['fc.weight'] and type(d).__name__ == 'OrderedDict', d
check('mod', mod)
]]):format(dir))
    for name, res in out:gmatch("(%S+) ([^\n]*)") do results[name] = res end
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("loads every dtype, views, 0-dim and empty tensors and plain values with weights_only=True", function()
    assert.equal("ok", results.all)
  end)
  it("loads Lua floats and non-UTF-8 strings with a plain torch.load; the pickle names only allowed globals", function()
    assert.equal("ok", results.floats)
  end)
  it("loads tensors that require grad as Parameters", function()
    assert.equal("ok", results.param)
  end)
  it("loads the state dict of an ltorch module file with weights_only=True", function()
    assert.equal("ok", results.mod)
  end)
end)

describe("ltorch reads what PyTorch writes", function()
  local dir
  setup(function()
    dir = tmpdir()
    py(dir, ([[
import torch, collections, zipfile, io, os
D = %q
os.chdir(D)
names = ['float32','float64','float16','bfloat16','int8','int16','int32','int64','uint8','bool','complex64','complex128']
sd = collections.OrderedDict()
for n in names:
    sd[n] = torch.arange(12).to(getattr(torch, n)).reshape(3, 4)
torch.save(sd, 'dtypes.pt')
torch.save(sd, 'dtypes_legacy.pt', _use_new_zipfile_serialization=False)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
torch.save(net.state_dict(), 'net.pt')
torch.save({'model': net.state_dict(), 'epoch': 3}, 'ckpt.pt')
torch.save(net, 'whole.pt')
with open('net.txt', 'w') as f:
    for k, v in net.state_dict().items():
        f.write('%%s %%s %%r\n' %% (k, str(v.dtype)[6:], float(v.double().sum())))
torch.save({'p': torch.nn.Parameter(torch.ones(2, 2)), 'q': torch.nn.Parameter(torch.zeros(1), requires_grad=False)}, 'params.pt')
a = torch.arange(20.).reshape(4, 5)
torch.save({'big': 2**62, 'neg': -2**40, 'u': 'ünï ☃', 'f': 1.25, 't': True, 'n': None,
            'tup': (1, (2, 3)), 'l': [a[1], a[:, 2], a.t()], 'o': 1e-300}, 'containers.pt')
torch.save([a, a[2:], a[:, 1:3], torch.tensor(5.), torch.zeros(0, 3)], 'shared.pt')
torch.save({'huge': 2**70}, 'huge.pt')
with open('folder.pt', 'wb') as f:   # a file object: the folder is 'archive'
    torch.save({'x': torch.ones(3)}, f)
# versions 1..10 and a big-endian byteorder, by rewriting the records
z = zipfile.ZipFile('dtypes.pt')
recs = {n: z.read(n) for n in z.namelist()}
def rezip(name, recs):
    with zipfile.ZipFile(name, 'w', zipfile.ZIP_STORED) as o:
        for n, v in recs.items():
            o.writestr(n, v)
for v in range(1, 11):
    r = dict(recs); r['dtypes/version'] = b'%%d\n' %% v
    rezip('v%%d.pt' %% v, r)
import numpy as np
r = dict(recs)
for k, n in enumerate(names):
    pass
# byteswap every storage by its dtype, found from the state dict order
for i, n in enumerate(names):
    t = sd[n]
    if t.element_size() > 1:
        arr = t.numpy() if n != 'bfloat16' else t.view(torch.int16).numpy()
        r['dtypes/data/%%d' %% i] = arr.byteswap().tobytes() if not n.startswith('complex') else \
            arr.view(np.float32 if n == 'complex64' else np.float64).byteswap().tobytes()
r['dtypes/byteorder'] = b'big'
rezip('big.pt', r)
# deflated records
with zipfile.ZipFile('deflated.pt', 'w', zipfile.ZIP_DEFLATED) as o:
    for n, v in recs.items():
        o.writestr(n, v)
# zip64 local headers (sizes 0xffffffff plus a zip64 extra field)
with zipfile.ZipFile('zip64.pt', 'w', zipfile.ZIP_STORED) as o:
    for n, v in recs.items():
        with o.open(n, 'w', force_zip64=True) as w:
            w.write(v)
print('ok')
]]):format(dir))
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function check_dtypes(r)
    assert.same({"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32",
      "int64", "uint8", "bool", "complex64", "complex128"}, odict.keys(r))
    for k, v in pairs(r) do assert.is_true(same(torch.arange(12):to(k):view(3, 4), v), k) end
  end

  it("reads tensors of every storage type", function() check_dtypes(torch.load(dir .. "/dtypes.pt")) end)
  it("reads the legacy format", function() check_dtypes(torch.load(dir .. "/dtypes_legacy.pt")) end)
  it("reads versions 1 to 10", function()
    for v = 1, 10 do check_dtypes(torch.load(dir .. "/v" .. v .. ".pt")) end
  end)
  it("converts big-endian files", function() check_dtypes(torch.load(dir .. "/big.pt")) end)
  it("reads deflated records", function() check_dtypes(torch.load(dir .. "/deflated.pt")) end)
  it("reads zip64 local headers", function() check_dtypes(torch.load(dir .. "/zip64.pt")) end)
  it("reads any top-level folder", function()
    assert.same({1, 1, 1}, torch.load(dir .. "/folder.pt").x:tolist())
  end)

  it("reads a real module's state dict in order", function()
    local sd = torch.load(dir .. "/net.pt")
    local i = 0
    for line in io.lines(dir .. "/net.txt") do
      i = i + 1
      local k, dt, sum = line:match("^(%S+) (%S+) (%S+)$")
      assert.equal(k, odict.keys(sd)[i])
      assert.equal(dt, sd[k]:dtype())
      local s = 0
      for _, x in ipairs(sd[k]:flatten():tolist()) do s = s + x end
      assert.is_true(math.abs(s - tonumber(sum)) < 1e-5, k)
    end
    assert.equal(i, odict.count(sd))
  end)

  it("load_state_dict returns the flat state dict, also from a checkpoint", function()
    local a, b = torch.load_state_dict(dir .. "/net.pt"), torch.load_state_dict(dir .. "/ckpt.pt")
    assert.same(odict.keys(a), odict.keys(b))
    assert.equal(3, torch.load(dir .. "/ckpt.pt").epoch)
  end)

  it("reads Parameters", function()
    local r = torch.load(dir .. "/params.pt")
    assert.is_true(r.p:requires_grad())
    assert.is_false(r.q:requires_grad())
    assert.same({{1, 1}, {1, 1}}, r.p:tolist())
  end)

  it("reads containers: big ints, unicode, floats, bools, None, tuples", function()
    local r = torch.load(dir .. "/containers.pt")
    assert.equal(1 << 62, r.big)
    assert.equal(-(1 << 40), r.neg)
    assert.equal("ünï ☃", r.u)
    assert.equal(1.25, r.f)
    assert.equal(1e-300, r.o)
    assert.is_true(r.t)
    assert.equal(torch.null, r.n)
    assert.same({1, {2, 3}}, r.tup)
    assert.same({5, 6, 7, 8, 9}, r.l[1]:tolist())
    assert.same({2, 7, 12, 17}, r.l[2]:tolist())
  end)

  it("reads shared storages, offsets and strides", function()
    local r = torch.load(dir .. "/shared.pt")
    local p = r[1]:_storage_info()
    assert.equal(p, (r[2]:_storage_info()))
    assert.equal(p, (r[3]:_storage_info()))
    assert.equal(10, r[2]:storage_offset())
    assert.same({5, 1}, r[3]:stride())
    assert.same({{1, 2}, {6, 7}, {11, 12}, {16, 17}}, r[3]:tolist())
    assert.equal(5, r[4]:item())
    assert.same({0, 3}, r[5]:size())
  end)

  it("refuses an integer beyond int64, naming it", function()
    assert.has_error(function() torch.load(dir .. "/huge.pt") end, dir .. "/huge.pt: entry 'huge/data.pkl': "
      .. "at byte 16: integer 0x400000000000000000 (two's complement, 9 bytes) does not fit in int64")
  end)

  it("refuses a whole pickled module, listing its globals", function()
    local ok, err = pcall(torch.load, dir .. "/whole.pt")
    assert.is_false(ok)
    assert.equal(dir .. "/whole.pt: unsupported globals: torch.nn.modules.container.Sequential, "
      .. "torch.nn.modules.conv.Conv2d, torch.nn.modules.batchnorm.BatchNorm2d, "
      .. "torch.nn.modules.flatten.Flatten, torch.nn.modules.linear.Linear "
      .. "(a whole pickled module; load its state_dict, or pass {unknown = \"inert\"})", err)
  end)

  it("loads a whole module as inert tables with unknown = 'inert'", function()
    local m = torch.load(dir .. "/whole.pt", {unknown = "inert"})
    assert.equal("torch.nn.modules.container.Sequential", m.__global)
    local lin = m.state._modules["3"]
    assert.equal("torch.nn.modules.linear.Linear", lin.__global)
    assert.same({2, 4}, lin.state._parameters.weight:size())
  end)

  it("loads only the requested keys (names in the file), renamed after", function()
    local r = torch.load(dir .. "/net.pt", {keys = {"3.weight", "3.bias"}})
    assert.same({"3.weight", "3.bias"}, odict.keys(r))
    r = torch.load(dir .. "/net.pt", {rename = {{"^(%d)%.", "layer%1."}},
      keys = function(k) return k:find("^1%.") ~= nil end})
    assert.same({"layer1.weight", "layer1.bias", "layer1.running_mean", "layer1.running_var",
      "layer1.num_batches_tracked"}, odict.keys(r))
  end)

  it("reports progress up to the total", function()
    local last, total = 0, nil
    torch.load(dir .. "/dtypes.pt", {progress = function(d, t) assert.is_true(d >= last); last, total = d, t end})
    assert.equal(total, last)
    assert.is_true(total > 0)
  end)
end)

describe("PyTorch 2.x archives", function()
  it("load with their other records (.format_version, .storage_alignment, .data/serialization_id) and unaligned data", function()
    local dir = tmpdir()
    py(dir, [[
import os, torch, zipfile
os.chdir(']] .. dir .. [[')
torch.save({'a': torch.arange(6.).view(2, 3), 'b': torch.tensor([1, 2], dtype=torch.int16)}, 'p113.pt')
z = zipfile.ZipFile('p113.pt')
recs = {n: z.read(n) for n in z.namelist()}
pre = z.namelist()[0].split('/')[0]
out = zipfile.ZipFile('p27.pt', 'w', zipfile.ZIP_STORED)   # Python's zipfile: data not 64-aligned
out.writestr(pre + '/data.pkl', recs[pre + '/data.pkl'])
out.writestr(pre + '/.format_version', b'1')
out.writestr(pre + '/.storage_alignment', b'4096')
out.writestr(pre + '/byteorder', b'little')
for n in sorted(recs):
    if '/data/' in n: out.writestr(n, recs[n])
out.writestr(pre + '/version', b'3\n')
out.writestr(pre + '/.data/serialization_id', b'1234567890123456789012345678901234567890')
out.close()
]])
    for _, o in ipairs({{}, {mmap = true}}) do
      local v = torch.load(dir .. "/p27.pt", o)
      assert.are.same({{0, 1, 2}, {3, 4, 5}}, v.a:tolist())
      assert.are.same({1, 2}, v.b:tolist())
    end
  end)
end)

describe("keys and entries ltorch cannot read", function()
  it("an entry keys leaves out may hold unsupported globals and storages", function()
    local dir = tmpdir()
    py(dir, [[
import torch
q = torch.quantize_per_tensor(torch.tensor([0.5, 1.0]), 0.1, 10, torch.quint8)
torch.save({'w': torch.ones(2), 'q': q}, ']] .. dir .. [[/q.pt')
]])
    local p = dir .. "/q.pt"
    assert.are.same({1, 1}, torch.load(p, {keys = {"w"}}).w:tolist())
    assert.are.same({"w"}, odict.ordered_keys(torch.load_state_dict(p, {keys = {"w"}})))
    local ok, e = pcall(torch.load, p)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find(p .. ": unsupported globals: torch._utils._rebuild_qtensor, torch.QUInt8Storage", 1, true), e)
    assert.are.equal("torch._utils._rebuild_qtensor", torch.load(p, {unknown = "inert"}).q.__global)
  end)
end)

describe("eager loads of big records (read by several threads)", function()
  local dir, f
  setup(function()
    dir = tmpdir()
    f = dir .. "/big.pt"
    -- 6 x 4 MiB: above the size where reads are split across threads
    py(dir, string.format([[
import torch
g = torch.Generator().manual_seed(3)
sd = {f'w{i}': torch.randn(1024, 1024, generator=g) for i in range(6)}
sd['small'] = torch.arange(10, dtype=torch.int64)
torch.save(sd, %q)
]], f))
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("reads every byte into place, as PyTorch wrote it", function()
    local eager, mm = torch.load(f), torch.load(f, {mmap = true})
    for i = 0, 5 do
      local k = "w" .. i
      local _, _, mapped = eager[k]:_storage_info()
      assert.is_false(mapped)
      assert.is_true(same(eager[k], mm[k]), k)
    end
    local out = py(dir, string.format([[
import torch
sd = torch.load(%q)
print(' '.join(repr(float(sd[f'w{i}'][1023, 1023])) for i in range(6)))
]], f))
    local i = 0
    for x in out:gmatch("%S+") do
      assert.equal(tonumber(x), eager["w" .. i]:select(1, 1024):select(1, 1024):item())
      i = i + 1
    end
    assert.equal(6, i)
    assert.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, eager.small:tolist())
  end)

  it("reports progress that only grows, up to the total", function()
    -- how many calls depends on the threads' timing: the calling thread
    -- reports between its chunks and while the workers finish, and a fast
    -- read may end before it looks again
    local calls, last, total = 0, 0, nil
    torch.load(f, {progress = function(d, t) calls = calls + 1; assert.is_true(d >= last); last, total = d, t end})
    assert.equal(6 * 4 * 1048576 + 80, total)
    assert.equal(total, last)
    assert.is_true(calls >= 1)
  end)

  it("stops on an error in the progress callback and raises it", function()
    local ok, err = pcall(torch.load, f, {progress = function(d) if d > 8 * 1048576 then error("stop here", 0) end end})
    assert.is_false(ok)
    assert.equal("stop here", err)
    collectgarbage()
    assert.same({1024, 1024}, torch.load(f).w5:size())   -- the loader is still fine
  end)
end)

describe("mmap loading", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local maps_of = require("fmt_helper").maps_of

  it("equals an eager load and releases the mapping with the tensors", function()
    local sd = odict.new()
    for i = 1, 5 do sd["t" .. i] = torch.randn(30, 7 + i) end
    sd.v = sd.t1:t()
    local f = dir .. "/mm.pt"
    torch.save(sd, f)
    local eager = torch.load(f)
    local mm = torch.load(f, {mmap = true})
    collectgarbage()
    for k, v in pairs(eager) do assert.is_true(same(v, mm[k]), k) end
    local _, _, mapped = mm.t1:_storage_info()
    assert.is_true(mapped)
    assert.equal(1, maps_of(f))
    mm = nil
    collectgarbage(); collectgarbage()
    assert.equal(0, maps_of(f))
  end)

  it("copies records that cannot be mapped", function()
    local r = torch.load(FIX .. "legacy.pt", {mmap = true})
    local _, _, mapped = r.w:_storage_info()
    assert.is_false(mapped)
    assert.same({3, 4, 5}, r.row1:tolist())
  end)
end)

describe("module files (.ltorch records)", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("writes extra records PyTorch ignores and returns them on load", function()
    local pt = require("ltorch.formats.pt")
    local sd = odict.new()
    sd["fc.weight"] = torch.ones(2, 3)
    local f = dir .. "/mod.pt"
    pt.save(sd, f, {}, f, {structure = "return {}"})
    local v, extras = pt.load(f, {})
    assert.equal("return {}", extras.structure)
    assert.same({"fc.weight"}, odict.keys(v))
    local _, also = pt.load(f, {keys = {"fc.weight"}})
    assert.equal("return {}", also.structure)
  end)
end)

describe("damaged files", function()
  local cases = {
    {"empty.pt", "empty file"},
    {"truncated.pt", "no zip end of central directory record %(truncated, or not a zip archive%)"},
    {"random.pt", "unknown format %(tried [^)]*TorchSharp[^)]*%)"},
    {"legacy_truncated.pt", "storage '%d+': the file ends at offset 708 before its size"},
    {"short_storage.pt", "entry 'views/data/0': expected 24 bytes, found 8"},
    {"pickle_ends.pt", "entry 'views/data.pkl': at byte %d+: pickle ends early %(needs 1 more bytes%)"},
    {"stack_misuse.pt", "entry 'views/data.pkl': at byte 5: STOP with an empty stack"},
    {"negative_size.pt", "entry 'views/data.pkl': at byte %d+: tensor in storage '0' of 24 bytes: negative or overflowing size"},
    {"overflow_size.pt", "entry 'views/data.pkl': at byte %d+: tensor in storage '0' of 24 bytes: negative or overflowing size"},
    {"bad_version.pt", "entry 'views/version': unsupported version '11' %(ltorch reads versions 1 to 10%)"},
    {"no_version.pt", "missing record 'views/version'"},
    {"no_pickle.pt", "missing record 'views/data.pkl'"},
    {"hostile.pt", "unsupported globals: os.system %(pass {unknown = \"inert\"} to load them as inert tables%)"},
    {"bad_cd_offset.pt", "central directory %(offset %d+, %d+ bytes%) lies outside the file"},
    {"duplicate.pt", "duplicate entry 'views/data/0'"},
    {"module.pt", "unsupported globals: torch.nn.modules.linear.Linear %(a whole pickled module; load its state_dict, or pass {unknown = \"inert\"}%)"},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " gives a clear error", function()
      local ok, err = pcall(torch.load, FIX .. c[1])
      assert.is_false(ok)
      local want = "^" .. (FIX .. c[1]):gsub("%p", "%%%0") .. ": " .. c[2] .. "$"
      assert.is_truthy(tostring(err):find(want), tostring(err))
    end)
  end

  it("a flipped data byte fails the crc32 check of verify = true", function()
    assert.has_error(function() torch.load(FIX .. "bad_crc.pt", {verify = true}) end,
      FIX .. "bad_crc.pt: entry 'views/data/0': crc32 mismatch (expected 91e79017, found f480ab51)")
    assert.equal(6, torch.load(FIX .. "bad_crc.pt").w:numel())
  end)

  it("a zip header alone is an error, not a crash", function()
    local f = os.tmpname()
    local h = io.open(f, "wb"); h:write("PK\3\4abc"); h:close()
    assert.has_error(function() torch.load(f) end, f .. ": not a zip archive: file of 7 bytes has no end record")
    os.remove(f)
  end)

  it("a missing file names the file", function()
    local ok, err = pcall(torch.load, "/nonexistent/x.pt")
    assert.is_false(ok)
    assert.is_truthy(err:find("/nonexistent/x.pt", 1, true))
  end)

  it("a hostile file loads inert with unknown = 'inert', running nothing", function()
    local r = torch.load(FIX .. "hostile.pt", {unknown = "inert"})
    assert.equal("os.system", r.__global)
    assert.same({"true"}, r.args)
  end)
end)
