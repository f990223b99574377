-- functional_spec.lua: torch.nn.functional against PyTorch 1.13 on the same
-- inputs. Each case is a Python expression and the Lua call doing the same;
-- one Python process (setup) draws every case's inputs with a fixed seed,
-- evaluates the expressions and saves inputs and outputs to one .pt file;
-- ltorch runs the Lua calls on the saved inputs and must match every output
-- (rtol 1e-5, 1e-4 for convolutions). Class indices are 0-based in Python
-- and 1-based in Lua (the Lua calls add 1). scaled_dot_product_attention is
-- PyTorch 2.x's, so its reference is PyTorch 2.x's documented math,
-- written out in Python.
local torch = require("ltorch")
local H = require("nn_helpers")
local F = require("ltorch.nn.functional")

-- {group, name, inputs, python expression, lua function(c) -> outputs, rtol}
-- inputs: a list of {name, python expression}, saved beside the outputs; a
-- python expression giving a tuple gives several outputs
local CASES = {}
local function case(group, name, inputs, py, lua, rtol)
  CASES[#CASES + 1] = {group = group, name = name, inputs = inputs, py = py, lua = lua, rtol = rtol or 1e-5}
end

---------------------------------------------------------------------------
-- pad: every mode over the ranks PyTorch 1.13 allows, negative pads crop

local X3, X4, X5 = {{"x", "torch.randn(2, 3, 5)"}}, {{"x", "torch.randn(2, 3, 4, 5)"}}, {{"x", "torch.randn(1, 2, 3, 4, 5)"}}
case("pad", "constant 1-D with a value", {{"x", "torch.randn(5)"}}, "F.pad(x, [2, 1], value=1.5)",
  function(c) return F.pad(c.x, {2, 1}, {value = 1.5}) end)
case("pad", "constant 3-D over 3 dims", X3, "F.pad(x, [1, 2, 0, 1, 2, 0])",
  function(c) return F.pad(c.x, {1, 2, 0, 1, 2, 0}) end)
case("pad", "constant 4-D cropping", X4, "F.pad(x, [-1, 2, 1, -1], 'constant', -2.0)",
  function(c) return F.pad(c.x, {-1, 2, 1, -1}, "constant", -2.0) end)
case("pad", "constant 5-D over 4 dims", X5, "F.pad(x, [1, 1, 2, 2, 1, 0, 0, 1])",
  function(c) return F.pad(c.x, {1, 1, 2, 2, 1, 0, 0, 1}) end)
case("pad", "constant int64", {{"x", "torch.randint(-5, 5, (3, 4))"}}, "F.pad(x, [1, 2, 2, 0], value=7)",
  function(c) return F.pad(c.x, {1, 2, 2, 0}, {value = 7}) end)
case("pad", "reflect 2-D", {{"x", "torch.randn(3, 5)"}}, "F.pad(x, [2, 3], mode='reflect')",
  function(c) return F.pad(c.x, {2, 3}, "reflect") end)
case("pad", "reflect 3-D cropping", X3, "F.pad(x, [-1, 2], mode='reflect')",
  function(c) return F.pad(c.x, {-1, 2}, "reflect") end)
case("pad", "reflect 3-D over 2 dims", {{"x", "torch.randn(2, 4, 5)"}}, "F.pad(x, [1, 2, 3, 0], mode='reflect')",
  function(c) return F.pad(c.x, {1, 2, 3, 0}, {mode = "reflect"}) end)
case("pad", "reflect 4-D", X4, "F.pad(x, [1, 2, 3, 1], mode='reflect')",
  function(c) return F.pad(c.x, {1, 2, 3, 1}, "reflect") end)
case("pad", "reflect 4-D over 3 dims", {{"x", "torch.randn(2, 4, 5, 6)"}}, "F.pad(x, [1, 1, 2, 2, 3, 3], mode='reflect')",
  function(c) return F.pad(c.x, {1, 1, 2, 2, 3, 3}, "reflect") end)
case("pad", "reflect 5-D", {{"x", "torch.randn(1, 2, 4, 5, 6)"}}, "F.pad(x, [1, 2, 3, 1, 2, 2], mode='reflect')",
  function(c) return F.pad(c.x, {1, 2, 3, 1, 2, 2}, "reflect") end)
case("pad", "reflect of a strided view", {{"x", "torch.randn(2, 5, 3)"}},
  "F.pad(x.transpose(1, 2), [2, 2], mode='reflect')",
  function(c) return F.pad(c.x:transpose(2, 3), {2, 2}, "reflect") end)
case("pad", "replicate 3-D past the size", X3, "F.pad(x, [4, 6], mode='replicate')",
  function(c) return F.pad(c.x, {4, 6}, "replicate") end)
case("pad", "replicate 4-D cropping", X4, "F.pad(x, [1, 2, 3, -1], mode='replicate')",
  function(c) return F.pad(c.x, {1, 2, 3, -1}, "replicate") end)
case("pad", "replicate 5-D", X5, "F.pad(x, [1, 1, 1, 1, 1, 1], mode='replicate')",
  function(c) return F.pad(c.x, {1, 1, 1, 1, 1, 1}, "replicate") end)
case("pad", "circular 3-D cropping", X3, "F.pad(x, [-1, 2], mode='circular')",
  function(c) return F.pad(c.x, {-1, 2}, "circular") end)
case("pad", "circular 3-D by the whole size", X3, "F.pad(x, [5, 3], mode='circular')",
  function(c) return F.pad(c.x, {5, 3}, "circular") end)
case("pad", "circular 4-D", X4, "F.pad(x, [1, 2, 3, 1], mode='circular')",
  function(c) return F.pad(c.x, {1, 2, 3, 1}, "circular") end)
case("pad", "circular 5-D", X5, "F.pad(x, [1, 2, 1, 0, 2, 1], mode='circular')",
  function(c) return F.pad(c.x, {1, 2, 1, 0, 2, 1}, "circular") end)

---------------------------------------------------------------------------
-- interpolate

case("interpolate", "nearest 3-D to a size", X3, "F.interpolate(x, size=7)",
  function(c) return F.interpolate(c.x, 7) end)
case("interpolate", "nearest 3-D by 2.5", X3, "F.interpolate(x, scale_factor=2.5)",
  function(c) return F.interpolate(c.x, {scale_factor = 2.5}) end)
case("interpolate", "nearest 3-D down by 0.6", X3, "F.interpolate(x, scale_factor=0.6)",
  function(c) return F.interpolate(c.x, nil, 0.6) end)
case("interpolate", "nearest 4-D to a size", X4, "F.interpolate(x, size=(7, 3))",
  function(c) return F.interpolate(c.x, {7, 3}) end)
case("interpolate", "nearest 4-D by (1.7, 2)", X4, "F.interpolate(x, scale_factor=(1.7, 2.0))",
  function(c) return F.interpolate(c.x, {scale_factor = {1.7, 2.0}}) end)
case("interpolate", "nearest 4-D with recompute_scale_factor", X4,
  "F.interpolate(x, scale_factor=1.7, recompute_scale_factor=True)",
  function(c) return F.interpolate(c.x, {scale_factor = 1.7, recompute_scale_factor = true}) end)
case("interpolate", "nearest 5-D", X5, "F.interpolate(x, scale_factor=(2.0, 1.5, 0.8))",
  function(c) return F.interpolate(c.x, {scale_factor = {2.0, 1.5, 0.8}}) end)
case("interpolate", "nearest uint8", {{"x", "torch.randint(0, 255, (1, 2, 3, 4), dtype=torch.uint8)"}},
  "F.interpolate(x, scale_factor=1.5)",
  function(c) return F.interpolate(c.x, {scale_factor = 1.5}) end)
case("interpolate", "nearest 4-D with one channel by 1.1 (nearest_idx copies)", {{"x", "torch.randn(2, 1, 3, 3)"}},
  "F.interpolate(x, scale_factor=1.1)", function(c) return F.interpolate(c.x, {scale_factor = 1.1}) end)
case("interpolate", "nearest 4-D with two channels by 1.1", {{"x", "torch.randn(1, 2, 3, 3)"}},
  "F.interpolate(x, scale_factor=1.1)", function(c) return F.interpolate(c.x, {scale_factor = 1.1}) end)
case("interpolate", "nearest of a channels-last view by 2.2", {{"x", "torch.randn(1, 3, 3, 4)"}},
  "F.interpolate(x.contiguous(memory_format=torch.channels_last), scale_factor=2.2)",
  function(c) return F.interpolate(c.x:permute(1, 3, 4, 2):contiguous():permute(1, 4, 2, 3), {scale_factor = 2.2}) end)
case("interpolate", "nearest-exact 4-D", X4, "F.interpolate(x, size=(7, 9), mode='nearest-exact')",
  function(c) return F.interpolate(c.x, {size = {7, 9}, mode = "nearest-exact"}) end)
case("interpolate", "bilinear to a size", X4, "F.interpolate(x, size=(7, 9), mode='bilinear')",
  function(c) return F.interpolate(c.x, {size = {7, 9}, mode = "bilinear"}) end)
case("interpolate", "bilinear aligning corners", X4,
  "F.interpolate(x, size=(7, 9), mode='bilinear', align_corners=True)",
  function(c) return F.interpolate(c.x, {7, 9}, nil, "bilinear", true) end)
case("interpolate", "bilinear by 1.5", X4, "F.interpolate(x, scale_factor=1.5, mode='bilinear')",
  function(c) return F.interpolate(c.x, {scale_factor = 1.5, mode = "bilinear"}) end)
case("interpolate", "bilinear by (0.6, 1.3)", X4, "F.interpolate(x, scale_factor=(0.6, 1.3), mode='bilinear')",
  function(c) return F.interpolate(c.x, {scale_factor = {0.6, 1.3}, mode = "bilinear"}) end)
case("interpolate", "bilinear with recompute_scale_factor", X4,
  "F.interpolate(x, scale_factor=2.3, mode='bilinear', recompute_scale_factor=True)",
  function(c) return F.interpolate(c.x, {scale_factor = 2.3, mode = "bilinear", recompute_scale_factor = true}) end)
case("interpolate", "bilinear by 2 aligning corners", X4,
  "F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)",
  function(c) return F.interpolate(c.x, {scale_factor = 2, mode = "bilinear", align_corners = true}) end)
case("interpolate", "bilinear float64", {{"x", "torch.randn(2, 3, 4, 5, dtype=torch.float64)"}},
  "F.interpolate(x, size=(5, 7), mode='bilinear')",
  function(c) return F.interpolate(c.x, {size = {5, 7}, mode = "bilinear"}) end)
case("interpolate", "linear 3-D", X3, "F.interpolate(x, size=11, mode='linear')",
  function(c) return F.interpolate(c.x, {size = 11, mode = "linear"}) end)
case("interpolate", "linear 3-D aligning corners", X3,
  "F.interpolate(x, scale_factor=1.8, mode='linear', align_corners=True)",
  function(c) return F.interpolate(c.x, {scale_factor = 1.8, mode = "linear", align_corners = true}) end)
case("interpolate", "bicubic to a size", X4, "F.interpolate(x, size=(7, 9), mode='bicubic')",
  function(c) return F.interpolate(c.x, {size = {7, 9}, mode = "bicubic"}) end)
case("interpolate", "bicubic by 1.5 aligning corners", X4,
  "F.interpolate(x, scale_factor=1.5, mode='bicubic', align_corners=True)",
  function(c) return F.interpolate(c.x, {scale_factor = 1.5, mode = "bicubic", align_corners = true}) end)
case("interpolate", "bicubic down by 0.6", X4, "F.interpolate(x, scale_factor=0.6, mode='bicubic')",
  function(c) return F.interpolate(c.x, {scale_factor = 0.6, mode = "bicubic"}) end)
case("interpolate", "area 4-D", {{"x", "torch.randn(2, 3, 5, 7)"}}, "F.interpolate(x, size=(2, 3), mode='area')",
  function(c) return F.interpolate(c.x, {size = {2, 3}, mode = "area"}) end)

---------------------------------------------------------------------------
-- one_hot, softmax, normalize

local T23 = {{"t", "torch.randint(0, 5, (2, 3))"}}
case("one_hot", "with the classes from the largest index", T23, "F.one_hot(t)",
  function(c) return F.one_hot(c.t + 1) end)
case("one_hot", "with num_classes", T23, "F.one_hot(t, 7)",
  function(c) return F.one_hot(c.t + 1, 7) end)

local S3 = {{"x", "torch.randn(2, 3, 4)"}}
case("softmax", "softmax over dim 2", S3, "F.softmax(x, dim=1)", function(c) return F.softmax(c.x, 2) end)
case("softmax", "log_softmax over the last dim", S3, "F.log_softmax(x, dim=-1)",
  function(c) return F.log_softmax(c.x, -1) end)
case("softmax", "softmax to float64", S3, "F.softmax(x, dim=2, dtype=torch.float64)",
  function(c) return F.softmax(c.x, 3, {dtype = "float64"}) end)
case("softmax", "softmin", S3, "F.softmin(x, dim=0)", function(c) return F.softmin(c.x, 1) end)
case("softmax", "softmax with PyTorch's implicit dim", S3, "F.softmax(x, dim=None)",
  function(c) return F.softmax(c.x) end)

case("normalize", "p = 2 over dim 2 (PyTorch's dim 1)", S3, "F.normalize(x)", function(c) return F.normalize(c.x) end)
case("normalize", "p = 1 over the last dim", S3, "F.normalize(x, p=1, dim=-1)",
  function(c) return F.normalize(c.x, {p = 1, dim = -1}) end)
case("normalize", "p = inf over dim 1", S3, "F.normalize(x, p=float('inf'), dim=0)",
  function(c) return F.normalize(c.x, {p = math.huge, dim = 1}) end)
case("normalize", "p = 3 with a zero row and eps", {{"x", "torch.cat([torch.randn(2, 4), torch.zeros(1, 4)])"}},
  "F.normalize(x, p=3, dim=1, eps=1e-3)", function(c) return F.normalize(c.x, 3, 2, 1e-3) end)

---------------------------------------------------------------------------
-- activations

local A = {{"x", "torch.randn(3, 7) * 4"}}
case("activations", "relu", A, "F.relu(x)", function(c) return F.relu(c.x) end)
case("activations", "relu6", A, "F.relu6(x)", function(c) return F.relu6(c.x) end)
case("activations", "silu", A, "F.silu(x)", function(c) return F.silu(c.x) end)
case("activations", "leaky_relu", A, "F.leaky_relu(x, 0.2)", function(c) return F.leaky_relu(c.x, 0.2) end)
case("activations", "leaky_relu's default slope", A, "F.leaky_relu(x)", function(c) return F.leaky_relu(c.x) end)
case("activations", "elu", A, "F.elu(x, alpha=0.7)", function(c) return F.elu(c.x, {alpha = 0.7}) end)
case("activations", "softplus", A, "F.softplus(x, beta=2, threshold=1)",
  function(c) return F.softplus(c.x, {beta = 2, threshold = 1}) end)
case("activations", "hardswish", A, "F.hardswish(x)", function(c) return F.hardswish(c.x) end)
case("activations", "hardsigmoid", A, "F.hardsigmoid(x)", function(c) return F.hardsigmoid(c.x) end)
case("activations", "mish", A, "F.mish(x)", function(c) return F.mish(c.x) end)
case("activations", "gelu", A, "F.gelu(x)", function(c) return F.gelu(c.x) end)
case("activations", "gelu tanh", A, "F.gelu(x, approximate='tanh')",
  function(c) return F.gelu(c.x, {approximate = "tanh"}) end)
case("activations", "sigmoid", A, "torch.sigmoid(x)", function(c) return F.sigmoid(c.x) end)
case("activations", "tanh", A, "torch.tanh(x)", function(c) return F.tanh(c.x) end)
case("activations", "hardtanh", A, "F.hardtanh(x, -0.5, 0.5)", function(c) return F.hardtanh(c.x, -0.5, 0.5) end)

---------------------------------------------------------------------------
-- losses

local L = {{"x", "torch.randn(4, 5)"}, {"t", "torch.randint(0, 5, (4,))"}, {"w", "torch.rand(5) + 0.5"},
  {"ti", "torch.tensor([1, 2, 2, 0])"}}
case("cross_entropy", "mean", L, "F.cross_entropy(x, t)", function(c) return F.cross_entropy(c.x, c.t + 1) end)
case("cross_entropy", "sum", L, "F.cross_entropy(x, t, reduction='sum')",
  function(c) return F.cross_entropy(c.x, c.t + 1, {reduction = "sum"}) end)
case("cross_entropy", "none", L, "F.cross_entropy(x, t, reduction='none')",
  function(c) return F.cross_entropy(c.x, c.t + 1, {reduction = "none"}) end)
case("cross_entropy", "class weights", L, "F.cross_entropy(x, t, weight=w)",
  function(c) return F.cross_entropy(c.x, c.t + 1, c.w) end)
case("cross_entropy", "ignore_index with weights", L, "F.cross_entropy(x, ti, weight=w, ignore_index=2)",
  function(c) return F.cross_entropy(c.x, c.ti + 1, {weight = c.w, ignore_index = 3}) end)
case("cross_entropy", "label smoothing, weights and ignore_index", L,
  "F.cross_entropy(x, ti, weight=w, ignore_index=2, label_smoothing=0.15)",
  function(c) return F.cross_entropy(c.x, c.ti + 1, {weight = c.w, ignore_index = 3, label_smoothing = 0.15}) end)
case("cross_entropy", "label smoothing, no reduction", L,
  "F.cross_entropy(x, ti, ignore_index=2, label_smoothing=0.2, reduction='none')",
  function(c) return F.cross_entropy(c.x, c.ti + 1, {ignore_index = 3, label_smoothing = 0.2, reduction = "none"}) end)
case("cross_entropy", "the deprecated size_average", L, "F.cross_entropy(x, t, size_average=False)",
  function(c) return F.cross_entropy(c.x, c.t + 1, {size_average = false}) end)
local LS = {{"x", "torch.randn(2, 5, 3, 4)"}, {"t", "torch.randint(0, 5, (2, 3, 4))"}, {"w", "torch.rand(5) + 0.5"}}
case("cross_entropy", "spatial with weights", LS, "F.cross_entropy(x, t, weight=w)",
  function(c) return F.cross_entropy(c.x, c.t + 1, {weight = c.w}) end)
case("cross_entropy", "spatial smoothed, no reduction", LS,
  "F.cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction='none')",
  function(c) return F.cross_entropy(c.x, c.t + 1, {weight = c.w, label_smoothing = 0.1, reduction = "none"}) end)
case("cross_entropy", "unbatched", {{"x", "torch.randn(5)"}, {"t", "torch.tensor(3)"}}, "F.cross_entropy(x, t)",
  function(c) return F.cross_entropy(c.x, c.t + 1) end)
local LP = {{"x", "torch.randn(4, 5)"}, {"p", "torch.softmax(torch.randn(4, 5), 1)"}, {"w", "torch.rand(5) + 0.5"}}
case("cross_entropy", "class probabilities", LP, "F.cross_entropy(x, p, weight=w, label_smoothing=0.1)",
  function(c) return F.cross_entropy(c.x, c.p, {weight = c.w, label_smoothing = 0.1}) end)
case("cross_entropy", "class probabilities, no reduction", LP, "F.cross_entropy(x, p, reduction='none')",
  function(c) return F.cross_entropy(c.x, c.p, {reduction = "none"}) end)
case("cross_entropy", "spatial class probabilities, sum",
  {{"x", "torch.randn(2, 3, 4)"}, {"p", "torch.softmax(torch.randn(2, 3, 4), 1)"}},
  "F.cross_entropy(x, p, reduction='sum')",
  function(c) return F.cross_entropy(c.x, c.p, {reduction = "sum"}) end)
case("nll_loss", "weights and ignore_index", L, "F.nll_loss(F.log_softmax(x, 1), ti, weight=w, ignore_index=0)",
  function(c) return F.nll_loss(F.log_softmax(c.x, 2), c.ti + 1, {weight = c.w, ignore_index = 1}) end)
local M = {{"x", "torch.randn(3, 4)"}, {"y", "torch.randn(3, 4)"}}
case("mse_loss", "mean", M, "F.mse_loss(x, y)", function(c) return F.mse_loss(c.x, c.y) end)
case("mse_loss", "sum", M, "F.mse_loss(x, y, reduction='sum')",
  function(c) return F.mse_loss(c.x, c.y, {reduction = "sum"}) end)
case("mse_loss", "none", M, "F.mse_loss(x, y, reduction='none')",
  function(c) return F.mse_loss(c.x, c.y, {reduction = "none"}) end)

---------------------------------------------------------------------------
-- linear and convolutions

case("linear", "with a bias", {{"x", "torch.randn(3, 4)"}, {"w", "torch.randn(5, 4)"}, {"b", "torch.randn(5)"}},
  "F.linear(x, w, b)", function(c) return F.linear(c.x, c.w, c.b) end)

local C1 = {{"x", "torch.randn(2, 4, 11)"}, {"w", "torch.randn(6, 2, 3)"}, {"b", "torch.randn(6)"}}
case("conv1d", "stride, padding, dilation and groups", C1,
  "F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2)",
  function(c) return F.conv1d(c.x, c.w, c.b, 2, 1, 2, 2) end, 1e-4)
local C1S = {{"x", "torch.randn(2, 3, 8)"}, {"w4", "torch.randn(4, 3, 4)"}, {"w3", "torch.randn(4, 3, 3)"}}
case("conv1d", "padding 'same' with an odd total", C1S, "F.conv1d(x, w4, padding='same')",
  function(c) return F.conv1d(c.x, c.w4, {padding = "same"}) end, 1e-4)
case("conv1d", "padding 'same' dilated", C1S, "F.conv1d(x, w3, padding='same', dilation=2)",
  function(c) return F.conv1d(c.x, c.w3, nil, 1, "same", 2) end, 1e-4)
case("conv1d", "padding 'valid'", C1S, "F.conv1d(x, w3, padding='valid')",
  function(c) return F.conv1d(c.x, c.w3, {padding = "valid"}) end, 1e-4)
case("conv1d", "unbatched", {{"x", "torch.randn(3, 8)"}, {"w", "torch.randn(4, 3, 3)"}}, "F.conv1d(x, w, padding=1)",
  function(c) return F.conv1d(c.x, c.w, {padding = 1}) end, 1e-4)
case("conv1d", "float64", {{"x", "torch.randn(2, 3, 8, dtype=torch.float64)"}, {"w", "torch.randn(4, 3, 3, dtype=torch.float64)"}},
  "F.conv1d(x, w, stride=3)", function(c) return F.conv1d(c.x, c.w, {stride = 3}) end, 1e-4)
local C2 = {{"x", "torch.randn(2, 3, 6, 7)"}, {"w", "torch.randn(4, 3, 2, 4)"}, {"b", "torch.randn(4)"}}
case("conv2d", "padding 'same' with odd totals", C2, "F.conv2d(x, w, b, padding='same')",
  function(c) return F.conv2d(c.x, c.w, c.b, {padding = "same"}) end, 1e-4)
case("conv2d", "keywords", C2, "F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2))",
  function(c) return F.conv2d(c.x, c.w, c.b, {stride = {2, 1}, padding = {1, 2}, dilation = {1, 2}}) end, 1e-4)
case("conv_transpose2d", "stride, padding, output_padding, groups and dilation",
  {{"x", "torch.randn(2, 4, 5, 5)"}, {"w", "torch.randn(4, 3, 3, 3)"}, {"b", "torch.randn(6)"}},
  "F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2, dilation=2)",
  function(c) return F.conv_transpose2d(c.x, c.w, c.b, 2, 1, 1, 2, 2) end, 1e-4)
case("conv_transpose2d", "rectangular", {{"x", "torch.randn(1, 3, 4, 5)"}, {"w", "torch.randn(3, 2, 3, 2)"}},
  "F.conv_transpose2d(x, w, stride=(2, 3), padding=(0, 1), output_padding=(1, 0))",
  function(c) return F.conv_transpose2d(c.x, c.w, {stride = {2, 3}, padding = {0, 1}, output_padding = {1, 0}}) end, 1e-4)
case("conv_transpose2d", "unbatched", {{"x", "torch.randn(3, 4, 4)"}, {"w", "torch.randn(3, 2, 2, 2)"}},
  "F.conv_transpose2d(x, w, stride=2)", function(c) return F.conv_transpose2d(c.x, c.w, nil, 2) end, 1e-4)
case("conv_transpose2d", "float64 of a strided view",
  {{"x", "torch.randn(2, 3, 4, 3, dtype=torch.float64)"}, {"w", "torch.randn(3, 2, 3, 3, dtype=torch.float64)"}},
  "F.conv_transpose2d(x.transpose(2, 3), w, padding=1)",
  function(c) return F.conv_transpose2d(c.x:transpose(3, 4), c.w, {padding = 1}) end, 1e-4)
case("conv_transpose1d", "stride, padding and output_padding",
  {{"x", "torch.randn(2, 4, 6)"}, {"w", "torch.randn(4, 3, 4)"}, {"b", "torch.randn(3)"}},
  "F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2)",
  function(c) return F.conv_transpose1d(c.x, c.w, c.b, 3, 1, 2) end, 1e-4)

---------------------------------------------------------------------------
-- pooling

local P1 = {{"x", "torch.randn(2, 3, 10)"}}
case("pooling", "max_pool1d with every option", P1, "F.max_pool1d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True)",
  function(c) return F.max_pool1d(c.x, 3, {stride = 2, padding = 1, dilation = 2, ceil_mode = true}) end)
case("pooling", "max_pool1d returning indices", P1, "F.max_pool1d(x, 3, 2, 1, return_indices=True)",
  function(c)
    local y, i = F.max_pool1d(c.x, 3, 2, 1, {return_indices = true})
    return y, i - 1
  end)
case("pooling", "max_pool2d returning indices", {{"x", "torch.randn(2, 3, 7, 8)"}},
  "F.max_pool2d(x, (3, 2), 2, 1, dilation=(1, 2), ceil_mode=True, return_indices=True)",
  function(c)
    local y, i = F.max_pool2d(c.x, {3, 2}, 2, 1, {dilation = {1, 2}, ceil_mode = true, return_indices = true})
    return y, i - 1
  end)
case("pooling", "max_pool1d unbatched", {{"x", "torch.randn(3, 9)"}}, "F.max_pool1d(x, 2)",
  function(c) return F.max_pool1d(c.x, 2) end)
case("pooling", "avg_pool1d with every option", P1, "F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)",
  function(c) return F.avg_pool1d(c.x, 3, 2, 1, true, false) end)
case("pooling", "avg_pool1d", P1, "F.avg_pool1d(x, 4)", function(c) return F.avg_pool1d(c.x, {4}) end)
local P2 = {{"x", "torch.randn(2, 3, 7, 8)"}}
case("pooling", "max_pool2d", P2, "F.max_pool2d(x, 3, 2, 1, ceil_mode=True)",
  function(c) return F.max_pool2d(c.x, 3, 2, 1, {ceil_mode = true}) end)
case("pooling", "avg_pool2d", P2, "F.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1, count_include_pad=False)",
  function(c) return F.avg_pool2d(c.x, {3, 2}, {stride = {2, 1}, padding = 1, count_include_pad = false}) end)
case("pooling", "adaptive_avg_pool1d", {{"x", "torch.randn(2, 3, 7)"}}, "F.adaptive_avg_pool1d(x, 3)",
  function(c) return F.adaptive_avg_pool1d(c.x, 3) end)
case("pooling", "adaptive_avg_pool2d", {{"x", "torch.randn(2, 3, 5, 7)"}}, "F.adaptive_avg_pool2d(x, (2, 3))",
  function(c) return F.adaptive_avg_pool2d(c.x, {2, 3}) end)

---------------------------------------------------------------------------
-- normalisation, dropout, embedding

case("normalisation", "layer_norm", {{"x", "torch.randn(2, 3, 4)"}, {"w", "torch.randn(3, 4)"}, {"b", "torch.randn(3, 4)"}},
  "F.layer_norm(x, (3, 4), w, b, 1e-3)", function(c) return F.layer_norm(c.x, {3, 4}, c.w, c.b, 1e-3) end)
case("group_norm", "with weight, bias and eps",
  {{"x", "torch.randn(2, 6, 3, 4) * 2 + 1"}, {"w", "torch.randn(6)"}, {"b", "torch.randn(6)"}},
  "F.group_norm(x, 3, w, b, eps=1e-3)", function(c) return F.group_norm(c.x, 3, c.w, c.b, {eps = 1e-3}) end)
case("group_norm", "without affine parameters", {{"x", "torch.randn(3, 4, 5)"}}, "F.group_norm(x, 2)",
  function(c) return F.group_norm(c.x, 2) end)
case("group_norm", "of a 2-D input", {{"x", "torch.randn(4, 6)"}, {"w", "torch.randn(6)"}}, "F.group_norm(x, 2, w)",
  function(c) return F.group_norm(c.x, 2, c.w) end)
case("group_norm", "float64, one group per channel", {{"x", "torch.randn(2, 3, 5, dtype=torch.float64)"}},
  "F.group_norm(x, 3)", function(c) return F.group_norm(c.x, 3) end)
local BN = {{"x", "torch.randn(4, 3, 5)"}, {"rm", "torch.randn(3)"}, {"rv", "torch.rand(3) + 0.5"},
  {"w", "torch.randn(3)"}, {"b", "torch.randn(3)"}}
case("normalisation", "batch_norm with running stats", BN, "F.batch_norm(x, rm, rv, w, b)",
  function(c) return F.batch_norm(c.x, c.rm, c.rv, c.w, c.b) end)
case("normalisation", "batch_norm training updates the running stats", BN,
  "(F.batch_norm(x, rm, rv, w, b, True, 0.2), rm, rv)",
  function(c)
    local rm, rv = c.rm:clone(), c.rv:clone()
    local y = F.batch_norm(c.x, rm, rv, c.w, c.b, {training = true, momentum = 0.2})
    return y, rm, rv
  end)
case("embedding", "rows at 1-based indices", {{"w", "torch.randn(10, 4)"}, {"i", "torch.randint(0, 10, (2, 3))"}},
  "F.embedding(i, w)", function(c) return F.embedding(c.i + 1, c.w) end)

---------------------------------------------------------------------------
-- scaled_dot_product_attention

local Q = {{"q", "torch.randn(2, 3, 4)"}, {"k", "torch.randn(2, 5, 4)"}, {"v", "torch.randn(2, 5, 6)"},
  {"mb", "torch.cat([torch.ones(3, 1, dtype=torch.bool), torch.rand(3, 4) > 0.4], 1)"},
  {"mf", "torch.randn(2, 3, 5)"}}
case("scaled_dot_product_attention", "without a mask", Q, "sdpa(q, k, v)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v) end)
case("scaled_dot_product_attention", "with a bool mask", Q, "sdpa(q, k, v, attn_mask=mb)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v, {attn_mask = c.mb}) end)
case("scaled_dot_product_attention", "with a float mask", Q, "sdpa(q, k, v, attn_mask=mf)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v, c.mf) end)
case("scaled_dot_product_attention", "causal with more keys than queries", Q, "sdpa(q, k, v, is_causal=True)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v, {is_causal = true}) end)
local Q4 = {{"q", "torch.randn(2, 2, 4, 3)"}, {"k", "torch.randn(2, 2, 4, 3)"}, {"v", "torch.randn(2, 2, 4, 5)"},
  {"m", "(torch.rand(1, 2, 4, 4) > 0.3) | torch.eye(4, dtype=torch.bool)"}}
case("scaled_dot_product_attention", "4-D causal", Q4, "sdpa(q, k, v, is_causal=True)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v, nil, 0.0, true) end)
case("scaled_dot_product_attention", "4-D with a broadcast bool mask and a scale", Q4,
  "sdpa(q, k, v, attn_mask=m, scale=0.3)",
  function(c) return F.scaled_dot_product_attention(c.q, c.k, c.v, {attn_mask = c.m, scale = 0.3}) end)

---------------------------------------------------------------------------

-- a Python literal for the saved name of a case
local function key(c) return (c.group .. "/" .. c.name):gsub("[^%w]", "_") end

local PRELUDE = [[
import math, torch, torch.nn.functional as F
torch.manual_seed(0)

def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    # PyTorch 2.x's documented math of F.scaled_dot_product_attention
    L, S = q.size(-2), k.size(-2)
    scale_factor = 1 / math.sqrt(q.size(-1)) if scale is None else scale
    attn_bias = torch.zeros(L, S, dtype=q.dtype)
    if is_causal:
        temp_mask = torch.ones(L, S, dtype=torch.bool).tril(diagonal=0)
        attn_bias.masked_fill_(temp_mask.logical_not(), float('-inf'))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_bias = attn_bias.masked_fill(attn_mask.logical_not(), float('-inf'))
        else:
            attn_bias = attn_bias + attn_mask
    attn_weight = q @ k.transpose(-2, -1) * scale_factor
    attn_weight = attn_weight + attn_bias
    attn_weight = torch.softmax(attn_weight, dim=-1)
    return attn_weight @ v

cases = {}
]]

local function fixture_code()
  local lines = {PRELUDE}
  for _, c in ipairs(CASES) do
    lines[#lines + 1] = "d = {}"
    for _, inp in ipairs(c.inputs) do
      lines[#lines + 1] = string.format("%s = %s", inp[1], inp[2])
      lines[#lines + 1] = string.format("d[%q] = %s.clone()", inp[1], inp[1])
    end
    lines[#lines + 1] = "with torch.no_grad(): r = " .. c.py
    lines[#lines + 1] = "r = r if isinstance(r, tuple) else (r,)"
    lines[#lines + 1] = "for i, v in enumerate(r): d['out%d' % (i + 1)] = v.contiguous()"
    lines[#lines + 1] = string.format("cases[%q] = d", key(c))
  end
  lines[#lines + 1] = "torch.save(cases, DIR + '/fx.pt')"
  return table.concat(lines, "\n")
end

describe("torch.nn.functional", function()
  local dir, fx

  setup(function()
    if not H.has_python() then return end
    dir = H.tmpdir()
    H.py_fixtures(fixture_code(), dir)
    fx = torch.load(dir .. "/fx.pt")
  end)
  teardown(function() if dir then H.rmdir(dir) end end)

  it("is torch.nn.functional and require('ltorch.nn.functional')", function()
    assert.are.equal(F, torch.nn.functional)
    assert.are.equal(F, require("ltorch").nn.functional)
  end)

  -- the cases, one `it` per group, every output of every case checked
  local groups, order = {}, {}
  for _, c in ipairs(CASES) do
    if not groups[c.group] then groups[c.group] = {}; order[#order + 1] = c.group end
    table.insert(groups[c.group], c)
  end
  for _, g in ipairs(order) do
    describe(g, function()
      for _, c in ipairs(groups[g]) do
        it(c.name .. ": PyTorch's result", function()
          if not fx then pending("no " .. H.PYTHON) return end
          local d = fx[key(c)]
          local got = table.pack(c.lua(d))
          local n = 0
          while d["out" .. (n + 1)] ~= nil do n = n + 1 end
          assert.are.equal(n, got.n, c.name .. ": number of outputs")
          for i = 1, n do
            H.assert_parity(got[i], d["out" .. i], c.rtol, g .. " " .. c.name .. (n > 1 and " output " .. i or ""))
          end
        end)
      end
    end)
  end
end)

describe("torch.nn.functional behaviour", function()
  it("returns the input for dropout when not training, and the same tensor for inplace ops", function()
    local x = torch.randn(3, 4)
    assert.are.equal(x, F.dropout(x, 0.5, false))
    assert.are.equal(x, F.dropout(x, {p = 0.3, training = false}))
    local y = x:clone()
    local r = F.relu(y, {inplace = true})
    assert.are.equal(y, r)
    assert.is_true(torch.equal(r, torch.relu(x)))
  end)

  it("zeroes or scales each element by 1/(1-p) in training dropout, repeatably under a seed", function()
    local x = torch.ones(1000)
    torch.manual_seed(7)
    local y = F.dropout(x, 0.25)
    local kept = y:gt(0):sum():item()
    assert.is_true(kept > 650 and kept < 850, "kept " .. kept)
    assert.is_true(torch.equal(y:gt(0):to("float32") * (1 / 0.75), y))
    torch.manual_seed(7)
    assert.is_true(torch.equal(y, F.dropout(x, 0.25)))
    assert.is_true(torch.equal(F.dropout(x, 1.0), torch.zeros(1000)))
  end)

  it("pads bool tensors and keeps the dtype", function()
    local y = F.pad(torch.tensor({true, false}), {1, 1}, {value = 1})
    assert.are.same({true, true, false, true}, y:tolist())
  end)

  it("gives nan for a mean cross entropy whose targets are all ignored", function()
    local l = F.cross_entropy(torch.randn(2, 3), torch.tensor({2, 2}), {ignore_index = 2}):item()
    assert.is_true(l ~= l)
  end)
end)

describe("torch.nn.functional errors", function()
  local x = torch.randn(2, 3, 5)
  local ERRORS = {
    {function() F.pad(x, {5, 0}, "reflect") end,
      "bad argument #2 to 'pad' (reflect padding {5, 0} of dim 3 must be less than its size 5)"},
    {function() F.pad(x, {1, 1}, {moed = "reflect"}) end,
      "bad option 'moed' to 'pad' (valid options: input, pad, mode, value)"},
    {function() F.pad(x, {1, 1, 1}) end, "bad argument #2 to 'pad' (padding length must be even, got 3)"},
    {function() F.pad(x, {1, 1, 1, 1}, "circular") end,
      "bad argument #2 to 'pad' ('circular' padding of a 3-D input pads its last 1 dims, got 2)"},
    {function() F.pad(x, {1, 1}, "wrap") end,
      "bad argument #3 to 'pad' (padding mode must be 'constant', 'reflect', 'replicate' or 'circular', got 'wrap')"},
    {function() F.interpolate(x, {size = 3, scale_factor = 2}) end,
      "bad argument #2 to 'interpolate' (only one of size and scale_factor may be given)"},
    {function() F.interpolate(x, {size = 4, mode = "bilinear"}) end,
      "bad argument #1 to 'interpolate' (mode 'bilinear' needs a 4-D input, got 3-D)"},
    {function() F.cross_entropy(torch.randn(2, 5), torch.tensor({1, 7})) end,
      "bad argument #2 to 'cross_entropy' (target 7 is out of range for 5 classes)"},
    {function() F.cross_entropy(torch.randn(2, 5), torch.tensor({1, 2, 3})) end,
      "bad argument #2 to 'cross_entropy' (target {3} does not match input {2, 5}: expected {2})"},
    {function() F.one_hot(torch.tensor({0, 1})) end,
      "bad argument #1 to 'one_hot' (class index 0 is out of range: classes are 1-based)"},
    {function() F.conv_transpose2d(torch.randn(1, 2, 3, 3), torch.randn(2, 2, 3, 3), nil, 1, 0, 1) end,
      "bad argument #6 to 'conv_transpose2d' (output_padding 1 must be smaller than either stride 1 or dilation 1)"},
    {function() F.conv1d(torch.randn(1, 2, 8), torch.randn(3, 2, 3), nil, 2, "same") end,
      "bad argument #5 to 'conv1d' (padding 'same' is not supported for strided convolutions)"},
    {function() F.group_norm(torch.randn(2, 6, 3), 4) end,
      "bad argument #2 to 'group_norm' (the 6 channels of input {2, 6, 3} are not divisible into 4 groups)"},
    {function() F.linear(nil, torch.randn(2, 2)) end, "bad argument #1 to 'linear' (tensor expected, got nil)"},
    {function() F.scaled_dot_product_attention(x, x, x, {attn_mask = torch.ones(5, 5), is_causal = true}) end,
      "bad argument #4 to 'scaled_dot_product_attention' (attn_mask must not be given with is_causal)"},
  }
  for _, e in ipairs(ERRORS) do
    it("says " .. e[2], function() assert.has_error(e[1], e[2]) end)
  end

  it("raises at the caller's line", function()
    local f = assert(load("local F, x = ...\nlocal y = F.pad(x, {1, 1}, {moed = 1})\nreturn y", "=user.lua"))
    local ok, err = pcall(f, F, x)
    assert.is_false(ok)
    assert.are.equal("user.lua:2: bad option 'moed' to 'pad' (valid options: input, pad, mode, value)", err)
  end)
end)
