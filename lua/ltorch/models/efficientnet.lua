-- efficientnet.lua: torchvision 0.14's EfficientNet (torchvision/models/
-- efficientnet.py): features = Sequential(stem Conv2dNormActivation(3, c,
-- stride 2, SiLU), one Sequential of blocks per stage, head 1x1
-- Conv2dNormActivation), avgpool, classifier = Sequential(Dropout, Linear).
-- An MBConv is block = Sequential([expand 1x1 ConvNormAct,] depthwise
-- ConvNormAct, SqueezeExcitation (SiLU, Sigmoid), project 1x1 ConvNormAct
-- without activation) and stochastic_depth, the residual taken when the
-- stride is 1 and the channels are kept (FusedMBConv, of EfficientNetV2,
-- fuses the expand and depthwise convs). Stochastic depth grows linearly
-- over the blocks; it is the identity in eval mode. Init as torchvision:
-- convs kaiming-normal (fan_out), norms 1/0, Linear uniform(+-1/sqrt(out))
-- with zero bias.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local make_divisible = require("ltorch.models.mobilenet").make_divisible
local nn = torch.nn
local init = misc.init

local M = {}

-- block configurations (torchvision's MBConvConfig / FusedMBConvConfig):
-- plain tables with the fields expand_ratio kernel stride input_channels
-- out_channels num_layers block, marked by a metatable
local CONFIG = {__name = "ltorch.models.MBConvConfig"}
CONFIG.__index = CONFIG

function M.adjust_channels(channels, width_mult, min_value)
  return make_divisible(channels * width_mult, 8, min_value)
end

function M.adjust_depth(num_layers, depth_mult)
  return math.tointeger(math.ceil(num_layers * depth_mult))
end

-- MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels,
-- num_layers [, width_mult = 1.0, depth_mult = 1.0, block = models.MBConv])
function M.MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers,
                        width_mult, depth_mult, block)
  width_mult, depth_mult = width_mult or 1.0, depth_mult or 1.0
  return setmetatable({expand_ratio = expand_ratio, kernel = kernel, stride = stride,
    input_channels = M.adjust_channels(input_channels, width_mult),
    out_channels = M.adjust_channels(out_channels, width_mult),
    num_layers = M.adjust_depth(num_layers, depth_mult), block = block or M.MBConv}, CONFIG)
end

-- FusedMBConvConfig(expand_ratio, kernel, stride, input_channels,
-- out_channels, num_layers [, block = models.FusedMBConv])
function M.FusedMBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block)
  return setmetatable({expand_ratio = expand_ratio, kernel = kernel, stride = stride,
    input_channels = input_channels, out_channels = out_channels, num_layers = num_layers,
    block = block or M.FusedMBConv}, CONFIG)
end

local function is_config(v) return getmetatable(v) == CONFIG end

local function copy_config(c)
  local o = {}
  for k, v in pairs(c) do o[k] = v end
  return setmetatable(o, CONFIG)
end

-- the common checks of MBConv and FusedMBConv: returns cnf, sd_prob, norm_layer
local function block_args(C, names, ...)
  local a = base.args(C, names, ...)
  base.check(is_config(a.cnf), C, "cnf must be a block configuration (models.MBConvConfig), got %s", type(a.cnf))
  base.check(a.cnf.stride == 1 or a.cnf.stride == 2, C, "illegal stride value")
  base.check(type(a.stochastic_depth_prob) == "number", C, "stochastic_depth_prob must be a number")
  return a, misc.factory(a.norm_layer, "norm_layer", C)
end

local function silu_inplace() return nn.SiLU(true) end

M.MBConv = base.module("MBConv", {
  -- MBConv(cnf, stochastic_depth_prob, norm_layer [, se_layer = models.SqueezeExcitation])
  initialize = function(self, ...)
    local C = "MBConv"
    local a, norm_layer = block_args(C, {"cnf", "stochastic_depth_prob", "norm_layer", "se_layer"}, ...)
    local cnf = a.cnf
    local se_layer = misc.factory(a.se_layer or misc.SqueezeExcitation, "se_layer", C)
    self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
    local layers = {}
    local expanded = M.adjust_channels(cnf.input_channels, cnf.expand_ratio)
    if expanded ~= cnf.input_channels then
      layers[#layers + 1] = misc.Conv2dNormActivation(cnf.input_channels, expanded, {kernel_size = 1,
        norm_layer = norm_layer, activation_layer = nn.SiLU})
    end
    layers[#layers + 1] = misc.Conv2dNormActivation(expanded, expanded, {kernel_size = cnf.kernel,
      stride = cnf.stride, groups = expanded, norm_layer = norm_layer, activation_layer = nn.SiLU})
    local squeeze = math.max(1, cnf.input_channels // 4)
    layers[#layers + 1] = se_layer(expanded, squeeze, {activation = silu_inplace})
    layers[#layers + 1] = misc.Conv2dNormActivation(expanded, cnf.out_channels, {kernel_size = 1,
      norm_layer = norm_layer, activation_layer = false})
    self.block = nn.Sequential(table.unpack(layers))
    self.stochastic_depth = misc.StochasticDepth(a.stochastic_depth_prob, "row")
    self.out_channels = cnf.out_channels
  end,
  forward = function(self, x)
    local result = self.block(x)
    if self.use_res_connect then result = self.stochastic_depth(result) + x end
    return result
  end,
}, misc.LIB)

