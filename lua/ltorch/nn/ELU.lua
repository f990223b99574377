-- ELU.lua: x for x > 0, alpha * (exp(x) - 1) otherwise (PyTorch's nn.ELU).
-- inplace is accepted and recorded; the result is always a new tensor. The
-- math is F.elu, the class activation.lua's.
local F = require("ltorch.nn.functional")

-- ELU([alpha = 1.0, inplace = false])
return require("ltorch.nn.activation").scalar("ELU", "alpha", 1.0,
  function(self, x) return F.elu(x, self.alpha) end)
