-- LeakyReLU.lua: max(x, 0) + negative_slope * min(x, 0) (PyTorch's
-- nn.LeakyReLU). inplace is accepted and recorded; the result is always a
-- new tensor. The math is F.leaky_relu, the class activation.lua's.
local F = require("ltorch.nn.functional")

-- LeakyReLU([negative_slope = 0.01, inplace = false])
return require("ltorch.nn.activation").scalar("LeakyReLU", "negative_slope", 1e-2,
  function(self, x) return F.leaky_relu(x, self.negative_slope) end)
