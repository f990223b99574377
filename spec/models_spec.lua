-- models_spec.lua: ltorch.models' alexnet and resnet18 against torchvision
-- 0.14: same parameter names and shapes, and the same outputs (within 1e-4)
-- with a state dict written by torchvision, on a small input.
local torch = require("ltorch")
local H = require("nn_helpers")
local odict = require("ltorch.odict")
local models = require("ltorch.models")

-- one python run writes, for each model: torchvision's model with random
-- batch-norm statistics (so eval mode is not the identity), its state dict
-- as .safetensors (resnet18 also as .pt, written by torch.save), its output
-- on a fixed input, and (printed) its state dict keys, shapes and dtypes
local dir = H.tmpdir()
local KEYS = require("ltorch.modsave").json_decode(H.python(H.PY_SAVE_ST .. string.format([[
import torch, torchvision, json
out = {}
for name in ['resnet18', 'alexnet']:
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.1)
    m.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = m(x)
    save_st(m.state_dict(), '%s/' + name + '.safetensors')
    if name == 'resnet18':
        torch.save(m.state_dict(), '%s/' + name + '.pt')
    save_st({'x': x, 'y': y}, '%s/' + name + '_io.safetensors')
    out[name] = [[k, list(v.shape), str(v.dtype)] for k, v in m.state_dict().items()]
    del m
print(json.dumps(out))
]], dir, dir, dir), dir))

local function check_model(name, build, with_pt)
  local m
  local keys = KEYS[name]
  setup(function()
    torch.manual_seed(1)
    m = build()
  end)
  teardown(function() m = nil collectgarbage() end)

  it("has torchvision's state dict keys, shapes and dtypes, in order", function()
    local mine = m:state_dict()
    local i = 0
    for k, t in pairs(mine) do
      i = i + 1
      assert.are.equal(keys[i][1], k)
      assert.are.same({table.unpack(keys[i][2])}, t:size(), k)
      assert.are.equal(keys[i][3], "torch." .. t:dtype(), k)
    end
    assert.are.equal(#keys, i)
  end)

  it("gives torchvision's output with its weights", function()
    m:load_state_dict(torch.load(dir .. "/" .. name .. ".safetensors"))
    m:eval()
    local io_ = torch.load(dir .. "/" .. name .. "_io.safetensors")
    local y = m(io_.x)
    assert.are.same(io_.y:size(), y:size())
    local d = H.maxdiff(io_.y, y)
    assert.is_true(d < 1e-4, name .. ": max difference " .. d)
  end)

  if with_pt then
    it("loads the state dict torch.save wrote (.pt) strictly, with the same output", function()
      m:load_state_dict(torch.load(dir .. "/" .. name .. ".pt"))
      m:eval()
      local io_ = torch.load(dir .. "/" .. name .. "_io.safetensors")
      assert.is_true(H.maxdiff(io_.y, m(io_.x)) < 1e-4)
    end)
  end
end

describe("models.resnet18", function()
  check_model("resnet18", function() return models.resnet18() end, true)

  it("prints like torchvision", function()
    local m = models.resnet18()
    assert.matches("^ResNet%(\n  %(conv1%): Conv2d%(3, 64, kernel_size=%(7, 7%), stride=%(2, 2%), padding=%(3, 3%), bias=False%)",
      tostring(m))
    assert.are.equal("Sequential", m.layer2[1].downsample:class_name())
  end)
end)

describe("models.alexnet", function()
  check_model("alexnet", function() return models.alexnet() end, false)
  teardown(function() H.rmdir(dir) end)
end)
