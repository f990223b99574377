-- Functional ops the nn layers call (linear, conv2d, pooling, batch_norm,
-- layer_norm, embedding, dropout), checked against PyTorch 1.13's results
-- in spec/fixtures/ops_expected.lua (made by make_ops_expected.py).
local torch = require("ltorch")
local H = require("ops_helper")
local E, T, same = H.E, H.T, H.same

describe("linear", function()
  it("computes x @ weight^T + bias as PyTorch", function()
    local c = E.linear
    same(torch.linear(T(c.x), T(c.w), T(c.b)), c.out)
  end)
  it("takes a nil bias", function()
    local c = E.linear
    local y = torch.linear(T(c.x), T(c.w))
    assert.is_true(torch.allclose(y + T(c.b), T(c.out), 1e-5, 1e-5))
  end)
  it("names the size mismatch", function()
    assert.has_error(function() torch.linear(torch.zeros(2, 3), torch.zeros(5, 4)) end,
      "bad argument #2 to 'linear' (size mismatch: {2, 3} @ {4, 5})")
  end)
end)

describe("conv2d", function()
  it("matches PyTorch with stride, padding, dilation and groups", function()
    local c = E.conv_groups
    same(torch.conv2d(T(c.x), T(c.w), T(c.b), c.stride, c.padding, c.dilation, c.groups), c.out)
  end)
  it("uses PyTorch's defaults", function()
    local c = E.conv_plain
    same(torch.conv2d(T(c.x), T(c.w)), c.out)
  end)
  it("does 1x1 convolutions with bias", function()
    local c = E.conv_1x1
    same(torch.conv2d(T(c.x), T(c.w), T(c.b)), c.out)
  end)
  it("takes an unbatched 3-D input", function()
    local c = E.conv_unbatched
    same(torch.conv2d(T(c.x), T(c.w), nil, c.stride, c.padding), c.out)
  end)
  it("does depthwise float64 convolutions", function()
    local c = E.conv_depthwise_f64
    same(torch.conv2d(T(c.x), T(c.w), nil, 1, c.padding, 1, c.groups), c.out, 1e-12)
  end)
  it("accepts strided views", function()
    local c = E.conv_plain
    local x = T(c.x):transpose(3, 4):contiguous():transpose(3, 4)
    assert.is_false(x:is_contiguous())
    same(torch.conv2d(x, T(c.w)), c.out)
  end)
  it("rejects a channel mismatch", function()
    assert.has_error(function() torch.conv2d(torch.zeros(1, 3, 5, 5), torch.zeros(2, 2, 3, 3)) end,
      "bad argument #1 to 'conv2d' (input {1, 3, 5, 5} has 3 channels, weight {2, 2, 3, 3} with groups 1 expects 2)")
  end)
  it("rejects integer tensors", function()
    assert.has_error(function() torch.conv2d(torch.zeros(1, 1, 3, 3, {dtype = "int64"}), torch.zeros(1, 1, 1, 1, {dtype = "int64"})) end,
      "bad argument #1 to 'conv2d' (expected a floating point tensor, got int64)")
  end)
end)

describe("max_pool2d", function()
  it("matches PyTorch with stride and padding", function()
    same(torch.max_pool2d(T(E.max_pool.x), 3, 2, 1), E.max_pool.out)
  end)
  it("matches PyTorch with dilation and ceil_mode", function()
    local c = E.max_pool_ceil_dil
    same(torch.max_pool2d(T(c.x), {3, 2}, {2, 3}, {1, 1}, {2, 1}, true), c.out)
  end)
  it("defaults the stride to the kernel size", function()
    local c = E.max_pool_default_stride
    same(torch.max_pool2d(T(c.x), 2), c.out)
  end)
  it("rejects padding over half the kernel", function()
    assert.has_error(function() torch.max_pool2d(torch.zeros(1, 1, 4, 4), 2, 2, 2) end,
      "bad argument #4 to 'max_pool2d' (padding {2, 2} must be at most half of the kernel {2, 2})")
  end)
end)

