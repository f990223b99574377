-- attention_spec.lua: MultiheadAttention, TransformerEncoderLayer,
-- TransformerEncoder, TransformerDecoderLayer, TransformerDecoder and
-- Transformer against PyTorch 1.13 on the same weights (at_helper.lua: one
-- Python process writes every case; ltorch builds the same module, must have
-- PyTorch's state dict keys, shapes and repr, loads the state dict strictly
-- and gives the same outputs, rtol 1e-4). Then deep copies, training mode,
-- errors, and a whole-module round trip of a user class through a fresh
-- process.
local torch = require("ltorch")
local H = require("nn_helpers")
local A = require("at_helper")
local nn = torch.nn

local function mha(...) local a = table.pack(...) return function() return nn.MultiheadAttention(table.unpack(a, 1, a.n)) end end

-- {name, PyTorch constructor, PyTorch inputs, PyTorch call, ltorch constructor, ltorch call}
local CASES = {}
local function case(name, py_make, py_inp, py_call, make, call, opts)
  local c = {name = name, py_make = py_make, py_inp = py_inp, py_call = py_call, make = make, call = call}
  for k, v in pairs(opts or {}) do c[k] = v end
  CASES[#CASES + 1] = c
end

-- MultiheadAttention: every mask kind, both layouts, unbatched, kdim/vdim, bias_kv
case("mha_self", "nn.MultiheadAttention(8, 2)", "dict(x=r(4, 3, 8))", "m(i['x'], i['x'], i['x'])",
  mha(8, 2), function(m, i) return m(i.x, i.x, i.x) end)
case("mha_cross_bool_masks_batch_first",
  "nn.MultiheadAttention(8, 2, batch_first=True)",
  "dict(q=r(3, 4, 8), k=r(3, 5, 8), v=r(3, 5, 8), am=bmask(4, 5), kpm=bmask(3, 5))",
  "m(i['q'], i['k'], i['v'], attn_mask=i['am'], key_padding_mask=i['kpm'], average_attn_weights=False)",
  mha(8, 2, {batch_first = true}),
  function(m, i) return m(i.q, i.k, i.v, {attn_mask = i.am, key_padding_mask = i.kpm, average_attn_weights = false}) end)
case("mha_float_3d_mask", "nn.MultiheadAttention(8, 4)",
  "dict(q=r(4, 2, 8), k=r(6, 2, 8), v=r(6, 2, 8), am=r(8, 4, 6))",
  "m(i['q'], i['k'], i['v'], attn_mask=i['am'])",
  mha(8, 4), function(m, i) return m(i.q, i.k, i.v, {attn_mask = i.am}) end)
case("mha_bool_3d_mask_batch_first", "nn.MultiheadAttention(8, 2, batch_first=True)",
  "dict(q=r(2, 4, 8), k=r(2, 5, 8), am=bmask(4, 4, 5))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'])",
  mha(8, 2, {batch_first = true}), function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am}) end)
case("mha_float_kpm", "nn.MultiheadAttention(8, 2)",
  "dict(q=r(4, 3, 8), k=r(5, 3, 8), v=r(5, 3, 8), kpm=r(3, 5))",
  "m(i['q'], i['k'], i['v'], key_padding_mask=i['kpm'])",
  mha(8, 2), function(m, i) return m(i.q, i.k, i.v, {key_padding_mask = i.kpm}) end)
case("mha_float_mask_bool_kpm", "nn.MultiheadAttention(8, 2, batch_first=True)",
  "dict(q=r(3, 4, 8), k=r(3, 5, 8), am=r(4, 5), kpm=bmask(3, 5))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'], key_padding_mask=i['kpm'])",
  mha(8, 2, {batch_first = true}), function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am, key_padding_mask = i.kpm}) end)
case("mha_bool_mask_float_kpm", "nn.MultiheadAttention(8, 2)",
  "dict(q=r(4, 3, 8), k=r(5, 3, 8), am=bmask(4, 5), kpm=torch.where(bmask(3, 5), 1.0, 0.0))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'], key_padding_mask=i['kpm'])",
  mha(8, 2), function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am, key_padding_mask = i.kpm}) end)
case("mha_byte_mask_no_weights", "nn.MultiheadAttention(8, 2)",
  "dict(x=r(4, 3, 8), am=bmask(4, 4).to(torch.uint8))",
  "m(i['x'], i['x'], i['x'], attn_mask=i['am'], need_weights=False)",
  mha(8, 2), function(m, i) return m(i.x, i.x, i.x, {attn_mask = i.am, need_weights = false}) end)
