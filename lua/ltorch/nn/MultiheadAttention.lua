-- MultiheadAttention.lua: multi-head scaled dot-product attention (PyTorch
-- 1.13's nn.MultiheadAttention and F.multi_head_attention_forward).
--
-- Parameters, as PyTorch's: in_proj_weight {3E, E} and in_proj_bias {3E}
-- when kdim and vdim equal embed_dim, else q_proj_weight {E, E},
-- k_proj_weight {E, kdim}, v_proj_weight {E, vdim} (and in_proj_bias);
-- bias_k, bias_v {1, 1, E} with add_bias_kv; out_proj, a Linear (keys
-- out_proj.weight, out_proj.bias). Init as PyTorch: xavier-uniform
-- projection weights, zero biases, xavier-normal bias_k/bias_v, out_proj's
-- weight as Linear's.
--
-- forward(query, key, value [, {key_padding_mask, need_weights = true,
-- attn_mask, average_attn_weights = true, is_causal = false}]) returns the
-- output and the attention weights (nil when need_weights is false). Masks
-- as PyTorch 1.13: bool (true = may not attend), uint8 (read as bool) or
-- float (added to the scores); attn_mask {L, S} or {N * num_heads, L, S},
-- key_padding_mask {N, S} ({S} unbatched). is_causal without attn_mask
-- masks each position from the ones after it; with attn_mask it is a hint
-- and attn_mask is used.
--
-- The scores are computed per batch and head as {N, H, L, S} with batched
-- matmul (BLAS); masks are turned into additive float masks that broadcast
-- to that shape.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local fa = require("ltorch.nn.forward_args")
local Linear = require("ltorch.nn.NonDynamicallyQuantizableLinear")

local NAME = "MultiheadAttention"

local FORWARD_OPTS = {
  key_padding_mask = "tensor", need_weights = "boolean", attn_mask = "tensor",
  average_attn_weights = "boolean", is_causal = "boolean",
}

local function is_float(t)
  local d = t:dtype()
  return d:match("^float") ~= nil or d:match("^bfloat") ~= nil
end

local function fail(argn, fmt, ...)
  error(string.format("bad argument #%d to '%s' (" .. fmt .. ")", argn, NAME, ...), 0)
end
local function bad_option(opt, fmt, ...)
  error(string.format("bad option '%s' to '%s' (" .. fmt .. ")", opt, NAME, ...), 0)
end

-- a mask as additive float scores of dtype dt (bool true -> -inf)
local function additive(mask, dt)
  if mask:dtype() == "bool" then return torch.where(mask, -math.huge, 0.0):to(dt) end
  return mask:to(dt)
end

-- mask with one more column (zeros, false) at the end of its last dim
local function pad_last(mask)
  local s = mask:size()
  s[#s] = 1
  return torch.cat({mask, torch.zeros(s, {dtype = mask:dtype()})}, mask:dim())
end

local function same_size(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

return base.module(NAME, {
  -- MultiheadAttention(embed_dim, num_heads [, dropout = 0, bias = true,
  --   add_bias_kv = false, add_zero_attn = false, kdim, vdim,
  --   batch_first = false, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"embed_dim", "num_heads", "dropout", "bias", "add_bias_kv",
      "add_zero_attn", "kdim", "vdim", "batch_first", "device", "dtype"}, ...)
    local E, H = a.embed_dim, a.num_heads
    base.check(math.type(E) == "integer" and E > 0, NAME, "embed_dim must be a positive integer")
    base.check(math.type(H) == "integer" and H > 0, NAME, "num_heads must be a positive integer")
    base.check(E % H == 0, NAME, "embed_dim must be divisible by num_heads (got %d and %d)", E, H)
    local p = a.dropout or 0.0
    base.check(type(p) == "number" and p >= 0 and p <= 1, NAME,
      "dropout must be a number in range [0, 1], got %s", tostring(p))
    local kdim, vdim = a.kdim or E, a.vdim or E
    base.check(math.type(kdim) == "integer" and kdim > 0, NAME, "kdim must be a positive integer")
    base.check(math.type(vdim) == "integer" and vdim > 0, NAME, "vdim must be a positive integer")
    self.embed_dim, self.kdim, self.vdim = E, kdim, vdim
    self._qkv_same_embed_dim = kdim == E and vdim == E
    self.num_heads = H
    self.dropout = p + 0.0
    self.batch_first = a.batch_first == true
    self.head_dim = E // H
    local function xavier(rows, cols)
      return torch.nn.Parameter(base.uniform({rows, cols}, math.sqrt(6 / (rows + cols))))
    end
    if self._qkv_same_embed_dim then
      self.in_proj_weight = xavier(3 * E, E)
    else
      self.q_proj_weight = xavier(E, E)
      self.k_proj_weight = xavier(E, kdim)
      self.v_proj_weight = xavier(E, vdim)
    end
    local bias = a.bias ~= false
    if bias then self.in_proj_bias = torch.nn.Parameter(torch.zeros(3 * E)) end
    self.out_proj = Linear(E, E, {bias = bias})
    if bias then self.out_proj.bias = torch.zeros(E) end
    if a.add_bias_kv then
      -- xavier-normal of a {1, 1, E} tensor: fan_in = fan_out = E
      local std = math.sqrt(2 / (E + E))
      self.bias_k = torch.nn.Parameter(torch.randn(1, 1, E) * std)
      self.bias_v = torch.nn.Parameter(torch.randn(1, 1, E) * std)
    end
    self.add_zero_attn = a.add_zero_attn == true
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,

  forward = function(self, query, key, value, opts)
    -- self-attention (one tensor as query, key and value): one in-projection gemm
    local self_attn = rawequal(query, key) and rawequal(key, value)
    fa.check_tensor(NAME, 1, query, "query")
    fa.check_tensor(NAME, 2, key, "key")
    fa.check_tensor(NAME, 3, value, "value")
    local o = fa.options(NAME, 4, opts, FORWARD_OPTS)
    local kpm, attn_mask = o.key_padding_mask, o.attn_mask
    local need_weights = o.need_weights ~= false
    local E, H, hd = self.embed_dim, self.num_heads, self.head_dim

    -- shapes (PyTorch's _mha_shape_check)
    local batched = query:dim() == 3
    if query:dim() ~= 2 and not batched then
      fail(1, "query should be unbatched 2-D or batched 3-D tensor, got %d-D", query:dim())
    end
    local kd = batched and 3 or 2
    if key:dim() ~= kd then fail(2, "key should be %d-D as query is, got %d-D", kd, key:dim()) end
    if value:dim() ~= kd then fail(3, "value should be %d-D as query is, got %d-D", kd, value:dim()) end
    if kpm ~= nil then
      if kpm:dim() ~= kd - 1 then
        bad_option("key_padding_mask", "%d-D mask expected for a %d-D query, got %d-D", kd - 1, kd, kpm:dim())
      end
      if kpm:dtype() ~= "bool" and not is_float(kpm) then
        bad_option("key_padding_mask", "only bool and floating types of key_padding_mask are supported, got %s",
          kpm:dtype())
      end
    end
    if attn_mask ~= nil then
      if attn_mask:dim() ~= 2 and attn_mask:dim() ~= 3 then
        bad_option("attn_mask", "2-D or 3-D mask expected, got %d-D", attn_mask:dim())
      end
      local dt = attn_mask:dtype()
      if dt == "uint8" then attn_mask = attn_mask:ne(0)
      elseif dt ~= "bool" and not is_float(attn_mask) then
        bad_option("attn_mask", "only float, byte and bool types are supported, got %s", dt)
      end
    end

    if not batched then
      query, key, value = query:unsqueeze(2), key:unsqueeze(2), value:unsqueeze(2)
      if kpm ~= nil then kpm = kpm:unsqueeze(1) end
    elseif self.batch_first then
      query, key, value = query:transpose(1, 2), key:transpose(1, 2), value:transpose(1, 2)
    end
    local L, N = query:size(1), query:size(2)
    local S = key:size(1)
    if query:size(3) ~= E then
      fail(1, "was expecting embedding dimension of %d, but got %d", E, query:size(3))
    end
    if key:size(3) ~= self.kdim then
      fail(2, "was expecting key feature size (kdim) of %d, but got %d", self.kdim, key:size(3))
    end
    if value:size(3) ~= self.vdim then
      fail(3, "was expecting value feature size (vdim) of %d, but got %d", self.vdim, value:size(3))
    end
    if key:size(1) ~= value:size(1) or key:size(2) ~= value:size(2) then
      fail(3, "key's sequence and batch sizes {%d, %d} do not match value's {%d, %d}",
        key:size(1), key:size(2), value:size(1), value:size(2))
    end
    if key:size(2) ~= N then fail(2, "key's batch size %d does not match query's %d", key:size(2), N) end
    if attn_mask == nil and o.is_causal then
      -- position i attends to positions j <= i
      attn_mask = torch.arange(S):view(1, S):gt(torch.arange(L):view(L, 1))
    end
    if attn_mask ~= nil then
      local want = attn_mask:dim() == 2 and {L, S} or {N * H, L, S}
      if not same_size(attn_mask:size(), want) then
        bad_option("attn_mask", "the shape of the %d-D attn_mask is %s, but should be %s",
          attn_mask:dim(), fa.size_str(attn_mask), fa.size_str(want))
      end
    end

    -- in-projection
    local q, k, v
    local b = self.in_proj_bias
    local bq, bk, bv
    if b ~= nil then bq, bk, bv = b:narrow(1, 1, E), b:narrow(1, E + 1, E), b:narrow(1, 2 * E + 1, E) end
    local qkv
    if self._qkv_same_embed_dim and self_attn and self.bias_k == nil then
      qkv = torch.linear(query, self.in_proj_weight, b)          -- {L, N, 3E}
      q = qkv:narrow(3, 1, E)
      k = qkv:narrow(3, E + 1, E)
      v = qkv:narrow(3, 2 * E + 1, E)
    elseif self._qkv_same_embed_dim then
      local w = self.in_proj_weight
      q = torch.linear(query, w:narrow(1, 1, E), bq)
      k = torch.linear(key, w:narrow(1, E + 1, E), bk)
      v = torch.linear(value, w:narrow(1, 2 * E + 1, E), bv)
    else
      q = torch.linear(query, self.q_proj_weight, bq)
      k = torch.linear(key, self.k_proj_weight, bk)
      v = torch.linear(value, self.v_proj_weight, bv)
    end

    -- bias_k / bias_v: one more key and value position
    if self.bias_k ~= nil and self.bias_v ~= nil then
      k = torch.cat({k, self.bias_k:expand(1, N, E):to(k:dtype())}, 1)
      v = torch.cat({v, self.bias_v:expand(1, N, E):to(v:dtype())}, 1)
      if attn_mask ~= nil then attn_mask = pad_last(attn_mask) end
      if kpm ~= nil then kpm = pad_last(kpm) end
    end
    local Sk = k:size(1)

    -- heads: {len, N, E} -> {N, H, len, hd}
    if qkv ~= nil then
      -- views of the one projection {L, N, 3, H, hd}: matmul takes them as they lie
      local heads = qkv:view(L, N, 3, H, hd)
      q = heads:select(3, 1):permute(2, 3, 1, 4)
      k = heads:select(3, 2):permute(2, 3, 1, 4)
      v = heads:select(3, 3):permute(2, 3, 1, 4)
    else
      q = q:contiguous():view(L, N, H, hd):permute(2, 3, 1, 4)
      k = k:contiguous():view(Sk, N, H, hd):permute(2, 3, 1, 4)
      v = v:contiguous():view(Sk, N, H, hd):permute(2, 3, 1, 4)
    end
    if self.add_zero_attn then
      k = torch.cat({k, torch.zeros({N, H, 1, hd}, {dtype = k:dtype()})}, 3)
      v = torch.cat({v, torch.zeros({N, H, 1, hd}, {dtype = v:dtype()})}, 3)
      if attn_mask ~= nil then attn_mask = pad_last(attn_mask) end
      if kpm ~= nil then kpm = pad_last(kpm) end
      Sk = Sk + 1
    end
    if kpm ~= nil and (kpm:size(1) ~= N or kpm:size(2) ~= Sk) then
      bad_option("key_padding_mask", "expecting key_padding_mask shape of %s, but got %s",
        fa.size_str({N, Sk}), fa.size_str(kpm))
    end

    -- one additive mask that broadcasts to {N, H, L, Sk}
    local dt = q:dtype()
    local mask
    if attn_mask ~= nil then
      if attn_mask:dim() == 3 then attn_mask = attn_mask:view(N, H, L, Sk) end
      if kpm ~= nil and not is_float(attn_mask) and is_float(kpm) then kpm = kpm:ne(0) end
      if kpm ~= nil and is_float(attn_mask) and is_float(kpm) then
        bad_option("key_padding_mask", "a float key_padding_mask cannot be merged with a float attn_mask; " ..
          "give one of them as a bool mask")
      end
      mask = additive(attn_mask, dt)
    end
    if kpm ~= nil then
      local km = additive(kpm, dt):view(N, 1, 1, Sk)
      mask = mask and mask + km or km
    end

    local scores = torch.matmul(q / math.sqrt(hd), k:transpose(3, 4))
    if mask ~= nil then scores = scores + mask end
    local w = torch.softmax(scores, -1)
    if self.training and self.dropout > 0 then w = torch.dropout(w, self.dropout, true) end
    local out = torch.matmul(w, v)                           -- {N, H, L, hd}
    out = out:permute(3, 1, 2, 4):contiguous():view(L, N, E)
    out = torch.linear(out, self.out_proj.weight, self.out_proj.bias)

    if not batched then
      out = out:squeeze(2)
    elseif self.batch_first then
      out = out:transpose(1, 2)
    end
    if not need_weights then return out, nil end
    if o.average_attn_weights ~= false then w = w:mean(2) end   -- {N, L, Sk}
    if not batched then w = w:squeeze(1) end
    return out, w
  end,
}, {builtin = true})
