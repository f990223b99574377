-- Conv2d.lua: 2-D convolution (PyTorch's nn.Conv2d: weight {out, in/groups,
-- kh, kw}, bias {out}), with padding a number, an {h, w} pair, "valid" or
-- "same" (stride 1), and padding_mode zeros, reflect, replicate or
-- circular. Init as PyTorch: kaiming-uniform(a = sqrt(5)), i.e.
-- uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in/groups*kh*kw,
-- and the same bound for the bias (convnd.lua, which makes the class). The
-- math is torch.conv2d (im2col + gemm), after F.pad for the padding modes
-- and uneven "same".
local torch = require("ltorch")

-- Conv2d(in, out, kernel_size [, stride, padding, dilation, groups, bias,
-- padding_mode, device, dtype]) or with a trailing table {stride =, ...}
return require("ltorch.nn.convnd").class("Conv2d", 2, torch, "conv2d")
