-- LayerNorm.lua: normalisation over the last dims (PyTorch's nn.LayerNorm):
-- weight (ones) and bias (zeros) of shape normalized_shape.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

return base.module("LayerNorm", {
  -- LayerNorm(normalized_shape [, eps = 1e-5, elementwise_affine = true, device, dtype])
  initialize = function(self, ...)
    local a = base.args("LayerNorm", {"normalized_shape", "eps", "elementwise_affine", "device", "dtype"}, ...)
    local shape = a.normalized_shape
    if type(shape) == "number" then shape = {shape} end
    base.check(type(shape) == "table" and #shape > 0, "LayerNorm", "normalized_shape must be a number or a list")
    self.normalized_shape = shape
    self.eps = a.eps or 1e-5
    self.elementwise_affine = a.elementwise_affine ~= false
    if self.elementwise_affine then
      self.weight = torch.nn.Parameter(torch.ones(shape))
      self.bias = torch.nn.Parameter(torch.zeros(shape))
    end
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,
  forward = function(self, x)
    return torch.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
  end,
  extra_repr = function(self)
    return string.format("%s, eps=%s, elementwise_affine=%s", pyrepr(self.normalized_shape),
      pyrepr(self.eps + 0.0), pyrepr(self.elementwise_affine))
  end,
}, {builtin = true})
