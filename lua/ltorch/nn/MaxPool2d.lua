-- MaxPool2d.lua: 2-D max pooling (PyTorch's nn.MaxPool2d); stride defaults
-- to kernel_size. Sizes are numbers or {h, w} pairs, kept as given.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pool = require("ltorch.nn.pool")

return base.module("MaxPool2d", {
  -- MaxPool2d(kernel_size [, stride, padding = 0, dilation = 1,
  -- return_indices = false, ceil_mode = false]) or a trailing table of those
  initialize = function(self, ...)
    local a = base.args("MaxPool2d", {"kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"}, ...)
    if a.return_indices then base.fail("MaxPool2d", "return_indices is not supported") end
    base.pair(a.kernel_size, "kernel_size", "MaxPool2d")
    self.kernel_size = a.kernel_size
    self.stride = a.stride or a.kernel_size
    self.padding = a.padding or 0
    self.dilation = a.dilation or 1
    self.return_indices = false
    self.ceil_mode = a.ceil_mode == true
  end,
  forward = function(self, x)
    return torch.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
  end,
  extra_repr = pool.max_repr,
}, {builtin = true})