case("mha_kdim_vdim_no_bias", "nn.MultiheadAttention(8, 2, kdim=6, vdim=5, bias=False)",
  "dict(q=r(4, 3, 8), k=r(5, 3, 6), v=r(5, 3, 5), kpm=bmask(3, 5))",
  "m(i['q'], i['k'], i['v'], key_padding_mask=i['kpm'])",
  mha(8, 2, {kdim = 6, vdim = 5, bias = false}),
  function(m, i) return m(i.q, i.k, i.v, {key_padding_mask = i.kpm}) end)
case("mha_bias_kv_zero_attn", "nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True)",
  "dict(q=r(4, 3, 8), k=r(5, 3, 8), am=bmask(4, 5), kpm=bmask(3, 5))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'], key_padding_mask=i['kpm'])",
  mha(8, 2, {add_bias_kv = true, add_zero_attn = true}),
  function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am, key_padding_mask = i.kpm}) end)
case("mha_unbatched", "nn.MultiheadAttention(8, 2, batch_first=True)",
  "dict(q=r(4, 8), k=r(5, 8), kpm=bmask(5), am=bmask(2, 4, 5))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'], key_padding_mask=i['kpm'])",
  mha(8, 2, {batch_first = true}),
  function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am, key_padding_mask = i.kpm}) end)
case("mha_unbatched_per_head", "nn.MultiheadAttention(8, 2)",
  "dict(q=r(4, 8), k=r(5, 8), am=r(4, 5))",
  "m(i['q'], i['k'], i['k'], attn_mask=i['am'], average_attn_weights=False)",
  mha(8, 2), function(m, i) return m(i.q, i.k, i.k, {attn_mask = i.am, average_attn_weights = false}) end)
-- is_causal (no attn_mask) masks the future: PyTorch 1.13 is given the causal mask
case("mha_is_causal", "nn.MultiheadAttention(8, 2, batch_first=True)",
  "dict(x=r(2, 5, 8), kpm=bmask(2, 5))",
  "m(i['x'], i['x'], i['x'], attn_mask=causal(5), key_padding_mask=i['kpm'])",
  mha(8, 2, {batch_first = true}),
  function(m, i) return m(i.x, i.x, i.x, {is_causal = true, key_padding_mask = i.kpm}) end)
case("mha_dropout_eval", "nn.MultiheadAttention(8, 2, dropout=0.5)", "dict(x=r(4, 3, 8))",
  "m(i['x'], i['x'], i['x'])", mha(8, 2, {dropout = 0.5}), function(m, i) return m(i.x, i.x, i.x) end)

-- TransformerEncoderLayer: relu/gelu, post/pre norm, both layouts, masks, unbatched
case("enc_layer_relu_post", "nn.TransformerEncoderLayer(8, 2, 16)",
  "dict(x=r(5, 3, 8), mask=nn.Transformer.generate_square_subsequent_mask(5), kpm=bmask(3, 5))",
  "m(i['x'], src_mask=i['mask'], src_key_padding_mask=i['kpm'])",
  function() return nn.TransformerEncoderLayer(8, 2, 16) end,
  function(m, i) return m(i.x, {src_mask = i.mask, src_key_padding_mask = i.kpm}) end)
case("enc_layer_gelu_pre_batch_first",
  "nn.TransformerEncoderLayer(8, 2, 16, activation='gelu', norm_first=True, batch_first=True)",
  "dict(x=r(3, 5, 8), kpm=bmask(3, 5))", "m(i['x'], src_key_padding_mask=i['kpm'])",
  function() return nn.TransformerEncoderLayer(8, 2, 16, {activation = "gelu", norm_first = true, batch_first = true}) end,
  function(m, i) return m(i.x, {src_key_padding_mask = i.kpm}) end)
case("enc_layer_unbatched_bool_mask", "nn.TransformerEncoderLayer(8, 4, 12, 0.0, 'relu', 1e-3)",
  "dict(x=r(5, 8), mask=bmask(5, 5))", "m(i['x'], src_mask=i['mask'])",
  function() return nn.TransformerEncoderLayer(8, 4, 12, 0.0, "relu", 1e-3) end,
  function(m, i) return m(i.x, {src_mask = i.mask}) end)
