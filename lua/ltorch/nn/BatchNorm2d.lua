-- BatchNorm2d.lua: batch normalisation over {N, C, H, W} (PyTorch's
-- nn.BatchNorm2d): weight (ones), bias (zeros), buffers running_mean (zeros),
-- running_var (ones), num_batches_tracked (int64, 0-dim). In training mode
-- the batch statistics are used and the running ones updated by
-- torch.batch_norm; in eval mode the running statistics are used. The
-- class is norm.lua's; eps and momentum print as floats.
local torch = require("ltorch")

-- BatchNorm2d(num_features [, eps = 1e-5, momentum = 0.1, affine = true,
-- track_running_stats = true, device, dtype]) or with a trailing table of those names
return require("ltorch.nn.norm").batchnorm("BatchNorm2d", {
  dims = {[4] = true}, expected = "4D", float_repr = true,
  batch_norm = function(...) return torch.batch_norm(...) end,
})
