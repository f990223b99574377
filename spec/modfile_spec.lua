-- modfile_spec.lua: whole-module files as a user meets them: fresh processes
-- that never touched torch.nn, tables holding modules as PyTorch sees them,
-- tied weights, non-persistent buffers, ltorch convert, one keys/rename
-- selector for every format, checked options, deterministic module files.
local torch = require("ltorch")
local H = require("nn_helpers")
local odict = require("ltorch.odict")
local sh = require("sh_helper")
local nn = torch.nn

local read = require("fmt_helper").read

-- the error message of f(...), raised at level 0 or with a position
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return (tostring(e):gsub("^[^:]*:%d+: ", ""))
end

local Tied = nn.module("spec_tied", {
  initialize = function(self)
    self.emb = nn.Embedding(6, 4)
    self.out = nn.Linear(4, 6, {bias = false})
    self.out.weight = self.emb.weight
    self.mask = nn.buffer(torch.tensor({1, 0, 1, 1}, {dtype = "float32"}), false)
  end,
  forward = function(self, x) return self.out(self.emb(x) * self.mask) end,
})

describe("a module of built-in layers", function()
  local dir
  setup(function()
    dir = H.tmpdir()
    torch.manual_seed(11)
    local m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    local x = torch.randn(5, 3)
    torch.save(m, dir .. "/s.pt")
    torch.save(m, dir .. "/s.safetensors")
    torch.save({x = x, y = m(x)}, dir .. "/io.safetensors")
  end)
  teardown(function() H.rmdir(dir) end)

  for _, ext in ipairs({"pt", "safetensors"}) do
    it("loads from ." .. ext .. " in a fresh process that never touched torch.nn", function()
      local ok, out = H.lua(string.format([[
local m = require("ltorch").load(%q)
local io_ = require("ltorch").load(%q)
print(m:class_name(), m[3]:class_name(), require("ltorch").equal(m(io_.x), io_.y))
]], dir .. "/s." .. ext, dir .. "/io.safetensors"), dir)
      assert.is_true(ok, out)
      assert.are.equal("Sequential\tSequential\ttrue\n", out)
    end)
  end
end)

describe("a table holding modules", function()
  local dir, m
  setup(function()
    dir = H.tmpdir()
    torch.manual_seed(12)
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm2d(3))
    torch.save({model = m, epoch = 7, optimizer = {lr = 0.1, betas = {0.9, 0.999}}}, dir .. "/c.pt")
    torch.save({model = m, epoch = 7, optimizer = {lr = 0.1}}, dir .. "/c.safetensors")
  end)
  teardown(function() H.rmdir(dir) end)

  -- PyTorch 1.13's weights_only unpickler has no float opcode (BINFLOAT), so
  -- it cannot read a float written by anyone, PyTorch included: that case is
  -- checked with a plain torch.load (ltorch's pickle names allowed globals only)
  it("is the nested table with each module's state dict for PyTorch's weights_only load", function()
    torch.save({model = m, epoch = 7, optimizer = {name = "sgd", steps = {1, 2}}}, dir .. "/w.pt")
    local out = H.python(string.format([[
import torch, collections
c = torch.load(%q, weights_only=True)
print(sorted(c.keys()))
print(c['epoch'], c['optimizer'])
print(type(c['model']).__name__, list(c['model'].keys()))
print(c['model']['1.num_batches_tracked'].dtype)
print(torch.equal(c['model']['0.weight'], torch.load(%q)['model']['0.weight']))
c = torch.load(%q)
print(c['epoch'], c['optimizer'], type(c['model']).__name__, len(c['model']))
torch.save({'lr': 0.1}, %q)
try:
    torch.load(%q, weights_only=True)
except Exception as e:
    print('PyTorch cannot read its own floats with weights_only:', 'operand 71' in str(e))
]], dir .. "/w.pt", dir .. "/c.pt", dir .. "/c.pt", dir .. "/f.pt", dir .. "/f.pt"), dir)
    assert.are.equal("['epoch', 'model', 'optimizer']\n" ..
      "7 {'name': 'sgd', 'steps': [1, 2]}\n" ..
      "OrderedDict ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', " ..
      "'1.running_var', '1.num_batches_tracked']\n" ..
      "torch.int64\nTrue\n" ..
      "7 {'betas': [0.9, 0.999], 'lr': 0.1} OrderedDict 7\n" ..
      "PyTorch cannot read its own floats with weights_only: True\n", out)
  end)

  for _, ext in ipairs({"pt", "safetensors"}) do
    it("comes back with its modules from ." .. ext, function()
      local c = torch.load(dir .. "/c." .. ext)
      assert.are.equal(7, c.epoch)
      assert.are.equal(0.1, c.optimizer.lr)
      assert.are.equal("Sequential", c.model:class_name())
      assert.is_true(torch.equal(c.model[1].weight, m[1].weight))
    end)
  end

  it("gives the model's state dict to torch.load_state_dict", function()
    for _, ext in ipairs({"pt", "safetensors"}) do
      local sd = torch.load_state_dict(dir .. "/c." .. ext)
      assert.are.same({"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
        "1.running_var", "1.num_batches_tracked"}, odict.keys(sd))
    end
  end)
end)

