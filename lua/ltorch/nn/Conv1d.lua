-- Conv1d.lua: 1-D convolution over {N, C, L} or {C, L} (PyTorch's
-- nn.Conv1d: weight {out, in/groups, k}, bias {out}), with padding a
-- number, "valid" or "same" (stride 1), and padding_mode zeros, reflect,
-- replicate or circular. Sizes are kept as 1-element lists, as PyTorch's
-- tuples ((3,)). Init, padding and the class: convnd.lua. The math is F.conv1d.
local F = require("ltorch.nn.functional")

-- Conv1d(in, out, kernel_size [, stride, padding, dilation, groups, bias,
-- padding_mode, device, dtype]) or with a trailing table {stride =, ...}
return require("ltorch.nn.convnd").class("Conv1d", 1, F, "conv1d")
