-- Hardsigmoid.lua: relu6(x + 3) / 6 (PyTorch's nn.Hardsigmoid). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.hardsigmoid.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("Hardsigmoid", {
  -- Hardsigmoid([inplace = false])
  initialize = function(self, ...)
    local a = base.args("Hardsigmoid", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return F.hardsigmoid(x) end,
  -- PyTorch's repr does not show inplace
}, {builtin = true})
