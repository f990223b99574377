-- NonDynamicallyQuantizableLinear.lua: the Linear that MultiheadAttention
-- holds as out_proj (PyTorch's torch.nn.modules.linear class of that name):
-- a Linear in every respect, under PyTorch's class name, so that the repr
-- of an attention layer reads as PyTorch's does.
local base = require("ltorch.nn.module")

return base.module("NonDynamicallyQuantizableLinear", {
  inherit = require("ltorch.nn.Linear"),
}, {builtin = true})
