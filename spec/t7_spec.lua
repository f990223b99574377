-- t7_spec.lua: Torch7 (.t7) files (src/t7.c, lua/ltorch/formats/t7.lua,
-- lua/ltorch/t7.lua). There is no Torch7 here: spec/fixtures/t7/t7ref.py
-- builds every fixture byte by byte from the published layout (its header
-- says what each holds; the values asserted below are the ones it encodes)
-- and reads back, by its own code, what ltorch writes. Converted models are
-- read by PyTorch and loaded strictly into the equivalent nn.Sequential.
local torch = require("ltorch")
local T7 = require("ltorch.t7")
local H = require("fmt_helper")

local REF = "spec/fixtures/t7/t7ref.py"
local dir
local function F(name) return dir .. "/" .. name .. ".t7" end

setup(function()
  dir = H.tmpdir()
  H.py(REF, "make", dir)
end)
teardown(function() H.rmdir(dir) end)

local function vals(t) return t:contiguous():tolist() end

-- every case loads the same eagerly and with mmap
local MODES = {{"eager", {}}, {"mmap", {mmap = true}}}

describe("Torch7 load", function()
  for _, mode in ipairs(MODES) do
    local name, opts = mode[1], mode[2]
    local function load(f) return torch.load(F(f), opts) end

    it("keeps numbers, strings and booleans, integral numbers as integers (" .. name .. ")", function()
      local v = load("numbers")
      assert.are.equal(42, v.int); assert.are.equal("integer", math.type(v.int))
      assert.are.equal(-7, v.neg); assert.are.equal("integer", math.type(v.neg))
      assert.are.equal(0.5, v.frac)
      assert.are.equal(9007199254740992, v.big); assert.are.equal("integer", math.type(v.big))
      assert.are.equal("float", math.type(v.negzero)); assert.are.equal(-math.huge, 1 / v.negzero)
      assert.are.equal(math.huge, v.inf); assert.are.equal(-math.huge, v.ninf)
      assert.is_true(v.nan ~= v.nan)
      assert.are.equal("h\xc3\xa9llo\0x", v.str)
      assert.is_true(v.yes); assert.is_false(v.no)
      assert.is_nil(getmetatable(v))
    end)

    it("keeps tables' keys as written, 0 included (" .. name .. ")", function()
      local l = load("list")
      assert.are.same({"a", "b", 3}, l)
      assert.are.equal("integer", math.type(l[3]))
      local z = load("zero_based")
      assert.are.same({[0] = "zero", "one", "two"}, z)
    end)

    it("keeps references and cycles (" .. name .. ")", function()
      local r = load("refs")
      assert.is_true(rawequal(r.a, r.b))
      assert.are.equal(1, r.a.x)
      local c = load("cycle_table")
      local k, v = next(c)
      assert.is_true(rawequal(k, c) and rawequal(v, c))
      assert.is_nil(next(c, k))
      local o = load("cycle_object")
      assert.are.equal("Blah", T7.typename(o))
      assert.are.equal(1, T7.version(o))
      assert.is_true(rawequal(o.self, o))
      assert.are.equal(3, o.n)
    end)

    it("gives tensors their dtypes, sizes, strides and offsets, views sharing a storage (" .. name .. ")", function()
      local v = load("tensors")
      assert.are.same({{1, 2, 3}, {4, 5, 6}}, v.f:tolist())
      assert.are.equal("float32", v.f:dtype())
      assert.are.same({3, 2}, v.t:size()); assert.are.same({1, 3}, v.t:stride())
      assert.are.same({{1, 4}, {2, 5}, {3, 6}}, v.t:tolist())
      assert.are.same({4, 5, 6}, v.n:tolist()); assert.are.equal(3, v.n:storage_offset())
      -- the storage itself: a 1-D tensor of all its elements, the same memory
      assert.are.equal("torch.FloatStorage", T7.typename(v.st))
      assert.are.same({1, 2, 3, 4, 5, 6}, v.st:tolist())
      v.f[2][1] = 40
      assert.are.equal(40, v.t[1][2]:item())
      assert.are.equal(40, v.n[1]:item())
      assert.are.equal(40, v.st[4]:item())
      assert.are.same({1.5, -2.5}, v.d:tolist()); assert.are.equal("float64", v.d:dtype())
      assert.are.same({0, 1, 254, 255}, v.b:tolist()); assert.are.equal("uint8", v.b:dtype())
      assert.are.same({-128, 127}, v.c:tolist()); assert.are.equal("int8", v.c:dtype())
      assert.are.same({-2, 3}, v.s:tolist()); assert.are.equal("int16", v.s:dtype())
      assert.are.same({7, -8}, v.i:tolist()); assert.are.equal("int32", v.i:dtype())
      assert.are.same({1 << 40, -5}, v.l:tolist()); assert.are.equal("int64", v.l:dtype())
      assert.are.same({1.0, -2.0, 0.5}, v.h:to("float32"):tolist()); assert.are.equal("float16", v.h:dtype())
      assert.are.same({0}, v.e:size()); assert.are.equal("float32", v.e:dtype())
      assert.are.same({3, 4}, v.cuda:tolist()); assert.are.equal("float32", v.cuda:dtype())
      assert.are.equal("torch.CudaTensor", T7.typename(v.cuda))
      assert.are.equal("torch.FloatTensor", T7.typename(v.f))
      assert.are.same({2, 0}, v.z:size())
      assert.are.same({{9, 8}, {9, 8}}, v.x:tolist()); assert.are.same({0, 1}, v.x:stride())
    end)

    it("reads ascii files (" .. name .. ")", function()
      local a = load("ascii")
      assert.are.same({{1, 2}, {3, 4.5}}, a.f:tolist())
      assert.are.equal("hi there", a.s)
      assert.are.equal(3.25, a.n)
      assert.is_true(a.b)
      assert.are.same({10, 20}, a.l)
      assert.are.same({65, 66, 67}, a.c:tolist()); assert.are.equal("uint8", a.c:dtype())
    end)

    it("loads tds.Hash and tds.Vec as tables and lists (" .. name .. ")", function()
      local v = load("tds")
      assert.are.equal("tds.Hash", T7.typename(v.h))
      assert.are.equal(2, v.h[1]); assert.are.equal(11, v.h[10]); assert.are.equal("v", v.h.k)
      assert.are.equal("tds.Vec", T7.typename(v.v))
      assert.are.equal(0, T7.version(v.v))
      assert.are.same({123, 456}, {v.v[1], v.v[2]})
      assert.are.equal(2, #v.v)
    end)

    it("keeps functions inert: bytecode and upvalues, never loaded (" .. name .. ")", function()
      local v = load("function")
      assert.is_true(T7.is_function(v.f))
      assert.are.equal("function", T7.typename(v.f))
      assert.are.equal("\27LuaR\0\1\4\8\4\8\0fake-bytecode", v.f.bytecode)
      assert.are.equal(8, v.f.tag)
      assert.are.same({name = "x", id = 1, value = 5}, v.f.upvalues[1])
      assert.is_true(rawequal(v.f, v.f2))
      assert.are.equal(6, v.g.tag)
      assert.are.equal("\27LJ\1fake", v.g.bytecode)
      assert.are.same({7}, v.g.upvalues)
      assert.are.equal("function (bytecode, not run)", tostring(v.f))
    end)

    it("reads a class written before versions (" .. name .. ")", function()
      local v = load("noversion")
      assert.are.equal("nn.Identity", T7.typename(v))
      assert.are.equal(0, T7.version(v))
      assert.is_true(v.train)
    end)
  end

  it("reads 4-byte longs, detected or forced, and refuses the wrong forced size", function()
    for _, opts in ipairs({{}, {long_size = 4}, {long_size = 4, mmap = true}}) do
      local v = torch.load(F("long4"), opts)
      assert.are.same({{1, 2, 3}, {4, 5, 6}}, v.f:tolist())
      assert.are.same({5, -6}, v.l:tolist())
      assert.are.equal("int64", v.l:dtype())
    end
    local e = H.err(torch.load, F("long4"), {long_size = 8})
    assert.is_truthy(e:find("^" .. F("long4"):gsub("%p", "%%%0") .. ": f"), e)
    assert.are.equal("bad option 'long_size' (4 or 8 expected, got 2)", H.err(torch.load, F("long4"), {long_size = 2}):gsub("^.-: ", ""))
  end)

  it("maps storages with mmap: views of the file, no copy", function()
    local v = torch.load(F("tensors"), {mmap = true})
    local _, _, mapped, pending = v.f:_storage_info()
    assert.is_true(mapped or pending)
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, v.f:tolist())
  end)

  it("refuses unknown options", function()
    local e = H.err(torch.load, F("list"), {keys = {"a"}})
    assert.is_truthy(e:find("bad option 'keys'", 1, true), e)
  end)
end)