describe("avg_pool2d", function()
  it("matches PyTorch counting the padding", function()
    same(torch.avg_pool2d(T(E.avg_pool.x), 3, 2, 1), E.avg_pool.out)
  end)
  it("matches PyTorch with ceil_mode and count_include_pad = false", function()
    local c = E.avg_pool_nopad_ceil
    same(torch.avg_pool2d(T(c.x), 3, 2, 1, true, false), c.out)
  end)
end)

describe("adaptive_avg_pool2d", function()
  it("matches PyTorch for uneven bins", function()
    same(torch.adaptive_avg_pool2d(T(E.adaptive_avg.x), {3, 5}), E.adaptive_avg.out)
  end)
  it("takes a single number", function()
    same(torch.adaptive_avg_pool2d(T(E.adaptive_avg_1.x), 1), E.adaptive_avg_1.out)
  end)
end)

describe("batch_norm", function()
  it("uses batch statistics and updates the running ones when training", function()
    local c = E.batch_norm_train
    local rm, rv = T(c.rm), T(c.rv)
    same(torch.batch_norm(T(c.x), rm, rv, T(c.w), T(c.b), true, 0.2, 1e-3), c.out)
    same(rm, c.rm_after)
    same(rv, c.rv_after)
  end)
  it("uses the running statistics in eval mode", function()
    local c = E.batch_norm_eval
    local rm = T(c.rm)
    same(torch.batch_norm(T(c.x), rm, T(c.rv), T(c.w), T(c.b), false), c.out)
    same(rm, c.rm)
  end)
  it("needs running statistics when not training", function()
    assert.has_error(function() torch.batch_norm(torch.zeros(2, 3)) end,
      "bad argument #2 to 'batch_norm' (running_mean and running_var are needed when not training)")
  end)
end)

describe("layer_norm", function()
  it("matches PyTorch with weight and bias", function()
    local c = E.layer_norm
    same(torch.layer_norm(T(c.x), {4, 5}, T(c.w), T(c.b), 1e-5), c.out)
  end)
  it("matches PyTorch without affine parameters", function()
    same(torch.layer_norm(T(E.layer_norm_plain.x), 5), E.layer_norm_plain.out)
  end)
  it("rejects a shape that is not the input's last dims", function()
    assert.has_error(function() torch.layer_norm(torch.zeros(2, 3), {2}) end,
      "bad argument #2 to 'layer_norm' (normalized shape {2} does not match the last dims of input {2, 3})")
  end)
end)

describe("embedding", function()
  it("gathers rows at 1-based indices of any shape", function()
    local w = torch.arange(12, {dtype = "float32"}):view(4, 3)
    local y = torch.embedding(w, torch.tensor({{1, 4}, {2, 2}}))
    assert.are.same({2, 2, 3}, y:size())
    assert.are.same({{{0, 1, 2}, {9, 10, 11}}, {{3, 4, 5}, {3, 4, 5}}}, y:tolist())
  end)
  it("names an index out of range", function()
    assert.has_error(function() torch.embedding(torch.zeros(4, 3), torch.tensor({1, 5})) end,
      "bad argument #2 to 'embedding' (index 5 out of range for 4 embeddings)")
    assert.has_error(function() torch.embedding(torch.zeros(4, 3), torch.tensor({0})) end,
      "bad argument #2 to 'embedding' (index 0 out of range for 4 embeddings)")
  end)
end)

describe("dropout", function()
  it("zeroes about p of the values and scales the rest by 1/(1-p)", function()
    torch.manual_seed(7)
    local y = torch.dropout(torch.ones(10000), 0.25, true)
    local zeros = (y:eq(0)):sum():item()
    assert.is_true(zeros > 2300 and zeros < 2700, "zeros: " .. zeros)
    assert.is_true(torch.allclose(y:max(), torch.tensor(4 / 3)))
  end)
  it("is repeatable under a seed", function()
    torch.manual_seed(3)
    local a = torch.dropout(torch.ones(100), 0.5)
    torch.manual_seed(3)
    assert.is_true(torch.equal(a, torch.dropout(torch.ones(100), 0.5)))
  end)
  it("returns the input when not training", function()
    local x = torch.ones(5)
    assert.are.equal(x, torch.dropout(x, 0.5, false))
  end)
end)
