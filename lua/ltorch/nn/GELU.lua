-- GELU.lua: x * Phi(x) (PyTorch's nn.GELU); approximate = "none" or "tanh".
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("GELU", {
  -- GELU([approximate = "none"])
  initialize = function(self, ...)
    local a = base.args("GELU", {"approximate"}, ...)
    local ap = a.approximate or "none"
    if ap ~= "none" and ap ~= "tanh" then
      base.fail("GELU", "approximate must be 'none' or 'tanh', got '%s'", tostring(ap))
    end
    self.approximate = ap
  end,
  forward = function(self, x) return torch.gelu(x, self.approximate) end,
  extra_repr = function(self) return "approximate='" .. self.approximate .. "'" end,
}, {builtin = true})
