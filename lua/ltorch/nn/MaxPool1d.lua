-- MaxPool1d.lua: 1-D max pooling over {N, C, L} or {C, L} (PyTorch's
-- nn.MaxPool1d); stride defaults to kernel_size. Sizes are kept as given
-- (a number or a 1-element list). With return_indices the forward also
-- returns the 1-based indices of the maxima along L. The math is F.max_pool1d.
local base = require("ltorch.nn.module")
local convnd = require("ltorch.nn.convnd")
local pool = require("ltorch.nn.pool")

local F = require("ltorch.nn.functional")

return base.module("MaxPool1d", {
  -- MaxPool1d(kernel_size [, stride, padding = 0, dilation = 1,
  -- return_indices = false, ceil_mode = false]) or a trailing table of those
  initialize = function(self, ...)
    local a = base.args("MaxPool1d", {"kernel_size", "stride", "padding", "dilation", "return_indices",
      "ceil_mode"}, ...)
    convnd.ntuple(a.kernel_size, 1, "kernel_size", "MaxPool1d")
    if a.stride ~= nil then convnd.ntuple(a.stride, 1, "stride", "MaxPool1d") end
    self.kernel_size = a.kernel_size
    self.stride = a.stride or a.kernel_size
    self.padding = a.padding or 0
    self.dilation = a.dilation or 1
    convnd.ntuple(self.padding, 1, "padding", "MaxPool1d")
    convnd.ntuple(self.dilation, 1, "dilation", "MaxPool1d")
    self.return_indices = a.return_indices == true
    self.ceil_mode = a.ceil_mode == true
  end,
  forward = function(self, x)
    return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
      self.return_indices)
  end,
  extra_repr = pool.max_repr,
}, {builtin = true})
