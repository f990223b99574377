-- SiLU.lua: x * sigmoid(x) (PyTorch's nn.SiLU). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.silu.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("SiLU", {
  -- SiLU([inplace = false])
  initialize = function(self, ...)
    local a = base.args("SiLU", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return F.silu(x) end,
  extra_repr = function(self) return self.inplace and "inplace=True" or "" end,
}, {builtin = true})
