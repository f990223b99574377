-- AdaptiveAvgPool2d.lua: average pooling to a fixed output size (PyTorch's
-- nn.AdaptiveAvgPool2d); output_size is a number or an {h, w} pair.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("AdaptiveAvgPool2d", {
  -- AdaptiveAvgPool2d(output_size)
  initialize = function(self, ...)
    local a = base.args("AdaptiveAvgPool2d", {"output_size"}, ...)
    base.pair(a.output_size, "output_size", "AdaptiveAvgPool2d")
    self.output_size = a.output_size
  end,
  forward = function(self, x) return torch.adaptive_avg_pool2d(x, self.output_size) end,
  extra_repr = function(self) return "output_size=" .. base.pyrepr(self.output_size) end,
}, {builtin = true})
