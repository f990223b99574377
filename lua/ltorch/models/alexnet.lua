-- alexnet.lua: torchvision 0.14's AlexNet (torchvision/models/alexnet.py):
-- features.N (conv/relu/maxpool), avgpool = AdaptiveAvgPool2d(6, 6),
-- classifier.N (dropout/linear/relu). Layers keep their default init.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local nn = torch.nn

local M = {}

M.AlexNet = nn.module("AlexNet", {
  -- AlexNet([num_classes = 1000, dropout = 0.5]), usually as a table of those
  initialize = function(self, ...)
    local a = base.args("AlexNet", {"num_classes", "dropout"}, ...)
    local num_classes = a.num_classes or 1000
    local dropout = a.dropout or 0.5
    self.features = nn.Sequential(
      nn.Conv2d(3, 64, 11, {stride = 4, padding = 2}), nn.ReLU(true), nn.MaxPool2d(3, 2),
      nn.Conv2d(64, 192, 5, {padding = 2}), nn.ReLU(true), nn.MaxPool2d(3, 2),
      nn.Conv2d(192, 384, 3, {padding = 1}), nn.ReLU(true),
      nn.Conv2d(384, 256, 3, {padding = 1}), nn.ReLU(true),
      nn.Conv2d(256, 256, 3, {padding = 1}), nn.ReLU(true), nn.MaxPool2d(3, 2))
    self.avgpool = nn.AdaptiveAvgPool2d({6, 6})
    self.classifier = nn.Sequential(
      nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(true),
      nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(true),
      nn.Linear(4096, num_classes))
  end,
  forward = function(self, x)
    x = self.features(x)
    x = self.avgpool(x)
    x = x:flatten(2)
    return self.classifier(x)
  end,
}, {builtin = true, lib = "ltorch.models"})

return M
