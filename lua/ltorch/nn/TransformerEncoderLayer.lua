-- TransformerEncoderLayer.lua: self-attention and a feed-forward block, each
-- with a residual connection and a LayerNorm (PyTorch's
-- nn.TransformerEncoderLayer): children self_attn, linear1, dropout,
-- linear2, norm1, norm2, dropout1, dropout2 (and activation when it is a
-- module), so PyTorch's state dict keys match.
--
-- forward(src [, {src_mask, src_key_padding_mask}]): post-norm
--   x = norm1(x + sa(x)); x = norm2(x + ff(x))
-- or, with norm_first, pre-norm
--   x = x + sa(norm1(x)); x = x + ff(norm2(x)).
-- This is PyTorch's reference path; PyTorch's fused inference path gives the
-- same values within float rounding.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local tb = require("ltorch.nn.transformer_base")

local NAME = "TransformerEncoderLayer"
local FORWARD_OPTS = {src_mask = "tensor", src_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- TransformerEncoderLayer(d_model, nhead [, dim_feedforward = 2048, dropout = 0.1,
  --   activation = "relu", layer_norm_eps = 1e-5, batch_first = false,
  --   norm_first = false, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, tb.ARGS, ...)
    local d, h, ff, p, eps = tb.common(NAME, a)
    self.self_attn = torch.nn.MultiheadAttention(d, h, {dropout = p, batch_first = a.batch_first == true})
    tb.add_ff(self, d, ff, p)
    self.norm_first = a.norm_first == true
    self.norm1 = torch.nn.LayerNorm(d, {eps = eps})
    self.norm2 = torch.nn.LayerNorm(d, {eps = eps})
    self.dropout1 = torch.nn.Dropout(p)
    self.dropout2 = torch.nn.Dropout(p)
    tb.set_activation(self, NAME, a.activation)
    tb.finish(self, a)
  end,

  forward = function(self, src, opts)
    fa.check_tensor(NAME, 1, src, "src")
    local o = fa.options(NAME, 2, opts, FORWARD_OPTS)
    local function sa(x)
      local y = self.self_attn(x, x, x, {attn_mask = o.src_mask,
        key_padding_mask = o.src_key_padding_mask, need_weights = false})
      return self.dropout1(y)
    end
    local function ff(x) return self.dropout2(tb.ff_block(self, x)) end
    return tb.sublayers(self, src, {{self.norm1, sa}, {self.norm2, ff}})
  end,
}, {builtin = true})