describe("tied weights and non-persistent buffers", function()
  local dir, m
  setup(function()
    dir = H.tmpdir()
    torch.manual_seed(13)
    m = Tied()
    torch.save(m, dir .. "/t.pt")
    torch.save(m, dir .. "/t.safetensors")
  end)
  teardown(function() H.rmdir(dir) end)

  for _, ext in ipairs({"pt", "safetensors"}) do
    it("are tied again and keep their buffer after a ." .. ext .. " round trip", function()
      local r = torch.load(dir .. "/t." .. ext)
      assert.is_true(rawequal(r.emb.weight, r.out.weight))
      assert.is_true(torch.equal(r.mask, m.mask))
      local sd = r:state_dict()
      assert.are.same({"emb.weight", "out.weight"}, odict.keys(sd))   -- mask is not persistent
      local x = torch.tensor({1, 3, 5}, {dtype = "int64"})
      assert.is_true(torch.equal(r(x), m(x)))
    end)

    it("give PyTorch's state dict keys to load_state_dict (." .. ext .. ")", function()
      local sd = torch.load_state_dict(dir .. "/t." .. ext)
      assert.are.same({"emb.weight", "out.weight"}, odict.keys(sd))
      assert.is_true(rawequal(sd["emb.weight"], sd["out.weight"]))
    end)
  end

  it("store the tensor once in safetensors and record the alias", function()
    local out = H.python(string.format([[
import json, struct
b = open(%q, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop('__metadata__')
s = json.loads(meta['ltorch.module'])
print(sorted(h.keys()), s['aliases'])
buf = s['root']['buffers'][0]
print(buf[0], buf[1], buf[2], buf[3]['$tensor']['dtype'], buf[3]['$tensor']['shape'])
]], dir .. "/t.safetensors"), dir)
    assert.are.equal("['emb.weight'] [['out.weight', 'emb.weight']]\nmask None False float32 [4]\n", out)
  end)

  it("are one storage for PyTorch in .pt", function()
    local out = H.python(string.format([[
import torch
sd = torch.load(%q, weights_only=True)
print(list(sd.keys()), sd['emb.weight'].data_ptr() == sd['out.weight'].data_ptr())
]], dir .. "/t.pt"), dir)
    assert.are.equal("['emb.weight', 'out.weight'] True\n", out)
  end)
end)

describe("ltorch convert of a whole-module file", function()
  local dir
  local LTORCH = "bin/ltorch"
  setup(function()
    dir = H.tmpdir()
    torch.manual_seed(14)
    torch.save(Tied(), dir .. "/m.pt")
  end)
  teardown(function() H.rmdir(dir) end)

  local function convert(a, b)
    local _, code, err = sh.run(LTORCH .. " convert " .. sh.quote(a) .. " " .. sh.quote(b))
    return code, err
  end

  it("keeps a module a module between .pt and .safetensors, and says so", function()
    local code, err = convert(dir .. "/m.pt", dir .. "/m.safetensors")
    assert.are.equal(0, code, err)
    assert.are.equal("ltorch: note: " .. dir .. "/m.pt: a whole-module file; " .. dir ..
      "/m.safetensors is one too\n", err)
    code, err = convert(dir .. "/m.safetensors", dir .. "/m2.pt")
    assert.are.equal(0, code, err)
    for _, f in ipairs({"/m.safetensors", "/m2.pt"}) do
      local r = torch.load(dir .. f)
      assert.are.equal("spec_tied", r:class_name())
      assert.is_true(rawequal(r.emb.weight, r.out.weight))
      assert.is_true(torch.equal(r.mask, torch.tensor({1, 0, 1, 1}, {dtype = "float32"})))
    end
  end)

  it("writes the state dict to other formats with one line saying the structure was dropped", function()
    local code, err = convert(dir .. "/m.pt", dir .. "/m.npz")
    assert.are.equal(0, code, err)
    assert.are.equal("ltorch: note: " .. dir .. "/m.pt: a whole-module file; " .. dir ..
      "/m.npz holds its state dict, the module structure is dropped (npz stores no modules)\n", err)
    assert.are.same({"emb.weight", "out.weight"}, odict.keys(torch.load(dir .. "/m.npz")))
  end)
end)

describe("keys and rename", function()
  local dir
  local opts = {keys = {"features.0.weight", "classifier.bias"}, rename = {{"^features%.", "f."}}}
  setup(function()
    dir = H.tmpdir()
    local sd = odict.new()
    sd["features.0.weight"] = torch.ones(2, 2)
    sd["features.0.bias"] = torch.zeros(2)
    sd["classifier.bias"] = torch.full({3}, 2.0)
    for _, ext in ipairs({"pt", "safetensors", "dat", "npz"}) do torch.save(sd, dir .. "/sd." .. ext) end
  end)
  teardown(function() H.rmdir(dir) end)

  for _, ext in ipairs({"pt", "safetensors", "dat", "npz"}) do
    it("select on the file's names, then rename (." .. ext .. ")", function()
      local r = torch.load(dir .. "/sd." .. ext, opts)
      local keys = odict.keys(r)
      table.sort(keys)
      assert.are.same({"classifier.bias", "f.0.weight"}, keys)
      assert.is_true(torch.equal(r["f.0.weight"], torch.ones(2, 2)))
      assert.are.same(keys, (function()
        local k = odict.keys(torch.load_state_dict(dir .. "/sd." .. ext, opts))
        table.sort(k)
        return k
      end)())
    end)
  end
end)

describe("options", function()
  local dir
  setup(function()
    dir = H.tmpdir()
    torch.save({w = torch.ones(2)}, dir .. "/x.pt")
    torch.save({w = torch.ones(2)}, dir .. "/x.safetensors")
  end)
  teardown(function() H.rmdir(dir) end)

  it("are checked by load, naming the unknown one and the valid ones", function()
    assert.are.equal("bad option 'mmapp' to 'load' (valid options for pt files: device, keys, " ..
      "map_location, mmap, progress, remote, rename, trust_code, unknown, verify)",
      err_of(torch.load, dir .. "/x.pt", {mmapp = true}))
    assert.are.equal("bad option 'unknown' to 'load' (valid options for safetensors files: device, " ..
      "keys, map_location, mmap, progress, remote, rename, trust_code)",
      err_of(torch.load, dir .. "/x.safetensors", {unknown = "inert"}))
    assert.are.equal("bad option 'strict' to 'load_state_dict' (valid options for pt files: device, " ..
      "keys, map_location, mmap, progress, remote, rename, trust_code, unknown, verify)",
      err_of(torch.load_state_dict, dir .. "/x.pt", {strict = true}))
  end)

  it("are checked by save, per format", function()
    assert.are.equal("bad option 'compres' to 'save' (valid options for pt files: dtype, format, " ..
      "progress, release_mapped, remote, sync, upvalues)",
      err_of(torch.save, torch.ones(1), dir .. "/y.pt", {compres = true}))
    assert.are.equal("bad option 'metadata' to 'save' (valid options for npz files: compress, dtype, " ..
      "format, progress, release_mapped, remote, sync, upvalues)",
      err_of(torch.save, {w = torch.ones(1)}, dir .. "/y.npz", {metadata = {}}))
    torch.save({w = torch.ones(1)}, dir .. "/y.npz", {compress = true})
    assert.is_nil(io.open(dir .. "/y.pt"))
  end)

  it("take map_location as PyTorch's name of device", function()
    assert.is_true(torch.equal(torch.load(dir .. "/x.pt", {map_location = "cpu"}).w, torch.ones(2)))
    assert.is_true(torch.equal(torch.load(dir .. "/x.pt", {device = "cpu"}).w, torch.ones(2)))
    -- without a GPU (cuda_spec.lua has the cases with one)
    if not torch.cuda.is_available() then
      assert.is_truthy(err_of(torch.load, dir .. "/x.pt", {map_location = "cuda:0"})
        :find("^device 'cuda:0': CUDA is not available: "))
    end
    assert.are.equal(err_of(torch.load, dir .. "/x.pt", {map_location = "cuda:0"}),
      err_of(torch.load, dir .. "/x.pt", {device = "cuda:0"}))
    assert.are.equal("bad option 'device' (unknown device 'tpu')",
      err_of(torch.load, dir .. "/x.pt", {device = "tpu"}))
  end)

  it("are checked by safe_open and get_tensor", function()
    assert.are.equal("bad option 'devise' to 'safe_open' (valid options: device, framework, remote)",
      err_of(torch.safe_open, dir .. "/x.safetensors", {devise = "cpu"}))
    local f = torch.safe_open(dir .. "/x.safetensors", {framework = "pt", device = "cpu"})
    assert.are.equal("bad option 'cpy' to 'get_tensor' (valid options: copy)",
      err_of(f.get_tensor, f, "w", {cpy = true}))
    assert.is_true(torch.equal(f:get_tensor("w", {copy = true}), torch.ones(2)))
    f:close()
  end)

  it("are checked by a module's load_state_dict", function()
    local lin = nn.Linear(2, 2)
    assert.are.equal("bad option 'strickt' to 'load_state_dict' (valid options: strict)",
      err_of(lin.load_state_dict, lin, lin:state_dict(), {strickt = false}))
    lin:load_state_dict(lin:state_dict(), {strict = true})
  end)

  it("keys and rename do not apply to torch.load of a whole-module file", function()
    torch.save(nn.Linear(2, 2), dir .. "/lin.pt")
    assert.are.equal(dir .. "/lin.pt: a whole-module file loads whole: 'keys' and 'rename' select " ..
      "from state dicts (use torch.load_state_dict)",
      err_of(torch.load, dir .. "/lin.pt", {keys = {"weight"}}))
    assert.are.same({"weight"}, odict.keys(torch.load_state_dict(dir .. "/lin.pt", {keys = {"weight"}})))
  end)
end)

describe("module files", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  it("record a non-persistent buffer as null, not as an empty object", function()
    torch.save(Tied(), dir .. "/t.safetensors")
    local meta = torch.safe_open(dir .. "/t.safetensors"):metadata()["ltorch.module"]
    assert.is_truthy(meta:find('"buffers":[["mask",null,false,{"$tensor":', 1, true), meta)
  end)

  it("are the same bytes when the same module is saved in two fresh processes", function()
    os.execute("mkdir -p " .. dir .. "/p1 " .. dir .. "/p2")
    for _, ext in ipairs({"pt", "safetensors"}) do
      for i = 1, 2 do
        local ok, out = H.lua(string.format([[
local torch = require("ltorch")
local nn = torch.nn
torch.manual_seed(5)
local m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
m.note = {b = 1, a = 2, c = {z = true, y = false}}
torch.save({model = m, epoch = 3, cfg = {x = 1, y = 2, z = {3, 4}}, name = "run"}, %q)
]], dir .. "/p" .. i .. "/d." .. ext), dir)   -- same name: .pt's folder is the name
        assert.is_true(ok, out)
      end
      assert.is_true(read(dir .. "/p1/d." .. ext) == read(dir .. "/p2/d." .. ext), ext .. " files differ")
    end
  end)
end)