case("enc_layer_activation_module",
  "nn.TransformerEncoderLayer(8, 2, 16, activation=nn.GELU(approximate='tanh'), batch_first=True)",
  "dict(x=r(2, 5, 8))", "m(i['x'])",
  function() return nn.TransformerEncoderLayer(8, 2, 16, {activation = nn.GELU({approximate = "tanh"}), batch_first = true}) end,
  function(m, i) return m(i.x) end)

-- TransformerEncoder: deep copies of the layer, optional norm
case("encoder_norm_batch_first",
  "nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, norm=nn.LayerNorm(8))",
  "dict(x=r(3, 5, 8), mask=nn.Transformer.generate_square_subsequent_mask(5), kpm=bmask(3, 5))",
  "m(i['x'], mask=i['mask'], src_key_padding_mask=i['kpm'])",
  function() return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, {batch_first = true}), 2, {norm = nn.LayerNorm(8)}) end,
  function(m, i) return m(i.x, {mask = i.mask, src_key_padding_mask = i.kpm}) end)
case("encoder_pre_norm_3_layers", "nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, norm_first=True), 3)",
  "dict(x=r(5, 2, 8))", "m(i['x'])",
  function() return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, {norm_first = true}), 3) end,
  function(m, i) return m(i.x) end)

-- TransformerDecoderLayer and TransformerDecoder: all four masks
case("dec_layer_post_all_masks", "nn.TransformerDecoderLayer(8, 2, 16)",
  "dict(t=r(4, 3, 8), mem=r(5, 3, 8), tm=nn.Transformer.generate_square_subsequent_mask(4), mm=bmask(4, 5), " ..
    "tk=bmask(3, 4), mk=bmask(3, 5))",
  "m(i['t'], i['mem'], tgt_mask=i['tm'], memory_mask=i['mm'], tgt_key_padding_mask=i['tk'], " ..
    "memory_key_padding_mask=i['mk'])",
  function() return nn.TransformerDecoderLayer(8, 2, 16) end,
  function(m, i) return m(i.t, i.mem, {tgt_mask = i.tm, memory_mask = i.mm, tgt_key_padding_mask = i.tk,
    memory_key_padding_mask = i.mk}) end)
case("dec_layer_gelu_pre_batch_first",
  "nn.TransformerDecoderLayer(8, 2, 16, activation='gelu', norm_first=True, batch_first=True)",
  "dict(t=r(3, 4, 8), mem=r(3, 5, 8), mk=bmask(3, 5))", "m(i['t'], i['mem'], memory_key_padding_mask=i['mk'])",
  function() return nn.TransformerDecoderLayer(8, 2, 16, {activation = "gelu", norm_first = true, batch_first = true}) end,
  function(m, i) return m(i.t, i.mem, {memory_key_padding_mask = i.mk}) end)
case("decoder_norm", "nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2, nn.LayerNorm(8))",
  "dict(t=r(4, 2, 8), mem=r(6, 2, 8), tm=nn.Transformer.generate_square_subsequent_mask(4))",
  "m(i['t'], i['mem'], tgt_mask=i['tm'])",
  function() return nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2, nn.LayerNorm(8)) end,
  function(m, i) return m(i.t, i.mem, {tgt_mask = i.tm}) end)
case("decoder_unbatched", "nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 1)",
  "dict(t=r(4, 8), mem=r(6, 8), tk=bmask(4))",
  "m(i['t'], i['mem'], tgt_key_padding_mask=i['tk'])",
  function() return nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, {batch_first = true}), 1) end,
  function(m, i) return m(i.t, i.mem, {tgt_key_padding_mask = i.tk}) end)

-- Transformer
case("transformer", "nn.Transformer(8, 2, 2, 1, 16, batch_first=True)",
  "dict(s=r(2, 5, 8), t=r(2, 4, 8), tm=nn.Transformer.generate_square_subsequent_mask(4), sk=bmask(2, 5))",
  "m(i['s'], i['t'], tgt_mask=i['tm'], src_key_padding_mask=i['sk'], memory_key_padding_mask=i['sk'])",
  function() return nn.Transformer(8, 2, 2, 1, 16, {batch_first = true}) end,
  function(m, i) return m(i.s, i.t, {tgt_mask = i.tm, src_key_padding_mask = i.sk, memory_key_padding_mask = i.sk}) end)

