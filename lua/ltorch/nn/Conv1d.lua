-- Conv1d.lua: 1-D convolution over {N, C, L} or {C, L} (PyTorch's
-- nn.Conv1d: weight {out, in/groups, k}, bias {out}), with padding a
-- number, "valid" or "same" (stride 1), and padding_mode zeros, reflect,
-- replicate or circular. Sizes are kept as 1-element lists, as PyTorch's
-- tuples ((3,)). Init and padding: convnd.lua. The math is F.conv1d.
local base = require("ltorch.nn.module")
local convnd = require("ltorch.nn.convnd")

local F = require("ltorch.nn.functional")

return base.module("Conv1d", {
  -- Conv1d(in, out, kernel_size [, stride, padding, dilation, groups, bias,
  -- padding_mode, device, dtype]) or with a trailing table {stride =, ...}
  initialize = function(self, ...)
    local a = base.args("Conv1d", {"in_channels", "out_channels", "kernel_size", "stride", "padding",
      "dilation", "groups", "bias", "padding_mode", "device", "dtype"}, ...)
    convnd.init(self, "Conv1d", 1, a, false)
  end,
  forward = function(self, x) return convnd.forward(self, x, F.conv1d) end,
  extra_repr = convnd.extra_repr,
}, {builtin = true})
