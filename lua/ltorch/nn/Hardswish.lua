-- Hardswish.lua: x * relu6(x + 3) / 6 (PyTorch's nn.Hardswish). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.hardswish.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("Hardswish", {
  -- Hardswish([inplace = false])
  initialize = function(self, ...)
    local a = base.args("Hardswish", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return F.hardswish(x) end,
  -- PyTorch's repr does not show inplace
}, {builtin = true})