M.FusedMBConv = base.module("FusedMBConv", {
  -- FusedMBConv(cnf, stochastic_depth_prob, norm_layer)
  initialize = function(self, ...)
    local C = "FusedMBConv"
    local a, norm_layer = block_args(C, {"cnf", "stochastic_depth_prob", "norm_layer"}, ...)
    local cnf = a.cnf
    self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
    local layers = {}
    local expanded = M.adjust_channels(cnf.input_channels, cnf.expand_ratio)
    if expanded ~= cnf.input_channels then
      layers[#layers + 1] = misc.Conv2dNormActivation(cnf.input_channels, expanded, {kernel_size = cnf.kernel,
        stride = cnf.stride, norm_layer = norm_layer, activation_layer = nn.SiLU})
      layers[#layers + 1] = misc.Conv2dNormActivation(expanded, cnf.out_channels, {kernel_size = 1,
        norm_layer = norm_layer, activation_layer = false})
    else
      layers[#layers + 1] = misc.Conv2dNormActivation(cnf.input_channels, cnf.out_channels, {
        kernel_size = cnf.kernel, stride = cnf.stride, norm_layer = norm_layer, activation_layer = nn.SiLU})
    end
    self.block = nn.Sequential(table.unpack(layers))
    self.stochastic_depth = misc.StochasticDepth(a.stochastic_depth_prob, "row")
    self.out_channels = cnf.out_channels
  end,
  forward = M.MBConv.methods.forward,
}, misc.LIB)

M.EfficientNet = base.module("EfficientNet", {
  -- EfficientNet(inverted_residual_setting, dropout [, stochastic_depth_prob
  -- = 0.2, num_classes = 1000, norm_layer = nn.BatchNorm2d, last_channel =
  -- 4 * the last stage's channels]): the setting is a list of
  -- models.MBConvConfig / models.FusedMBConvConfig
  initialize = function(self, ...)
    local C = "EfficientNet"
    local a = base.args(C, {"inverted_residual_setting", "dropout", "stochastic_depth_prob", "num_classes",
      "norm_layer", "last_channel"}, ...)
    local setting = a.inverted_residual_setting
    base.check(type(setting) == "table" and #setting > 0, C, "the inverted_residual_setting should not be empty")
    for _, c in ipairs(setting) do
      base.check(is_config(c), C, "the inverted_residual_setting should be a list of models.MBConvConfig")
    end
    base.check(type(a.dropout) == "number", C, "dropout must be a number, got %s", type(a.dropout))
    local norm_layer = a.norm_layer
    if norm_layer == nil or misc.is_none(norm_layer) then norm_layer = nn.BatchNorm2d
    else norm_layer = misc.factory(norm_layer, "norm_layer", C) end
    local sdp = a.stochastic_depth_prob or 0.2
    local layers = {misc.Conv2dNormActivation(3, setting[1].input_channels, {kernel_size = 3, stride = 2,
      norm_layer = norm_layer, activation_layer = nn.SiLU})}
    local total = 0
    for _, c in ipairs(setting) do total = total + c.num_layers end
    local id = 0
    for _, cnf in ipairs(setting) do
      local stage = {}
      for _ = 1, cnf.num_layers do
        local bc = copy_config(cnf)
        if #stage > 0 then
          bc.input_channels = bc.out_channels
          bc.stride = 1
        end
        stage[#stage + 1] = bc.block(bc, sdp * id / total, norm_layer)
        id = id + 1
      end
      layers[#layers + 1] = nn.Sequential(table.unpack(stage))
    end
    local last_in = setting[#setting].out_channels
    local last_out = a.last_channel
    if last_out == nil or misc.is_none(last_out) then last_out = 4 * last_in end
    layers[#layers + 1] = misc.Conv2dNormActivation(last_in, last_out, {kernel_size = 1,
      norm_layer = norm_layer, activation_layer = nn.SiLU})
    self.features = nn.Sequential(table.unpack(layers))
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.classifier = nn.Sequential(nn.Dropout(a.dropout, true), nn.Linear(last_out, a.num_classes or 1000))
    misc.init_mobile(self, function(w, m)
      local r = 1 / math.sqrt(m.out_features)
      init.uniform_(w, -r, r)
    end)
  end,
  forward = function(self, x)
    x = self.avgpool(self.features(x)):flatten(2)
    return self.classifier(x)
  end,
}, misc.LIB)

-- the inverted_residual_setting of efficientnet_b0..b7 (torchvision's
-- _efficientnet_conf) for a width and a depth multiplier
function M.b_setting(width_mult, depth_mult)
  local function c(...)
    local t = {...}
    return M.MBConvConfig(t[1], t[2], t[3], t[4], t[5], t[6], width_mult, depth_mult)
  end
  return {
    c(1, 3, 1, 32, 16, 1), c(6, 3, 2, 16, 24, 2), c(6, 5, 2, 24, 40, 2), c(6, 3, 2, 40, 80, 3),
    c(6, 5, 1, 80, 112, 3), c(6, 5, 2, 112, 192, 4), c(6, 3, 1, 192, 320, 1),
  }
end

return M
