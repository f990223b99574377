-- AvgPool2d.lua: 2-D average pooling (PyTorch's nn.AvgPool2d); stride
-- defaults to kernel_size.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pool = require("ltorch.nn.pool")

return base.module("AvgPool2d", {
  -- AvgPool2d(kernel_size [, stride, padding = 0, ceil_mode = false,
  -- count_include_pad = true]) or a trailing table of those
  initialize = function(self, ...)
    local a = base.args("AvgPool2d", {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
      "divisor_override"}, ...)
    if a.divisor_override ~= nil then base.fail("AvgPool2d", "divisor_override is not supported") end
    base.pair(a.kernel_size, "kernel_size", "AvgPool2d")
    self.kernel_size = a.kernel_size
    self.stride = a.stride or a.kernel_size
    self.padding = a.padding or 0
    self.ceil_mode = a.ceil_mode == true
    self.count_include_pad = a.count_include_pad ~= false
  end,
  forward = function(self, x)
    return torch.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
      self.count_include_pad)
  end,
  extra_repr = pool.avg_repr,
}, {builtin = true})
