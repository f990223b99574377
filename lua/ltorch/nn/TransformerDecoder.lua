-- TransformerDecoder.lua: a stack of num_layers copies of a decoder layer,
-- then an optional norm (PyTorch's nn.TransformerDecoder): children layers
-- (a ModuleList) and norm. The copies are deep copies (ltorch.nn.clone).
-- forward(tgt, memory [, {tgt_mask, memory_mask, tgt_key_padding_mask,
-- memory_key_padding_mask}]) passes the options to every layer.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local clone = require("ltorch.nn.clone")

local NAME = "TransformerDecoder"
local FORWARD_OPTS = {tgt_mask = "tensor", memory_mask = "tensor",
  tgt_key_padding_mask = "tensor", memory_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- TransformerDecoder(decoder_layer, num_layers [, norm])
  initialize = function(self, ...)
    local a = base.args(NAME, {"decoder_layer", "num_layers", "norm"}, ...)
    if not base.is_module(a.decoder_layer) then
      base.raise(string.format("bad argument #1 to '%s' (module expected, got %s)", NAME, type(a.decoder_layer)))
    end
    base.check(math.type(a.num_layers) == "integer" and a.num_layers >= 0, NAME,
      "num_layers must be a non-negative integer")
    if a.norm ~= nil and not base.is_module(a.norm) then
      base.raise(string.format("bad option 'norm' to '%s' (module expected, got %s)", NAME, type(a.norm)))
    end
    local layers = {}
    for i = 1, a.num_layers do layers[i] = clone(a.decoder_layer) end
    self.layers = torch.nn.ModuleList(layers)
    self.num_layers = a.num_layers
    if a.norm ~= nil then self.norm = a.norm end
  end,

  forward = function(self, tgt, memory, opts)
    fa.check_tensor(NAME, 1, tgt, "tgt")
    fa.check_tensor(NAME, 2, memory, "memory")
    local o = fa.options(NAME, 3, opts, FORWARD_OPTS)
    local x = tgt
    for _, layer in ipairs(self.layers) do x = layer(x, memory, o) end
    if self.norm ~= nil then x = self.norm(x) end
    return x
  end,
}, {builtin = true})