-- PyTorch's defaults (d_model 512, 6 + 6 layers): keys, shapes and repr only
local DEFAULTS_PY = [[
m = nn.Transformer()
META['transformer_defaults'] = {'keys': [[k, list(v.shape)] for k, v in m.state_dict().items()], 'repr': repr(m)}
m = nn.TransformerEncoderLayer(8, 2)
META['enc_layer_defaults'] = {'keys': [[k, list(v.shape)] for k, v in m.state_dict().items()], 'repr': repr(m)}
]]

local meta = A.parity_suite(CASES, DEFAULTS_PY)

describe("the defaults", function()
  it("have PyTorch's keys, shapes and repr", function()
    torch.manual_seed(0)
    local t = nn.Transformer()
    A.check_keys(t, meta.transformer_defaults.keys, "Transformer()")
    assert.are.equal(meta.transformer_defaults.repr, tostring(t))
    local l = nn.TransformerEncoderLayer(8, 2)
    A.check_keys(l, meta.enc_layer_defaults.keys, "TransformerEncoderLayer(8, 2)")
    assert.are.equal(meta.enc_layer_defaults.repr, tostring(l))
  end)
end)

describe("MultiheadAttention", function()
  it("initialises as PyTorch: xavier-uniform projections, zero biases", function()
    torch.manual_seed(1)
    local m = nn.MultiheadAttention(16, 4)
    local bound = math.sqrt(6 / (16 + 48))
    assert.is_true(m.in_proj_weight:abs():max():item() <= bound)
    assert.is_true(m.in_proj_weight:abs():max():item() > 0.8 * bound)
    assert.are.equal(0, m.in_proj_bias:abs():max():item())
    assert.are.equal(0, m.out_proj.bias:abs():max():item())
    assert.are.equal("NonDynamicallyQuantizableLinear", m.out_proj:class_name())
    local s = nn.MultiheadAttention(8, 2, {kdim = 3, vdim = 5, add_bias_kv = true})
    assert.are.same({8, 3}, s.k_proj_weight:size())
    assert.are.same({1, 1, 8}, s.bias_k:size())
    assert.is_nil(s.in_proj_weight)
  end)

  it("returns nil weights with need_weights = false, and weights that sum to 1", function()
    torch.manual_seed(2)
    local m = nn.MultiheadAttention(8, 2)
    local x = torch.randn(4, 3, 8)
    local out, w = m(x, x, x, {need_weights = false})
    assert.are.same({4, 3, 8}, out:size())
    assert.is_nil(w)
    local _, w2 = m(x, x, x, {average_attn_weights = false})
    assert.are.same({3, 2, 4, 4}, w2:size())
    H.assert_parity(w2:sum(-1), torch.ones(3, 2, 4), 1e-5, "row sums")
  end)

  it("applies dropout to the weights in training mode only", function()
    torch.manual_seed(3)
    local m = nn.MultiheadAttention(8, 2, {dropout = 0.5})
    local x = torch.randn(4, 3, 8)
    m:eval()
    local _, we = m(x, x, x)
    local _, we2 = m(x, x, x)
    assert.is_true(torch.equal(we, we2))
    m:train()
    local out, wt = m(x, x, x)
    assert.are.same({4, 3, 8}, out:size())
    assert.are.same({3, 4, 4}, wt:size())
    assert.is_false(torch.allclose(we, wt))
  end)
end)

