-- Sigmoid.lua: element-wise 1/(1+exp(-x)) (PyTorch's nn.Sigmoid).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Sigmoid", {
  -- Sigmoid(): no arguments, no options
  initialize = function(_, ...) base.args("Sigmoid", {}, ...) end,
  forward = function(_, x) return torch.sigmoid(x) end,
}, {builtin = true})
