-- Conv2d.lua: 2-D convolution (PyTorch's nn.Conv2d: weight {out, in/groups,
-- kh, kw}, bias {out}). Init as PyTorch: kaiming-uniform(a = sqrt(5)), i.e.
-- uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in/groups*kh*kw,
-- and the same bound for the bias. The math is torch.conv2d (im2col + gemm).
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

return base.module("Conv2d", {
  -- Conv2d(in, out, kernel_size [, stride, padding, dilation, groups, bias,
  -- padding_mode, device, dtype]) or with a trailing table {stride =, ...}
  initialize = function(self, ...)
    local a = base.args("Conv2d", {"in_channels", "out_channels", "kernel_size", "stride", "padding",
      "dilation", "groups", "bias", "padding_mode", "device", "dtype"}, ...)
    local groups = a.groups or 1
    base.check(math.type(a.in_channels) == "integer" and math.type(a.out_channels) == "integer",
      "Conv2d", "in_channels and out_channels must be integers")
    base.check(math.type(groups) == "integer" and groups > 0, "Conv2d", "groups must be a positive integer")
    base.check(a.in_channels % groups == 0, "Conv2d", "in_channels must be divisible by groups")
    base.check(a.out_channels % groups == 0, "Conv2d", "out_channels must be divisible by groups")
    if (a.padding_mode or "zeros") ~= "zeros" then
      base.fail("Conv2d", "only padding_mode 'zeros' is supported, got %s", tostring(a.padding_mode))
    end
    self.in_channels, self.out_channels = a.in_channels, a.out_channels
    self.kernel_size = base.pair(a.kernel_size, "kernel_size", "Conv2d")
    self.stride = base.pair(a.stride or 1, "stride", "Conv2d")
    if a.padding == "valid" then a.padding = 0 end
    if type(a.padding) == "string" then
      base.fail("Conv2d", "padding '%s' is not supported (give 'valid' or the padding as numbers)", a.padding)
    end
    self.padding = base.pair(a.padding or 0, "padding", "Conv2d")
    self.dilation = base.pair(a.dilation or 1, "dilation", "Conv2d")
    self.groups = groups
    self.padding_mode = "zeros"
    local k = self.kernel_size
    local fan_in = (a.in_channels // groups) * k[1] * k[2]
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    self.weight = torch.nn.Parameter(base.uniform({a.out_channels, a.in_channels // groups, k[1], k[2]}, bound))
    if a.bias ~= false then
      self.bias = torch.nn.Parameter(base.uniform({a.out_channels}, bound))
    end
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,
  forward = function(self, x)
    return torch.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
  end,
  extra_repr = function(self)
    local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
      pyrepr(self.kernel_size), pyrepr(self.stride))
    if self.padding[1] ~= 0 or self.padding[2] ~= 0 then s = s .. ", padding=" .. pyrepr(self.padding) end
    if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then s = s .. ", dilation=" .. pyrepr(self.dilation) end
    if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
    if not self.bias then s = s .. ", bias=False" end
    return s
  end,
}, {builtin = true})