describe("deep copies (ltorch.nn.clone)", function()
  local clone = require("ltorch.nn.clone")

  it("gives TransformerEncoder independent copies of the layer", function()
    torch.manual_seed(4)
    local layer = nn.TransformerEncoderLayer(8, 2, 16)
    local enc = nn.TransformerEncoder(layer, 2)
    assert.are.equal(2, #enc.layers)
    local w0, w1 = enc.layers[1].linear1.weight, enc.layers[2].linear1.weight
    assert.is_true(torch.equal(w0, layer.linear1.weight))
    assert.is_true(torch.equal(w0, w1))
    w0:fill(0)
    assert.is_false(torch.equal(w0, w1))
    assert.is_false(torch.equal(w0, layer.linear1.weight))
    assert.are.equal("relu", enc.layers[2].activation)
    assert.is_true(enc.layers[2].self_attn._qkv_same_embed_dim)
  end)

  it("copies a user class, keeps tied weights tied and the training flag", function()
    local Tied = nn.module("at_tied", {
      initialize = function(self)
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)
        self.b.weight = self.a.weight
        self.steps = nn.buffer(torch.zeros(1))
        self.tag = {"x", {1, 2}}
      end,
      forward = function(self, x) return self.b(self.a(x)) end,
    })
    local m = Tied():eval()
    local c = clone(m)
    assert.are.equal("at_tied", c:class_name())
    assert.is_false(c.training)
    assert.are.equal(c.a.weight, c.b.weight)
    assert.are_not.equal(m.a.weight, c.a.weight)
    assert.are.same(m.tag, c.tag)
    assert.are_not.equal(m.tag, c.tag)
    assert.is_true(c.a.weight:requires_grad())
    local x = torch.randn(2, 3)
    assert.is_true(torch.equal(m(x), c(x)))
    assert.are.same({"steps", "a.weight", "a.bias", "b.weight", "b.bias"}, (function()
      local ks = {}
      for k in pairs(c:state_dict()) do ks[#ks + 1] = k end
      return ks
    end)())
  end)

  it("refuses what is not a module", function()
    assert.has_error(function() clone(3) end, "bad argument #1 to 'clone' (module expected, got number)")
  end)
end)

describe("training mode", function()
  it("runs the transformer layers with dropout, giving the right shapes", function()
    torch.manual_seed(5)
    local enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, {dropout = 0.5}), 2)
    local x = torch.randn(5, 3, 8)
    local y = enc(x)
    assert.are.same({5, 3, 8}, y:size())
    enc:eval()
    assert.is_false(torch.allclose(y, enc(x)))
    local dec = nn.TransformerDecoderLayer(8, 2, 16, {batch_first = true})
    assert.are.same({3, 4, 8}, dec(torch.randn(3, 4, 8), torch.randn(3, 6, 8)):size())
  end)
end)

