-- LeakyReLU.lua: max(x, 0) + negative_slope * min(x, 0) (PyTorch's
-- nn.LeakyReLU). inplace is accepted and recorded; the result is always a
-- new tensor. The math is F.leaky_relu.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("LeakyReLU", {
  -- LeakyReLU([negative_slope = 0.01, inplace = false])
  initialize = function(self, ...)
    local a = base.args("LeakyReLU", {"negative_slope", "inplace"}, ...)
    local slope = a.negative_slope or 1e-2
    base.check(type(slope) == "number", "LeakyReLU", "negative_slope must be a number, got %s", type(slope))
    self.negative_slope = slope
    self.inplace = a.inplace == true
  end,
  forward = function(self, x) return F.leaky_relu(x, self.negative_slope) end,
  extra_repr = function(self)
    return "negative_slope=" .. base.pyrepr(self.negative_slope) .. (self.inplace and ", inplace=True" or "")
  end,
}, {builtin = true})
