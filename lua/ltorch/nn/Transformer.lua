-- Transformer.lua: an encoder-decoder transformer (PyTorch's nn.Transformer):
-- children encoder (a TransformerEncoder with a final LayerNorm) and decoder
-- (a TransformerDecoder with a final LayerNorm), or the custom_encoder and
-- custom_decoder given. As PyTorch, every parameter with more than one dim is
-- then re-drawn xavier-uniform.
--
-- forward(src, tgt [, {src_mask, tgt_mask, memory_mask, src_key_padding_mask,
-- tgt_key_padding_mask, memory_key_padding_mask}]) -> the decoder's output.
-- nn.Transformer.generate_square_subsequent_mask(sz) is the {sz, sz} float
-- mask with -inf above the diagonal and 0 elsewhere.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")

local NAME = "Transformer"
local FORWARD_OPTS = {src_mask = "tensor", tgt_mask = "tensor", memory_mask = "tensor",
  src_key_padding_mask = "tensor", tgt_key_padding_mask = "tensor", memory_key_padding_mask = "tensor"}

return base.module(NAME, {
  -- Transformer([d_model = 512, nhead = 8, num_encoder_layers = 6, num_decoder_layers = 6,
  --   dim_feedforward = 2048, dropout = 0.1, activation = "relu", custom_encoder,
  --   custom_decoder, layer_norm_eps = 1e-5, batch_first = false, norm_first = false,
  --   device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"d_model", "nhead", "num_encoder_layers", "num_decoder_layers",
      "dim_feedforward", "dropout", "activation", "custom_encoder", "custom_decoder",
      "layer_norm_eps", "batch_first", "norm_first", "device", "dtype"}, ...)
    local d, h = a.d_model or 512, a.nhead or 8
    local ne, nd = a.num_encoder_layers or 6, a.num_decoder_layers or 6
    local eps = a.layer_norm_eps or 1e-5
    local lo = {dim_feedforward = a.dim_feedforward or 2048, dropout = a.dropout or 0.1,
      activation = a.activation or "relu", layer_norm_eps = eps,
      batch_first = a.batch_first == true, norm_first = a.norm_first == true}
    for _, k in ipairs({"custom_encoder", "custom_decoder"}) do
      if a[k] ~= nil and not base.is_module(a[k]) then
        base.raise(string.format("bad option '%s' to '%s' (module expected, got %s)", k, NAME, type(a[k])))
      end
    end
    -- custom, or n copies of a Layer(d, h, lo) stacked by Stack with a final LayerNorm
    local function stack(custom, Stack, Layer, n)
      if custom ~= nil then return custom end
      return Stack(Layer(d, h, lo), n, {norm = torch.nn.LayerNorm(d, {eps = eps})})
    end
    self.encoder = stack(a.custom_encoder, torch.nn.TransformerEncoder, torch.nn.TransformerEncoderLayer, ne)
    self.decoder = stack(a.custom_decoder, torch.nn.TransformerDecoder, torch.nn.TransformerDecoderLayer, nd)
    for _, p in ipairs(self:parameters()) do
      if p:dim() > 1 then
        local fan_out, fan_in = p:size(1), p:size(2)
        local rf = p:numel() // (fan_out * fan_in)
        p:copy(base.uniform(p:size(), math.sqrt(6 / ((fan_in + fan_out) * rf))))
      end
    end
    self.d_model, self.nhead, self.batch_first = d, h, a.batch_first == true
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,

  forward = function(self, src, tgt, opts)
    fa.check_tensor(NAME, 1, src, "src")
    fa.check_tensor(NAME, 2, tgt, "tgt")
    local o = fa.options(NAME, 3, opts, FORWARD_OPTS)
    local batched = src:dim() == 3
    local bd = self.batch_first and 1 or 2
    if batched and src:size(bd) ~= tgt:size(bd) then
      error(string.format("bad argument #2 to '%s' (the batch number of src and tgt must be equal, got %d and %d)",
        NAME, src:size(bd), tgt:size(bd)), 0)
    end
    if src:size(-1) ~= self.d_model or tgt:size(-1) ~= self.d_model then
      error(string.format("bad argument #%d to '%s' (the feature number of src and tgt must be equal " ..
        "to d_model (%d), got %d)", src:size(-1) ~= self.d_model and 1 or 2, NAME, self.d_model,
        src:size(-1) ~= self.d_model and src:size(-1) or tgt:size(-1)), 0)
    end
    local memory = self.encoder(src, {mask = o.src_mask, src_key_padding_mask = o.src_key_padding_mask})
    return self.decoder(tgt, memory, {tgt_mask = o.tgt_mask, memory_mask = o.memory_mask,
      tgt_key_padding_mask = o.tgt_key_padding_mask, memory_key_padding_mask = o.memory_key_padding_mask})
  end,

  -- generate_square_subsequent_mask(sz): -inf above the diagonal, 0 elsewhere (float32)
  generate_square_subsequent_mask = function(sz)
    if math.type(sz) ~= "integer" or sz < 0 then
      error("bad argument #1 to 'generate_square_subsequent_mask' (non-negative integer expected, got " ..
        (math.type(sz) or type(sz)) .. ")", 2)
    end
    local above = torch.arange(sz):view(1, sz):gt(torch.arange(sz):view(sz, 1))
    return torch.where(above, -math.huge, 0.0)
  end,
}, {builtin = true})
