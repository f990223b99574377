-- modsave_spec.lua: whole modules in files (structure + state dict):
-- pack/unpack, model.pt and model.safetensors, fresh-process round trips,
-- trust_code, captured upvalues, tables holding modules, and the PyTorch side.
local torch = require("ltorch")
local H = require("nn_helpers")
local odict = require("ltorch.odict")
local modsave = require("ltorch.modsave")
local nn = torch.nn

-- the class of the R docs' walkthrough, defined in this file so that its
-- source text can be stored
local MyModule = nn.module("spec_my_module", {
  initialize = function(self)
    self.fc1 = nn.Linear(10, 10)
    self.fc2 = nn.Linear(10, 1)
    self.gain = 1.5
    self.config = {depth = 2, name = "two layers", sizes = {10, 10, 1}}
  end,
  forward = function(self, x)
    x = torch.relu(self.fc1(x))
    return self.fc2(x) * self.gain
  end,
})

local CLASS_SOURCE = [[
local torch = require("ltorch")
local nn = torch.nn
local MyModule = nn.module("spec_my_module", {
  initialize = function(self)
    self.fc1 = nn.Linear(10, 10)
    self.fc2 = nn.Linear(10, 1)
    self.gain = 1.5
    self.config = {depth = 2, name = "two layers", sizes = {10, 10, 1}}
  end,
  forward = function(self, x)
    x = torch.relu(self.fc1(x))
    return self.fc2(x) * self.gain
  end,
})
]]

-- what a flat format (safetensors) is handed by modsave.pack: the tensors
-- and the extra records; unpack gets them back as the format's load does
local FLAT = {name = "flat"}
local function pack(obj, opts)
  local value, extras = modsave.pack(obj, FLAT, opts or {})
  return {tensors = value, extra = extras}
end
local function unpack(p, opts, path) return modsave.unpack(p.tensors, p.extra, opts, path) end

local function forget(name) nn.classes[name] = nil end

