-- ReLU.lua: element-wise max(x, 0) (PyTorch's nn.ReLU). inplace is accepted and recorded;
-- the result is always a new tensor.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("ReLU", {
  -- ReLU([inplace = false])
  initialize = function(self, ...)
    local a = base.args("ReLU", {"inplace"}, ...)
    self.inplace = a.inplace == true
  end,
  forward = function(_, x) return torch.relu(x) end,
  extra_repr = function(self) return self.inplace and "inplace=True" or "" end,
}, {builtin = true})
