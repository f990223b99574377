-- convnd.lua: what Conv1d, Conv2d and ConvTranspose2d share (PyTorch's
-- _ConvNd and _ConvTransposeNd): argument checks, the weight and bias with
-- PyTorch's shapes and init, the padding of padding = "same" and of the
-- padding modes, extra_repr and Conv1d's and Conv2d's class. The layer files use it.
--
--   weight  {out, in/groups, k...}   (transposed: {in, out/groups, k...})
--   bias    {out}
--   init    kaiming-uniform(a = sqrt(5)) = uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)),
--           fan_in = weight:size(2) * prod(k), the same bound for the bias
--
-- padding_mode ~= "zeros" pads the input with F.pad in that mode, then
-- convolves with padding 0 (PyTorch's _conv_forward); padding = "same"
-- pads d*(k-1) in total per dim, the odd one on the right/bottom.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

local F = require("ltorch.nn.functional")

local M = {}

local PADDING_MODES = {zeros = true, reflect = true, replicate = true, circular = true}

-- ntuple(v, n, what, class) -> list of n integers: a number repeated, or a
-- list of n numbers copied; else the constructor of class fails
function M.ntuple(v, n, what, class)
  if n == 2 then return base.pair(v, what, class) end
  if math.type(v) == "integer" then
    local t = {}
    for i = 1, n do t[i] = v end
    return t
  end
  if type(v) == "table" and #v == n then
    local t = {}
    for i = 1, n do
      base.check(math.type(v[i]) == "integer", class, "%s must be integers", what)
      t[i] = v[i]
    end
    return t
  end
  base.fail(class, "%s must be an integer or a list of %d, got %s", what, n, type(v))
end

-- init(self, class, nd, a, transposed): checks the arguments a (from
-- base.args) in PyTorch's order and sets the fields, weight and bias of a
-- convolution over nd spatial dims
function M.init(self, class, nd, a, transposed)
  local groups = a.groups or 1
  base.check(math.type(a.in_channels) == "integer" and math.type(a.out_channels) == "integer",
    class, "in_channels and out_channels must be integers")
  base.check(math.type(groups) == "integer" and groups > 0, class, "groups must be a positive integer")
  base.check(a.in_channels % groups == 0, class, "in_channels must be divisible by groups")
  base.check(a.out_channels % groups == 0, class, "out_channels must be divisible by groups")
  self.in_channels, self.out_channels = a.in_channels, a.out_channels
  self.kernel_size = M.ntuple(a.kernel_size, nd, "kernel_size", class)
  self.stride = M.ntuple(a.stride or 1, nd, "stride", class)
  local padding = a.padding or 0
  if type(padding) == "string" and not transposed then
    if padding ~= "same" and padding ~= "valid" then
      base.fail(class, "Invalid padding string '%s', should be one of {'same', 'valid'}", padding)
    end
    if padding == "same" then
      for _, s in ipairs(self.stride) do
        base.check(s == 1, class, "padding='same' is not supported for strided convolutions")
      end
    end
    self.padding = padding
  else
    self.padding = M.ntuple(padding, nd, "padding", class)
  end
  self.dilation = M.ntuple(a.dilation or 1, nd, "dilation", class)
  if transposed then self.output_padding = M.ntuple(a.output_padding or 0, nd, "output_padding", class) end
  self.groups = groups
  local mode = a.padding_mode or "zeros"
  if not PADDING_MODES[mode] then
    base.fail(class, "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, but got " ..
      "padding_mode='%s'", tostring(mode))
  end
  if transposed and mode ~= "zeros" then
    base.fail(class, 'Only "zeros" padding mode is supported for %s', class)
  end
  self.padding_mode = mode
  local shape = transposed and {a.in_channels, a.out_channels // groups} or {a.out_channels, a.in_channels // groups}
  local fan_in = shape[2]
  for i, k in ipairs(self.kernel_size) do
    shape[2 + i] = k
    fan_in = fan_in * k
  end
  local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
  self.weight = torch.nn.Parameter(base.uniform(shape, bound))
  if a.bias ~= false then
    self.bias = torch.nn.Parameter(base.uniform({a.out_channels}, bound))
  end
  if a.dtype ~= nil then self:to(a.dtype) end
  if a.device ~= nil then self:to(a.device) end
end

-- the F.pad list of padding = "same" or of numeric padding (last dim first:
-- {left, right, top, bottom}), and whether it is the same on both sides
local function pad_list(self)
  local nd = #self.kernel_size
  local pads, symmetric = {}, true
  for i = nd, 1, -1 do
    local left, right
    if self.padding == "same" then
      local total = self.dilation[i] * (self.kernel_size[i] - 1)
      left = total // 2
      right = total - left
    elseif self.padding == "valid" then
      left, right = 0, 0
    else
      left, right = self.padding[i], self.padding[i]
    end
    pads[#pads + 1] = left
    pads[#pads + 1] = right
    if left ~= right then symmetric = false end
  end
  return pads, symmetric
end

-- a size list as a convolution function takes it: the number for 1-d
local function arg(t, nd)
  if nd == 1 then return t[1] end
  return t
end

-- forward(self, x, conv): the convolution of x, conv being F.conv1d or
-- torch.conv2d (PyTorch's signature: x, weight, bias, stride, padding,
-- dilation, groups)
function M.forward(self, x, conv)
  local nd = #self.kernel_size
  local pads, symmetric = pad_list(self)
  local padding
  if self.padding_mode ~= "zeros" or not symmetric then
    local any = false
    for _, p in ipairs(pads) do if p ~= 0 then any = true end end
    if any then
      x = F.pad(x, pads, self.padding_mode == "zeros" and "constant" or self.padding_mode)
    end
    padding = 0
  else
    local p = {}
    for i = 1, nd do p[i] = pads[2 * (nd - i) + 1] end
    padding = arg(p, nd)
  end
  return conv(x, self.weight, self.bias, arg(self.stride, nd), padding, arg(self.dilation, nd), self.groups)
end

-- the text of PyTorch's _ConvNd.extra_repr
function M.extra_repr(self)
  local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
    pyrepr(self.kernel_size), pyrepr(self.stride))
  local function any(t, v)
    for _, x in ipairs(t) do if x ~= v then return true end end
    return false
  end
  if type(self.padding) == "string" then s = s .. ", padding=" .. self.padding
  elseif any(self.padding, 0) then s = s .. ", padding=" .. pyrepr(self.padding) end
  if any(self.dilation, 1) then s = s .. ", dilation=" .. pyrepr(self.dilation) end
  if self.output_padding and any(self.output_padding, 0) then
    s = s .. ", output_padding=" .. pyrepr(self.output_padding)
  end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if not self.bias then s = s .. ", bias=False" end
  if (self.padding_mode or "zeros") ~= "zeros" then s = s .. ", padding_mode=" .. self.padding_mode end
  return s
end

-- output_padding(self, x, output_size): PyTorch's _output_padding of a
-- transposed convolution asked for output_size (the spatial sizes, or the
-- whole output shape); raises at level when no output_padding gives it
function M.output_padding(self, x, output_size, level)
  local nd = #self.kernel_size
  local has_batch = x:dim() == nd + 2
  local non_spatial = has_batch and 2 or 1
  local size = {}
  for i, v in ipairs(output_size) do size[i] = v end
  if #size == non_spatial + nd then
    for i = 1, nd do size[i] = size[i + non_spatial] end
    for i = #size, nd + 1, -1 do size[i] = nil end
  end
  if #size ~= nd then
    error(string.format("ConvTranspose%dD: for %dD input, output_size must have %d or %d elements (got %d)",
      nd, x:dim(), nd, non_spatial + nd, #size), level + 1)
  end
  local mins, maxs, ins = {}, {}, {}
  local bad = false
  for d = 1, nd do
    ins[d] = x:size(non_spatial + d)
    mins[d] = (ins[d] - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1) + 1
    maxs[d] = mins[d] + self.stride[d] - 1
    if math.type(size[d]) ~= "integer" or size[d] < mins[d] or size[d] > maxs[d] then bad = true end
  end
  if bad then
    local function list(t)
      local parts = {}
      for i, v in ipairs(t) do parts[i] = tostring(v) end
      return "{" .. table.concat(parts, ", ") .. "}"
    end
    error(string.format("requested an output size of %s, but valid sizes range from %s to %s (for an input of %s)",
      list(size), list(mins), list(maxs), list(ins)), level + 1)
  end
  local out = {}
  for d = 1, nd do out[d] = size[d] - mins[d] end
  return out
end

-- M.class(name, nd, lib, fname) -> the class of an nd-dimensional
-- convolution name(in, out, kernel_size [, stride, padding, dilation,
-- groups, bias, padding_mode, device, dtype]) or with a trailing table
-- {stride =, ...}; its math is lib[fname], looked up at each forward
function M.class(name, nd, lib, fname)
  return base.module(name, {
    initialize = function(self, ...)
      local a = base.args(name, {"in_channels", "out_channels", "kernel_size", "stride", "padding",
        "dilation", "groups", "bias", "padding_mode", "device", "dtype"}, ...)
      M.init(self, name, nd, a, false)
    end,
    forward = function(self, x) return M.forward(self, x, lib[fname]) end,
    extra_repr = M.extra_repr,
  }, {builtin = true})
end

return M
