-- TransformerDecoderLayer.lua: self-attention, attention over the encoder's
-- output (memory) and a feed-forward block, each with a residual connection
-- and a LayerNorm (PyTorch's nn.TransformerDecoderLayer): children
-- self_attn, multihead_attn, linear1, dropout, linear2, norm1, norm2, norm3,
-- dropout1, dropout2, dropout3 (and activation when it is a module).
--
-- forward(tgt, memory [, {tgt_mask, memory_mask, tgt_key_padding_mask,
-- memory_key_padding_mask}]): post-norm, or pre-norm with norm_first, as
-- PyTorch's.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local tb = require("ltorch.nn.transformer_base")

local NAME = "TransformerDecoderLayer"
local FORWARD_OPTS = {tgt_mask = "tensor", memory_mask = "tensor",
  tgt_key_padding_mask = "tensor", memory_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- TransformerDecoderLayer(d_model, nhead [, dim_feedforward = 2048, dropout = 0.1,
  --   activation = "relu", layer_norm_eps = 1e-5, batch_first = false,
  --   norm_first = false, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, tb.ARGS, ...)
    local d, h, ff, p, eps = tb.common(NAME, a)
    local bf = a.batch_first == true
    self.self_attn = torch.nn.MultiheadAttention(d, h, {dropout = p, batch_first = bf})
    self.multihead_attn = torch.nn.MultiheadAttention(d, h, {dropout = p, batch_first = bf})
    tb.add_ff(self, d, ff, p)
    self.norm_first = a.norm_first == true
    self.norm1 = torch.nn.LayerNorm(d, {eps = eps})
    self.norm2 = torch.nn.LayerNorm(d, {eps = eps})
    self.norm3 = torch.nn.LayerNorm(d, {eps = eps})
    self.dropout1 = torch.nn.Dropout(p)
    self.dropout2 = torch.nn.Dropout(p)
    self.dropout3 = torch.nn.Dropout(p)
    tb.set_activation(self, NAME, a.activation)
    tb.finish(self, a)
  end,

  forward = function(self, tgt, memory, opts)
    fa.check_tensor(NAME, 1, tgt, "tgt")
    fa.check_tensor(NAME, 2, memory, "memory")
    local o = fa.options(NAME, 3, opts, FORWARD_OPTS)
    local function sa(x)
      return self.dropout1((self.self_attn(x, x, x, {attn_mask = o.tgt_mask,
        key_padding_mask = o.tgt_key_padding_mask, need_weights = false})))
    end
    local function mha(x)
      return self.dropout2((self.multihead_attn(x, memory, memory, {attn_mask = o.memory_mask,
        key_padding_mask = o.memory_key_padding_mask, need_weights = false})))
    end
    local function ff(x) return self.dropout3(tb.ff_block(self, x)) end
    return tb.sublayers(self, tgt, {{self.norm1, sa}, {self.norm2, mha}, {self.norm3, ff}})
  end,
}, {builtin = true})
