-- zoo_spec.lua: the model zoo (ltorch.models) against torchvision 0.14 on
-- the same weights. One python run builds each model (fixed seed, weights
-- = None, random batch-norm statistics and biases so that eval mode is not
-- the identity), and saves its state dict, a small input and its eval
-- output (DIR/<case>.pt); it prints every state dict's keys, shapes and
-- dtypes. ltorch builds the same model, has the same keys in the same
-- order, loads the state dict strictly and gives the output within 1e-4.
-- The fixtures are ~600 MB in all, in a temp dir (vit_b_16's ~330 MB,
-- resnet50's ~100 MB).
local torch = require("ltorch")
local H = require("nn_helpers")
local models = require("ltorch.models")
local nn = torch.nn
local json_decode = require("ltorch.modsave").json_decode

local PY = [==[
import json, torch, torchvision
from functools import partial
from torch import nn
from torchvision.models import resnet, efficientnet, vision_transformer as vt

def randomise(m):
    # non-trivial eval-mode statistics, norms and biases (torchvision
    # zero-initialises many biases, ViT's class token and head)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.1)
        elif isinstance(mod, nn.LayerNorm):
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.1)
    for name, p in m.named_parameters():
        if name.endswith('bias') and 'bn' not in name and 'norm' not in name:
            p.data.normal_(0, 0.05)
    if isinstance(m, vt.VisionTransformer):
        m.class_token.data.normal_(0, 1)
        m.heads.head.weight.data.normal_(0, 0.1)

def small_effnet():
    setting = [efficientnet.FusedMBConvConfig(1, 3, 1, 16, 16, 1),
               efficientnet.FusedMBConvConfig(4, 3, 2, 16, 24, 2),
               efficientnet.MBConvConfig(4, 5, 2, 24, 32, 2)]
    return efficientnet.EfficientNet(setting, 0.3, stochastic_depth_prob=0.1, num_classes=10,
                                     last_channel=64, norm_layer=partial(nn.BatchNorm2d, eps=1e-3))

CASES = {
    'resnet34': (lambda: torchvision.models.resnet34(), 64),
    'resnet50': (lambda: torchvision.models.resnet50(), 64),
    'resnet_custom': (lambda: resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, groups=2,
                                            width_per_group=16,
                                            replace_stride_with_dilation=[False, False, True]), 64),
    'mobilenet_v2': (lambda: torchvision.models.mobilenet_v2(), 64),
    'mobilenet_v2_w05': (lambda: torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10), 64),
    'efficientnet_b0': (lambda: torchvision.models.efficientnet_b0(), 64),
    'efficientnet_small': (small_effnet, 64),
    'densenet121': (lambda: torchvision.models.densenet121(), 64),
    'densenet_small': (lambda: torchvision.models.DenseNet(8, (2, 3), 16, 2, num_classes=10), 32),
    'squeezenet1_0': (lambda: torchvision.models.squeezenet1_0(), 64),
    'squeezenet1_1': (lambda: torchvision.models.squeezenet1_1(num_classes=10), 64),
    'vit_small': (lambda: vt.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                               hidden_dim=16, mlp_dim=32, num_classes=10), 32),
    'vit_stem': (lambda: vt.VisionTransformer(image_size=32, patch_size=4, num_layers=1, num_heads=4,
                                              hidden_dim=16, mlp_dim=24, num_classes=5,
                                              representation_size=12,
                                              conv_stem_configs=[vt.ConvStemConfig(8, 3, 2),
                                                                 vt.ConvStemConfig(16, 3, 2)]), 32),
}

def keys(m):
    return [[k, list(v.shape), str(v.dtype)] for k, v in m.state_dict().items()]

out = {}
for name, (build, size) in CASES.items():
    torch.manual_seed(0)
    m = build()
    randomise(m)
    m.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        y = m(x)
    torch.save({'sd': m.state_dict(), 'x': x, 'y': y}, DIR + '/' + name + '.pt')
    out[name] = keys(m)
    del m
# vit_b_16 at full size: keys, and one forward at 224 (a ~330 MB fixture)
torch.manual_seed(0)
m = torchvision.models.vit_b_16()
randomise(m)
m.eval()
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    y = m(x)
torch.save({'sd': m.state_dict(), 'x': x, 'y': y}, DIR + '/vit_b_16.pt')
out['vit_b_16'] = keys(m)
print(json.dumps(out))
]==]

