-- ConvTranspose2d.lua: 2-D transposed convolution (PyTorch's
-- nn.ConvTranspose2d: weight {in, out/groups, kh, kw}, bias {out}; init
-- with fan_in = out/groups*kh*kw, convnd.lua). forward(x [, output_size])
-- picks the output_padding that gives output_size ({h, w} or the whole
-- output shape), as PyTorch. The math is F.conv_transpose2d.
local base = require("ltorch.nn.module")
local convnd = require("ltorch.nn.convnd")

local F = require("ltorch.nn.functional")

return base.module("ConvTranspose2d", {
  -- ConvTranspose2d(in, out, kernel_size [, stride, padding, output_padding,
  -- groups, bias, dilation, padding_mode, device, dtype]) or with a trailing
  -- table {stride =, ...}
  initialize = function(self, ...)
    local a = base.args("ConvTranspose2d", {"in_channels", "out_channels", "kernel_size", "stride", "padding",
      "output_padding", "groups", "bias", "dilation", "padding_mode", "device", "dtype"}, ...)
    convnd.init(self, "ConvTranspose2d", 2, a, true)
  end,
  -- forward(x [, output_size]) or forward(x, {output_size = {h, w}})
  forward = function(self, x, output_size)
    if type(output_size) == "table" and output_size.output_size ~= nil then output_size = output_size.output_size end
    local op = self.output_padding
    if output_size ~= nil then
      if type(output_size) ~= "table" then
        error("bad argument #2 to 'forward' (output_size must be a list of sizes, got " .. type(output_size) .. ")", 2)
      end
      op = convnd.output_padding(self, x, output_size, 2)
    end
    return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, op, self.groups, self.dilation)
  end,
  extra_repr = convnd.extra_repr,
}, {builtin = true})