describe("Torch7 damaged files", function()
  local CASES = {
    {"bad_truncated", "x.storage: truncated: storage size needs 8 bytes, the file has 6 left (byte 1686)"},
    {"bad_tag", "a: unknown object type 9 (byte 21)"},
    {"bad_ref", "a: reference to object 7, which the file does not define before it (1 so far) (byte 29)"},
    {"bad_negsize", "w: torch.FloatTensor of negative size -3 in dim 1 (byte 85)"},
    {"bad_view", "w: storage of 10 elements, view needs 12 (byte 186)"},
    {"bad_offset", "w: torch.FloatTensor storage offset 0 (1-based: at least 1) (byte 85)"},
    {"bad_deep", "objects nested deeper than 1000 (byte 21008)"},
    {"bad_class", 'root: bad class name "nn.\\1Bad" (byte 4 is not a printable character) (byte 26)'},
    {"bad_strlen", "a: truncated: string needs 1000000 bytes, the file has 4 left (byte 29)"},
    {"bad_storage_size", "s: torch.FloatStorage of 1099511627776 elements needs 4398046511104 bytes, " ..
      "the file has 8 left (byte 66)"},
    {"bad_ndim", "w: torch.FloatTensor of 40 dims (at most 16) (byte 61)"},
    {"bad_nilkey", "root: table key 1 is nil (byte 16)"},
    {"bad_storage_class", "w: torch.FloatTensor storage expected, got a table (byte 145)"},
    {"bad_bool", "b: boolean of value 7 (0 or 1 expected) (byte 29)"},
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " is refused with its place and what is wrong", function()
      for _, opts in ipairs({{}, {mmap = true}}) do
        local e = H.err(torch.load, F(c[1]), opts)
        local prefix = F(c[1]) .. ": "
        assert.are.equal(prefix, e:sub(1, #prefix))
        if c[1] == "bad_deep" then
          assert.is_truthy(e:find("^x%.x%.x", #prefix + 1), e)
          assert.are.equal(c[2], e:sub(-#c[2]))
        else
          assert.are.equal(c[2], e:sub(#prefix + 1))
        end
      end
    end)
  end

  it("refuses every cut of a file and never crashes on flipped bytes", function()
    local whole = H.read(F("tensors"))
    for n = 0, #whole - 1, 7 do
      local p = dir .. "/cut.t7"
      H.write(p, whole:sub(1, n))
      assert.is_false(pcall(torch.load, p))
    end
    math.randomseed(7)
    for _ = 1, 300 do
      local i = math.random(1, #whole)
      local p = dir .. "/flip.t7"
      H.write(p, whole:sub(1, i - 1) .. string.char(math.random(0, 255)) .. whole:sub(i + 1))
      local ok, e = pcall(torch.load, p)
      assert.is_true(ok or type(e) == "string" and e:sub(1, #p) == p, tostring(e))
    end
  end)
end)

describe("Torch7 models", function()
  it("turn into a state dict with PyTorch's names and shapes", function()
    local sd = torch.load_state_dict(F("model"))
    local keys = {}
    for k, v in pairs(sd) do keys[#keys + 1] = k .. " " .. table.concat(v:size(), "x") end
    assert.are.same({"0.weight 2x3", "0.bias 2", "2.weight 4x2x3x3", "2.bias 4", "3.weight 4x2x3x3", "3.bias 4",
      "4.weight 4", "4.bias 4", "4.running_mean 4", "4.running_var 4", "4.num_batches_tracked ",
      "5.0.weight 2x2", "5.0.bias 2", "5.1.weight 2x2", "7.weight 3x2", "7.bias 3"}, keys)
    -- SpatialConvolutionMM's flattened weight is the same values as {out, in, kh, kw}
    assert.is_true(torch.equal(sd["2.weight"], sd["3.weight"]))
    local w = sd["2.weight"]:contiguous():view(-1):tolist()
    for k = 1, 72 do assert.is_true(math.abs(w[k] - (k - 1) * 0.01) < 1e-6) end
    assert.are.same({0.1, 0.2, 0.3, 0.4}, (function()
      local t = sd["4.running_mean"]:tolist()
      for i = 1, 4 do t[i] = math.floor(t[i] * 10 + 0.5) / 10 end
      return t
    end)())
    assert.are.equal(0, sd["4.num_batches_tracked"]:item())
    -- the loaded graph is Torch7's, classes by name
    local m = torch.load(F("model"))
    assert.are.equal("nn.Sequential", T7.typename(m))
    assert.are.equal("nn.SpatialConvolutionMM", T7.typename(m.modules[4]))
    assert.are.same({4, 18}, m.modules[4].weight:size())
  end)

  it("keep nngraph's references: a gModule's nodes point at its modules", function()
    local g = torch.load(F("gmodule"))
    assert.are.equal("nn.gModule", T7.typename(g))
    assert.are.equal("nngraph.Node", T7.typename(g.innode))
    assert.is_true(rawequal(g.innode.data.module, g.modules[1]))
    assert.is_true(rawequal(g.innode.children[1], g.outnode))
    assert.is_true(rawequal(g.outnode.parent, g.innode))
    local sd = torch.load_state_dict(F("gmodule"))
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    assert.are.same({"0.weight", "0.bias", "1.weight", "1.bias"}, keys)
    assert.are.same({{1, 1}}, sd["1.weight"]:tolist())
  end)

  it("convert to .pt and .safetensors that PyTorch loads strictly into the same nn.Sequential", function()
    local pt, st = dir .. "/model.pt", dir .. "/model.safetensors"
    local cli = "lua5.4 bin/ltorch"
    for _, out in ipairs({pt, st}) do
      local p = io.popen(cli .. " convert " .. F("model") .. " " .. out .. " 2>&1")
      local msg = p:read("a")
      assert.is_true(p:close(), msg)
      assert.is_truthy(msg:find("a Torch7 nn model (nn.Sequential); writing its state dict", 1, true), msg)
    end
    local out = H.py(string.format([==[
import torch, torch.nn as nn
m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(2, 4, 3, padding=1),
                  nn.BatchNorm2d(4), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, bias=False)),
                  nn.Flatten(), nn.Linear(2, 3))
sd = torch.load(%q, weights_only=True)
print(m.load_state_dict(sd, strict=True))
print(m[0].weight.tolist() == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]] or (m[0].weight - torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])).abs().max().item() < 1e-7)
print(torch.equal(m[2].weight, m[3].weight), m[4].running_var.tolist(), m[5][1].bias is None)
]==], pt))
    assert.are.equal("<All keys matched successfully>\nTrue\nTrue [1.0, 2.0, 3.0, 4.0] True\n", out)
    local check = H.py("spec/fixtures/fmt/st_ref.py", "check", st)
    local names = {}
    for line in (check .. "\n"):gmatch("([^\n]*)\n") do
      local name = line:match("^(%S+) ")
      if name and name ~= "meta" then names[#names + 1] = name end
    end
    table.sort(names)
    assert.are.same({"0.bias", "0.weight", "2.bias", "2.weight", "3.bias", "3.weight", "4.bias",
      "4.num_batches_tracked", "4.running_mean", "4.running_var", "4.weight", "5.0.bias", "5.0.weight",
      "5.1.weight", "7.bias", "7.weight"}, names)
    -- and back: the converted file holds what load_state_dict gave
    local a, b = torch.load_state_dict(F("model")), torch.load(st)
    for k, v in pairs(a) do assert.is_true(torch.equal(v, b[k]), k) end
  end)
end)

describe("Torch7 save", function()
  it("writes the layout's bytes: a 2x2 FloatTensor", function()
    local p = dir .. "/ex.t7"
    torch.save(torch.tensor({{1, 2}, {3, 4}}, {dtype = "float32"}), p)
    local function i4(x) return string.pack("<i4", x) end
    local function i8(x) return string.pack("<i8", x) end
    local want = i4(4) .. i4(1) .. i4(3) .. "V 1" .. i4(17) .. "torch.FloatTensor" .. i4(2) ..
      i8(2) .. i8(2) .. i8(2) .. i8(1) .. i8(1) ..
      i4(4) .. i4(2) .. i4(3) .. "V 1" .. i4(18) .. "torch.FloatStorage" .. i8(4) ..
      string.pack("<ffff", 1, 2, 3, 4)
    assert.are.equal(want, H.read(p))
  end)

  it("writes tables, views and cycles that the reference reader and ltorch read back", function()
    local x = torch.arange(12):to("float32"):view(3, 4)
    local v = {a = x, b = x:t(), c = x:narrow(1, 2, 2), n = 3, f = 2.5, s = "hi", ok = true,
      list = {1, 2, {deep = "x"}}, l = torch.tensor({1, -2}), h = torch.tensor({1.5}, {dtype = "float16"})}
    v.self = v
    local p = dir .. "/w.t7"
    torch.save(v, p)
    local json = require("ltorch.json").decode(H.py(REF, "read", p))
    assert.are.equal(1, json.table)
    local by = {}
    for _, kv in ipairs(json.pairs) do by[kv[1].str] = kv[2] end
    assert.are.equal("torch.FloatTensor", by.a.class)
    assert.are.same({3, 4}, by.a.size); assert.are.same({4, 1}, by.a.stride); assert.are.equal(1, by.a.offset)
    assert.are.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, by.a.storage.data)
    local sidx = by.a.storage.index
    assert.are.same({4, 3}, by.b.size); assert.are.same({1, 4}, by.b.stride)
    assert.are.same({ref = sidx}, by.b.storage)
    assert.are.same({2, 4}, by.c.size); assert.are.equal(5, by.c.offset)
    assert.are.same({ref = sidx}, by.c.storage)
    assert.are.same({ref = 1}, by.self)
    assert.are.equal("torch.LongTensor", by.l.class); assert.are.same({1, -2}, by.l.storage.data)
    assert.are.equal("torch.HalfTensor", by.h.class); assert.are.same({1.5}, by.h.storage.data)
    assert.are.same({num = 3}, by.n); assert.are.same({str = "hi"}, by.s); assert.is_true(by.ok)
    local r = torch.load(p)
    assert.is_true(rawequal(r.self, r))
    assert.is_true(torch.equal(r.b, x:t()) and torch.equal(r.c, x:narrow(1, 2, 2)))
    r.a[1][1] = 99
    assert.are.equal(99, r.b[1][1]:item())
    assert.are.equal("x", r.list[3].deep)
  end)

  it("writes loaded Torch7 objects back as they were", function()
    local m = torch.load(F("model"))
    local p = dir .. "/m2.t7"
    torch.save(m, p)
    local a, b = torch.load_state_dict(F("model")), torch.load_state_dict(p)
    for k, v in pairs(a) do assert.is_true(torch.equal(v, b[k]), k) end
    local g = torch.load(F("tds"))
    torch.save(g, p)
    local g2 = torch.load(p)
    assert.are.equal("tds.Hash", T7.typename(g2.h)); assert.are.equal("v", g2.h.k)
    assert.are.equal("tds.Vec", T7.typename(g2.v)); assert.are.equal(456, g2.v[2])
  end)

  it("gives the same bytes for the same value", function()
    local v = {b = torch.ones(3), a = {z = 1, y = 2, [3] = "c"}}
    torch.save(v, dir .. "/d1.t7")
    torch.save(v, dir .. "/d2.t7")
    assert.are.equal(H.read(dir .. "/d1.t7"), H.read(dir .. "/d2.t7"))
  end)

  it("refuses modules, functions and what Torch7 has no type for, leaving no file", function()
    local p = dir .. "/bad.t7"
    local cases = {
      {torch.nn.Linear(2, 3), p .. ": a Torch7 file cannot hold ltorch modules: save model:state_dict(), or use .pt"},
      {{f = print}, p .. ": f: a function cannot be saved to a Torch7 file"},
      {{b = torch.tensor({true})}, p .. ": b: a bool tensor has no Torch7 type (Byte, Char, Short, Int, Long, " ..
        "Float, Double or Half)"},
      {{fn = torch.load(F("function")).f}, p .. ": fn: a function cannot be saved (a loaded Torch7 function stays inert)"},
    }
    for _, c in ipairs(cases) do
      local e = H.err(torch.save, c[1], p)
      assert.are.equal(c[2], e:gsub("^[^:]*:%d+: ", ""))
      assert.is_nil(io.open(p, "rb"))
    end
    local deep = {}
    local cur = deep
    for _ = 1, 1001 do cur.x = {} cur = cur.x end
    assert.is_truthy(H.err(torch.save, deep, p):find("nested deeper than 1000", 1, true))
  end)
end)

describe("ltorch inspect and diff on .t7", function()
  local run = H.ltorch

  it("inspect shows the state dict and the object tree", function()
    local out, code = run("inspect " .. F("model"))
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("Torch7", 1, true))
    assert.is_truthy(out:find("a Torch7 nn model (nn.Sequential); its state dict, by PyTorch's names:", 1, true))
    assert.is_truthy(out:find("weight%s+float32 %[4, 2, 3, 3%]"))
    assert.is_truthy(out:find("[4]: nn.SpatialConvolutionMM (14 fields)", 1, true), out)
    assert.is_truthy(out:find("weight: torch.FloatTensor float32 {4, 18}", 1, true), out)
    local f = run("inspect " .. F("function"))
    assert.is_truthy(f:find("f: function (bytecode, not run)", 1, true), f)
    assert.is_truthy(f:find("f2: (the same as root.f)", 1, true), f)
    local c = run("inspect " .. F("cycle_object"))
    assert.is_truthy(c:find("root: Blah (2 fields)", 1, true), c)
    assert.is_truthy(c:find("self: (the same as root)", 1, true), c)
  end)

  it("diff compares a model with its conversion", function()
    local pt = dir .. "/diff.pt"
    torch.save(torch.load_state_dict(F("model")), pt)
    local out, code = run("diff " .. F("model") .. " " .. pt)
    assert.are.equal(0, code, out)
    local _, code2 = run("diff " .. F("model") .. " " .. F("gmodule"))
    assert.are.equal(1, code2)
  end)

  it("convert writes .t7 from another format, and torch.t7 names what it holds", function()
    local pt, t7 = dir .. "/cv.pt", dir .. "/cv.t7"
    torch.save({a = torch.ones(2, 3), b = {c = torch.arange(4)}}, pt)
    local out, code = run("convert " .. pt .. " " .. t7)
    assert.are.equal(0, code, out)
    out, code = run("diff " .. pt .. " " .. t7)
    assert.are.equal(0, code, out)
    local v = torch.load(t7)
    assert.are.equal("torch.FloatTensor", torch.t7.typename(v.a))
    assert.are.equal("torch.LongTensor", torch.t7.typename(v.b.c))
  end)
end)
