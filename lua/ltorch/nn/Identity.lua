-- Identity.lua: returns its input (PyTorch's nn.Identity); any constructor
-- arguments are ignored.
local base = require("ltorch.nn.module")

return base.module("Identity", {
  forward = function(_, x) return x end,
}, {builtin = true})
