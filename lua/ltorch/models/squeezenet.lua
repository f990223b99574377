-- squeezenet.lua: torchvision 0.14's SqueezeNet 1.0 and 1.1 (torchvision/
-- models/squeezenet.py): features = Sequential(conv, relu, maxpool (ceil
-- mode), Fire..., maxpools), classifier = Sequential(Dropout, final 1x1
-- conv, ReLU, AdaptiveAvgPool2d(1, 1)), flattened. A Fire is squeeze (1x1)
-- + relu, then the concatenation of expand1x1 and expand3x3 (each + relu).
-- Init as torchvision: convs kaiming-uniform, the final conv normal(0,
-- 0.01), biases 0.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local nn = torch.nn
local init = misc.init

local M = {}

M.Fire = base.module("Fire", {
  -- Fire(inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes)
  initialize = function(self, ...)
    local a = base.args("Fire", {"inplanes", "squeeze_planes", "expand1x1_planes", "expand3x3_planes"}, ...)
    self.inplanes = a.inplanes
    self.squeeze = nn.Conv2d(a.inplanes, a.squeeze_planes, 1)
    self.squeeze_activation = nn.ReLU(true)
    self.expand1x1 = nn.Conv2d(a.squeeze_planes, a.expand1x1_planes, 1)
    self.expand1x1_activation = nn.ReLU(true)
    self.expand3x3 = nn.Conv2d(a.squeeze_planes, a.expand3x3_planes, 3, {padding = 1})
    self.expand3x3_activation = nn.ReLU(true)
  end,
  forward = function(self, x)
    x = self.squeeze_activation(self.squeeze(x))
    return torch.cat({self.expand1x1_activation(self.expand1x1(x)),
      self.expand3x3_activation(self.expand3x3(x))}, 2)
  end,
}, misc.LIB)

local function pool() return nn.MaxPool2d(3, 2, {ceil_mode = true}) end

M.SqueezeNet = base.module("SqueezeNet", {
  -- SqueezeNet([version = "1_0", num_classes = 1000, dropout = 0.5])
  initialize = function(self, ...)
    local C = "SqueezeNet"
    local a = base.args(C, {"version", "num_classes", "dropout"}, ...)
    local version = a.version or "1_0"
    self.num_classes = a.num_classes or 1000
    local Fire = M.Fire
    if version == "1_0" then
      self.features = nn.Sequential(
        nn.Conv2d(3, 96, 7, {stride = 2}), nn.ReLU(true), pool(),
        Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
        Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
        pool(), Fire(512, 64, 256, 256))
    elseif version == "1_1" then
      self.features = nn.Sequential(
        nn.Conv2d(3, 64, 3, {stride = 2}), nn.ReLU(true), pool(),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
    else
      base.fail(C, "unsupported SqueezeNet version %s: 1_0 or 1_1 expected", tostring(version))
    end
    local final_conv = nn.Conv2d(512, self.num_classes, 1)
    self.classifier = nn.Sequential(nn.Dropout(a.dropout or 0.5), final_conv, nn.ReLU(true),
      nn.AdaptiveAvgPool2d({1, 1}))
    for _, m in ipairs(self:modules()) do
      if m:class_name() == "Conv2d" then
        if m == final_conv then init.normal_(m.weight, 0, 0.01) else init.kaiming_uniform_(m.weight) end
        if m.bias then init.zeros_(m.bias) end
      end
    end
  end,
  forward = function(self, x)
    return self.classifier(self.features(x)):flatten(2)
  end,
}, misc.LIB)

return M
