-- ELU.lua: x for x > 0, alpha * (exp(x) - 1) otherwise (PyTorch's nn.ELU).
-- inplace is accepted and recorded; the result is always a new tensor. The
-- math is F.elu.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("ELU", {
  -- ELU([alpha = 1.0, inplace = false])
  initialize = function(self, ...)
    local a = base.args("ELU", {"alpha", "inplace"}, ...)
    local alpha = a.alpha or 1.0
    base.check(type(alpha) == "number", "ELU", "alpha must be a number, got %s", type(alpha))
    self.alpha = alpha
    self.inplace = a.inplace == true
  end,
  forward = function(self, x) return F.elu(x, self.alpha) end,
  extra_repr = function(self)
    return "alpha=" .. base.pyrepr(self.alpha) .. (self.inplace and ", inplace=True" or "")
  end,
}, {builtin = true})
