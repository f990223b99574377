-- ReLU6.lua: min(max(x, 0), 6) (PyTorch's nn.ReLU6). inplace is accepted and
-- recorded; the result is always a new tensor. The math is F.relu6, the
-- class activation.lua's.
local F = require("ltorch.nn.functional")

-- ReLU6([inplace = false])
return require("ltorch.nn.activation").inplace("ReLU6", function(_, x) return F.relu6(x) end)
