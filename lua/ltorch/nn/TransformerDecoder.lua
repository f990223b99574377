-- TransformerDecoder.lua: a stack of num_layers copies of a decoder layer,
-- then an optional norm (PyTorch's nn.TransformerDecoder): children layers
-- (a ModuleList) and norm. The copies are deep copies (ltorch.nn.clone).
-- forward(tgt, memory [, {tgt_mask, memory_mask, tgt_key_padding_mask,
-- memory_key_padding_mask}]) passes the options to every layer.
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local tb = require("ltorch.nn.transformer_base")

local NAME = "TransformerDecoder"
local FORWARD_OPTS = {tgt_mask = "tensor", memory_mask = "tensor",
  tgt_key_padding_mask = "tensor", memory_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- TransformerDecoder(decoder_layer, num_layers [, norm])
  initialize = function(self, ...)
    local a = base.args(NAME, {"decoder_layer", "num_layers", "norm"}, ...)
    tb.stack(self, NAME, a.decoder_layer, a.num_layers, a.norm)
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
