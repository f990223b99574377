-- Flatten.lua: flattens dims start_dim..end_dim (1-based; the defaults 2 and
-- -1 keep the batch dim, as PyTorch's nn.Flatten(1, -1)).
local base = require("ltorch.nn.module")

return base.module("Flatten", {
  -- Flatten([start_dim = 2, end_dim = -1])
  initialize = function(self, ...)
    local a = base.args("Flatten", {"start_dim", "end_dim"}, ...)
    self.start_dim = a.start_dim or 2
    self.end_dim = a.end_dim or -1
  end,
  forward = function(self, x) return x:flatten(self.start_dim, self.end_dim) end,
  extra_repr = function(self)
    return string.format("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim)
  end,
}, {builtin = true})
