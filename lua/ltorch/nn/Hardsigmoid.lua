-- Hardsigmoid.lua: relu6(x + 3) / 6 (PyTorch's nn.Hardsigmoid). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.hardsigmoid, the
-- class activation.lua's (PyTorch's repr does not show inplace).
local F = require("ltorch.nn.functional")

-- Hardsigmoid([inplace = false])
return require("ltorch.nn.activation").inplace("Hardsigmoid", function(_, x) return F.hardsigmoid(x) end, false)
