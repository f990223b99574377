-- Mish.lua: x * tanh(softplus(x)) (PyTorch's nn.Mish). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.mish, the
-- class activation.lua's.
local F = require("ltorch.nn.functional")

-- Mish([inplace = false])
return require("ltorch.nn.activation").inplace("Mish", function(_, x) return F.mish(x) end)
