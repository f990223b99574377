-- mobilenet.lua: torchvision 0.14's MobileNetV2 (torchvision/models/
-- mobilenetv2.py): features = Sequential(Conv2dNormActivation(3, 32, stride
-- 2), InvertedResidual..., Conv2dNormActivation(320, 1280, 1)), then global
-- average pooling and classifier = Sequential(Dropout, Linear). An
-- InvertedResidual is conv = Sequential([expand 1x1 ConvNormAct,] depthwise
-- 3x3 ConvNormAct, Conv2d 1x1, norm), with a residual connection when the
-- stride is 1 and the channels are kept. Activations ReLU6. Init as
-- torchvision: convs kaiming-normal (fan_out), norms 1/0, Linear normal(0,
-- 0.01) with zero bias.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local nn = torch.nn
local init = misc.init

local M = {}

-- torchvision's _make_divisible(v, divisor [, min_value]): v rounded to the
-- nearest multiple of divisor, at least min_value, never 10% below v
function M.make_divisible(v, divisor, min_value)
  min_value = min_value or divisor
  local new_v = math.max(min_value, math.floor(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v then new_v = new_v + divisor end
  return math.tointeger(new_v) or new_v
end

-- Python's round(x) (halves to even), for x >= 0
local function pyround(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end
  return f
end

local function norm_of(v, class)
  if v == nil or misc.is_none(v) then return nn.BatchNorm2d end
  return misc.factory(v, "norm_layer", class)
end

M.InvertedResidual = base.module("InvertedResidual", {
  -- InvertedResidual(inp, oup, stride, expand_ratio [, norm_layer = nn.BatchNorm2d])
  initialize = function(self, ...)
    local C = "InvertedResidual"
    local a = base.args(C, {"inp", "oup", "stride", "expand_ratio", "norm_layer"}, ...)
    local stride = a.stride
    base.check(stride == 1 or stride == 2, C, "stride should be 1 or 2 instead of %s", tostring(stride))
    local norm_layer = norm_of(a.norm_layer, C)
    local hidden = pyround(a.inp * a.expand_ratio)
    self.stride = stride
    self.use_res_connect = stride == 1 and a.inp == a.oup
    local layers = {}
    if a.expand_ratio ~= 1 then
      layers[#layers + 1] = misc.Conv2dNormActivation(a.inp, hidden, {kernel_size = 1,
        norm_layer = norm_layer, activation_layer = nn.ReLU6})
    end
    layers[#layers + 1] = misc.Conv2dNormActivation(hidden, hidden, {stride = stride, groups = hidden,
      norm_layer = norm_layer, activation_layer = nn.ReLU6})
    layers[#layers + 1] = nn.Conv2d(hidden, a.oup, 1, 1, 0, {bias = false})
    layers[#layers + 1] = norm_layer(a.oup)
    self.conv = nn.Sequential(table.unpack(layers))
    self.out_channels = a.oup
  end,
  forward = function(self, x)
    if self.use_res_connect then return x + self.conv(x) end
    return self.conv(x)
  end,
}, misc.LIB)

local DEFAULT_SETTING = {
  -- t (expansion), c (channels), n (blocks), s (stride of the first)
  {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
}

M.MobileNetV2 = base.module("MobileNetV2", {
  -- MobileNetV2([num_classes = 1000, width_mult = 1.0, inverted_residual_setting
  -- = {{t, c, n, s}...}, round_nearest = 8, block = models.InvertedResidual,
  -- norm_layer = nn.BatchNorm2d, dropout = 0.2]), usually as a table of those
  initialize = function(self, ...)
    local C = "MobileNetV2"
    local a = base.args(C, {"num_classes", "width_mult", "inverted_residual_setting", "round_nearest",
      "block", "norm_layer", "dropout"}, ...)
    local block = a.block
    if block == nil or misc.is_none(block) then block = M.InvertedResidual
    else block = misc.factory(block, "block", C) end
    local norm_layer = norm_of(a.norm_layer, C)
    local width_mult = a.width_mult or 1.0
    local round_nearest = a.round_nearest or 8
    local setting = a.inverted_residual_setting
    if setting == nil or misc.is_none(setting) then setting = DEFAULT_SETTING end
    base.check(type(setting) == "table" and #setting > 0 and type(setting[1]) == "table" and #setting[1] == 4, C,
      "inverted_residual_setting should be a non-empty list of {t, c, n, s} lists")
    local input_channel = M.make_divisible(32 * width_mult, round_nearest)
    self.last_channel = M.make_divisible(1280 * math.max(1.0, width_mult), round_nearest)
    local features = {misc.Conv2dNormActivation(3, input_channel, {stride = 2, norm_layer = norm_layer,
      activation_layer = nn.ReLU6})}
    for _, row in ipairs(setting) do
      local t, c, n, s = row[1], row[2], row[3], row[4]
      local output_channel = M.make_divisible(c * width_mult, round_nearest)
      for i = 1, n do
        features[#features + 1] = block(input_channel, output_channel, i == 1 and s or 1,
          {expand_ratio = t, norm_layer = norm_layer})
        input_channel = output_channel
      end
    end
    features[#features + 1] = misc.Conv2dNormActivation(input_channel, self.last_channel, {kernel_size = 1,
      norm_layer = norm_layer, activation_layer = nn.ReLU6})
    self.features = nn.Sequential(table.unpack(features))
    self.classifier = nn.Sequential(nn.Dropout(a.dropout or 0.2), nn.Linear(self.last_channel, a.num_classes or 1000))
    misc.init_mobile(self, function(w) init.normal_(w, 0, 0.01) end)
  end,
  forward = function(self, x)
    x = self.features(x)
    x = torch.adaptive_avg_pool2d(x, {1, 1}):flatten(2)
    return self.classifier(x)
  end,
}, misc.LIB)

return M
