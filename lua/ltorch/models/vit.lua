-- vit.lua: torchvision 0.14's VisionTransformer (torchvision/models/
-- vision_transformer.py): conv_proj (a patch_size x patch_size Conv2d of
-- stride patch_size, or a conv stem Sequential), class_token {1, 1, D},
-- encoder (pos_embedding {1, S, D}, dropout, layers = Sequential of
-- encoder_layer_0..N-1, ln), heads = Sequential(head | pre_logits, act,
-- head). An EncoderBlock is ln_1, self_attention (nn.MultiheadAttention,
-- batch_first), dropout, ln_2, mlp (MLPBlock: Linear, GELU, Dropout,
-- Linear, Dropout), pre-norm with two residuals. Norms are LayerNorm with
-- eps 1e-6. Init as torchvision: conv_proj truncated normal (std
-- sqrt(1 / fan_in)), pos_embedding normal(0, 0.02), class token and head
-- zeros, MLP weights xavier-uniform with biases normal(0, 1e-6).
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local odict = require("ltorch.odict")
local nn = torch.nn
local init = misc.init

local M = {}

-- torchvision's default norm_layer, partial(nn.LayerNorm, eps=1e-6)
local function layer_norm_1e6(d) return nn.LayerNorm(d, {eps = 1e-6}) end
M.layer_norm_1e6 = layer_norm_1e6

local function norm_of(v, class)
  if v == nil or misc.is_none(v) then return layer_norm_1e6 end
  return misc.factory(v, "norm_layer", class)
end

M.MLPBlock = base.module("MLPBlock", {
  inherit = misc.MLP,
  -- MLPBlock(in_dim, mlp_dim, dropout): MLP(in_dim, {mlp_dim, in_dim}, GELU)
  initialize = function(self, ...)
    local a = base.args("MLPBlock", {"in_dim", "mlp_dim", "dropout"}, ...)
    misc.MLP.methods.initialize(self, a.in_dim, {a.mlp_dim, a.in_dim},
      {activation_layer = nn.GELU, inplace = torch.null, dropout = a.dropout or 0.0})
    for _, m in ipairs(self:modules()) do
      if m:class_name() == "Linear" then
        init.xavier_uniform_(m.weight)
        if m.bias then init.normal_(m.bias, 0, 1e-6) end
      end
    end
  end,
}, misc.LIB)

M.EncoderBlock = base.module("EncoderBlock", {
  -- EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout
  -- [, norm_layer = LayerNorm(eps = 1e-6)])
  initialize = function(self, ...)
    local C = "EncoderBlock"
    local a = base.args(C, {"num_heads", "hidden_dim", "mlp_dim", "dropout", "attention_dropout",
      "norm_layer"}, ...)
    local norm_layer = norm_of(a.norm_layer, C)
    self.num_heads = a.num_heads
    self.ln_1 = norm_layer(a.hidden_dim)
    self.self_attention = nn.MultiheadAttention(a.hidden_dim, a.num_heads,
      {dropout = a.attention_dropout or 0.0, batch_first = true})
    self.dropout = nn.Dropout(a.dropout or 0.0)
    self.ln_2 = norm_layer(a.hidden_dim)
    self.mlp = M.MLPBlock(a.hidden_dim, a.mlp_dim, a.dropout or 0.0)
  end,
  forward = function(self, input)
    if input:dim() ~= 3 then
      error(string.format("expected (batch_size, seq_length, hidden_dim), got %dD input", input:dim()), 2)
    end
    local x = self.ln_1(input)
    x = self.self_attention(x, x, x, {need_weights = false})
    x = self.dropout(x) + input
    return x + self.mlp(self.ln_2(x))
  end,
}, misc.LIB)

M.Encoder = base.module("Encoder", {
  -- Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout,
  -- attention_dropout [, norm_layer = LayerNorm(eps = 1e-6)])
  initialize = function(self, ...)
    local C = "Encoder"
    local a = base.args(C, {"seq_length", "num_layers", "num_heads", "hidden_dim", "mlp_dim", "dropout",
      "attention_dropout", "norm_layer"}, ...)
    local norm_layer = norm_of(a.norm_layer, C)
    self.pos_embedding = nn.Parameter(torch.randn(1, a.seq_length, a.hidden_dim) * 0.02)
    self.dropout = nn.Dropout(a.dropout or 0.0)
    local layers = odict.new()
    for i = 0, a.num_layers - 1 do
      layers["encoder_layer_" .. i] = M.EncoderBlock(a.num_heads, a.hidden_dim, a.mlp_dim, a.dropout,
        a.attention_dropout, norm_layer)
    end
    self.layers = nn.Sequential(layers)
    self.ln = norm_layer(a.hidden_dim)
  end,
  forward = function(self, input)
    if input:dim() ~= 3 then
      error(string.format("expected (batch_size, seq_length, hidden_dim), got %dD input", input:dim()), 2)
    end
    return self.ln(self.layers(self.dropout(input + self.pos_embedding)))
  end,
}, misc.LIB)

-- ConvStemConfig(out_channels, kernel_size, stride [, norm_layer =
-- nn.BatchNorm2d, activation_layer = nn.ReLU]): one conv of a conv stem
local STEM = {__name = "ltorch.models.ConvStemConfig"}
function M.ConvStemConfig(out_channels, kernel_size, stride, norm_layer, activation_layer)
  return setmetatable({out_channels = out_channels, kernel_size = kernel_size, stride = stride,
    norm_layer = norm_layer or nn.BatchNorm2d, activation_layer = activation_layer or nn.ReLU}, STEM)
end

