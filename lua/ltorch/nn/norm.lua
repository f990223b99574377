-- norm.lua: what the normalisation layers share (BatchNorm1d, BatchNorm2d,
-- GroupNorm, LayerNorm; PyTorch's _NormBase and _BatchNorm): eps, the
-- affine weight (ones) and bias (zeros), the dtype and device options, and
-- the whole of batch normalisation. Not a class; the layer files use it.
--
--   weight, bias         {shape}, when affine
--   running_mean, _var   {num_features}, zeros and ones, when track_running_stats
--   num_batches_tracked  int64, 0-dim, when track_running_stats
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

local M = {}

-- the dtype and device options of args a, applied to all of self
local function factory(self, a)
  if a.dtype ~= nil then self:to(a.dtype) end
  if a.device ~= nil then self:to(a.device) end
end

-- weight = ones(shape) and bias = zeros(shape)
local function weight_bias(self, shape)
  self.weight = torch.nn.Parameter(torch.ones(shape))
  self.bias = torch.nn.Parameter(torch.zeros(shape))
end

-- M.affine(self, a, flag, shape): eps (default 1e-5) and the affine flag
-- (field flag, default true) from args a, weight and bias of shape when it
-- is set, then a's dtype and device
function M.affine(self, a, flag, shape)
  self.eps = a.eps or 1e-5
  self[flag] = a[flag] ~= false
  if self[flag] then weight_bias(self, shape) end
  factory(self, a)
end

-- momentum nil, torch.null (None) or false: the cumulative average
local function no_momentum(m) return m == nil or m == torch.null or m == false end

-- M.batchnorm(name, spec) -> the class name(num_features [, eps = 1e-5,
-- momentum = 0.1, affine = true, track_running_stats = true, device,
-- dtype]). spec: dims (set of the input ranks taken), expected (those
-- ranks in the error, "2D or 3D"), batch_norm (the math, the layer file's,
-- so that its errors say where: batch_norm(x, running_mean, running_var,
-- weight, bias, use_batch, momentum, eps)), float_repr (eps and momentum
-- shown as floats). In
-- training mode the batch statistics are used and the running ones
-- updated; in eval mode the running statistics are used.
function M.batchnorm(name, spec)
  local dims, batch_norm = spec.dims, spec.batch_norm
  local num = spec.float_repr and function(v) return pyrepr(v + 0.0) end or pyrepr
  return base.module(name, {
    initialize = function(self, ...)
      local a = base.args(name, {"num_features", "eps", "momentum", "affine",
        "track_running_stats", "device", "dtype"}, ...)
      local n = a.num_features
      base.check(math.type(n) == "integer", name, "num_features must be an integer")
      self.num_features = n
      self.eps = a.eps or 1e-5
      -- momentum given as nil in the table means the default; torch.null means None
      if a.momentum == nil then self.momentum = 0.1 else self.momentum = a.momentum end
      self.affine = a.affine ~= false
      self.track_running_stats = a.track_running_stats ~= false
      if self.affine then weight_bias(self, n) end
      if self.track_running_stats then
        self.running_mean = torch.nn.buffer(torch.zeros(n))
        self.running_var = torch.nn.buffer(torch.ones(n))
        self.num_batches_tracked = torch.nn.buffer(torch.tensor(0, {dtype = "int64"}))
      end
      factory(self, a)
    end,
    forward = function(self, x)
      if not dims[x:dim()] then
        error(string.format("expected %s input (got %dD input)", spec.expected, x:dim()), 2)
      end
      -- the factor only counts where the running stats are updated
      local momentum = self.momentum
      local factor = no_momentum(momentum) and 0.0 or momentum
      local training = self.training
      if training and self.track_running_stats then
        local nbt = self.num_batches_tracked
        nbt:fill(nbt:item() + 1)
        if no_momentum(momentum) then factor = 1 / nbt:item() end  -- cumulative average
      end
      local use_batch = training or self.running_mean == nil
      local rm, rv
      if not training or self.track_running_stats then
        rm, rv = self.running_mean, self.running_var
      end
      return batch_norm(x, rm, rv, self.weight, self.bias, use_batch, factor, self.eps)
    end,
    extra_repr = function(self)
      return string.format("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
        self.num_features, num(self.eps),
        no_momentum(self.momentum) and "None" or num(self.momentum),
        pyrepr(self.affine), pyrepr(self.track_running_stats))
    end,
  }, {builtin = true})
end

return M
