-- pymodule_spec.lua: the state dicts of pickled PyTorch modules
-- (torch.save(model)), read without running code: ltorch.pymodule against
-- real PyTorch's own model.state_dict(), for torchvision's resnet18, a user
-- module with nested children and every kind of entry, nn.DataParallel, a
-- legacy (non-zip) file and a module cycle; the errors without
-- {unknown = "inert"}; torch.load_state_dict; inspect's use of it.
local torch = require("ltorch")
local H = require("nn_helpers")
local odict = require("ltorch.odict")
local pymodule = require("ltorch.pymodule")
local inspect = require("ltorch.inspect")

-- one Python process writes every file: the pickled model and, beside it,
-- PyTorch's own state dict of it (torch.save(model.state_dict()), an ordered
-- dict for ltorch)
local GEN = [==[
import os, torch, torch.nn as nn, torchvision
os.chdir(os.path.dirname(os.path.abspath(__file__)))

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2, bias=False)                 # a None parameter
        self.register_buffer("pers", torch.arange(3.0))
        self.register_buffer("nonpers", torch.ones(2), persistent=False)
        self.register_buffer("nothing", None)                   # a None buffer
        self.shared = self.head                                 # one module, two names

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.scale = nn.Parameter(torch.tensor([2.0]))
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x):
        return x

def write(name, model, **kw):
    torch.save(model, name + ".pt", **kw)
    torch.save(model.state_dict(), name + "_ref.pt")

torch.manual_seed(0)
write("resnet18", torchvision.models.resnet18())
torch.manual_seed(1)
write("net", Net())
torch.manual_seed(2)
write("dp", nn.DataParallel(Net()))
torch.manual_seed(3)
write("legacy", Net(), _use_new_zipfile_serialization=False)

cyc = nn.Sequential(nn.Linear(2, 2))
cyc[0].back = cyc          # PyTorch's own state_dict() recurses forever on it
torch.save(cyc, "cycle.pt")
print("ok")
]==]

local NET_GLOBALS = "__main__.Net, __main__.Block, torch.nn.modules.container.Sequential, " ..
  "torch.nn.modules.conv.Conv2d, torch.nn.modules.activation.ReLU, " ..
  "torch.nn.modules.batchnorm.BatchNorm2d, torch.nn.modules.linear.Linear, " ..
  "torch.nn.modules.batchnorm.BatchNorm1d"

local GLOBALS = {
  resnet18 = "torchvision.models.resnet.ResNet, torch.nn.modules.conv.Conv2d, " ..
    "torch.nn.modules.batchnorm.BatchNorm2d, torch.nn.modules.activation.ReLU, " ..
    "torch.nn.modules.pooling.MaxPool2d, torch.nn.modules.container.Sequential, " ..
    "torchvision.models.resnet.BasicBlock, torch.nn.modules.pooling.AdaptiveAvgPool2d, " ..
    "torch.nn.modules.linear.Linear",
  net = NET_GLOBALS,
  dp = "torch.nn.parallel.data_parallel.DataParallel, " .. NET_GLOBALS,
  legacy = NET_GLOBALS,
}

local NET_KEYS = {
  "scale", "block.pers",
  "block.seq.0.weight", "block.seq.0.bias",
  "block.seq.2.weight", "block.seq.2.bias", "block.seq.2.running_mean",
  "block.seq.2.running_var", "block.seq.2.num_batches_tracked",
  "block.head.weight", "block.shared.weight",
  "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
}

local assert_same_state_dict = H.assert_same_state_dict

