-- pool.lua: the reprs the pooling layers share (AvgPool1d and AvgPool2d,
-- MaxPool1d and MaxPool2d), as PyTorch's _AvgPoolNd and _MaxPoolNd print
-- them. Not a class; the layer files use them as their extra_repr.
local pyrepr = require("ltorch.nn.module").pyrepr

local M = {}

-- "kernel_size=k, stride=s, padding=p"
function M.avg_repr(self)
  return string.format("kernel_size=%s, stride=%s, padding=%s", pyrepr(self.kernel_size),
    pyrepr(self.stride), pyrepr(self.padding))
end

-- "kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=b"
function M.max_repr(self)
  return string.format("kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
    pyrepr(self.kernel_size), pyrepr(self.stride), pyrepr(self.padding), pyrepr(self.dilation),
    pyrepr(self.ceil_mode))
end

return M