describe("modsave.pack", function()
  it("stores the state dict under PyTorch's keys and a versioned structure", function()
    torch.manual_seed(1)
    local m = MyModule()
    local p = pack(m, {})
    assert.are.same({"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}, odict.keys(p.tensors))
    assert.are.equal(m.fc1.weight, p.tensors["fc1.weight"])
    local s = modsave.json_decode(p.extra.module)
    assert.are.equal(2, s.ltorch_module_format)
    assert.are.equal("spec_my_module", s.root.module)
    assert.are.equal("spec_my_module", s.classes[1].name)
    assert.are.equal("forward", s.classes[1].methods[2].name)
    assert.are.equal("function(self, x)\n    x = torch.relu(self.fc1(x))\n    return self.fc2(x) * self.gain\n  end",
      s.classes[1].methods[2].source)
    assert.is_true(s.classes[2].builtin)
  end)

  it("prefixes the keys of modules held in a table", function()
    local p = pack({model = MyModule(), epoch = 3, best = torch.zeros(2)}, {})
    assert.are.same({"best", "model.fc1.weight", "model.fc1.bias", "model.fc2.weight", "model.fc2.bias"},
      odict.keys(p.tensors))
  end)

  it("leaves out scratch tensors and functions, keeps plain fields", function()
    local m = MyModule()
    m.scratch = torch.zeros(100)
    m.fn = print
    local s = modsave.json_decode(pack(m, {}).extra.module)
    assert.are.same({"fn", "scratch"}, {s.root.skipped[1], s.root.skipped[2]})
    assert.are.equal(2, #s.root.fields)
  end)

  it("rejects values that are not plain data in a saved table", function()
    assert.has_error(function() pack({model = MyModule(), f = print}, {}) end,
      "cannot save the value.f: a function is not plain data")
  end)
end)

describe("captured upvalues", function()
  local factor = 3
  local Captures = nn.module("spec_captures", {
    forward = function(_, x) return x * factor end,
  })

  it("are reported when saving (a warning by default)", function()
    local ok, err = pcall(pack, Captures(), {upvalues = "error"})
    assert.is_false(ok)
    assert.are.equal("class 'spec_captures' method 'forward' captures the local 'factor' (a number): " ..
      "it is not saved, so the class cannot be rebuilt from its stored source", err)
    local s = modsave.json_decode(pack(Captures(), {upvalues = "ignore"}).extra.module)
    assert.are.same({"forward", "factor", "number"}, {table.unpack(s.classes[1].captures[1])})
  end)

  it("make the rebuilt class fail clearly when used", function()
    local p = pack(Captures(), {upvalues = "ignore"})
    forget("spec_captures")
    local m = unpack(p, {trust_code = true}, "c.pt")
    assert.has_error(function() m(torch.ones(1)) end,
      "class 'spec_captures' method 'forward' used the local 'factor', which was captured when " ..
      "the class was saved and is not stored in the file")
    nn.classes.spec_captures = Captures
  end)

  it("of torch, nn, ltorch modules and classes are bound again", function()
    local od = require("ltorch.odict")
    local Inner = nn.module("spec_inner", {forward = function(_, x) return x end})
    local Outer = nn.module("spec_outer_b", {
      initialize = function(self) self.inner = Inner() end,
      forward = function(self, x) return self.inner(x) + (od.is(x) and 1 or 0) end,
      make = function() return Inner() end,
    })
    local p = pack(Outer(), {upvalues = "error"})
    local s = modsave.json_decode(p.extra.module)
    local names = {}
    for _, c in ipairs(s.classes) do names[#names + 1] = c.name end
    table.sort(names)
    assert.are.same({"spec_inner", "spec_outer_b"}, names)
    forget("spec_inner")
    forget("spec_outer_b")
    local m = unpack(p, {trust_code = true}, "o.pt")
    assert.are.equal("spec_inner", m:make():class_name())
    assert.are.equal(1.0, m(torch.ones(1)):item())   -- `od` was bound again
  end)
end)

describe("modsave.unpack", function()
  it("rebuilds the module without calling initialize, with identical results", function()
    torch.manual_seed(2)
    local m = MyModule()
    m.gain = 2.5
    m:eval()
    local x = torch.randn(4, 10)
    local m2 = unpack(pack(m, {}), {}, "m.pt")
    assert.are.equal(2.5, m2.gain)
    assert.are.equal("float", math.type(m2.gain))
    assert.are.same({depth = 2, name = "two layers", sizes = {10, 10, 1}}, m2.config)
    assert.is_false(m2.training)
    assert.is_true(torch.equal(m(x), m2(x)))
    assert.is_true(m2.fc1.weight:requires_grad())
  end)

  it("round-trips tables holding modules, tensors and plain values", function()
    local m = MyModule()
    local obj = {model = m, epoch = 3, lr = 0.5, tags = {"a", "b"}, best = torch.ones(2), null = torch.null}
    local r = unpack(pack(obj, {}), {}, "t.pt")
    assert.are.equal(3, r.epoch)
    assert.are.equal(0.5, r.lr)
    assert.are.same({"a", "b"}, r.tags)
    assert.are.equal(torch.null, r.null)
    assert.is_true(torch.equal(r.best, torch.ones(2)))
    assert.is_true(torch.equal(r.model.fc2.bias, m.fc2.bias))
  end)

  it("keeps a module used twice shared", function()
    local lin = nn.Linear(2, 2)
    local s = nn.Sequential(lin, nn.ReLU(), lin)
    local p = pack(s, {})
    -- a flat format stores the shared tensors once and records the other keys
    assert.are.same({"0.weight", "0.bias"}, odict.keys(p.tensors))
    local st = modsave.json_decode(p.extra.module)
    assert.are.same({{"2.weight", "0.weight"}, {"2.bias", "0.bias"}},
      {{table.unpack(st.aliases[1])}, {table.unpack(st.aliases[2])}})
    -- a nested format (.pt) gets the state dict, listing them under both names
    local sd = modsave.pack(s, {nested = true}, {})
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"}, odict.keys(sd))
    assert.are.equal(sd["0.weight"], sd["2.weight"])
    local r = unpack(p, {}, "s.pt")
    assert.are.equal(r[1], r[3])
  end)

  it("calls on_load after restoring, to rebuild what was not saved", function()
    local WithCache = nn.module("spec_with_cache", {
      initialize = function(self) self.fc = nn.Linear(2, 2) self.cache = torch.zeros(3) end,
      on_load = function(self) self.cache = torch.zeros(3) end,
      forward = function(self, x) return self.fc(x) end,
    })
    local r = unpack(pack(WithCache(), {}), {}, "w.pt")
    assert.is_true(torch.is_tensor(r.cache))
  end)

  it("names a class that is not defined, and the trust_code option", function()
    local p = pack(MyModule(), {})
    forget("spec_my_module")
    local ok, err = pcall(unpack, p, {}, "model.pt")
    nn.classes.spec_my_module = MyModule
    assert.is_false(ok)
    assert.are.equal("model.pt: class 'spec_my_module' is not defined in this program; define it " ..
      "with nn.module before loading, or pass {trust_code = true} to build it from the source " ..
      "stored in the file", err)
  end)

  it("builds a class from its stored source under trust_code", function()
    torch.manual_seed(3)
    local m = MyModule()
    local x = torch.randn(2, 10)
    local p = pack(m, {})
    forget("spec_my_module")
    local r = unpack(p, {trust_code = true}, "model.pt")
    assert.are_not.equal(MyModule, nn.classes.spec_my_module)
    nn.classes.spec_my_module = MyModule
    assert.is_true(torch.equal(m(x), r(x)))
  end)

  it("never loads bytecode", function()
    local p = pack(MyModule(), {})
    local s = modsave.json_decode(p.extra.module)
    local bc = string.dump(function() return 1 end)
    s.classes[1].methods[1].source = bc
    p.extra.module = modsave.json_encode(s)
    forget("spec_my_module")
    local ok, err = pcall(unpack, p, {trust_code = true}, "bad.pt")
    nn.classes.spec_my_module = MyModule
    assert.is_false(ok)
    assert.matches("stored source does not compile", err, 1, true)
  end)

  it("rejects a newer structure format and damaged structures", function()
    local p = pack(MyModule(), {})
    local f = {tensors = p.tensors}
    f.extra = {module = p.extra.module:gsub('"ltorch_module_format":2', '"ltorch_module_format":7')}
    assert.has_error(function() unpack(f, {}, "new.pt") end,
      "new.pt: module structure format 7 is not supported by this ltorch (it reads format 1 to 2)")
    f.extra = {module = "{"}
    assert.has_error(function() unpack(f, {}, "bad.pt") end,
      "bad.pt: module structure: json: invalid JSON at byte 0")
    local st = modsave.json_decode(p.extra.module)
    st.root.children[1][2].parameters = {a = 1}
    f.extra = {module = modsave.json_encode(st)}
    assert.has_error(function() unpack(f, {}, "odd.pt") end,
      "odd.pt: module structure: root.fc1: 'parameters' must be a list")
    f.extra = {module = p.extra.module}
    f.tensors = {}
    assert.has_error(function() unpack(f, {}, "short.pt") end,
      "short.pt: module structure names the state key 'fc1.weight' (parameter 'weight' of root.fc1), " ..
      "which the file does not hold")
  end)

  it("gives the PyTorch view (the state dict) without the class, for load_state_dict", function()
    local p = pack(MyModule(), {})
    forget("spec_my_module")
    local sd = modsave.view(p.tensors, p.extra, "m.pt")
    nn.classes.spec_my_module = MyModule
    assert.are.same(odict.keys(p.tensors), odict.keys(sd))
    assert.are.equal(p.tensors["fc1.weight"], sd["fc1.weight"])
  end)
end)

-- files: each format that can hold a module
for _, ext in ipairs({"pt", "safetensors"}) do
  describe("torch.save(model, 'model." .. ext .. "')", function()
    local dir, file, x, y
    setup(function()
      dir = H.tmpdir()
      file = dir .. "/model." .. ext
      torch.manual_seed(4)
      local m = MyModule()
      x = torch.randn(3, 10)
      y = m(x)
      torch.save(m, file)
      torch.save({x = x, y = y}, dir .. "/io.safetensors")
    end)
    teardown(function() H.rmdir(dir) end)

    it("loads back whole in this process", function()
      local m = torch.load(file)
      assert.are.equal("spec_my_module", m:class_name())
      assert.is_true(torch.allclose(m(x), y, 0, 0))
    end)

    it("gives the flat state dict to torch.load_state_dict", function()
      local sd = torch.load_state_dict(file)
      local keys = odict.keys(sd)
      table.sort(keys)   -- safetensors files keep no order
      assert.are.same({"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"}, keys)
      assert.is_true(torch.is_tensor(sd["fc1.weight"]))
    end)

    it("loads back in a fresh process that defines the class", function()
      local ok, out = H.lua(CLASS_SOURCE .. string.format([[
local m = torch.load(%q)
local io_ = torch.load(%q)
assert(torch.allclose(m(io_.x), io_.y, 0, 0), "outputs differ")
print("same outputs")
]], file, dir .. "/io.safetensors"), dir)
      assert.is_true(ok, out)
      assert.are.equal("same outputs\n", out)
    end)

    it("names the class and trust_code in a fresh process that does not define it", function()
      local ok, out = H.lua(string.format([[
local torch = require("ltorch")
local ok, err = pcall(torch.load, %q)
print(err)
local m = torch.load(%q, {trust_code = true})
local io_ = torch.load(%q)
assert(torch.allclose(m(io_.x), io_.y, 0, 0), "outputs differ")
print("rebuilt")
]], file, file, dir .. "/io.safetensors"), dir)
      assert.is_true(ok, out)
      assert.are.equal(file .. ": class 'spec_my_module' is not defined in this program; define it " ..
        "with nn.module before loading, or pass {trust_code = true} to build it from the source " ..
        "stored in the file\nrebuilt\n", out)
    end)

    it("round-trips a table holding modules", function()
      local f2 = dir .. "/ckpt." .. ext
      local m = MyModule()
      torch.save({model = m, epoch = 3, opt = {lr = 0.01}}, f2)
      local r = torch.load(f2)
      assert.are.equal(3, r.epoch)
      assert.are.equal(0.01, r.opt.lr)
      assert.is_true(torch.equal(r.model(x), m(x)))
    end)
  end)
end

describe("the PyTorch side", function()
  local dir, x, y
  setup(function()
    dir = H.tmpdir()
    torch.manual_seed(5)
    local m = MyModule()
    x = torch.randn(3, 10)
    y = m(x)
    torch.save(m, dir .. "/model.pt")
    torch.save(m, dir .. "/model.safetensors")
    torch.save({x = x, y = y}, dir .. "/io.safetensors")
  end)
  teardown(function() H.rmdir(dir) end)

  it("torch.load(weights_only=True) reads model.pt as the state dict of an equivalent model", function()
    local out = H.python(H.PY_LOAD_ST .. string.format([[
import torch
from torch import nn
sd = torch.load(%q, weights_only=True)
print(list(sd.keys()))
class MyModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 10)
        self.fc2 = nn.Linear(10, 1)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) * 1.5
m = MyModule()
m.load_state_dict(sd)
io = load_st(%q)
print((m(io['x']) - io['y']).abs().max().item() < 1e-5)
]], dir .. "/model.pt", dir .. "/io.safetensors"), dir)
    assert.are.equal("['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']\nTrue\n", out)
  end)

  it("model.safetensors is a valid safetensors file of the state dict, structure in __metadata__", function()
    local out = H.python(H.PY_LOAD_ST .. string.format([[
import json, struct
b = open(%q, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop('__metadata__')
print(sorted(h.keys()))
print(json.loads(meta['ltorch.module'])['ltorch_module_format'])
sd = load_st(%q)
print(sd['fc2.weight'].shape)
]], dir .. "/model.safetensors", dir .. "/model.safetensors"), dir)
    assert.are.equal("['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']\n2\ntorch.Size([1, 10])\n", out)
  end)
end)