describe("errors", function()
  local BAD_CTOR = {
    {"nn.MultiheadAttention(8, 3)", "MultiheadAttention: embed_dim must be divisible by num_heads (got 8 and 3)"},
    {"nn.MultiheadAttention(8, 2, {dropouts = 0.1})", "bad option 'dropouts' to 'MultiheadAttention' " ..
      "(valid options: embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim, " ..
      "batch_first, device, dtype)"},
    {"nn.TransformerEncoderLayer(8, 2, {activation = 'tanh'})",
      "TransformerEncoderLayer: activation should be relu/gelu or a module, not tanh"},
    {"nn.TransformerEncoder(nil, 2)", "bad argument #1 to 'TransformerEncoder' (module expected, got nil)"},
    {"nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 2, {norm = 3})",
      "bad option 'norm' to 'TransformerEncoder' (module expected, got number)"},
    {"nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2), 1.5)",
      "TransformerDecoder: num_layers must be a non-negative integer"},
  }
  for _, c in ipairs(BAD_CTOR) do
    it("refuses " .. c[1], function()
      assert.are.equal("user.lua:2: " .. c[2], A.err_of(c[1]))
    end)
  end

  local m, x
  before_each(function()
    torch.manual_seed(6)
    m = nn.MultiheadAttention(8, 2)
    x = torch.randn(4, 3, 8)
  end)
  local function err(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    return e
  end

  it("names the bad argument or option of forward", function()
    assert.are.equal("bad argument #1 to 'MultiheadAttention' (query should be unbatched 2-D or batched 3-D " ..
      "tensor, got 4-D)", err(function() m(torch.randn(1, 4, 3, 8), x, x) end))
    assert.are.equal("bad argument #2 to 'MultiheadAttention' (key tensor expected, got nil)",
      err(function() m(x) end))
    assert.are.equal("bad argument #2 to 'MultiheadAttention' (key should be 3-D as query is, got 2-D)",
      err(function() m(x, x[1], x) end))
    assert.are.equal("bad argument #1 to 'MultiheadAttention' (was expecting embedding dimension of 8, but got 6)",
      err(function() local y = torch.randn(4, 3, 6) m(y, y, y) end))
    assert.are.equal("bad option 'attn_masks' to 'MultiheadAttention' (valid options: attn_mask, " ..
      "average_attn_weights, is_causal, key_padding_mask, need_weights)",
      err(function() m(x, x, x, {attn_masks = torch.zeros(4, 4)}) end))
    assert.are.equal("bad option 'attn_mask' to 'MultiheadAttention' (the shape of the 2-D attn_mask is " ..
      "{4, 5}, but should be {4, 4})", err(function() m(x, x, x, {attn_mask = torch.zeros(4, 5)}) end))
    assert.are.equal("bad option 'attn_mask' to 'MultiheadAttention' (only float, byte and bool types are " ..
      "supported, got int64)", err(function() m(x, x, x, {attn_mask = torch.zeros({4, 4}, {dtype = "int64"})}) end))
    assert.are.equal("bad option 'key_padding_mask' to 'MultiheadAttention' (expecting key_padding_mask shape " ..
      "of {3, 4}, but got {4, 3})", err(function() m(x, x, x, {key_padding_mask = torch.zeros(4, 3)}) end))
    assert.are.equal("bad option 'key_padding_mask' to 'MultiheadAttention' (a float key_padding_mask " ..
      "cannot be merged with a float attn_mask; give one of them as a bool mask)",
      err(function() m(x, x, x, {attn_mask = torch.zeros(4, 4), key_padding_mask = torch.zeros(3, 4)}) end))
    assert.are.equal("bad option 'key_padding_mask' to 'MultiheadAttention' (only bool and floating types of " ..
      "key_padding_mask are supported, got int64)",
      err(function() m(x, x, x, {key_padding_mask = torch.zeros({3, 4}, {dtype = "int64"})}) end))
    assert.are.equal("bad option 'need_weights' to 'MultiheadAttention' (boolean expected, got number)",
      err(function() m(x, x, x, {need_weights = 0}) end))
    assert.are.equal("bad argument #4 to 'MultiheadAttention' (table of options expected, got tensor)",
      err(function() m(x, x, x, torch.zeros(3, 4)) end))
  end)

  it("names the layer inside a stack that failed", function()
    local enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    assert.are.equal("error in forward of 'layers.0.self_attn' (MultiheadAttention): bad argument #1 to " ..
      "'MultiheadAttention' (was expecting embedding dimension of 8, but got 6)",
      err(function() enc(torch.randn(5, 3, 6)) end))
    assert.are.equal("bad option 'src_mask' to 'TransformerEncoder' (valid options: mask, src_key_padding_mask)",
      err(function() enc(torch.randn(5, 3, 8), {src_mask = torch.zeros(5, 5)}) end))
  end)
end)

-- a user model: embedding, positional parameter, transformer encoder, head
local TinyTransformer = nn.module("at_tiny_transformer", {
  initialize = function(self, vocab, d)
    self.emb = nn.Embedding(vocab, d)
    self.pos = nn.Parameter(torch.randn(1, 6, d) * 0.1)
    self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 2, 2 * d, {batch_first = true,
      norm_first = true, activation = "gelu"}), 2, {norm = nn.LayerNorm(d)})
    self.head = nn.Linear(d, vocab)
  end,
  forward = function(self, ids, kpm)
    local x = self.emb(ids) + self.pos:narrow(2, 1, ids:size(2))
    return self.head(self.encoder(x, {src_key_padding_mask = kpm}))
  end,
})

describe("whole-module round trip", function()
  it("saves a transformer model and loads it in a fresh process with the same output", function()
    torch.manual_seed(9)
    local m = TinyTransformer(11, 8):eval()
    local ids = torch.tensor({{1, 4, 7, 2, 9, 3}, {5, 5, 8, 10, 1, 2}})
    local kpm = torch.tensor({{false, false, false, false, true, true}, {false, false, false, false, false, false}})
    local y = m(ids, kpm)
    local d = H.tmpdir()
    torch.save(m, d .. "/model.pt")
    torch.save({ids = ids, kpm = kpm}, d .. "/in.pt")
    local ok, out = H.lua(string.format([[
local torch = require("ltorch")
local m = torch.load(%q, {trust_code = true})
local i = torch.load(%q)
torch.save(m(i.ids, i.kpm), %q)
print(m:class_name(), m.training)
]], d .. "/model.pt", d .. "/in.pt", d .. "/y.pt"), d)
    assert.is_true(ok, out)
    assert.are.equal("at_tiny_transformer\tfalse\n", out)
    assert.is_true(torch.equal(y, torch.load(d .. "/y.pt")))
    -- PyTorch reads the same file as a state dict
    local keys = H.python(string.format([[
import torch
sd = torch.load(%q, weights_only=True)
print(len(sd), sd['encoder.layers.1.self_attn.in_proj_weight'].shape[0], 'encoder.norm.weight' in sd)
]], d .. "/model.pt"), d)
    assert.are.equal("30 24 True\n", keys)
    H.rmdir(d)
  end)
end)
