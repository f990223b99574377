-- AdaptiveAvgPool1d.lua: average pooling of {N, C, L} or {C, L} to a fixed
-- length (PyTorch's nn.AdaptiveAvgPool1d); output_size is a number or a
-- 1-element list, kept as given. The math is F.adaptive_avg_pool1d.
local base = require("ltorch.nn.module")
local convnd = require("ltorch.nn.convnd")

local F = require("ltorch.nn.functional")

return base.module("AdaptiveAvgPool1d", {
  -- AdaptiveAvgPool1d(output_size)
  initialize = function(self, ...)
    local a = base.args("AdaptiveAvgPool1d", {"output_size"}, ...)
    convnd.ntuple(a.output_size, 1, "output_size", "AdaptiveAvgPool1d")
    self.output_size = a.output_size
  end,
  forward = function(self, x) return F.adaptive_avg_pool1d(x, self.output_size) end,
  extra_repr = function(self) return "output_size=" .. base.pyrepr(self.output_size) end,
}, {builtin = true})
