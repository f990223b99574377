-- Softmax.lua: softmax along dim (1-based, negative counts from the end),
-- PyTorch's nn.Softmax; dim is required.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Softmax", {
  -- Softmax(dim)
  initialize = function(self, ...)
    local a = base.args("Softmax", {"dim"}, ...)
    if math.type(a.dim) ~= "integer" then
      base.raise("bad argument #1 to 'Softmax' (dim expected, got " .. type(a.dim) .. ")")
    end
    self.dim = a.dim
  end,
  forward = function(self, x) return torch.softmax(x, self.dim) end,
  extra_repr = function(self) return "dim=" .. self.dim end,
}, {builtin = true})
