-- Tanh.lua: element-wise tanh (PyTorch's nn.Tanh).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Tanh", {
  -- Tanh(): no arguments, no options
  initialize = function(_, ...) base.args("Tanh", {}, ...) end,
  forward = function(_, x) return torch.tanh(x) end,
}, {builtin = true})
