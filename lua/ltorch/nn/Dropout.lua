-- Dropout.lua: zeroes elements with probability p in training mode and
-- scales the rest by 1/(1-p); the identity in eval mode (PyTorch's nn.Dropout).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Dropout", {
  -- Dropout([p = 0.5, inplace = false])
  initialize = function(self, ...)
    local a = base.args("Dropout", {"p", "inplace"}, ...)
    local p = a.p or 0.5
    if type(p) ~= "number" or p < 0 or p > 1 then
      base.raise("dropout probability has to be between 0 and 1, but got " .. tostring(p))
    end
    self.p = p
    self.inplace = a.inplace == true
  end,
  forward = function(self, x)
    return torch.dropout(x, self.p, self.training)
  end,
  extra_repr = function(self)
    return string.format("p=%s, inplace=%s", base.pyrepr(self.p + 0.0), base.pyrepr(self.inplace))
  end,
}, {builtin = true})
