-- misc.lua: torchvision 0.14's building blocks shared by the model zoo
-- (torchvision/ops/misc.py, ops/stochastic_depth.py): Conv2dNormActivation,
-- SqueezeExcitation, StochasticDepth and MLP, with torchvision's names and
-- child order so that state dict keys match; and the weight initialisers
-- the torchvision models call (nn.init's kaiming, xavier, normal...).
--
-- Layer factories (torchvision's norm_layer, activation_layer...) are an nn
-- class (nn.BatchNorm2d) or a function returning a module (PyTorch's
-- functools.partial: function(c) return nn.BatchNorm2d(c, {eps = 1e-3}) end);
-- Python's None is false or torch.null (nil means "the default").
local torch = require("ltorch")
local base = require("ltorch.nn.module")

local M = {}

local LIB = {builtin = true, lib = "ltorch.models"}
M.LIB = LIB

-- Python's None: false or torch.null
local function is_none(v) return v == false or v == torch.null end
M.is_none = is_none

-- v checked to be a layer factory (an nn class or a function), else the
-- constructor of class fails naming the option
local function factory(v, what, class)
  if base.is_class(v) or type(v) == "function" then return v end
  base.fail(class, "%s must be an nn class or a function returning a module, got %s", what, type(v))
end
M.factory = factory

---------------------------------------------------------------------------
-- initialisers (torch.nn.init's, for the tensors of a module): each fills
-- t in place (a parameter keeps its identity) and returns it. Values are
-- drawn with torch.rand/randn, so torch.manual_seed makes them repeatable;
-- the distributions are PyTorch's, the draws are not its bit for bit.

local init = {}
M.init = init

-- fan_in, fan_out of a weight {out, in, k...} (nn.init's _calculate_fan_in_and_fan_out)
local function fans(t)
  local s = t:size()
  local receptive = 1
  for i = 3, #s do receptive = receptive * s[i] end
  return (s[2] or 1) * receptive, s[1] * receptive
end

function init.normal_(t, mean, std)
  local x = torch.randn(t:size()) * std
  if mean ~= nil and mean ~= 0 then x = x + mean end
  return t:copy(x)
end
function init.uniform_(t, lo, hi)
  return t:copy(torch.rand(t:size()) * (hi - lo) + lo)
end
function init.zeros_(t) return t:fill(0) end
function init.ones_(t) return t:fill(1) end

-- kaiming_normal_(t [, mode = "fan_in"]) with nonlinearity relu (or
-- leaky_relu with a = 0, nn.init's default): std = sqrt(2 / fan)
function init.kaiming_normal_(t, mode)
  local fan_in, fan_out = fans(t)
  local fan = mode == "fan_out" and fan_out or fan_in
  return init.normal_(t, 0, math.sqrt(2 / fan))
end

-- kaiming_uniform_(t) as nn.init's default (fan_in, a = 0): bound sqrt(6 / fan_in)
function init.kaiming_uniform_(t)
  local fan_in = fans(t)
  local bound = math.sqrt(6 / fan_in)
  return init.uniform_(t, -bound, bound)
end

-- xavier_uniform_(t): bound sqrt(6 / (fan_in + fan_out))
function init.xavier_uniform_(t)
  local fan_in, fan_out = fans(t)
  local bound = math.sqrt(6 / (fan_in + fan_out))
  return init.uniform_(t, -bound, bound)
end

-- trunc_normal_(t, std [, a = -2, b = 2]): normal(0, std) restricted to
-- [a, b] (absolute bounds, as nn.init's): values outside are drawn again,
-- a few rounds, then clamped (after 8 rounds of a 2-sigma cut a value is
-- outside with probability ~1e-11)
function init.trunc_normal_(t, std, a, b)
  a, b = a or -2, b or 2
  local s = t:size()
  local x = torch.randn(s) * std
  for _ = 1, 8 do
    x = torch.where(x:lt(a), torch.randn(s) * std, x)
    x = torch.where(x:gt(b), torch.randn(s) * std, x)
  end
  return t:copy(x:clamp(a, b))
end

-- M.init_mobile(model, linear): the init MobileNetV2 and EfficientNet give
-- every module of model: Conv2d kaiming_normal_ (fan_out) and a zero bias,
-- BatchNorm2d and GroupNorm (affine) ones and zeros, Linear linear(m.weight,
-- m) and a zero bias
function M.init_mobile(model, linear)
  for _, m in ipairs(model:modules()) do
    local name = m:class_name()
    if name == "Conv2d" then
      init.kaiming_normal_(m.weight, "fan_out")
      if m.bias then init.zeros_(m.bias) end
    elseif (name == "BatchNorm2d" or name == "GroupNorm") and m.weight then
      init.ones_(m.weight)
      init.zeros_(m.bias)
    elseif name == "Linear" then
      linear(m.weight, m)
      init.zeros_(m.bias)
    end
  end
end

---------------------------------------------------------------------------
-- Conv2dNormActivation: Sequential(Conv2d, norm, activation) (torchvision's
-- ops.misc.Conv2dNormActivation); children "0", "1", "2" as torchvision's.

local Sequential = torch.nn.Sequential

M.Conv2dNormActivation = base.module("Conv2dNormActivation", {
  inherit = Sequential,
  -- Conv2dNormActivation(in_channels, out_channels [, kernel_size = 3,
  -- stride = 1, padding = (kernel_size - 1) // 2 * dilation, groups = 1,
  -- norm_layer = nn.BatchNorm2d, activation_layer = nn.ReLU, dilation = 1,
  -- inplace = true, bias = (norm_layer is None)])
  initialize = function(self, ...)
    local C = "Conv2dNormActivation"
    local a = base.args(C, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "groups",
      "norm_layer", "activation_layer", "dilation", "inplace", "bias"}, ...)
    local k = a.kernel_size or 3
    local dilation = a.dilation or 1
    local padding = a.padding
    if padding == nil or is_none(padding) then
      local kk = base.pair(k, "kernel_size", C)
      local dd = base.pair(dilation, "dilation", C)
      if type(k) == "number" and type(dilation) == "number" then
        padding = (k - 1) // 2 * dilation
      else
        padding = {(kk[1] - 1) // 2 * dd[1], (kk[2] - 1) // 2 * dd[2]}
      end
    end
    local norm_layer = a.norm_layer
    if norm_layer == nil then norm_layer = torch.nn.BatchNorm2d end
    if is_none(norm_layer) then norm_layer = nil else norm_layer = factory(norm_layer, "norm_layer", C) end
    local act = a.activation_layer
    if act == nil then act = torch.nn.ReLU end
    if is_none(act) then act = nil else act = factory(act, "activation_layer", C) end
    local bias = a.bias
    if bias == nil or bias == torch.null then bias = norm_layer == nil end
    local layers = {torch.nn.Conv2d(a.in_channels, a.out_channels, k, {stride = a.stride or 1,
      padding = padding, dilation = dilation, groups = a.groups or 1, bias = bias})}
    if norm_layer then layers[#layers + 1] = norm_layer(a.out_channels) end
    if act then
      local inplace = a.inplace
      if inplace == nil then inplace = true end
      if inplace == torch.null then layers[#layers + 1] = act()
      else layers[#layers + 1] = act({inplace = inplace}) end
    end
    for i, m in ipairs(layers) do self:add_module(tostring(i - 1), m) end
    self.out_channels = a.out_channels
  end,
}, LIB)

---------------------------------------------------------------------------
-- SqueezeExcitation: x * sigma(fc2(delta(fc1(avgpool(x))))) (torchvision's
-- ops.misc.SqueezeExcitation; fc1 and fc2 are 1x1 convolutions)

M.SqueezeExcitation = base.module("SqueezeExcitation", {
  -- SqueezeExcitation(input_channels, squeeze_channels [, activation = nn.ReLU,
  -- scale_activation = nn.Sigmoid]); the activations are called with no argument
  initialize = function(self, ...)
    local C = "SqueezeExcitation"
    local a = base.args(C, {"input_channels", "squeeze_channels", "activation", "scale_activation"}, ...)
    local act = factory(a.activation or torch.nn.ReLU, "activation", C)
    local scale_act = factory(a.scale_activation or torch.nn.Sigmoid, "scale_activation", C)
    self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
    self.fc1 = torch.nn.Conv2d(a.input_channels, a.squeeze_channels, 1)
    self.fc2 = torch.nn.Conv2d(a.squeeze_channels, a.input_channels, 1)
    self.activation = act()
    self.scale_activation = scale_act()
  end,
  _scale = function(self, x)
    local s = self.fc1(self.avgpool(x))
    s = self.fc2(self.activation(s))
    return self.scale_activation(s)
  end,
  forward = function(self, x)
    return self:_scale(x) * x
  end,
}, LIB)

---------------------------------------------------------------------------
-- StochasticDepth: in training mode, zeroes the whole input ("batch") or
-- each sample ("row") with probability p and scales the rest by 1/(1-p);
-- the identity in eval mode or with p = 0 (torchvision's ops.StochasticDepth)

M.StochasticDepth = base.module("StochasticDepth", {
  -- StochasticDepth(p, mode): mode "batch" or "row"
  initialize = function(self, ...)
    local C = "StochasticDepth"
    local a = base.args(C, {"p", "mode"}, ...)
    base.check(type(a.p) == "number" and a.p >= 0 and a.p <= 1, C,
      "drop probability has to be between 0 and 1, but got %s", tostring(a.p))
    base.check(a.mode == "batch" or a.mode == "row", C,
      "mode has to be either 'batch' or 'row', but got %s", tostring(a.mode))
    self.p, self.mode = a.p, a.mode
  end,
  forward = function(self, x)
    if not self.training or self.p == 0 then return x end
    local survival = 1 - self.p
    local size = {}
    for i = 1, x:dim() do size[i] = 1 end
    if self.mode == "row" then size[1] = x:size(1) end
    local noise = torch.rand(size):lt(survival):to(x:dtype())
    if survival > 0 then noise = noise / survival end
    return x * noise
  end,
  extra_repr = function(self)
    return string.format("p=%s, mode=%s", base.pyrepr(self.p + 0.0), self.mode)
  end,
}, LIB)

---------------------------------------------------------------------------
-- MLP: Sequential of (Linear, [norm], activation, Dropout) per hidden size
-- but the last, then Linear, Dropout (torchvision's ops.misc.MLP)

M.MLP = base.module("MLP", {
  inherit = Sequential,
  -- MLP(in_channels, hidden_channels [, norm_layer = None, activation_layer =
  -- nn.ReLU, inplace = true, bias = true, dropout = 0.0]); inplace =
  -- torch.null calls the activation and Dropout without it
  initialize = function(self, ...)
    local C = "MLP"
    local a = base.args(C, {"in_channels", "hidden_channels", "norm_layer", "activation_layer",
      "inplace", "bias", "dropout"}, ...)
    local hidden = a.hidden_channels
    base.check(type(hidden) == "table" and #hidden > 0, C, "hidden_channels must be a non-empty list")
    local norm_layer = a.norm_layer
    if norm_layer ~= nil and not is_none(norm_layer) then norm_layer = factory(norm_layer, "norm_layer", C)
    else norm_layer = nil end
    local act = factory(a.activation_layer or torch.nn.ReLU, "activation_layer", C)
    local inplace = a.inplace
    if inplace == nil then inplace = true end
    local params = inplace ~= torch.null and {inplace = inplace} or nil
    local bias = a.bias ~= false
    local dropout = a.dropout or 0.0
    local n = 0
    local function add(m) self:add_module(tostring(n), m) n = n + 1 end
    local in_dim = a.in_channels
    for i = 1, #hidden - 1 do
      add(torch.nn.Linear(in_dim, hidden[i], {bias = bias}))
      if norm_layer then add(norm_layer(hidden[i])) end
      add(params and act(params) or act())
      add(params and torch.nn.Dropout(dropout, params) or torch.nn.Dropout(dropout))
      in_dim = hidden[i]
    end
    add(torch.nn.Linear(in_dim, hidden[#hidden], {bias = bias}))
    add(params and torch.nn.Dropout(dropout, params) or torch.nn.Dropout(dropout))
  end,
}, LIB)

return M
