-- BatchNorm1d.lua: batch normalisation over {N, C} or {N, C, L} (PyTorch's
-- nn.BatchNorm1d): weight (ones), bias (zeros), buffers running_mean
-- (zeros), running_var (ones), num_batches_tracked (int64, 0-dim). In
-- training mode the batch statistics are used and the running ones updated
-- (momentum = nil or torch.null: the cumulative average); in eval mode the
-- running statistics are used. The math is F.batch_norm.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

local F = require("ltorch.nn.functional")

local function no_momentum(m) return m == nil or m == torch.null or m == false end

return base.module("BatchNorm1d", {
  -- BatchNorm1d(num_features [, eps = 1e-5, momentum = 0.1, affine = true,
  -- track_running_stats = true, device, dtype]) or with a trailing table of those names
  initialize = function(self, ...)
    local a = base.args("BatchNorm1d", {"num_features", "eps", "momentum", "affine",
      "track_running_stats", "device", "dtype"}, ...)
    local n = a.num_features
    base.check(math.type(n) == "integer", "BatchNorm1d", "num_features must be an integer")
    self.num_features = n
    self.eps = a.eps or 1e-5
    -- momentum given as nil in the table means the default; torch.null means None
    if a.momentum == nil then self.momentum = 0.1 else self.momentum = a.momentum end
    self.affine = a.affine ~= false
    self.track_running_stats = a.track_running_stats ~= false
    if self.affine then
      self.weight = torch.nn.Parameter(torch.ones(n))
      self.bias = torch.nn.Parameter(torch.zeros(n))
    end
    if self.track_running_stats then
      self.running_mean = torch.nn.buffer(torch.zeros(n))
      self.running_var = torch.nn.buffer(torch.ones(n))
      self.num_batches_tracked = torch.nn.buffer(torch.tensor(0, {dtype = "int64"}))
    end
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,
  forward = function(self, x)
    if x:dim() ~= 2 and x:dim() ~= 3 then
      error(string.format("expected 2D or 3D input (got %dD input)", x:dim()), 2)
    end
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
    return F.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, factor, self.eps)
  end,
  extra_repr = function(self)
    return string.format("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
      self.num_features, pyrepr(self.eps),
      no_momentum(self.momentum) and "None" or pyrepr(self.momentum),
      pyrepr(self.affine), pyrepr(self.track_running_stats))
  end,
}, {builtin = true})
