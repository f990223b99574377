-- TransformerEncoder.lua: a stack of num_layers copies of an encoder layer,
-- then an optional norm (PyTorch's nn.TransformerEncoder): children layers
-- (a ModuleList: keys layers.0..., layers.1...) and norm.
--
-- The copies are deep copies of the layer given (ltorch.nn.clone, PyTorch's
-- copy.deepcopy): they start with its weights and share nothing with it.
-- forward(src [, {mask, src_key_padding_mask}]) runs each layer with
-- {src_mask = mask, src_key_padding_mask = ...}, then norm. PyTorch's
-- nested-tensor fast path (eval mode, no grad, a padding mask) returns zeros
-- at padded positions; ltorch computes them as PyTorch's reference path does.
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local tb = require("ltorch.nn.transformer_base")

local NAME = "TransformerEncoder"
local FORWARD_OPTS = {mask = "tensor", src_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- TransformerEncoder(encoder_layer, num_layers [, norm, enable_nested_tensor = true,
  --   mask_check = true]); the last two only steer PyTorch's fast path and are recorded
  initialize = function(self, ...)
    local a = base.args(NAME, {"encoder_layer", "num_layers", "norm", "enable_nested_tensor", "mask_check"}, ...)
    tb.stack(self, NAME, a.encoder_layer, a.num_layers, a.norm)
    self.enable_nested_tensor = a.enable_nested_tensor ~= false
    self.mask_check = a.mask_check ~= false
  end,

  forward = function(self, src, opts)
    fa.check_tensor(NAME, 1, src, "src")
    local o = fa.options(NAME, 2, opts, FORWARD_OPTS)
    local x = src
    local lo = {src_mask = o.mask, src_key_padding_mask = o.src_key_padding_mask}
    for _, layer in ipairs(self.layers) do x = layer(x, lo) end
    if self.norm ~= nil then x = self.norm(x) end
    return x
  end,
}, {builtin = true})
