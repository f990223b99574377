-- nn_spec.lua: module machinery (classes, registration, state dicts,
-- load_state_dict reports, train/eval, to, repr, errors naming the failing
-- module) and every built-in layer against real PyTorch with the same weights.
local torch = require("ltorch")
local H = require("nn_helpers")
local nn = torch.nn

local function sizes(t) return table.concat(t:size(), "x") end

local function keys_of(od)
  local out = {}
  for k in pairs(od) do out[#out + 1] = k end
  return out
end

describe("nn.module", function()
  torch.manual_seed(1)
  local Net = nn.module("spec_net", {
    initialize = function(self, n)
      self.fc1 = nn.Linear(n, 4)
      self.scale = 2
      self.fc2 = nn.Linear(4, 1)
      self.extra = nn.Parameter(torch.zeros(3))
      self.count = nn.buffer(torch.zeros(1))
    end,
    forward = function(self, x) return self.fc2(self.fc1(x)) end,
    describe_me = function(self) return "net with scale " .. self.scale end,
  })

  it("makes instances by calling the class, running initialize", function()
    local m = Net(3)
    assert.are.equal(3, m.fc1.in_features)
    assert.are.equal(2, m.scale)
    assert.are.equal("net with scale 2", m:describe_me())
    assert.is_true(nn.is_module(m))
    assert.is_true(nn.is_class(Net))
    assert.are.equal("spec_net", m:class_name())
  end)

  it("registers parameters, buffers and children in assignment order", function()
    local m = Net(3)
    assert.are.same({"extra", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}, keys_of(m:named_parameters()))
    assert.are.same({"extra", "count", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"},
      keys_of(m:state_dict()))
    assert.are.same({"fc1", "fc2"}, keys_of(m:named_children()))
    assert.are.equal(5, #m:parameters())
    assert.are.equal(1, #m:buffers())
    assert.are.equal(3, #m:modules())
    assert.are.equal(m.fc1, m:children()[1])
  end)

  it("state dict values are the module's own tensors", function()
    local m = Net(3)
    assert.are.equal(m.fc1.weight, m:state_dict()["fc1.weight"])
    assert.is_true(m.fc1.weight:requires_grad())
  end)

  it("keeps a reassigned parameter a parameter, and a reassigned buffer a buffer", function()
    local m = Net(3)
    m.extra = torch.ones(3)
    assert.is_true(m.extra:requires_grad())
    m.count = torch.ones(1)
    assert.are.same({"extra", "count", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"},
      keys_of(m:state_dict()))
    assert.are.equal(1.0, m:state_dict().count:item())
  end)

  it("assigning nil removes a registration; plain tensors are ordinary fields", function()
    local m = Net(3)
    m.extra = nil
    m.scratch = torch.zeros(2)
    assert.is_nil(m.extra)
    assert.are.same({"count", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}, keys_of(m:state_dict()))
    assert.is_true(torch.is_tensor(m.scratch))
  end)

  it("replacing a child with a plain value unregisters it", function()
    local m = Net(3)
    m.fc2 = 5
    assert.are.same({"fc1"}, keys_of(m:named_children()))
    assert.are.equal(5, m.fc2)
  end)

  it("non-persistent buffers stay out of the state dict", function()
    local m = Net(3)
    m.tmp = nn.buffer(torch.zeros(2), false)
    assert.are.equal(2, #m:buffers())
    assert.is_nil(m:state_dict().tmp)
  end)

  it("supports inheritance", function()
    local Child = nn.module("spec_child", {
      inherit = Net,
      forward = function(self, x) return x end,
    })
    local m = Child(3)
    assert.are.equal(2, m.scale)
    assert.are.equal("net with scale 2", m:describe_me())
  end)

  it("train and eval set the flag of the whole tree", function()
    local m = Net(3)
    assert.is_true(m.training)
    assert.are.equal(m, m:eval())
    assert.is_false(m.training)
    assert.is_false(m.fc1.training)
    m:train()
    assert.is_true(m.fc2.training)
    m.fc1.training = false
    assert.is_false(m.fc1.training)
    assert.is_true(m.training)
  end)

  it("to(dtype) converts floating-point tensors in place in the module", function()
    local m = Net(3):to("float64")
    assert.are.equal("float64", m.fc1.weight:dtype())
    assert.are.equal("float64", m.count:dtype())
    assert.is_true(m.fc1.weight:requires_grad())
    local bn = nn.BatchNorm2d(2):to("float16")
    assert.are.equal("int64", bn.num_batches_tracked:dtype())
    assert.are.equal("float16", bn.running_mean:dtype())
  end)

  it("apply visits children first, then the module", function()
    local seen = {}
    local s = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Tanh()))
    assert.are.equal(s, s:apply(function(m) seen[#seen + 1] = m:class_name() end))
    assert.are.same({"ReLU", "Tanh", "Sequential", "Sequential"}, seen)
  end)

  it("prints a tree like PyTorch's repr", function()
    local m = Net(3)
    assert.are.equal("spec_net(\n" ..
      "  (fc1): Linear(in_features=3, out_features=4, bias=True)\n" ..
      "  (fc2): Linear(in_features=4, out_features=1, bias=True)\n)", tostring(m))
    assert.are.equal("Sequential(\n  (0): ReLU()\n  (1): Sequential(\n    (0): Tanh()\n  )\n)",
      tostring(nn.Sequential(nn.ReLU(), nn.Sequential(nn.Tanh()))))
  end)

  it("rejects a bad name or definition", function()
    assert.has_error(function() nn.module(3, {}) end,
      "bad argument #1 to 'module' (class name expected, got number)")
    assert.has_error(function() nn.module("x", 3) end,
      "bad argument #2 to 'module' (table of methods expected, got number)")
    assert.has_error(function() nn.module("Linear", {}) end,
      "bad argument #1 to 'module' (class name 'Linear' is taken by a built-in class)")
    assert.has_error(function() nn.Parameter(3) end,
      "bad argument #1 to 'Parameter' (tensor expected, got number)")
  end)

  it("records the source text of each method", function()
    assert.are.equal("function(self, x) return self.fc2(self.fc1(x)) end", Net.sources.forward)
  end)
end)

describe("forward errors", function()
  local Bad = nn.module("spec_bad", {
    forward = function(_, _) error("boom", 0) end,
  })
  local Outer = nn.module("spec_outer", {
    initialize = function(self)
      self.body = nn.Sequential(nn.ReLU(), Bad())
    end,
    forward = function(self, x) return self.body(x) end,
  })

  it("name the failing module by path and class, once", function()
    local ok, err = pcall(Outer(), torch.zeros(2))
    assert.is_false(ok)
    assert.are.equal("error in forward of 'body.1' (spec_bad): boom", err)
  end)

  it("are passed through unchanged at the root", function()
    local ok, err = pcall(Bad(), torch.zeros(2))
    assert.is_false(ok)
    assert.are.equal("boom", err)
  end)

  it("report a module without forward", function()
    assert.has_error(function() nn.ModuleList()(1) end, "module 'ModuleList' has no forward method")
  end)
end)

describe("load_state_dict", function()
  local function make() torch.manual_seed(2) return nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)) end

  it("copies values into the existing tensors, converting the dtype", function()
    local a, b = make(), make()
    local w = a[1].weight
    local sd = b:state_dict()
    local sd64 = require("ltorch.odict").new()
    for k, t in pairs(sd) do sd64[k] = (t * 0 + 1):to("float64") end
    local report = a:load_state_dict(sd64)
    assert.are.same({missing = {}, unexpected = {}, mismatched = {}}, report)
    assert.are.equal(w, a[1].weight)
    assert.are.equal("float32", a[1].weight:dtype())
    assert.are.equal(1.0, a[1].weight[1][1]:item())
  end)

  it("reports missing, unexpected and mismatched keys without strict", function()
    local a = make()
    local sd = {["0.weight"] = torch.zeros(3, 2), ["0.bias"] = torch.zeros(2), ["9.x"] = torch.zeros(1)}
    local report = a:load_state_dict(sd, {strict = false})
    assert.are.same({"2.weight", "2.bias"}, report.missing)
    assert.are.same({"9.x"}, report.unexpected)
    assert.are.same({{key = "0.weight", expected = "{2, 3}", got = "{3, 2}"}}, report.mismatched)
    assert.are.equal(0.0, a[1].bias[1]:item())
    assert.are_not.equal(0.0, a[1].weight[1][1]:item())
  end)

  it("raises under strict with the report in the message", function()
    local a = make()
    local sd = {["0.weight"] = torch.zeros(3, 2), ["0.bias"] = torch.zeros(2), ["9.x"] = torch.zeros(1)}
    assert.has_error(function() a:load_state_dict(sd) end,
      'error(s) in loading state_dict for Sequential:\n' ..
      '  missing keys: "2.weight", "2.bias"\n' ..
      '  unexpected keys: "9.x"\n' ..
      '  size mismatch for "0.weight": expected {2, 3}, got {3, 2}')
  end)
end)

describe("containers", function()
  it("Sequential names children 0, 1, ... and indexes them from 1", function()
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"}, keys_of(s:state_dict()))
    assert.are.equal(3, #s)
    assert.are.equal("ReLU", s[2]:class_name())
    assert.are.equal(s["1"], s[2])
    assert.are.equal(s[3], s[-1])
    local n = 0
    for i, m in ipairs(s) do n = n + 1 assert.are.equal(s[i], m) end
    assert.are.equal(3, n)
    s:append(nn.Tanh())
    assert.are.equal("Tanh", s[4]:class_name())
  end)

  it("Sequential takes an odict of names", function()
    local od = require("ltorch.odict").new()
    od.first = nn.Linear(1, 1)
    od.act = nn.ReLU()
    local s = nn.Sequential(od)
    assert.are.same({"first.weight", "first.bias"}, keys_of(s:state_dict()))
  end)

  it("ModuleList appends, inserts and indexes", function()
    local l = nn.ModuleList({nn.ReLU(), nn.Tanh()})
    l:append(nn.Linear(1, 2))
    l:insert(1, nn.Sigmoid())
    assert.are.equal(4, #l)
    assert.are.equal("Sigmoid", l[1]:class_name())
    assert.are.same({"3.weight", "3.bias"}, keys_of(l:state_dict()))
  end)

  it("ModuleDict keeps insertion order of an odict and sorts a plain table", function()
    local d = nn.ModuleDict({b = nn.Linear(1, 1), a = nn.Linear(1, 1)})
    assert.are.same({"a", "b"}, d:keys())
    assert.are.same({"a.weight", "a.bias", "b.weight", "b.bias"}, keys_of(d:state_dict()))
    assert.are.equal("Linear", d.a:class_name())
  end)
end)

describe("initialisation", function()
  it("is repeatable under torch.manual_seed and within PyTorch's bounds", function()
    torch.manual_seed(7)
    local a = nn.Linear(16, 4)
    torch.manual_seed(7)
    local b = nn.Linear(16, 4)
    assert.is_true(torch.equal(a.weight, b.weight))
    for _, v in ipairs(H.flat(a.weight)) do assert.is_true(math.abs(v) <= 0.25) end
    local c = nn.Conv2d(2, 3, 3)
    assert.are.equal("3x2x3x3", sizes(c.weight))
    for _, v in ipairs(H.flat(c.weight)) do assert.is_true(math.abs(v) <= 1 / math.sqrt(18)) end
  end)

  it("gives BatchNorm2d PyTorch's tensors", function()
    local bn = nn.BatchNorm2d(3)
    assert.are.same({1, 1, 1}, bn.weight:tolist())
    assert.are.same({0, 0, 0}, bn.running_mean:tolist())
    assert.are.equal("int64", bn.num_batches_tracked:dtype())
    assert.are.equal(0, bn.num_batches_tracked:dim())
  end)
end)

-- every built-in layer against PyTorch: python builds the layer with a fixed
-- seed and writes its state dict, input and output as JSON text
describe("built-in layers against PyTorch", function()
  local cases = {
    {"linear", function() return nn.Linear(5, 3) end, "nn.Linear(5, 3)", {2, 5}},
    {"linear_nobias", function() return nn.Linear(5, 3, false) end, "nn.Linear(5, 3, bias=False)", {4, 5}},
    {"conv", function() return nn.Conv2d(3, 4, 3) end, "nn.Conv2d(3, 4, 3)", {1, 3, 8, 8}},
    {"conv_groups", function() return nn.Conv2d(4, 6, 3, {stride = 2, padding = 1, groups = 2}) end,
      "nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)", {2, 4, 7, 7}},
    {"conv_rect", function() return nn.Conv2d(3, 2, {3, 2}, {2, 1}, {1, 0}, 2, 1, false) end,
      "nn.Conv2d(3, 2, (3, 2), (2, 1), (1, 0), 2, 1, False)", {1, 3, 9, 6}},
    {"bn_eval", function() return nn.BatchNorm2d(3):eval() end, "nn.BatchNorm2d(3).eval()", {2, 3, 4, 4}, stats = true},
    {"bn_train", function() return nn.BatchNorm2d(3) end, "nn.BatchNorm2d(3)", {2, 3, 4, 4}, stats = true},
    {"layernorm", function() return nn.LayerNorm(4) end, "nn.LayerNorm(4)", {3, 4}, stats = true},
    {"layernorm2", function() return nn.LayerNorm({3, 4}, 1e-3) end, "nn.LayerNorm([3, 4], 1e-3)", {2, 3, 4}, stats = true},
    {"embedding", function() return nn.Embedding(10, 3) end, "nn.Embedding(10, 3)", {2, 4}, indices = 10},
    {"relu", function() return nn.ReLU() end, "nn.ReLU()", {3, 5}},
    {"gelu", function() return nn.GELU() end, "nn.GELU()", {3, 5}},
    {"gelu_tanh", function() return nn.GELU("tanh") end, "nn.GELU('tanh')", {3, 5}},
    {"sigmoid", function() return nn.Sigmoid() end, "nn.Sigmoid()", {3, 5}},
    {"tanh", function() return nn.Tanh() end, "nn.Tanh()", {3, 5}},
    {"softmax", function() return nn.Softmax(2) end, "nn.Softmax(1)", {3, 5}, lua_dims = true},
    {"maxpool", function() return nn.MaxPool2d(3, 2) end, "nn.MaxPool2d(3, 2)", {1, 2, 9, 9}},
    {"maxpool_ceil", function() return nn.MaxPool2d(2, {padding = 1, ceil_mode = true}) end,
      "nn.MaxPool2d(2, padding=1, ceil_mode=True)", {1, 2, 7, 7}},
    {"avgpool", function() return nn.AvgPool2d(2) end, "nn.AvgPool2d(2)", {1, 2, 6, 6}},
    {"avgpool_pad", function() return nn.AvgPool2d(3, 2, 1, false, false) end,
      "nn.AvgPool2d(3, 2, 1, False, False)", {1, 2, 7, 7}},
    {"adaptive", function() return nn.AdaptiveAvgPool2d({3, 2}) end, "nn.AdaptiveAvgPool2d((3, 2))", {1, 2, 7, 5}},
    {"flatten", function() return nn.Flatten() end, "nn.Flatten()", {2, 3, 2}, lua_dims = true},
    {"identity", function() return nn.Identity() end, "nn.Identity()", {2, 3}},
    {"sequential", function() return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)) end,
      "nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))", {3, 4}},
    {"dropout_eval", function() return nn.Dropout(0.3):eval() end, "nn.Dropout(0.3).eval()", {3, 4}},
  }

  local results
  setup(function()
    local lines = {"import json, torch", "from torch import nn", "torch.manual_seed(0)",
      "def T(t): return {'shape': list(t.shape), 'dtype': str(t.dtype), 'data': t.detach().reshape(-1).tolist()}",
      "out = {}"}
    for _, c in ipairs(cases) do
      local shape = "(" .. table.concat(c[4], ", ") .. ",)"
      lines[#lines + 1] = "m = " .. c[3]
      if c.stats then
        lines[#lines + 1] = "for p in m.parameters(): p.data = torch.randn(p.shape)"
        lines[#lines + 1] = "if hasattr(m, 'running_mean'): m.running_mean.copy_(torch.randn(m.running_mean.shape)); m.running_var.copy_(torch.rand(m.running_var.shape) + 0.5)"
      end
      if c.indices then
        lines[#lines + 1] = string.format("x = torch.randint(0, %d, %s)", c.indices, shape)
      else
        lines[#lines + 1] = "x = torch.randn(" .. shape .. ")"
      end
      lines[#lines + 1] = "sd = {k: T(v) for k, v in m.state_dict().items()}"
      lines[#lines + 1] = "y = m(x)"
      lines[#lines + 1] = string.format("out['%s'] = {'sd': sd, 'after': {k: T(v) for k, v in m.state_dict().items()}, 'x': T(x), 'y': T(y), 'repr': repr(m)}", c[1])
    end
    lines[#lines + 1] = "print(json.dumps(out))"
    local dir = H.tmpdir()
    local text = H.python(table.concat(lines, "\n") .. "\n", dir)
    H.rmdir(dir)
    results = require("ltorch.modsave").json_decode(text)
  end)

  local function tensor_of(j)
    local dt = j.dtype:gsub("^torch%.", "")
    local data = {}
    for i, v in ipairs(j.data) do data[i] = v end
    if #j.shape == 0 then return torch.tensor(data[1], {dtype = dt}) end
    return torch.tensor(data, {dtype = dt}):view(j.shape)
  end

  for _, c in ipairs(cases) do
    it(c[1] .. " matches torch.nn (output, state after forward, repr)", function()
      local r = results[c[1]]
      local m = c[2]()
      local sd = {}
      for k, v in pairs(r.sd) do sd[k] = tensor_of(v) end
      m:load_state_dict(sd)
      local x = tensor_of(r.x)
      if c.indices then x = x + 1 end
      local y = m(x)
      local want = tensor_of(r.y)
      assert.are.same(want:size(), y:size())
      assert.is_true(H.maxdiff(want, y) < 1e-5, c[1] .. ": max difference " .. H.maxdiff(want, y))
      if not c.lua_dims then assert.are.equal(r.repr, tostring(m)) end
      for k, v in pairs(r.after) do
        local mine = m:state_dict()[k]
        assert.is_true(H.maxdiff(tensor_of(v), mine) < 1e-5, c[1] .. ": state " .. k .. " differs after forward")
      end
    end)
  end

  it("Dropout in training mode zeroes or scales each element", function()
    torch.manual_seed(3)
    local x = torch.ones(1000)
    local y = nn.Dropout(0.25)(x)
    local zeros = 0
    for _, v in ipairs(H.flat(y)) do
      if v == 0 then zeros = zeros + 1 else assert.is_true(math.abs(v - 1 / 0.75) < 1e-6) end
    end
    assert.is_true(zeros > 150 and zeros < 350)
  end)
end)
