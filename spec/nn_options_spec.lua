-- nn_options_spec.lua: the keyword options of the built-in layers. Every
-- option table is checked: an unknown option is an error naming it, the
-- class and the valid ones, raised at the line of the constructor's caller;
-- every keyword of PyTorch 1.13's constructor is handled or accepted.
local torch = require("ltorch")
local nn = require("ltorch.nn")
local H = require("nn_helpers")
local sh = require("sh_helper")

-- the error of code run as a chunk named user.lua, nn as a local on line 1
-- (so the code starts on line 2)
local function err_of(code)
  local f = assert(load("local nn, torch = ...\n" .. code, "=user.lua"))
  local ok, e = pcall(f, nn, torch)
  assert.is_false(ok, "no error from: " .. code)
  return e
end

local LIN = "(valid options: in_features, out_features, bias, device, dtype)"

-- one bad option per built-in class, and the whole message
local BAD = {
  {"nn.Linear(3, 4, {biass = false})", "bad option 'biass' to 'Linear' " .. LIN},
  {"nn.Conv2d(1, 2, 3, {strides = 2})", "bad option 'strides' to 'Conv2d' (valid options: in_channels, " ..
    "out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype)"},
  {"nn.BatchNorm2d(4, {eps = 1e-3, mom = 0.2})", "bad option 'mom' to 'BatchNorm2d' (valid options: " ..
    "num_features, eps, momentum, affine, track_running_stats, device, dtype)"},
  {"nn.LayerNorm(4, {affine = false})", "bad option 'affine' to 'LayerNorm' (valid options: " ..
    "normalized_shape, eps, elementwise_affine, device, dtype)"},
  {"nn.Embedding(5, 3, {padding = 1})", "bad option 'padding' to 'Embedding' (valid options: " ..
    "num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, " ..
    "_weight, device, dtype)"},
  {"nn.Dropout({prob = 0.1})", "bad option 'prob' to 'Dropout' (valid options: p, inplace)"},
  {"nn.ReLU({in_place = true})", "bad option 'in_place' to 'ReLU' (valid options: inplace)"},
  {"nn.GELU({approx = 'tanh'})", "bad option 'approx' to 'GELU' (valid options: approximate)"},
  {"nn.Sigmoid({inplace = true})", "bad option 'inplace' to 'Sigmoid' (it takes no options)"},
  {"nn.Tanh({inplace = true})", "bad option 'inplace' to 'Tanh' (it takes no options)"},
  {"nn.Softmax({dims = 1})", "bad option 'dims' to 'Softmax' (valid options: dim)"},
  {"nn.MaxPool2d(2, {padd = 1})", "bad option 'padd' to 'MaxPool2d' (valid options: kernel_size, " ..
    "stride, padding, dilation, return_indices, ceil_mode)"},
  {"nn.AvgPool2d(2, {dilation = 2})", "bad option 'dilation' to 'AvgPool2d' (valid options: " ..
    "kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)"},
  {"nn.AdaptiveAvgPool2d(1, {size = 2})", "bad option 'size' to 'AdaptiveAvgPool2d' (valid options: " ..
    "output_size)"},
  {"nn.Flatten({start = 1})", "bad option 'start' to 'Flatten' (valid options: start_dim, end_dim)"},
  {"nn.ModuleList({mods = {}})", "bad option 'mods' to 'ModuleList' (valid options: modules)"},
  {"nn.Sequential({fc = nn.ReLU()})", "bad argument #1 to 'Sequential' (list of modules or odict of " ..
    "name -> module expected; a plain table's names have no order, got key 'fc')"},
  {"nn.ModuleDict({fc = nn.ReLU(), n = 3})", "bad argument #1 to 'ModuleDict' (module expected at 'n', " ..
    "got number)"},
}

