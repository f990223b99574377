-- SiLU.lua: x * sigmoid(x) (PyTorch's nn.SiLU). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.silu, the
-- class activation.lua's.
local F = require("ltorch.nn.functional")

-- SiLU([inplace = false])
return require("ltorch.nn.activation").inplace("SiLU", function(_, x) return F.silu(x) end)
