-- LayerNorm.lua: normalisation over the last dims (PyTorch's nn.LayerNorm):
-- weight (ones) and bias (zeros) of shape normalized_shape (norm.lua).
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local norm = require("ltorch.nn.norm")
local pyrepr = base.pyrepr

return base.module("LayerNorm", {
  -- LayerNorm(normalized_shape [, eps = 1e-5, elementwise_affine = true, device, dtype])
  initialize = function(self, ...)
    local a = base.args("LayerNorm", {"normalized_shape", "eps", "elementwise_affine", "device", "dtype"}, ...)
    local shape = a.normalized_shape
    if type(shape) == "number" then shape = {shape} end
    base.check(type(shape) == "table" and #shape > 0, "LayerNorm", "normalized_shape must be a number or a list")
    self.normalized_shape = shape
    norm.affine(self, a, "elementwise_affine", shape)
  end,
  forward = function(self, x)
    return torch.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
  end,
  extra_repr = function(self)
    return string.format("%s, eps=%s, elementwise_affine=%s", pyrepr(self.normalized_shape),
      pyrepr(self.eps + 0.0), pyrepr(self.elementwise_affine))
  end,
}, {builtin = true})
