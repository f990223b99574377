-- Hardswish.lua: x * relu6(x + 3) / 6 (PyTorch's nn.Hardswish). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.hardswish, the
-- class activation.lua's (PyTorch's repr does not show inplace).
local F = require("ltorch.nn.functional")

-- Hardswish([inplace = false])
return require("ltorch.nn.activation").inplace("Hardswish", function(_, x) return F.hardswish(x) end, false)
