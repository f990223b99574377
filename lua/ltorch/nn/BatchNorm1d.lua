-- BatchNorm1d.lua: batch normalisation over {N, C} or {N, C, L} (PyTorch's
-- nn.BatchNorm1d): weight (ones), bias (zeros), buffers running_mean
-- (zeros), running_var (ones), num_batches_tracked (int64, 0-dim). In
-- training mode the batch statistics are used and the running ones updated
-- (momentum = nil or torch.null: the cumulative average); in eval mode the
-- running statistics are used. The math is F.batch_norm, the class norm.lua's.
local F = require("ltorch.nn.functional")

-- BatchNorm1d(num_features [, eps = 1e-5, momentum = 0.1, affine = true,
-- track_running_stats = true, device, dtype]) or with a trailing table of those names
return require("ltorch.nn.norm").batchnorm("BatchNorm1d", {
  dims = {[2] = true, [3] = true}, expected = "2D or 3D", batch_norm = F.batch_norm,
})
