-- Tanh.lua: element-wise tanh (PyTorch's nn.Tanh).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Tanh", {
  forward = function(_, x) return torch.tanh(x) end,
}, {builtin = true})
