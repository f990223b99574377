-- Linear.lua: y = x W^T + b (PyTorch's nn.Linear: weight {out, in}, bias {out}).
-- Init as PyTorch: kaiming-uniform(a = sqrt(5)) for the weight, which is
-- uniform(-1/sqrt(in), 1/sqrt(in)), and the same bound for the bias.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Linear", {
  -- Linear(in_features, out_features [, bias = true, device, dtype]) or with {bias = false}
  initialize = function(self, ...)
    local a = base.args("Linear", {"in_features", "out_features", "bias", "device", "dtype"}, ...)
    base.check(math.type(a.in_features) == "integer", "Linear", "in_features must be an integer")
    base.check(math.type(a.out_features) == "integer", "Linear", "out_features must be an integer")
    self.in_features, self.out_features = a.in_features, a.out_features
    local bound = a.in_features > 0 and 1 / math.sqrt(a.in_features) or 0
    self.weight = torch.nn.Parameter(base.uniform({a.out_features, a.in_features}, bound))
    if a.bias ~= false then
      self.bias = torch.nn.Parameter(base.uniform({a.out_features}, bound))
    end
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,
  forward = function(self, x)
    return torch.linear(x, self.weight, self.bias)
  end,
  extra_repr = function(self)
    return string.format("in_features=%d, out_features=%d, bias=%s",
      self.in_features, self.out_features, self.bias and "True" or "False")
  end,
}, {builtin = true})
