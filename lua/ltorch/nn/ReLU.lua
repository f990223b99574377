-- ReLU.lua: element-wise max(x, 0) (PyTorch's nn.ReLU). inplace is accepted and recorded;
-- the result is always a new tensor. The class is activation.lua's.
local torch = require("ltorch")

-- ReLU([inplace = false])
return require("ltorch.nn.activation").inplace("ReLU", function(_, x) return torch.relu(x) end)