local dir, KEYS

-- the fixture of a case: {sd =, x =, y =}
local function fixture(name) return torch.load(dir .. "/" .. name .. ".pt") end

-- m's state dict keys, shapes and dtypes are torchvision's, in order
local function assert_keys(m, want)
  local i = 0
  for k, t in pairs(m:state_dict()) do
    i = i + 1
    assert(want[i], "extra key " .. k)
    assert.are.equal(want[i][1], k)
    assert.are.same({table.unpack(want[i][2])}, t:size(), k)
    assert.are.equal(want[i][3], "torch." .. t:dtype(), k)
  end
  assert.are.equal(#want, i)
end

-- the error of code run as a chunk named user.lua, given torch, nn, models
local function err_of(code)
  local f = assert(load("local torch, nn, models = ...; " .. code, "=user.lua"))
  local ok, e = pcall(f, torch, nn, models)
  assert.is_false(ok, "no error from: " .. code)
  return e
end

describe("ltorch.models against torchvision", function()
  setup(function()
    dir = H.tmpdir()
    KEYS = json_decode(H.py_fixtures(PY, dir))
  end)
  teardown(function() H.rmdir(dir) collectgarbage() end)

  -- the model named case built by build(): keys, strict load and output
  local function check(case, build)
    describe(case, function()
      local m
      setup(function()
        torch.manual_seed(1)
        m = build()
      end)
      teardown(function() m = nil collectgarbage() end)

      it("has torchvision's state dict keys, shapes and dtypes, in order", function()
        assert_keys(m, KEYS[case])
      end)

      it("loads torchvision's state dict strictly and gives its output", function()
        local f = fixture(case)
        m:load_state_dict(f.sd)
        m:eval()
        H.assert_parity(m(f.x), f.y, 1e-4, case)
      end)
    end)
  end

  check("resnet34", function() return models.resnet34() end)
  check("resnet50", function() return models.resnet50() end)
  check("resnet_custom", function()
    return models.ResNet(models.Bottleneck, {1, 1, 1, 1}, {num_classes = 10, groups = 2,
      width_per_group = 16, replace_stride_with_dilation = {false, false, true}})
  end)
  check("mobilenet_v2", function() return models.mobilenet_v2() end)
  check("mobilenet_v2_w05", function() return models.mobilenet_v2({width_mult = 0.5, num_classes = 10}) end)
  check("efficientnet_b0", function() return models.efficientnet_b0() end)
  check("efficientnet_small", function()
    local setting = {models.FusedMBConvConfig(1, 3, 1, 16, 16, 1), models.FusedMBConvConfig(4, 3, 2, 16, 24, 2),
      models.MBConvConfig(4, 5, 2, 24, 32, 2)}
    return models.EfficientNet(setting, 0.3, {stochastic_depth_prob = 0.1, num_classes = 10, last_channel = 64,
      norm_layer = function(c) return nn.BatchNorm2d(c, {eps = 1e-3}) end})
  end)
  check("densenet121", function() return models.densenet121() end)
  check("densenet_small", function() return models.DenseNet(8, {2, 3}, 16, 2, {num_classes = 10}) end)
  check("squeezenet1_0", function() return models.squeezenet1_0() end)
  check("squeezenet1_1", function() return models.squeezenet1_1({num_classes = 10}) end)
  check("vit_small", function()
    return models.VisionTransformer({image_size = 32, patch_size = 8, num_layers = 2, num_heads = 2,
      hidden_dim = 16, mlp_dim = 32, num_classes = 10})
  end)
  check("vit_stem", function()
    return models.VisionTransformer(32, 4, 1, 4, 16, 24, {num_classes = 5, representation_size = 12,
      conv_stem_configs = {models.ConvStemConfig(8, 3, 2), models.ConvStemConfig(16, 3, 2)}})
  end)

  check("vit_b_16", function() return models.vit_b_16() end)

  describe("a whole-module save", function()
    it("reloads in a fresh process with the same output", function()
      local cases = {"efficientnet_small", "densenet_small", "mobilenet_v2_w05", "squeezenet1_1", "vit_stem",
        "resnet_custom"}
      local builds = {
        efficientnet_small = function()
          return models.EfficientNet({models.FusedMBConvConfig(1, 3, 1, 16, 16, 1),
            models.FusedMBConvConfig(4, 3, 2, 16, 24, 2), models.MBConvConfig(4, 5, 2, 24, 32, 2)}, 0.3,
            {stochastic_depth_prob = 0.1, num_classes = 10, last_channel = 64,
             norm_layer = function(c) return nn.BatchNorm2d(c, {eps = 1e-3}) end})
        end,
        densenet_small = function() return models.DenseNet(8, {2, 3}, 16, 2, {num_classes = 10}) end,
        mobilenet_v2_w05 = function() return models.mobilenet_v2({width_mult = 0.5, num_classes = 10}) end,
        squeezenet1_1 = function() return models.squeezenet1_1({num_classes = 10}) end,
        vit_stem = function()
          return models.VisionTransformer(32, 4, 1, 4, 16, 24, {num_classes = 5, representation_size = 12,
            conv_stem_configs = {models.ConvStemConfig(8, 3, 2), models.ConvStemConfig(16, 3, 2)}})
        end,
        resnet_custom = function()
          return models.ResNet(models.Bottleneck, {1, 1, 1, 1}, {num_classes = 10, groups = 2,
            width_per_group = 16, replace_stride_with_dilation = {false, false, true}})
        end,
      }
      for _, case in ipairs(cases) do
        local m = builds[case]()
        m:load_state_dict(fixture(case).sd)
        m:eval()
        torch.save(m, dir .. "/" .. case .. "_module.pt", {upvalues = "error"})
      end
      -- a fresh process knows no model class until the file names ltorch.models
      local ok, out = H.lua(string.format([[
local torch = require("ltorch")
local H = require("nn_helpers")
assert(require("ltorch.nn").classes.EfficientNet == nil, "no model class is defined yet")
for _, case in ipairs({%s}) do
  local m = torch.load(%q .. "/" .. case .. "_module.pt")
  local f = torch.load(%q .. "/" .. case .. ".pt")
  assert(not m.training, case .. " was saved in eval mode")
  H.assert_parity(m(f.x), f.y, 1e-4, case)
  print(case, m:class_name())
end
]], '"' .. table.concat(cases, '", "') .. '"', dir, dir), dir)
      assert(ok, out)
      assert.are.equal("efficientnet_small\tEfficientNet\ndensenet_small\tDenseNet\n" ..
        "mobilenet_v2_w05\tMobileNetV2\nsqueezenet1_1\tSqueezeNet\nvit_stem\tVisionTransformer\n" ..
        "resnet_custom\tResNet\n", out)
    end)
  end)
end)

describe("ltorch.models", function()
  it("prints torchvision's module tree", function()
    local m = models.efficientnet_b0()
    local s = tostring(m.features[2][1])
    assert.are.equal([[
MBConv(
  (block): Sequential(
    (0): Conv2dNormActivation(
      (0): Conv2d(32, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=32, bias=False)
      (1): BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
      (2): SiLU(inplace=True)
    )
    (1): SqueezeExcitation(
      (avgpool): AdaptiveAvgPool2d(output_size=1)
      (fc1): Conv2d(32, 8, kernel_size=(1, 1), stride=(1, 1))
      (fc2): Conv2d(8, 32, kernel_size=(1, 1), stride=(1, 1))
      (activation): SiLU(inplace=True)
      (scale_activation): Sigmoid()
    )
    (2): Conv2dNormActivation(
      (0): Conv2d(32, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
      (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    )
  )
  (stochastic_depth): StochasticDepth(p=0.0, mode=row)
)]], s)
    assert.are.equal("StochasticDepth(p=0.0125, mode=row)", tostring(m.features[3][1].stochastic_depth))
  end)

  it("keeps stochastic depth the identity in eval mode and drops rows in training", function()
    local sd = models.StochasticDepth(0.5, "row")
    local x = torch.ones(64, 3)
    sd:eval()
    assert.are.equal(x, sd(x))
    sd:train()
    torch.manual_seed(3)
    local y = sd(x)
    -- each row is all 0 or all 2 (1 / (1 - p)); both occur
    local rows = y:sum(2)
    local zeros, twos = 0, 0
    for _, v in ipairs(H.flat(rows)) do
      if v == 0 then zeros = zeros + 1 elseif v == 6 then twos = twos + 1 end
    end
    assert.are.equal(64, zeros + twos)
    assert.is_true(zeros > 0 and twos > 0)
  end)

  it("renames the keys of old torchvision checkpoints", function()
    local odict = require("ltorch.odict")
    local sd = odict.new()
    sd["features.denseblock1.denselayer1.norm.1.weight"] = torch.zeros(1)
    sd["features.denseblock1.denselayer1.conv.2.weight"] = torch.zeros(1)
    sd["features.norm5.weight"] = torch.zeros(1)
    local keys = odict.keys(models.densenet_convert_state_dict(sd))
    assert.are.same({"features.denseblock1.denselayer1.norm1.weight", "features.denseblock1.denselayer1.conv2.weight",
      "features.norm5.weight"}, keys)
    sd = odict.new()
    sd["encoder.layers.encoder_layer_0.mlp.linear_1.weight"] = torch.zeros(1)
    sd["encoder.layers.encoder_layer_0.mlp.linear_2.bias"] = torch.zeros(1)
    assert.are.same({"encoder.layers.encoder_layer_0.mlp.0.weight", "encoder.layers.encoder_layer_0.mlp.3.bias"},
      odict.keys(models.vit_convert_state_dict(sd)))
  end)

  describe("errors", function()
    it("name the option or argument at the caller's line", function()
      assert.are.equal("user.lua:1: bad option 'num_clases' to 'ResNet' (valid options: block, layers, " ..
        "num_classes, zero_init_residual, groups, width_per_group, replace_stride_with_dilation, norm_layer)",
        err_of("models.resnet50({num_clases = 10})"))
      assert.are.equal("user.lua:1: resnet50: pretrained weights are not downloaded; build the model and " ..
        "load_state_dict a torchvision state dict", err_of("models.resnet50({weights = 'IMAGENET1K_V1'})"))
      assert.are.equal("user.lua:1: ResNet: block must be models.BasicBlock or models.Bottleneck, got nil",
        err_of("models.ResNet(nil, {2, 2, 2, 2})"))
      assert.are.equal("user.lua:1: BasicBlock: only groups=1 and base_width=64 are supported",
        err_of("models.resnet18({groups = 2})"))
      assert.are.equal("user.lua:1: SqueezeNet: unsupported SqueezeNet version 1_2: 1_0 or 1_1 expected",
        err_of("models.SqueezeNet('1_2')"))
      assert.are.equal("user.lua:1: VisionTransformer: input shape indivisible by patch size",
        err_of("models.VisionTransformer(30, 8, 1, 2, 16, 32)"))
      assert.are.equal("user.lua:1: InvertedResidual: stride should be 1 or 2 instead of 3",
        err_of("models.InvertedResidual(8, 8, 3, 6)"))
      assert.are.equal("user.lua:1: StochasticDepth: mode has to be either 'batch' or 'row', but got col",
        err_of("models.StochasticDepth(0.1, 'col')"))
      assert.are.equal("user.lua:1: Conv2dNormActivation: norm_layer must be an nn class or a function " ..
        "returning a module, got string", err_of("models.Conv2dNormActivation(3, 8, {norm_layer = 'bn'})"))
      assert.are.equal("user.lua:1: EfficientNet: the inverted_residual_setting should not be empty",
        err_of("models.EfficientNet({}, 0.2)"))
      assert.are.equal("user.lua:1: bad argument #1 to 'densenet121' (table of options expected, got number)",
        err_of("models.densenet121(10)"))
    end)

    it("in forward name the module", function()
      local m = models.VisionTransformer(32, 8, 1, 2, 16, 32)
      local ok, e = pcall(m, torch.zeros(1, 3, 64, 64))
      assert.is_false(ok)
      assert.are.equal("wrong image height: expected 32, got 64", e)
      local d = models.DenseNet(8, {2, 3}, 16, 2)
      ok, e = pcall(d, torch.zeros(1, 3, 64))
      assert.is_false(ok)
      assert.matches("^error in forward of 'features%.conv0' %(Conv2d%): ", e)
    end)
  end)
end)