describe("nn constructor options", function()
  for _, case in ipairs(BAD) do
    it("refuses " .. case[1], function()
      assert.are.equal("user.lua:2: " .. case[2], err_of(case[1]))
    end)
  end

  it("names the first unknown option in sorted order when there are several", function()
    assert.are.equal("user.lua:2: bad option 'aaa' to 'Linear' " .. LIN,
      err_of("nn.Linear(3, 4, {zzz = 1, bias = false, aaa = 2})"))
  end)

  it("raises at the caller's line, never in ltorch's files", function()
    -- a user class building a layer in initialize: the line in initialize
    local e = err_of([[
local M = nn.module("spec_opts_user", {
  initialize = function(self)
    self.fc = nn.Linear(2, 2, {biass = true})
  end,
})
M()]])
    assert.are.equal("user.lua:4: bad option 'biass' to 'Linear' " .. LIN, e)
    -- a class inheriting a built-in's initialize: the line of the call
    e = err_of([[
local Sub = nn.module("spec_opts_sub", {inherit = nn.Linear})
local m = Sub(3, 4)
assert(m.weight:size(1) == 4)
Sub(3, 4, {bais = false})]])
    assert.are.equal("user.lua:5: bad option 'bais' to 'Linear' " .. LIN, e)
    -- through the class's new
    assert.are.equal("user.lua:2: bad option 'biass' to 'Linear' " .. LIN,
      err_of("nn.Linear.new(3, 4, {biass = false})"))
    -- called from C (pcall): no position at all
    local ok, e2 = pcall(nn.Linear, 3, 4, {biass = false})
    assert.is_false(ok)
    assert.are.equal("bad option 'biass' to 'Linear' " .. LIN, e2)
  end)

  it("gives the command line's position under bin/ltorch -e", function()
    local build = os.getenv("LTORCH_BUILD") or "build"
    local out, code, err = sh.run("LTORCH_BUILD=" .. sh.quote(build) ..
      " bin/ltorch -e 'local nn = require(\"ltorch.nn\")\nnn.Linear(3, 4, {biass = false})'")
    assert.are_not.equal(0, code)
    assert.are.equal("", out)
    assert.are.equal("ltorch: (command line):2: bad option 'biass' to 'Linear' " .. LIN,
      err:match("^[^\n]*"))
  end)

  it("refuses too many arguments and an option given twice", function()
    assert.are.equal("user.lua:2: bad argument #6 to 'Linear' (at most 5 arguments expected: " ..
      "in_features, out_features, bias, device, dtype)", err_of("nn.Linear(3, 4, true, 'cpu', 'float32', 1)"))
    assert.are.equal("user.lua:2: bad argument #1 to 'Sigmoid' (no arguments expected, got number)",
      err_of("nn.Sigmoid(1)"))
    assert.are.equal("user.lua:2: bad argument #2 to 'Softmax' (at most 1 argument expected: dim)",
      err_of("nn.Softmax(1, 2)"))
    assert.are.equal("user.lua:2: bad option 'bias' to 'Linear' (given twice: as argument #3 and as an option)",
      err_of("nn.Linear(3, 4, false, {bias = true})"))
  end)

  it("checks the values of dtype and device", function()
    assert.are.equal("user.lua:2: bad option 'dtype' to 'Linear' (floating dtype name expected: float16, " ..
      "bfloat16, float32 or float64; got 'int64')", err_of("nn.Linear(3, 4, {dtype = 'int64'})"))
    assert.are.equal("user.lua:2: bad option 'dtype' to 'Conv2d' (floating dtype name expected: float16, " ..
      "bfloat16, float32 or float64; got number)", err_of("nn.Conv2d(1, 1, 1, {dtype = 3})"))
    assert.are.equal("user.lua:2: bad option 'device' to 'LayerNorm' (device name expected: 'cpu', " ..
      "'cuda' or 'cuda:N'; got 'gpu')", err_of("nn.LayerNorm(4, {device = 'gpu'})"))
  end)

  it("says which PyTorch options ltorch does not implement", function()
    assert.are.equal("user.lua:2: Embedding: max_norm is not supported", err_of("nn.Embedding(5, 3, {max_norm = 1})"))
    assert.are.equal("user.lua:2: AvgPool2d: divisor_override is not supported",
      err_of("nn.AvgPool2d(2, {divisor_override = 3})"))
    assert.are.equal("user.lua:2: MaxPool2d: return_indices is not supported",
      err_of("nn.MaxPool2d(2, {return_indices = true})"))
  end)

  it("still takes valid options", function()
    local l = nn.Linear(3, 4, {bias = false})
    assert.is_nil(l.bias)
    assert.are.same({4, 3}, l.weight:size())
    l = nn.Linear(3, 4, {device = "cpu", dtype = "float32"})
    assert.are.equal("float32", l.weight:dtype())
    assert.are.equal("cpu", l.weight:device())
    l = nn.Linear(3, 4, true, "cpu", "float64")
    assert.are.equal("float64", l.weight:dtype())
    assert.are.equal("float64", l.bias:dtype())
    assert.is_true(l.weight:requires_grad())
    local c = nn.Conv2d(2, 4, 3, {stride = 2, padding = 1, bias = false, padding_mode = "zeros", dtype = "float64"})
    assert.are.same({2, 2}, c.stride)
    assert.are.equal("float64", c.weight:dtype())
    assert.are.same({1, 4, 2, 2}, c(torch.zeros(1, 2, 4, 4):to("float64")):size())
    local bn = nn.BatchNorm2d(3, {momentum = 0.2, affine = false, dtype = "float64"})
    assert.are.equal(0.2, bn.momentum)
    assert.is_nil(bn.weight)
    assert.are.equal("float64", bn.running_mean:dtype())
    assert.are.equal("int64", bn.num_batches_tracked:dtype())
    local ln = nn.LayerNorm({2, 3}, {eps = 1e-6, elementwise_affine = true, dtype = "bfloat16"})
    assert.are.equal(1e-6, ln.eps)
    assert.are.equal("bfloat16", ln.weight:dtype())
    local w = torch.arange(15):view(5, 3):to("float32")
    local e = nn.Embedding(5, 3, {padding_idx = 2, norm_type = 1.0, scale_grad_by_freq = true, sparse = true,
      _weight = w})
    assert.are.same(w:tolist(), e.weight:tolist())   -- _weight is taken as it is, padding row too
    assert.are.equal("Embedding(5, 3, padding_idx=2, norm_type=1.0, scale_grad_by_freq=True, sparse=True)",
      tostring(e))
    assert.are.equal("user.lua:2: Embedding: _weight must be a tensor of shape {5, 3}",
      err_of("nn.Embedding(5, 3, {_weight = torch.zeros(3, 5)})"))
    e = nn.Embedding(5, 3, {padding_idx = 2})
    assert.are.same({0, 0, 0}, e.weight[2]:tolist())
    assert.are.equal(0.25, nn.Dropout({p = 0.25, inplace = true}).p)
    assert.is_true(nn.ReLU({inplace = true}).inplace)
    assert.are.equal("tanh", nn.GELU({approximate = "tanh"}).approximate)
    assert.are.equal(2, nn.Softmax({dim = 2}).dim)
    assert.is_true(nn.MaxPool2d(2, {stride = 1, ceil_mode = true}).ceil_mode)
    assert.is_false(nn.AvgPool2d(2, {count_include_pad = false}).count_include_pad)
    assert.are.equal(3, nn.AdaptiveAvgPool2d({output_size = 3}).output_size)
    assert.are.equal(3, nn.Flatten({start_dim = 3}).start_dim)
    assert.are.equal(2, #nn.ModuleList({modules = {nn.ReLU(), nn.Tanh()}}))
    assert.are.equal(2, #nn.ModuleList({nn.ReLU(), nn.Tanh()}))
    assert.are.equal(1, #nn.Sequential({nn.ReLU()}))
    assert.are.equal(0, #nn.Sequential({}))
    assert.is_true(nn.Sigmoid() ~= nil and nn.Tanh() ~= nil)
    -- nn.Identity takes and ignores anything, as PyTorch's
    local id = nn.Identity(1, "x", {anything = true})
    assert.are.equal(7, id(7))
  end)

  it("knows every keyword of PyTorch 1.13's constructors, in PyTorch's order", function()
    if not H.has_python() then pending("no " .. H.PYTHON) return end
    local classes = {
      Linear = "nn.Linear(3, 4, {zz_bad = 1})", Conv2d = "nn.Conv2d(1, 2, 3, {zz_bad = 1})",
      BatchNorm2d = "nn.BatchNorm2d(4, {zz_bad = 1})", LayerNorm = "nn.LayerNorm(4, {zz_bad = 1})",
      Embedding = "nn.Embedding(5, 3, {zz_bad = 1})", Dropout = "nn.Dropout({zz_bad = 1})",
      ReLU = "nn.ReLU({zz_bad = 1})", GELU = "nn.GELU({zz_bad = 1})", Softmax = "nn.Softmax({zz_bad = 1})",
      MaxPool2d = "nn.MaxPool2d(2, {zz_bad = 1})", AvgPool2d = "nn.AvgPool2d(2, {zz_bad = 1})",
      AdaptiveAvgPool2d = "nn.AdaptiveAvgPool2d(1, {zz_bad = 1})", Flatten = "nn.Flatten({zz_bad = 1})",
      ModuleList = "nn.ModuleList({zz_bad = 1})", Sigmoid = "nn.Sigmoid({zz_bad = 1})",
      Tanh = "nn.Tanh({zz_bad = 1})",
    }
    local names = {}
    for k in pairs(classes) do names[#names + 1] = k end
    table.sort(names)
    local out = H.python(string.format([[
import inspect, torch
for n in %s:
    ps = [p for p in inspect.signature(getattr(torch.nn, n).__init__).parameters if p != 'self']
    print(n + ': ' + ', '.join(ps))
]], "['" .. table.concat(names, "', '") .. "']"))
    local want, got = {}, {}
    for line in out:gmatch("[^\n]+") do want[#want + 1] = line end
    for _, n in ipairs(names) do
      local e = err_of(classes[n])
      local list = e:match("%(valid options: (.*)%)$") or (e:match("%(it takes no options%)$") and "")
      got[#got + 1] = n .. ": " .. tostring(list)
    end
    -- Python prints "Sigmoid: " with a trailing space for no parameters
    for i, w in ipairs(want) do want[i] = w:gsub(" $", "") end
    for i, g in ipairs(got) do got[i] = g:gsub(" $", "") end
    assert.are.same(want, got)
  end)
end)
