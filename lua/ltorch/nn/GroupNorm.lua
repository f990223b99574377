-- GroupNorm.lua: group normalisation over {N, C, ...} (PyTorch's
-- nn.GroupNorm): the C channels in num_groups groups, each normalised by its
-- own mean and variance, then weight (ones) and bias (zeros) per channel
-- (norm.lua). The math is F.group_norm.
local base = require("ltorch.nn.module")
local norm = require("ltorch.nn.norm")
local pyrepr = base.pyrepr

local F = require("ltorch.nn.functional")

return base.module("GroupNorm", {
  -- GroupNorm(num_groups, num_channels [, eps = 1e-5, affine = true, device, dtype])
  initialize = function(self, ...)
    local a = base.args("GroupNorm", {"num_groups", "num_channels", "eps", "affine", "device", "dtype"}, ...)
    local g, c = a.num_groups, a.num_channels
    base.check(math.type(g) == "integer" and g > 0, "GroupNorm", "num_groups must be a positive integer")
    base.check(math.type(c) == "integer", "GroupNorm", "num_channels must be an integer")
    base.check(c % g == 0, "GroupNorm", "num_channels must be divisible by num_groups")
    self.num_groups, self.num_channels = g, c
    norm.affine(self, a, "affine", c)
  end,
  forward = function(self, x) return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps) end,
  extra_repr = function(self)
    return string.format("%d, %d, eps=%s, affine=%s", self.num_groups, self.num_channels,
      pyrepr(self.eps), pyrepr(self.affine))
  end,
}, {builtin = true})
