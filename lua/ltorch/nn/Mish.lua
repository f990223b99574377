-- Mish.lua: x * tanh(softplus(x)) (PyTorch's nn.Mish). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.mish.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("Mish", {
  -- Mish([inplace = false])
  initialize = function(self, ...)
    local a = base.args("Mish", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return F.mish(x) end,
  extra_repr = function(self) return self.inplace and "inplace=True" or "" end,
}, {builtin = true})
