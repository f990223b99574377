-- AvgPool1d.lua: 1-D average pooling over {N, C, L} or {C, L} (PyTorch's
-- nn.AvgPool1d); stride defaults to kernel_size. Sizes are kept as
-- 1-element lists, as PyTorch's tuples ((3,)). The math is F.avg_pool1d.
local base = require("ltorch.nn.module")
local convnd = require("ltorch.nn.convnd")
local pool = require("ltorch.nn.pool")

local F = require("ltorch.nn.functional")

return base.module("AvgPool1d", {
  -- AvgPool1d(kernel_size [, stride, padding = 0, ceil_mode = false,
  -- count_include_pad = true]) or a trailing table of those
  initialize = function(self, ...)
    local a = base.args("AvgPool1d", {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}, ...)
    self.kernel_size = convnd.ntuple(a.kernel_size, 1, "kernel_size", "AvgPool1d")
    self.stride = convnd.ntuple(a.stride or a.kernel_size, 1, "stride", "AvgPool1d")
    self.padding = convnd.ntuple(a.padding or 0, 1, "padding", "AvgPool1d")
    self.ceil_mode = a.ceil_mode == true
    self.count_include_pad = a.count_include_pad ~= false
  end,
  forward = function(self, x)
    return F.avg_pool1d(x, self.kernel_size[1], self.stride[1], self.padding[1], self.ceil_mode,
      self.count_include_pad)
  end,
  extra_repr = pool.avg_repr,
}, {builtin = true})
