-- ReLU6.lua: min(max(x, 0), 6) (PyTorch's nn.ReLU6). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.relu6.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("ReLU6", {
  -- ReLU6([inplace = false])
  initialize = function(self, ...)
    local a = base.args("ReLU6", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return F.relu6(x) end,
  extra_repr = function(self) return self.inplace and "inplace=True" or "" end,
}, {builtin = true})
