-- transformer_base.lua: what TransformerEncoderLayer and
-- TransformerDecoderLayer share: their constructor's common arguments and
-- checks, the activation, the feed-forward block and the residual
-- sublayers; and what TransformerEncoder and TransformerDecoder share: the
-- stack of layer copies.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local clone = require("ltorch.nn.clone")

local M = {}

-- PyTorch's positional arguments of both layers, in order
M.ARGS = {"d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps",
  "batch_first", "norm_first", "device", "dtype"}

-- M.common(class, a) -> d_model, nhead, dim_feedforward, dropout, eps:
-- the checked values of args a (defaults as PyTorch's)
function M.common(class, a)
  base.check(math.type(a.d_model) == "integer" and a.d_model > 0, class, "d_model must be a positive integer")
  base.check(math.type(a.nhead) == "integer" and a.nhead > 0, class, "nhead must be a positive integer")
  local ff = a.dim_feedforward or 2048
  base.check(math.type(ff) == "integer" and ff > 0, class, "dim_feedforward must be a positive integer")
  local p = a.dropout or 0.1
  base.check(type(p) == "number" and p >= 0 and p <= 1, class,
    "dropout must be a number in range [0, 1], got %s", tostring(p))
  local eps = a.layer_norm_eps or 1e-5
  base.check(type(eps) == "number", class, "layer_norm_eps must be a number")
  return a.d_model, a.nhead, ff, p, eps
end

-- M.set_activation(self, class, act): "relu" (the default) or "gelu" is kept
-- as a plain field (saved with the module); a module (nn.GELU({approximate
-- = "tanh"}), any user module) is registered as the child 'activation', as
-- PyTorch registers a module given as activation
function M.set_activation(self, class, act)
  act = act or "relu"
  if act == "relu" or act == "gelu" then
    self.activation = act
    self.activation_relu_or_gelu = act == "relu" and 1 or 2
  elseif base.is_module(act) then
    self.activation = act
    local n = act:class_name()
    self.activation_relu_or_gelu = (n == "ReLU" and 1) or (n == "GELU" and 2) or 0
  else
    base.fail(class, "activation should be relu/gelu or a module, not %s",
      type(act) == "string" and act or type(act))
  end
end

-- the activation of the feed-forward block applied to x
function M.activate(self, x)
  local act = self.activation
  if act == "relu" then return torch.relu(x) end
  if act == "gelu" then return torch.gelu(x) end
  return act(x)
end

-- the feed-forward block: linear2(dropout(act(linear1(x)))) (the caller
-- applies the block's last dropout)
function M.ff_block(self, x)
  return self.linear2(self.dropout(M.activate(self, self.linear1(x))))
end

-- M.sublayers(self, x, steps) -> x: the residual sublayers steps, each a
-- pair {norm, f}, in order: x = x + f(norm(x)) with self.norm_first
-- (pre-norm), else x = norm(x + f(x)) (post-norm)
function M.sublayers(self, x, steps)
  for _, s in ipairs(steps) do
    local norm, f = s[1], s[2]
    if self.norm_first then x = x + f(norm(x)) else x = norm(x + f(x)) end
  end
  return x
end

-- M.stack(self, class, layer, num_layers, norm): the constructor of
-- TransformerEncoder and TransformerDecoder (their checked arguments #1, #2
-- and option norm): children layers (a ModuleList of num_layers deep
-- copies of layer, ltorch.nn.clone) and norm when given
function M.stack(self, class, layer, num_layers, norm)
  if not base.is_module(layer) then
    base.raise(string.format("bad argument #1 to '%s' (module expected, got %s)", class, type(layer)))
  end
  base.check(math.type(num_layers) == "integer" and num_layers >= 0, class,
    "num_layers must be a non-negative integer")
  if norm ~= nil and not base.is_module(norm) then
    base.raise(string.format("bad option 'norm' to '%s' (module expected, got %s)", class, type(norm)))
  end
  local layers = {}
  for i = 1, num_layers do layers[i] = clone(layer) end
  self.layers = torch.nn.ModuleList(layers)
  self.num_layers = num_layers
  if norm ~= nil then self.norm = norm end
end

-- M.finish(self, a): the dtype and device options, applied to the whole layer
function M.finish(self, a)
  if a.dtype ~= nil then self:to(a.dtype) end
  if a.device ~= nil then self:to(a.device) end
end

-- a layer's extra fields and children after the attention block(s):
-- linear1, dropout, linear2 (PyTorch's registration order)
function M.add_ff(self, d_model, ff, p)
  self.linear1 = torch.nn.Linear(d_model, ff)
  self.dropout = torch.nn.Dropout(p)
  self.linear2 = torch.nn.Linear(ff, d_model)
end

return M