describe("pickled PyTorch modules", function()
  local dir
  local function P(name) return dir .. "/" .. name end
  setup(function()
    dir = H.tmpdir()
    assert.are.equal("ok\n", H.python(GEN, dir))
  end)
  teardown(function() H.rmdir(dir) end)

  for _, name in ipairs({"resnet18", "net", "dp", "legacy"}) do
    describe(name .. ".pt", function()
      it("gives PyTorch's state_dict(): same keys, order and values", function()
        local v = torch.load(P(name .. ".pt"), {unknown = "inert"})
        assert.is_true(pymodule.is_module(v))
        local ref = torch.load(P(name .. "_ref.pt"))
        assert_same_state_dict(ref, pymodule.state_dict(v))
      end)

      it("is refused by torch.load without options, naming the globals", function()
        local ok, err = pcall(torch.load, P(name .. ".pt"))
        assert.is_false(ok)
        assert.are.equal(P(name .. ".pt") .. ": unsupported globals: " .. GLOBALS[name] ..
          " (a whole pickled module; load its state_dict, or pass {unknown = \"inert\"})", err)
      end)

      it("gives the same to torch.load_state_dict(path)", function()
        local ref = torch.load(P(name .. "_ref.pt"))
        assert_same_state_dict(ref, torch.load_state_dict(P(name .. ".pt")))
      end)
    end)
  end

  it("the fixtures cover what they should: PyTorch's keys for the user module", function()
    assert.are.same(NET_KEYS, odict.keys(torch.load(P("net_ref.pt"))))
    local dp = odict.keys(torch.load(P("dp_ref.pt")))
    for i, k in ipairs(NET_KEYS) do assert.are.equal("module." .. k, dp[i]) end
    assert.are.equal(#NET_KEYS, #dp)
    local r = odict.keys(torch.load(P("resnet18_ref.pt")))
    assert.are.equal(122, #r)
    assert.are.same({"conv1.weight", "bn1.weight"}, {r[1], r[2]})
    assert.are.equal("layer1.0.conv1.weight", r[7])
    assert.are.equal("fc.bias", r[#r])
  end)

  it("reads the inert tables ltorch's pickle reader makes", function()
    local v = torch.load(P("net.pt"), {unknown = "inert"})
    assert.are.equal("__main__.Net", v.__global)
    local block = v.state._modules.block
    assert.are.equal("__main__.Block", block.__global)
    -- a Python set is a table of its members -> true
    assert.are.same({nonpers = true}, block.state._non_persistent_buffers_set)
    assert.are.equal(torch.null, block.state._buffers.nothing)
    assert.are.equal(torch.null, block.state._modules.head.state._parameters.bias)
    -- one module under two names is one table (the pickle memo)
    assert.are.equal(block.state._modules.head, block.state._modules.shared)
    local sd = pymodule.state_dict(v)
    assert.are.equal(sd["block.head.weight"], sd["block.shared.weight"])
    assert.is_nil(sd["block.nonpers"])
    assert.is_nil(sd["block.nothing"])
    assert.is_nil(sd["block.head.bias"])
  end)

  it("names a module cycle instead of recursing", function()
    local v = torch.load(P("cycle.pt"), {unknown = "inert"})
    assert.is_true(pymodule.is_module(v))
    local ok, err = pcall(pymodule.state_dict, v)
    assert.is_false(ok)
    assert.are.equal("pickled module: '0.back' is the root module again " ..
      "(torch.nn.modules.container.Sequential): a cycle, which PyTorch's state_dict() " ..
      "cannot walk either", err)
    -- inspect lists what it can and stops at the cycle
    local keys = {}
    for _, e in ipairs(inspect.flatten(v).entries) do keys[#keys + 1] = e.key end
    assert.are.same({"0.weight", "0.bias"}, keys)
  end)

  it("backs inspect: its keys are the state dict's, its globals each noted once", function()
    for _, name in ipairs({"net", "dp", "resnet18"}) do
      local v = torch.load(P(name .. ".pt"), {unknown = "inert", mmap = true})
      local flat = inspect.flatten(v)
      local keys = {}
      for _, e in ipairs(flat.entries) do keys[#keys + 1] = e.key end
      assert.are.same(odict.keys(torch.load(P(name .. "_ref.pt"))), keys)
      assert.are.equal(GLOBALS[name], table.concat(flat.global_order, ", "))
    end
    -- one object of each class in net.pt; head and shared are one Linear
    local g = inspect.flatten(torch.load(P("net.pt"), {unknown = "inert"})).globals
    for name in NET_GLOBALS:gmatch("[^, ]+") do assert.are.equal(1, g[name], name) end
  end)
end)

-- inert tables built by hand, as the reader would give them
local function module(name, params, buffers, children, nonpersistent)
  local st = odict.new()
  st.training = true
  st._parameters = odict.new()
  for _, kv in ipairs(params or {}) do st._parameters[kv[1]] = kv[2] end
  st._buffers = odict.new()
  for _, kv in ipairs(buffers or {}) do st._buffers[kv[1]] = kv[2] end
  st._non_persistent_buffers_set = nonpersistent
  st._modules = odict.new()
  for _, kv in ipairs(children or {}) do st._modules[kv[1]] = kv[2] end
  return {__global = name, args = {}, state = st}
end

describe("ltorch.pymodule", function()
  it("is_module: only inert tables of pickled modules", function()
    assert.is_true(pymodule.is_module(module("torch.nn.modules.linear.Linear")))
    assert.is_false(pymodule.is_module(nil))
    assert.is_false(pymodule.is_module(torch.zeros(2)))
    assert.is_false(pymodule.is_module({_parameters = {}, _modules = {}}))
    assert.is_false(pymodule.is_module({__global = "argparse.Namespace", args = {}, state = {lr = 1}}))
    assert.is_false(pymodule.is_module({__global = "x.Y", args = {}}))
    assert.is_false(pymodule.is_module(torch.nn.Linear(2, 2)))
    assert.is_nil(pymodule.state_dict({a = torch.zeros(1)}))
    assert.is_nil(pymodule.state_dict(torch.zeros(1)))
  end)

  it("orders parameters, persistent buffers, then children; skips None", function()
    local a, b, c, d, e = torch.zeros(1), torch.ones(1), torch.zeros(2), torch.ones(2), torch.zeros(3)
    local child = module("m.C", {{"w", c}}, {{"gone", torch.null}})
    local root = module("m.R", {{"p", a}, {"none", torch.null}},
      {{"buf", b}, {"np", d}}, {{"c", child}, {"empty", torch.null}, {"d", module("m.D", {{"x", e}})}},
      {np = true})
    local sd = pymodule.state_dict(root)
    assert.are.same({"p", "buf", "c.w", "d.x"}, odict.keys(sd))
    assert.are.equal(a, sd.p)
    assert.are.equal(e, sd["d.x"])
    -- files from before PyTorch 1.6 have no _non_persistent_buffers_set
    local old = module("m.Old", nil, {{"b", b}})
    assert.are.same({"b"}, odict.keys(pymodule.state_dict(old)))
  end)

  it("lists a module reachable under two names under both", function()
    local lin = module("m.L", {{"weight", torch.ones(2)}})
    local sd = pymodule.state_dict(module("m.R", nil, nil, {{"a", lin}, {"b", lin}}))
    assert.are.same({"a.weight", "b.weight"}, odict.keys(sd))
  end)

  it("refuses a child that is not a module, naming it", function()
    local root = module("m.R", nil, nil, {{"f", {__global = "m.Func", args = {}}}})
    local ok, err = pcall(pymodule.state_dict, root)
    assert.is_false(ok)
    assert.are.equal("pickled module: child 'f' is not a torch.nn.Module (m.Func)", err)
  end)

  it("bounds the nesting with a clear error", function()
    local function chain(n)
      local m = module("m.Leaf", {{"w", torch.zeros(1)}})
      for _ = 2, n do m = module("m.Seq", nil, nil, {{"0", m}}) end
      return m
    end
    local sd = pymodule.state_dict(chain(pymodule.MAX_DEPTH))
    assert.are.equal(string.rep("0.", pymodule.MAX_DEPTH - 1) .. "w", odict.keys(sd)[1])
    local ok, err = pcall(pymodule.state_dict, chain(pymodule.MAX_DEPTH + 1))
    assert.is_false(ok)
    assert.are.equal(string.format("pickled module: submodules nested deeper than %d levels (at '%s')",
      pymodule.MAX_DEPTH, string.rep("0", pymodule.MAX_DEPTH, ".")), err)
    ok, err = pcall(pymodule.state_dict, chain(4), {max_depth = 3})
    assert.is_false(ok)
    assert.are.equal("pickled module: submodules nested deeper than 3 levels (at '0.0.0')", err)
  end)

  it("names a cycle below the root by both keys", function()
    local inner = module("m.In")
    local mid = module("m.Mid", nil, nil, {{"inner", inner}})
    inner.state._modules.up = mid
    local ok, err = pcall(pymodule.state_dict, module("m.R", nil, nil, {{"mid", mid}}))
    assert.is_false(ok)
    assert.are.equal("pickled module: 'mid.inner.up' is 'mid' again (m.Mid): a cycle, which " ..
      "PyTorch's state_dict() cannot walk either", err)
  end)
end)