M.VisionTransformer = base.module("VisionTransformer", {
  -- VisionTransformer(image_size, patch_size, num_layers, num_heads,
  -- hidden_dim, mlp_dim [, dropout = 0.0, attention_dropout = 0.0,
  -- num_classes = 1000, representation_size, norm_layer = LayerNorm(eps =
  -- 1e-6), conv_stem_configs = {models.ConvStemConfig(...)...}])
  initialize = function(self, ...)
    local C = "VisionTransformer"
    local a = base.args(C, {"image_size", "patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim",
      "dropout", "attention_dropout", "num_classes", "representation_size", "norm_layer",
      "conv_stem_configs"}, ...)
    for _, k in ipairs({"image_size", "patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim"}) do
      base.check(math.type(a[k]) == "integer" and a[k] > 0, C, "%s must be a positive integer, got %s", k,
        tostring(a[k]))
    end
    base.check(a.image_size % a.patch_size == 0, C, "input shape indivisible by patch size")
    local norm_layer = norm_of(a.norm_layer, C)
    local D = a.hidden_dim
    self.image_size = a.image_size
    self.patch_size = a.patch_size
    self.hidden_dim = D
    self.mlp_dim = a.mlp_dim
    self.attention_dropout = (a.attention_dropout or 0.0) + 0.0
    self.dropout = (a.dropout or 0.0) + 0.0
    self.num_classes = a.num_classes or 1000
    local rep = a.representation_size
    if misc.is_none(rep) then rep = nil end
    self.representation_size = rep
    local stems = a.conv_stem_configs
    if stems ~= nil and not misc.is_none(stems) then
      base.check(type(stems) == "table", C, "conv_stem_configs must be a list of models.ConvStemConfig")
      local seq = nn.Sequential()
      local prev = 3
      for i, s in ipairs(stems) do
        base.check(getmetatable(s) == STEM, C, "conv_stem_configs must be a list of models.ConvStemConfig")
        seq:add_module("conv_bn_relu_" .. (i - 1), misc.Conv2dNormActivation(prev, s.out_channels, {
          kernel_size = s.kernel_size, stride = s.stride, norm_layer = s.norm_layer,
          activation_layer = s.activation_layer}))
        prev = s.out_channels
      end
      seq:add_module("conv_last", nn.Conv2d(prev, D, 1))
      self.conv_proj = seq
    else
      self.conv_proj = nn.Conv2d(3, D, a.patch_size, {stride = a.patch_size})
    end
    local grid = a.image_size // a.patch_size
    local seq_length = grid * grid + 1   -- the patches and the class token
    self.class_token = nn.Parameter(torch.zeros(1, 1, D))
    self.encoder = M.Encoder(seq_length, a.num_layers, a.num_heads, D, a.mlp_dim, self.dropout,
      self.attention_dropout, norm_layer)
    self.seq_length = seq_length
    local heads = odict.new()
    if rep == nil then
      heads.head = nn.Linear(D, self.num_classes)
    else
      heads.pre_logits = nn.Linear(D, rep)
      heads.act = nn.Tanh()
      heads.head = nn.Linear(rep, self.num_classes)
    end
    self.heads = nn.Sequential(heads)
    local cp = self.conv_proj
    if cp:class_name() == "Conv2d" then
      local fan_in = cp.in_channels * cp.kernel_size[1] * cp.kernel_size[2]
      init.trunc_normal_(cp.weight, math.sqrt(1 / fan_in))
      if cp.bias then init.zeros_(cp.bias) end
    else
      local last = cp.conv_last
      init.normal_(last.weight, 0, math.sqrt(2 / last.out_channels))
      if last.bias then init.zeros_(last.bias) end
    end
    if self.heads.pre_logits then
      local p = self.heads.pre_logits
      init.trunc_normal_(p.weight, math.sqrt(1 / p.in_features))
      init.zeros_(p.bias)
    end
    init.zeros_(self.heads.head.weight)
    init.zeros_(self.heads.head.bias)
  end,
  -- {N, 3, H, W} -> {N, (H/p)*(W/p), D}
  _process_input = function(self, x)
    if x:dim() ~= 4 then error(string.format("expected 4D input (got %dD input)", x:dim()), 3) end
    local s = x:size()
    local n, h, w, p = s[1], s[3], s[4], self.patch_size
    if h ~= self.image_size then
      error(string.format("wrong image height: expected %d, got %d", self.image_size, h), 3)
    end
    if w ~= self.image_size then
      error(string.format("wrong image width: expected %d, got %d", self.image_size, w), 3)
    end
    x = self.conv_proj(x)
    return x:reshape({n, self.hidden_dim, (h // p) * (w // p)}):permute({1, 3, 2})
  end,
  forward = function(self, x)
    x = self:_process_input(x)
    local n = x:size(1)
    x = torch.cat({self.class_token:expand({n, -1, -1}), x}, 2)
    x = self.encoder(x)
    return self.heads(x:select(2, 1))
  end,
}, misc.LIB)

-- the state dict of an old torchvision ViT checkpoint (MLPBlock version 1:
-- mlp.linear_1 / mlp.linear_2) with its keys renamed as torchvision's
-- MLPBlock._load_from_state_dict does (mlp.0 / mlp.3); other keys are kept
function M.convert_state_dict(sd)
  local out = odict.new()
  for key, t in pairs(sd) do
    local new = key:gsub("%.mlp%.linear_1%.(%a+)$", ".mlp.0.%1"):gsub("%.mlp%.linear_2%.(%a+)$", ".mlp.3.%1")
    out[new] = t
  end
  return out
end

return M
