-- functional.lua: torch.nn.functional (require("ltorch.nn.functional"), or
-- torch.nn.functional): PyTorch 1.13's functional forms with its names and
-- signatures. Positional arguments in PyTorch's order, keyword arguments in
-- a trailing table (F.pad(x, {1, 1}, {mode = "reflect"})); an unknown
-- keyword is an error naming it. Dims and class indices are 1-based.
-- Every element loop is C: the tensor ops (lops.c and the other math
-- bindings) and the ops of lnn.c, which this file gives F's signatures.
local torch = require("ltorch")
local core = require("ltorch.core")
local base = require("ltorch.nn.module")

local F = {}

-- the C functions of lnn.c under the names their messages use (a C
-- argument error names the field it was called through)
local C = {pad = core._pad, interpolate = core._interpolate, one_hot = core._one_hot,
  class_loss = core._class_loss, max_pool_indices = core._max_pool_indices}

local args = base.args

-- raise "bad argument #i to 'name' (message)" at the caller of F (the first
-- frame outside ltorch's nn files)
local function bad(name, i, fmt, ...)
  base.raise(string.format("bad argument #%d to '%s' (%s)", i, name, string.format(fmt, ...)))
end

local function what(v)
  if torch.is_tensor(v) then return "tensor" end
  return type(v)
end

-- v must be a tensor (or nil when optional)
local function tensor(name, i, v, optional)
  if v == nil and optional then return v end
  if not torch.is_tensor(v) then bad(name, i, "tensor expected, got %s", what(v)) end
  return v
end

-- an integer or a one-element list of one: the size of a 1-d op
local function one(name, i, v, what_, default)
  if v == nil then return default end
  if type(v) == "table" and #v == 1 then v = v[1] end
  if math.type(v) ~= "integer" then bad(name, i, "%s must be an integer or {n}, got %s", what_, type(v)) end
  return v
end

-- ops with an inplace keyword: y written into x, which is returned
local function inplace(x, y, flag)
  if flag then x:copy(y) return x end
  return y
end

-- PyTorch's reduction from the deprecated size_average and reduce
-- (_Reduction.legacy_get_string), or the reduction keyword
local function reduction_of(name, i, a)
  if a.size_average ~= nil or a.reduce ~= nil then
    local sa, rd = a.size_average ~= false, a.reduce ~= false
    return sa and rd and "mean" or rd and "sum" or "none"
  end
  local r = a.reduction or "mean"
  if r ~= "mean" and r ~= "sum" and r ~= "none" then
    bad(name, i, "reduction must be 'mean', 'sum' or 'none', got %s", type(r) == "string" and "'" .. r .. "'" or type(r))
  end
  return r
end

local function reduce(t, reduction)
  if reduction == "sum" then return t:sum() end
  if reduction == "mean" then return t:mean() end
  return t
end

---------------------------------------------------------------------------
-- padding and resampling

-- pad(input, pad, mode = "constant", value = 0): pad lists {left, right}
-- pairs from the last dim backwards; negative pads crop
function F.pad(...)
  local a = args("pad", {"input", "pad", "mode", "value"}, ...)
  tensor("pad", 1, a.input)
  return C.pad(a.input, a.pad, a.mode, a.value)
end

-- interpolate(input, size, scale_factor, mode = "nearest", align_corners,
-- recompute_scale_factor, antialias): modes nearest and nearest-exact (3-D
-- to 5-D), linear (3-D), bilinear and bicubic (4-D), area (3-D, 4-D);
-- PyTorch 1.13's rules for size, scale_factor and recompute_scale_factor
function F.interpolate(...)
  local N = "interpolate"
  local a = args(N, {"input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
    "antialias"}, ...)
  local x = tensor(N, 1, a.input)
  local mode = a.mode or "nearest"
  if type(mode) ~= "string" then bad(N, 4, "mode must be a string, got %s", type(mode)) end
  local known = {nearest = true, ["nearest-exact"] = true, area = true, linear = true, bilinear = true,
    bicubic = true}
  if not known[mode] then
    if mode == "trilinear" then bad(N, 4, "mode '%s' is not supported", mode) end
    bad(N, 4, "mode must be 'nearest', 'nearest-exact', 'linear', 'bilinear', 'bicubic' or 'area', got '%s'", mode)
  end
  local align = a.align_corners
  if mode == "nearest" or mode == "nearest-exact" or mode == "area" then
    if align ~= nil then
      bad(N, 5, "align_corners can only be set with the interpolating modes linear, bilinear, bicubic and trilinear")
    end
  else
    align = align == true
  end
  if a.antialias then bad(N, 7, "antialias is not supported") end
  local nd = x:dim() - 2
  if nd < 1 or nd > 3 then bad(N, 1, "expected a 3-D, 4-D or 5-D input, got %d-D", x:dim()) end
  local size, sf = a.size, a.scale_factor
  if size ~= nil and sf ~= nil then bad(N, 2, "only one of size and scale_factor may be given") end
  if size == nil and sf == nil then bad(N, 2, "either size or scale_factor must be given") end
  if a.recompute_scale_factor and size ~= nil then
    bad(N, 6, "recompute_scale_factor is not meaningful with an explicit size")
  end
  local in_sizes = x:size()
  -- v (argument argn: one value or a list of nd) as a list of nd values
  local function per_dim(v, argn, noun)
    local t = {}
    if type(v) == "table" then
      if #v ~= nd then
        bad(N, argn, "expected %d %s%s for input of spatial size {%s}, got %d", nd, noun, nd == 1 and "" or "s",
          table.concat(in_sizes, ", ", 3), #v)
      end
      for i = 1, nd do t[i] = v[i] end
    else
      for i = 1, nd do t[i] = v end
    end
    return t
  end
  local osize, scales = {}, nil
  if size ~= nil then
    osize = per_dim(size, 2, "output size")
    for i = 1, nd do
      if math.type(osize[i]) ~= "integer" then bad(N, 2, "output sizes must be integers, got %s", type(osize[i])) end
    end
  else
    local s = per_dim(sf, 3, "scale factor")
    for i = 1, nd do
      if type(s[i]) ~= "number" then bad(N, 3, "scale factors must be numbers, got %s", type(s[i])) end
      osize[i] = math.floor(in_sizes[i + 2] * s[i] + 0.0)
    end
    -- recompute_scale_factor (forced for area): the indices use in/out
    if not (a.recompute_scale_factor or mode == "area") then scales = s end
  end
  if mode == "area" then
    if nd == 1 then return F.adaptive_avg_pool1d(x, osize[1]) end
    if nd == 2 then return F.adaptive_avg_pool2d(x, osize) end
    bad(N, 1, "mode 'area' needs a 3-D or 4-D input, got %d-D", x:dim())
  end
  if mode == "linear" and nd ~= 1 then bad(N, 1, "mode 'linear' needs a 3-D input, got %d-D", x:dim()) end
  if (mode == "bilinear" or mode == "bicubic") and nd ~= 2 then
    bad(N, 1, "mode '%s' needs a 4-D input, got %d-D", mode, x:dim())
  end
  return C.interpolate(x, osize, scales, mode, align)
end

-- one_hot(tensor, num_classes = -1): int64, one more dim; class i (1-based)
-- sets column i
function F.one_hot(...)
  local a = args("one_hot", {"tensor", "num_classes"}, ...)
  tensor("one_hot", 1, a.tensor)
  if a.num_classes ~= nil and math.type(a.num_classes) ~= "integer" then
    bad("one_hot", 2, "num_classes must be an integer, got %s", type(a.num_classes))
  end
  return C.one_hot(a.tensor, a.num_classes)
end

---------------------------------------------------------------------------
-- softmax and normalisation over a dim

-- PyTorch's _get_softmax_dim for a missing dim (deprecated there): the first
-- dim of a 0-D, 1-D or 3-D input, else the second
local function softmax_dim(x, dim)
  if dim ~= nil then return dim end
  local n = x:dim()
  return (n == 0 or n == 1 or n == 3) and 1 or 2
end

local function softmax_like(name, fn, negate)
  return function(...)
    local a = args(name, {"input", "dim", "_stacklevel", "dtype"}, ...)
    local x = tensor(name, 1, a.input)
    if a.dim ~= nil and math.type(a.dim) ~= "integer" then bad(name, 2, "dim must be an integer, got %s", type(a.dim)) end
    if a.dtype ~= nil then x = x:to(a.dtype) end
    if negate then x = -x end
    return fn(x, softmax_dim(x, a.dim))
  end
end

-- softmax / log_softmax / softmin(input, dim [, _stacklevel, dtype])
F.softmax = softmax_like("softmax", function(x, d) return torch.softmax(x, d) end)
F.log_softmax = softmax_like("log_softmax", function(x, d) return torch.log_softmax(x, d) end)
F.softmin = softmax_like("softmin", function(x, d) return torch.softmax(x, d) end, true)

-- normalize(input, p = 2, dim = 2, eps = 1e-12): x / max(||x||_p over dim, eps)
-- (PyTorch's default dim 1 is the second dim: 2 here)
function F.normalize(...)
  local a = args("normalize", {"input", "p", "dim", "eps", "out"}, ...)
  local x = tensor("normalize", 1, a.input)
  if a.out ~= nil then bad("normalize", 5, "out is not supported") end
  local p, dim, eps = a.p or 2, a.dim or 2, a.eps or 1e-12
  if type(p) ~= "number" then bad("normalize", 2, "p must be a number, got %s", type(p)) end
  if math.type(dim) ~= "integer" then bad("normalize", 3, "dim must be an integer, got %s", type(dim)) end
  local norm
  if p == math.huge then norm = x:abs():max(dim, true)
  elseif p == -math.huge then norm = x:abs():min(dim, true)
  elseif p == 0 then norm = x:ne(0):sum(dim, true):to(x:dtype())
  elseif p == 1 then norm = x:abs():sum(dim, true)
  elseif p == 2 then norm = (x * x):sum(dim, true):sqrt()
  else norm = (x:abs() ^ p):sum(dim, true) ^ (1 / p) end
  return x / norm:clamp(eps)
end

---------------------------------------------------------------------------
-- activations (the kernels are torch.X)

local function activation(name, names, call)
  F[name] = function(...)
    local a = args(name, names, ...)
    local x = tensor(name, 1, a.input)
    return inplace(x, call(x, a), a.inplace)
  end
end

activation("relu", {"input", "inplace"}, function(x) return torch.relu(x) end)
activation("relu6", {"input", "inplace"}, function(x) return torch.relu6(x) end)
activation("silu", {"input", "inplace"}, function(x) return torch.silu(x) end)
activation("hardswish", {"input", "inplace"}, function(x) return torch.hardswish(x) end)
activation("hardsigmoid", {"input", "inplace"}, function(x) return torch.hardsigmoid(x) end)
activation("mish", {"input", "inplace"}, function(x) return torch.mish(x) end)
activation("leaky_relu", {"input", "negative_slope", "inplace"},
  function(x, a) return torch.leaky_relu(x, a.negative_slope or 0.01) end)
activation("elu", {"input", "alpha", "inplace"}, function(x, a) return torch.elu(x, a.alpha or 1.0) end)
activation("hardtanh", {"input", "min_val", "max_val", "inplace"},
  function(x, a) return x:clamp(a.min_val or -1.0, a.max_val or 1.0) end)

-- softplus(input, beta = 1, threshold = 20)
function F.softplus(...)
  local a = args("softplus", {"input", "beta", "threshold"}, ...)
  return torch.softplus(tensor("softplus", 1, a.input), a.beta or 1, a.threshold or 20)
end

-- gelu(input, approximate = "none" | "tanh")
function F.gelu(...)
  local a = args("gelu", {"input", "approximate"}, ...)
  local x = tensor("gelu", 1, a.input)
  local ap = a.approximate or "none"
  if ap ~= "none" and ap ~= "tanh" then
    bad("gelu", 2, "approximate must be 'none' or 'tanh', got %s", type(ap) == "string" and "'" .. ap .. "'" or type(ap))
  end
  return torch.gelu(x, ap)
end

function F.sigmoid(...)
  local a = args("sigmoid", {"input"}, ...)
  return torch.sigmoid(tensor("sigmoid", 1, a.input))
end

function F.tanh(...)
  local a = args("tanh", {"input"}, ...)
  return torch.tanh(tensor("tanh", 1, a.input))
end

---------------------------------------------------------------------------
-- losses

-- cross_entropy(input, target, weight, size_average, ignore_index = -100,
-- reduce, reduction = "mean", label_smoothing = 0): input (C), (N, C) or
-- (N, C, d...); target 1-based class indices (N, d...), or class
-- probabilities of input's shape
function F.cross_entropy(...)
  local N = "cross_entropy"
  local a = args(N, {"input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction",
    "label_smoothing"}, ...)
  local x, t = tensor(N, 1, a.input), tensor(N, 2, a.target)
  local w = tensor(N, 3, a.weight, true)
  local red = reduction_of(N, 7, a)
  local ls = a.label_smoothing or 0.0
  if type(ls) ~= "number" or ls < 0 or ls > 1 then
    bad(N, 8, "label_smoothing must be between 0 and 1, got %s", tostring(ls))
  end
  local ignore = a.ignore_index or -100
  if math.type(ignore) ~= "integer" then bad(N, 5, "ignore_index must be an integer, got %s", type(ignore)) end
  if x:dim() < 1 then bad(N, 1, "expected a 1-D or higher input, got 0-D") end
  local cdim = x:dim() == 1 and 1 or 2
  local logp = torch.log_softmax(x, cdim)
  local dt = t:dtype()
  if (dt:match("^float") or dt == "bfloat16") and table.concat(t:size(), ",") == table.concat(x:size(), ",") then
    local nc = x:size(cdim)
    if ls > 0 then t = t * (1 - ls) + ls / nc end
    local prod = logp * t
    if w then
      if w:numel() ~= nc then bad(N, 3, "weight has %d elements, expected %d", w:numel(), nc) end
      local shape = {nc}
      for _ = cdim + 1, x:dim() do shape[#shape + 1] = 1 end
      prod = prod * w:reshape(shape)
    end
    if red == "none" then return -prod:sum(cdim) end
    if red == "sum" then return -prod:sum() end
    return -prod:sum() / (x:numel() / nc)
  end
  return C.class_loss(logp, t, w, ignore, red, ls, N)
end

-- nll_loss(input, target, weight, size_average, ignore_index = -100, reduce,
-- reduction = "mean"): input holds log-probabilities
function F.nll_loss(...)
  local N = "nll_loss"
  local a = args(N, {"input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction"}, ...)
  local x, t = tensor(N, 1, a.input), tensor(N, 2, a.target)
  local w = tensor(N, 3, a.weight, true)
  local red = reduction_of(N, 7, a)
  local ignore = a.ignore_index or -100
  if math.type(ignore) ~= "integer" then bad(N, 5, "ignore_index must be an integer, got %s", type(ignore)) end
  return C.class_loss(x, t, w, ignore, red, 0.0, N)
end

-- mse_loss(input, target, size_average, reduce, reduction = "mean")
function F.mse_loss(...)
  local N = "mse_loss"
  local a = args(N, {"input", "target", "size_average", "reduce", "reduction"}, ...)
  local x, t = tensor(N, 1, a.input), tensor(N, 2, a.target)
  local d = x - t
  return reduce(d * d, reduction_of(N, 5, a))
end

---------------------------------------------------------------------------
-- linear, convolution, dropout, embedding

-- dropout(input, p = 0.5, training = true, inplace = false)
function F.dropout(...)
  local a = args("dropout", {"input", "p", "training", "inplace"}, ...)
  local x = tensor("dropout", 1, a.input)
  local training = a.training ~= false
  return inplace(x, torch.dropout(x, a.p or 0.5, training), a.inplace and training)
end

-- linear(input, weight, bias)
function F.linear(...)
  local a = args("linear", {"input", "weight", "bias"}, ...)
  return torch.linear(tensor("linear", 1, a.input), tensor("linear", 2, a.weight), tensor("linear", 3, a.bias, true))
end

local CONV = {"input", "weight", "bias", "stride", "padding", "dilation", "groups"}
local CONVT = {"input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"}

local function conv_tensors(name, a)
  tensor(name, 1, a.input)
  tensor(name, 2, a.weight)
  tensor(name, 3, a.bias, true)
end

-- conv1d(input, weight, bias, stride = 1, padding = 0 | "valid" | "same",
-- dilation = 1, groups = 1)
function F.conv1d(...)
  local a = args("conv1d", CONV, ...)
  conv_tensors("conv1d", a)
  return torch.conv1d(a.input, a.weight, a.bias, a.stride, a.padding, a.dilation, a.groups)
end

-- a number or {h, w} as {h, w} (for the 'same' arithmetic; torch.conv2d
-- checks the values)
local function pair(v)
  if type(v) == "table" then return {v[1], v[#v]} end
  return {v, v}
end

-- conv2d(input, weight, bias, stride = 1, padding = 0 | {h, w} | "valid" |
-- "same", dilation = 1, groups = 1); 'same' with an odd total padding puts
-- the extra row and column at the bottom and right, as PyTorch
function F.conv2d(...)
  local a = args("conv2d", CONV, ...)
  conv_tensors("conv2d", a)
  local x, w, padding = a.input, a.weight, a.padding
  if padding == "same" and w:dim() == 4 then
    local s, d = pair(a.stride or 1), pair(a.dilation or 1)
    if s[1] ~= 1 or s[2] ~= 1 then bad("conv2d", 5, "padding 'same' is not supported for strided convolutions") end
    if math.type(d[1]) == "integer" and math.type(d[2]) == "integer" then
      local th, tw = d[1] * (w:size(3) - 1), d[2] * (w:size(4) - 1)
      if th % 2 == 1 or tw % 2 == 1 then x = C.pad(x, {0, tw % 2, 0, th % 2}) end
      padding = {th // 2, tw // 2}
    end
  end
  return torch.conv2d(x, w, a.bias, a.stride, padding, a.dilation, a.groups)
end

-- conv_transpose1d / conv_transpose2d(input, weight, bias, stride = 1,
-- padding = 0, output_padding = 0, groups = 1, dilation = 1)
function F.conv_transpose1d(...)
  local a = args("conv_transpose1d", CONVT, ...)
  conv_tensors("conv_transpose1d", a)
  return torch.conv_transpose1d(a.input, a.weight, a.bias, a.stride, a.padding, a.output_padding, a.groups, a.dilation)
end

function F.conv_transpose2d(...)
  local a = args("conv_transpose2d", CONVT, ...)
  conv_tensors("conv_transpose2d", a)
  return torch.conv_transpose2d(a.input, a.weight, a.bias, a.stride, a.padding, a.output_padding, a.groups, a.dilation)
end

-- embedding(input, weight, padding_idx, max_norm, norm_type = 2,
-- scale_grad_by_freq, sparse): rows of weight at 1-based indices;
-- padding_idx, scale_grad_by_freq and sparse only matter for gradients
function F.embedding(...)
  local N = "embedding"
  local a = args(N, {"input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"}, ...)
  local x, w = tensor(N, 1, a.input), tensor(N, 2, a.weight)
  if a.max_norm ~= nil then bad(N, 4, "max_norm is not supported") end
  if a.padding_idx ~= nil then
    local p, n = a.padding_idx, w:dim() == 2 and w:size(1) or 0
    if math.type(p) ~= "integer" or p == 0 or p > n or p < -n then
      bad(N, 3, "padding_idx must be within the %d embeddings (1-based, or negative from the end), got %s", n, tostring(p))
    end
  end
  return torch.embedding(w, x)
end

---------------------------------------------------------------------------
-- pooling

-- the output size of a 1-d pooling (PyTorch's pooling_output_shape), or
-- nil when it is below 1
local function pool_out(n, k, p, s, d, ceil)
  local num = n + 2 * p - d * (k - 1) - 1 + (ceil and s - 1 or 0)
  local out = num // s + 1
  if ceil and (out - 1) * s >= n + p then out = out - 1 end
  if out < 1 then return nil end
  return out
end

-- the (kernel, stride, padding, dilation) of a 1-d pooling; x 2-D or 3-D
local function pool1d_args(name, a, x)
  if x:dim() ~= 2 and x:dim() ~= 3 then bad(name, 1, "expected a 2-D or 3-D input, got %d-D", x:dim()) end
  local k = one(name, 2, a.kernel_size, "kernel_size")
  if k == nil then bad(name, 2, "kernel_size must be an integer or {n}, got nil") end
  local s = a.stride
  if type(s) == "table" and #s == 0 then s = nil end
  s = one(name, 3, s, "stride", k)
  local p = one(name, 4, a.padding, "padding", 0)
  local d = one(name, 5, a.dilation, "dilation", 1)
  if k < 1 or s < 1 or d < 1 or p < 0 then
    bad(name, 2, "kernel_size, stride and dilation must be positive and padding not negative")
  end
  if 2 * p > k then bad(name, 4, "padding %d must be at most half of the kernel size %d", p, k) end
  if not pool_out(x:size(-1), k, p, s, d, a.ceil_mode) then
    bad(name, 1, "input {%s} is too small for the kernel %d", table.concat(x:size(), ", "), k)
  end
  return k, s, p, d
end

-- max_pool1d(input, kernel_size, stride = kernel_size, padding = 0,
-- dilation = 1, ceil_mode = false, return_indices = false): with
-- return_indices also the 1-based indices of the maxima along L
function F.max_pool1d(...)
  local N = "max_pool1d"
  local a = args(N, {"input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"}, ...)
  local x = tensor(N, 1, a.input)
  local k, s, p, d = pool1d_args(N, a, x)
  if a.return_indices then
    local y, i = C.max_pool_indices(x:unsqueeze(-2), {1, k}, {1, s}, {0, p}, {1, d}, a.ceil_mode == true, N)
    return y:squeeze(-2), i:squeeze(-2)
  end
  return torch.max_pool2d(x:unsqueeze(-2), {1, k}, {1, s}, {0, p}, {1, d}, a.ceil_mode == true):squeeze(-2)
end

-- avg_pool1d(input, kernel_size, stride = kernel_size, padding = 0,
-- ceil_mode = false, count_include_pad = true)
function F.avg_pool1d(...)
  local N = "avg_pool1d"
  local a = args(N, {"input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}, ...)
  local x = tensor(N, 1, a.input)
  local k, s, p = pool1d_args(N, a, x)
  return torch.avg_pool2d(x:unsqueeze(-2), {1, k}, {1, s}, {0, p}, a.ceil_mode == true,
    a.count_include_pad ~= false):squeeze(-2)
end

-- max_pool2d(input, kernel_size, stride = kernel_size, padding = 0,
-- dilation = 1, ceil_mode = false, return_indices = false): with
-- return_indices also the 1-based flat indices h * W + w + 1 of the maxima
-- in each plane
function F.max_pool2d(...)
  local N = "max_pool2d"
  local a = args(N, {"input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"}, ...)
  local x = tensor(N, 1, a.input)
  if a.return_indices then
    return C.max_pool_indices(x, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode == true, N)
  end
  return torch.max_pool2d(x, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode == true)
end

-- avg_pool2d(input, kernel_size, stride = kernel_size, padding = 0,
-- ceil_mode = false, count_include_pad = true, divisor_override)
function F.avg_pool2d(...)
  local N = "avg_pool2d"
  local a = args(N, {"input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
    "divisor_override"}, ...)
  if a.divisor_override ~= nil then bad(N, 7, "divisor_override is not supported") end
  return torch.avg_pool2d(tensor(N, 1, a.input), a.kernel_size, a.stride, a.padding, a.ceil_mode == true,
    a.count_include_pad ~= false)
end

-- adaptive_avg_pool2d(input, output_size): a number, {h, w}, with
-- torch.null keeping that dim's size
function F.adaptive_avg_pool2d(...)
  local a = args("adaptive_avg_pool2d", {"input", "output_size"}, ...)
  return torch.adaptive_avg_pool2d(tensor("adaptive_avg_pool2d", 1, a.input), a.output_size)
end

-- adaptive_avg_pool1d(input, output_size)
function F.adaptive_avg_pool1d(...)
  local N = "adaptive_avg_pool1d"
  local a = args(N, {"input", "output_size"}, ...)
  local x = tensor(N, 1, a.input)
  if x:dim() ~= 2 and x:dim() ~= 3 then bad(N, 1, "expected a 2-D or 3-D input, got %d-D", x:dim()) end
  local o = one(N, 2, a.output_size, "output_size")
  if o == nil or o < 1 then bad(N, 2, "output_size must be a positive integer, got %s", tostring(o)) end
  return torch.adaptive_avg_pool2d(x:unsqueeze(-2), {1, o}):squeeze(-2)
end

---------------------------------------------------------------------------
-- normalisation

-- layer_norm(input, normalized_shape, weight, bias, eps = 1e-5)
function F.layer_norm(...)
  local N = "layer_norm"
  local a = args(N, {"input", "normalized_shape", "weight", "bias", "eps"}, ...)
  return torch.layer_norm(tensor(N, 1, a.input), a.normalized_shape, tensor(N, 3, a.weight, true),
    tensor(N, 4, a.bias, true), a.eps)
end

-- group_norm(input, num_groups, weight, bias, eps = 1e-5)
function F.group_norm(...)
  local N = "group_norm"
  local a = args(N, {"input", "num_groups", "weight", "bias", "eps"}, ...)
  local x = tensor(N, 1, a.input)
  if math.type(a.num_groups) ~= "integer" then bad(N, 2, "num_groups must be an integer, got %s", type(a.num_groups)) end
  return torch.group_norm(x, a.num_groups, tensor(N, 3, a.weight, true), tensor(N, 4, a.bias, true), a.eps)
end

-- batch_norm(input, running_mean, running_var, weight, bias, training =
-- false, momentum = 0.1, eps = 1e-5): training updates the running stats
-- in place
function F.batch_norm(...)
  local N = "batch_norm"
  local a = args(N, {"input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"}, ...)
  return torch.batch_norm(tensor(N, 1, a.input), tensor(N, 2, a.running_mean, true), tensor(N, 3, a.running_var, true),
    tensor(N, 4, a.weight, true), tensor(N, 5, a.bias, true), a.training == true, a.momentum, a.eps)
end

---------------------------------------------------------------------------
-- attention

-- scaled_dot_product_attention(query, key, value, attn_mask, dropout_p = 0,
-- is_causal = false, scale = 1/sqrt(E)), as PyTorch 2.x defines it:
-- softmax(q k^T * scale + bias) v over (..., L, E), (..., S, E), (..., S, Ev);
-- a bool mask keeps the positions that are true, a float mask is added;
-- is_causal keeps the lower triangle (key j <= query i)
function F.scaled_dot_product_attention(...)
  local N = "scaled_dot_product_attention"
  local a = args(N, {"query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"}, ...)
  local q, k, v = tensor(N, 1, a.query), tensor(N, 2, a.key), tensor(N, 3, a.value)
  local mask = tensor(N, 4, a.attn_mask, true)
  if q:dim() < 2 or k:dim() < 2 or v:dim() < 2 then
    bad(N, q:dim() < 2 and 1 or k:dim() < 2 and 2 or 3, "query, key and value must be at least 2-D")
  end
  if a.is_causal and mask then bad(N, 4, "attn_mask must not be given with is_causal") end
  local L, S, E = q:size(-2), k:size(-2), q:size(-1)
  local scale = a.scale or 1 / math.sqrt(E)
  local scores = torch.matmul(q, k:transpose(-2, -1)) * scale
  if a.is_causal then
    local keep = torch.arange(L):view(L, 1):ge(torch.arange(S):view(1, S))
    scores = torch.where(keep, scores, -math.huge)
  end
  if mask then
    if mask:dtype() == "bool" then scores = torch.where(mask, scores, -math.huge)
    else scores = scores + mask end
  end
  local attn = torch.softmax(scores, -1)
  local p = a.dropout_p or 0
  if p > 0 then attn = torch.dropout(attn, p, true) end
  return torch.matmul(attn, v)
end

return F
