-- models: torchvision 0.14's architectures in Lua (require("ltorch.models")
-- or torch.models), with torchvision's module trees, parameter names and
-- constructor arguments, so that its state dicts load strictly:
-- models.resnet50(), models.vit_b_16({num_classes = 10}). The factories take
-- torchvision's keyword arguments in a table; weights (pretrained
-- downloads) is not supported: load a state dict instead.
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local alexnet = require("ltorch.models.alexnet")
local resnet = require("ltorch.models.resnet")
local mobilenet = require("ltorch.models.mobilenet")
local efficientnet = require("ltorch.models.efficientnet")
local densenet = require("ltorch.models.densenet")
local squeezenet = require("ltorch.models.squeezenet")
local vit = require("ltorch.models.vit")

local M = {}

-- the classes, and torchvision's helpers a custom model is built from
M.AlexNet = alexnet.AlexNet
M.ResNet, M.BasicBlock, M.Bottleneck = resnet.ResNet, resnet.BasicBlock, resnet.Bottleneck
M.MobileNetV2, M.InvertedResidual = mobilenet.MobileNetV2, mobilenet.InvertedResidual
M.EfficientNet, M.MBConv, M.FusedMBConv = efficientnet.EfficientNet, efficientnet.MBConv, efficientnet.FusedMBConv
M.MBConvConfig, M.FusedMBConvConfig = efficientnet.MBConvConfig, efficientnet.FusedMBConvConfig
M.DenseNet, M._DenseLayer, M._DenseBlock, M._Transition =
  densenet.DenseNet, densenet._DenseLayer, densenet._DenseBlock, densenet._Transition
M.SqueezeNet, M.Fire = squeezenet.SqueezeNet, squeezenet.Fire
M.VisionTransformer, M.Encoder, M.EncoderBlock, M.MLPBlock, M.ConvStemConfig =
  vit.VisionTransformer, vit.Encoder, vit.EncoderBlock, vit.MLPBlock, vit.ConvStemConfig
M.Conv2dNormActivation, M.SqueezeExcitation, M.StochasticDepth, M.MLP =
  misc.Conv2dNormActivation, misc.SqueezeExcitation, misc.StochasticDepth, misc.MLP
M.make_divisible = mobilenet.make_divisible
M.init = misc.init

-- key renamings torchvision applies to its older checkpoints
M.densenet_convert_state_dict = densenet.convert_state_dict
M.vit_convert_state_dict = vit.convert_state_dict

-- a factory's keyword table, checked for torchvision's weights/progress
-- (only weights = nil is supported); returns a copy without them
local function factory_opts(name, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    base.raise(string.format("bad argument #1 to '%s' (table of options expected, got %s)", name, type(opts)))
  end
  local out = {}
  for k, v in pairs(opts) do
    if type(k) ~= "string" then
      base.raise(string.format("bad argument #1 to '%s' (options must have string keys, got %s)", name, type(k)))
    end
    out[k] = v
  end
  if out.weights ~= nil and not misc.is_none(out.weights) then
    base.fail(name, "pretrained weights are not downloaded; build the model and load_state_dict a " ..
      "torchvision state dict")
  end
  out.weights, out.progress = nil, nil
  return out
end

-- a factory's options, or nothing when empty (so that a class taking
-- positional arguments sees none)
local function pass(opts)
  if next(opts) == nil then return nil end
  return opts
end

-- alexnet([{num_classes = 1000, dropout = 0.5}])
function M.alexnet(opts) return alexnet.AlexNet(pass(factory_opts("alexnet", opts))) end

-- resnet18/34/50([{num_classes = 1000, zero_init_residual, groups,
-- width_per_group, replace_stride_with_dilation, norm_layer}])
function M.resnet18(opts)
  return resnet.ResNet(resnet.BasicBlock, {2, 2, 2, 2}, pass(factory_opts("resnet18", opts)))
end
function M.resnet34(opts)
  return resnet.ResNet(resnet.BasicBlock, {3, 4, 6, 3}, pass(factory_opts("resnet34", opts)))
end
function M.resnet50(opts)
  return resnet.ResNet(resnet.Bottleneck, {3, 4, 6, 3}, pass(factory_opts("resnet50", opts)))
end

-- mobilenet_v2([{num_classes = 1000, width_mult = 1.0, ..., dropout = 0.2}])
function M.mobilenet_v2(opts)
  return mobilenet.MobileNetV2(pass(factory_opts("mobilenet_v2", opts)))
end

-- efficientnet_b0([{num_classes = 1000, stochastic_depth_prob = 0.2, norm_layer}])
function M.efficientnet_b0(opts)
  return efficientnet.EfficientNet(efficientnet.b_setting(1.0, 1.0), 0.2,
    pass(factory_opts("efficientnet_b0", opts)))
end

-- densenet121([{num_classes = 1000, drop_rate = 0, memory_efficient = false, ...}])
function M.densenet121(opts)
  local o = factory_opts("densenet121", opts)
  return densenet.DenseNet(32, {6, 12, 24, 16}, 64, pass(o))
end

-- squeezenet1_0 / squeezenet1_1([{num_classes = 1000, dropout = 0.5}])
function M.squeezenet1_0(opts) return squeezenet.SqueezeNet("1_0", pass(factory_opts("squeezenet1_0", opts))) end
function M.squeezenet1_1(opts) return squeezenet.SqueezeNet("1_1", pass(factory_opts("squeezenet1_1", opts))) end

-- vit_b_16([{image_size = 224, num_classes = 1000, dropout, attention_dropout,
-- representation_size, norm_layer, conv_stem_configs}])
function M.vit_b_16(opts)
  local o = factory_opts("vit_b_16", opts)
  local image_size = o.image_size or 224
  o.image_size = nil
  return vit.VisionTransformer(image_size, 16, 12, 12, 768, 3072, pass(o))
end

return M
