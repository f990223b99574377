-- layers_spec.lua: the convolution, normalisation, activation, pooling and
-- resizing layers (Conv1d, Conv2d's padding "same" and padding modes,
-- ConvTranspose2d, BatchNorm1d, GroupNorm, LeakyReLU, SiLU, ELU, Softplus,
-- Hardswish, Hardsigmoid, Mish, ReLU6, LogSoftmax, MaxPool1d, AvgPool1d,
-- AdaptiveAvgPool1d, Upsample) against PyTorch 1.13 on the same weights:
-- one Python process builds every layer with a fixed seed (random
-- parameters and BatchNorm running stats), runs it and saves its state dict,
-- input and output (and the state dict after a training step) to a .pt file;
-- ltorch builds the same layer, loads the state dict strictly and must give
-- the same output (rtol 1e-4), the same reprs and PyTorch's keywords.
local torch = require("ltorch")
local H = require("nn_helpers")
local nn = torch.nn

-- the error of code run as a chunk named user.lua (the code starts on line 2)
local function err_of(code)
  local f = assert(load("local nn, torch = ...\n" .. code, "=user.lua"))
  local ok, e = pcall(f, nn, torch)
  assert.is_false(ok, "no error from: " .. code)
  return e
end

-- {name, ltorch constructor, PyTorch constructor, input shape, options}:
--   stats  random parameters and running stats (else PyTorch's init)
--   train  run in training mode (else eval) and compare the state dict after
--   call   Python call of m on x, and the Lua function doing the same
--   indices  the forward also returns the indices (PyTorch's + 1)
--   lua_dims  the repr differs from PyTorch's by the 1-based dim
-- grouped by family: {title, {cases...}}; optional = true families are
-- pending while torch.nn.functional says a feature "is not supported"
local FAMILIES = {
  {"Conv1d", {
    {"conv1d", function() return nn.Conv1d(4, 6, 3) end, "nn.Conv1d(4, 6, 3)", {2, 4, 9}},
    {"conv1d_opts", function() return nn.Conv1d(4, 6, 3, {stride = 2, padding = 2, dilation = 2, groups = 2}) end,
      "nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)", {2, 4, 11}},
    {"conv1d_nobias", function() return nn.Conv1d(3, 2, 5, 1, 1, 1, 1, false) end,
      "nn.Conv1d(3, 2, 5, 1, 1, 1, 1, False)", {1, 3, 8}},
    {"conv1d_unbatched", function() return nn.Conv1d(3, 2, 3) end, "nn.Conv1d(3, 2, 3)", {3, 7}},
    {"conv1d_same_odd", function() return nn.Conv1d(3, 4, 5, {padding = "same"}) end,
      "nn.Conv1d(3, 4, 5, padding='same')", {2, 3, 8}},
    {"conv1d_same_even", function() return nn.Conv1d(3, 4, 4, {padding = "same"}) end,
      "nn.Conv1d(3, 4, 4, padding='same')", {2, 3, 8}},
    {"conv1d_same_dilated", function() return nn.Conv1d(3, 4, 4, {padding = "same", dilation = 3}) end,
      "nn.Conv1d(3, 4, 4, padding='same', dilation=3)", {2, 3, 12}},
    {"conv1d_valid", function() return nn.Conv1d(3, 4, 3, {padding = "valid"}) end,
      "nn.Conv1d(3, 4, 3, padding='valid')", {2, 3, 8}},
    {"conv1d_reflect", function() return nn.Conv1d(3, 4, 3, {padding = 2, padding_mode = "reflect"}) end,
      "nn.Conv1d(3, 4, 3, padding=2, padding_mode='reflect')", {2, 3, 8}},
    {"conv1d_replicate", function() return nn.Conv1d(3, 4, 3, {padding = 2, padding_mode = "replicate"}) end,
      "nn.Conv1d(3, 4, 3, padding=2, padding_mode='replicate')", {2, 3, 8}},
    {"conv1d_circular", function() return nn.Conv1d(3, 4, 3, {padding = 2, stride = 2, padding_mode = "circular"}) end,
      "nn.Conv1d(3, 4, 3, padding=2, stride=2, padding_mode='circular')", {2, 3, 8}},
    {"conv1d_same_reflect", function() return nn.Conv1d(3, 4, 4, {padding = "same", padding_mode = "reflect"}) end,
      "nn.Conv1d(3, 4, 4, padding='same', padding_mode='reflect')", {2, 3, 8}},
  }},
  {"Conv2d with padding 'same' and every padding mode", {
    {"conv2d_same_odd", function() return nn.Conv2d(3, 4, {3, 5}, {padding = "same"}) end,
      "nn.Conv2d(3, 4, (3, 5), padding='same')", {2, 3, 6, 7}},
    {"conv2d_same_even", function() return nn.Conv2d(3, 4, {4, 2}, {padding = "same", dilation = {1, 3}}) end,
      "nn.Conv2d(3, 4, (4, 2), padding='same', dilation=(1, 3))", {2, 3, 6, 7}},
    {"conv2d_valid", function() return nn.Conv2d(3, 4, 3, {padding = "valid"}) end,
      "nn.Conv2d(3, 4, 3, padding='valid')", {1, 3, 6, 6}},
    {"conv2d_reflect", function() return nn.Conv2d(3, 4, 3, {padding = {1, 2}, padding_mode = "reflect"}) end,
      "nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode='reflect')", {2, 3, 6, 7}},
    {"conv2d_replicate", function() return nn.Conv2d(4, 4, 3, {padding = 2, groups = 2, padding_mode = "replicate"}) end,
      "nn.Conv2d(4, 4, 3, padding=2, groups=2, padding_mode='replicate')", {2, 4, 5, 6}},
    {"conv2d_circular", function() return nn.Conv2d(3, 4, 3, {stride = 2, padding = {2, 1}, padding_mode = "circular"}) end,
      "nn.Conv2d(3, 4, 3, stride=2, padding=(2, 1), padding_mode='circular')", {2, 3, 6, 7}},
    {"conv2d_same_circular", function() return nn.Conv2d(3, 2, 4, {padding = "same", padding_mode = "circular"}) end,
      "nn.Conv2d(3, 2, 4, padding='same', padding_mode='circular')", {1, 3, 6, 6}},
    {"conv2d_unbatched_reflect", function() return nn.Conv2d(3, 2, 3, {padding = 1, padding_mode = "reflect"}) end,
      "nn.Conv2d(3, 2, 3, padding=1, padding_mode='reflect')", {3, 5, 5}},
  }},
  {"ConvTranspose2d", {
    {"convt", function() return nn.ConvTranspose2d(4, 3, 3) end, "nn.ConvTranspose2d(4, 3, 3)", {2, 4, 5, 5}},
    {"convt_stride", function() return nn.ConvTranspose2d(4, 6, 3, {stride = 2, padding = 1, output_padding = 1}) end,
      "nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)", {2, 4, 4, 5}},
    {"convt_groups", function() return nn.ConvTranspose2d(4, 6, {3, 2}, {2, 1}, 1, 0, 2, false, 2) end,
      "nn.ConvTranspose2d(4, 6, (3, 2), (2, 1), 1, 0, 2, False, 2)", {1, 4, 4, 5}},
    {"convt_unbatched", function() return nn.ConvTranspose2d(2, 3, 2, {stride = 2}) end,
      "nn.ConvTranspose2d(2, 3, 2, stride=2)", {2, 3, 3}},
    {"convt_output_size", function() return nn.ConvTranspose2d(3, 2, 3, {stride = 3, padding = 1}) end,
      "nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1)", {1, 3, 4, 4},
      call = {"m(x, output_size=[11, 12])", function(m, x) return m(x, {11, 12}) end}},
    {"convt_output_shape", function() return nn.ConvTranspose2d(3, 2, 3, {stride = 2}) end,
      "nn.ConvTranspose2d(3, 2, 3, stride=2)", {2, 3, 4, 4},
      call = {"m(x, output_size=[2, 2, 10, 9])", function(m, x) return m(x, {output_size = {2, 2, 10, 9}}) end}},
  }},
  {"BatchNorm1d", {
    {"bn1d_eval_2d", function() return nn.BatchNorm1d(5) end, "nn.BatchNorm1d(5)", {4, 5}, stats = true},
    {"bn1d_eval_3d", function() return nn.BatchNorm1d(3, {eps = 1e-3}) end, "nn.BatchNorm1d(3, eps=1e-3)", {2, 3, 6},
      stats = true},
    {"bn1d_train_2d", function() return nn.BatchNorm1d(5, {momentum = 0.3}) end, "nn.BatchNorm1d(5, momentum=0.3)",
      {6, 5}, stats = true, train = true},
    {"bn1d_train_3d", function() return nn.BatchNorm1d(3) end, "nn.BatchNorm1d(3)", {4, 3, 5}, stats = true, train = true},
    {"bn1d_train_cumulative", function() return nn.BatchNorm1d(3, {momentum = torch.null}) end,
      "nn.BatchNorm1d(3, momentum=None)", {4, 3, 5}, stats = true, train = true},
    {"bn1d_noaffine", function() return nn.BatchNorm1d(4, {affine = false}) end, "nn.BatchNorm1d(4, affine=False)",
      {3, 4, 2}, stats = true},
    {"bn1d_untracked", function() return nn.BatchNorm1d(4, {track_running_stats = false}) end,
      "nn.BatchNorm1d(4, track_running_stats=False)", {3, 4, 2}, stats = true},
  }},
  {"GroupNorm", {
    {"groupnorm", function() return nn.GroupNorm(2, 6) end, "nn.GroupNorm(2, 6)", {2, 6, 3, 3}, stats = true},
    {"groupnorm_3d", function() return nn.GroupNorm(3, 6, {eps = 1e-3}) end, "nn.GroupNorm(3, 6, eps=1e-3)",
      {2, 6, 5}, stats = true},
    {"groupnorm_noaffine", function() return nn.GroupNorm(4, 4, 1e-5, false) end, "nn.GroupNorm(4, 4, 1e-5, False)",
      {3, 4, 2, 3}},
    {"groupnorm_one", function() return nn.GroupNorm(1, 3) end, "nn.GroupNorm(1, 3)", {2, 3, 4}, stats = true},
  }},
  {"the activations", {
    {"leaky_relu", function() return nn.LeakyReLU() end, "nn.LeakyReLU()", {3, 7}},
    {"leaky_relu_slope", function() return nn.LeakyReLU(0.2, true) end, "nn.LeakyReLU(0.2, True)", {3, 7}},
    {"silu", function() return nn.SiLU() end, "nn.SiLU()", {3, 7}},
    {"elu", function() return nn.ELU() end, "nn.ELU()", {3, 7}},
    {"elu_alpha", function() return nn.ELU({alpha = 0.5}) end, "nn.ELU(alpha=0.5)", {3, 7}},
    {"softplus", function() return nn.Softplus() end, "nn.Softplus()", {3, 7}},
    {"softplus_beta", function() return nn.Softplus(2.0, 1.5) end, "nn.Softplus(2.0, 1.5)", {3, 7}},
    {"hardswish", function() return nn.Hardswish() end, "nn.Hardswish()", {3, 7}},
    {"hardsigmoid", function() return nn.Hardsigmoid() end, "nn.Hardsigmoid()", {3, 7}},
    {"mish", function() return nn.Mish() end, "nn.Mish()", {3, 7}},
    {"relu6", function() return nn.ReLU6() end, "nn.ReLU6()", {3, 7}},
    {"log_softmax_last", function() return nn.LogSoftmax(-1) end, "nn.LogSoftmax(-1)", {3, 7}},
    {"log_softmax_dim", function() return nn.LogSoftmax({dim = 2}) end, "nn.LogSoftmax(dim=1)", {2, 3, 4},
      lua_dims = true},
    {"log_softmax_implicit", function() return nn.LogSoftmax() end, "nn.LogSoftmax()", {2, 3, 4}},
    {"log_softmax_implicit_2d", function() return nn.LogSoftmax() end, "nn.LogSoftmax()", {3, 5}},
  }},
  {"MaxPool1d, AvgPool1d and AdaptiveAvgPool1d", {
    {"maxpool1d", function() return nn.MaxPool1d(3) end, "nn.MaxPool1d(3)", {2, 3, 10}},
    {"maxpool1d_opts", function() return nn.MaxPool1d(3, 2, 1, 2, false, true) end,
      "nn.MaxPool1d(3, 2, 1, 2, False, True)", {2, 3, 10}},
    {"maxpool1d_unbatched", function() return nn.MaxPool1d(2, {stride = 1}) end, "nn.MaxPool1d(2, stride=1)", {3, 6}},
    {"avgpool1d", function() return nn.AvgPool1d(3) end, "nn.AvgPool1d(3)", {2, 3, 10}},
    {"avgpool1d_opts", function() return nn.AvgPool1d(3, 2, 1, true, false) end, "nn.AvgPool1d(3, 2, 1, True, False)",
      {2, 3, 10}},
    {"avgpool1d_pad", function() return nn.AvgPool1d(4, {stride = 3, padding = 2}) end,
      "nn.AvgPool1d(4, stride=3, padding=2)", {2, 10}},
    {"adaptive1d", function() return nn.AdaptiveAvgPool1d(4) end, "nn.AdaptiveAvgPool1d(4)", {2, 3, 12}},
    {"adaptive1d_uneven", function() return nn.AdaptiveAvgPool1d(3) end, "nn.AdaptiveAvgPool1d(3)", {2, 3, 7}},
    {"adaptive1d_unbatched", function() return nn.AdaptiveAvgPool1d({5}) end, "nn.AdaptiveAvgPool1d((5,))", {3, 8}},
  }},
  {"Upsample", {
    {"upsample_nearest", function() return nn.Upsample({scale_factor = 2}) end, "nn.Upsample(scale_factor=2)",
      {1, 2, 3, 4}},
    {"upsample_nearest_size", function() return nn.Upsample({5, 7}) end, "nn.Upsample((5, 7))", {1, 2, 3, 4}},
    {"upsample_nearest_1d", function() return nn.Upsample(7) end, "nn.Upsample(7)", {2, 3, 4}},
    {"upsample_linear", function() return nn.Upsample({scale_factor = 2.5, mode = "linear"}) end,
      "nn.Upsample(scale_factor=2.5, mode='linear')", {2, 3, 4}},
    {"upsample_bilinear", function() return nn.Upsample({size = {5, 6}, mode = "bilinear"}) end,
      "nn.Upsample(size=(5, 6), mode='bilinear')", {2, 2, 3, 4}},
    {"upsample_bilinear_corners", function() return nn.Upsample({scale_factor = {2, 3}, mode = "bilinear",
      align_corners = true}) end, "nn.Upsample(scale_factor=(2, 3), mode='bilinear', align_corners=True)", {1, 2, 3, 4}},
    {"upsample_nearest_exact", function() return nn.Upsample({scale_factor = 1.7, mode = "nearest-exact"}) end,
      "nn.Upsample(scale_factor=1.7, mode='nearest-exact')", {1, 2, 4, 3}},
    {"upsample_area", function() return nn.Upsample({size = {2, 3}, mode = "area"}) end,
      "nn.Upsample(size=(2, 3), mode='area')", {1, 2, 5, 7}},
  }},
  -- what torch.nn.functional does not do yet: pending while F says so
  {"MaxPool1d's return_indices and Upsample's bicubic mode", optional = true, {
    {"maxpool1d_indices", function() return nn.MaxPool1d(3, {stride = 2, return_indices = true}) end,
      "nn.MaxPool1d(3, stride=2, return_indices=True)", {2, 3, 9}, indices = true},
    {"upsample_bicubic", function() return nn.Upsample({scale_factor = 2, mode = "bicubic"}) end,
      "nn.Upsample(scale_factor=2, mode='bicubic')", {1, 2, 4, 3}},
  }},
}
local CASES = {}
for _, fam in ipairs(FAMILIES) do
  for _, c in ipairs(fam[2]) do CASES[#CASES + 1] = c end
end

-- the classes, and a call with a bad option, for the keyword check
local KEYWORDS = {
  Conv1d = "nn.Conv1d(1, 2, 3, {zz_bad = 1})", Conv2d = "nn.Conv2d(1, 2, 3, {zz_bad = 1})",
  ConvTranspose2d = "nn.ConvTranspose2d(1, 2, 3, {zz_bad = 1})", BatchNorm1d = "nn.BatchNorm1d(3, {zz_bad = 1})",
  GroupNorm = "nn.GroupNorm(1, 3, {zz_bad = 1})", LeakyReLU = "nn.LeakyReLU({zz_bad = 1})",
  SiLU = "nn.SiLU({zz_bad = 1})", ELU = "nn.ELU({zz_bad = 1})", Softplus = "nn.Softplus({zz_bad = 1})",
  Hardswish = "nn.Hardswish({zz_bad = 1})", Hardsigmoid = "nn.Hardsigmoid({zz_bad = 1})",
  Mish = "nn.Mish({zz_bad = 1})", ReLU6 = "nn.ReLU6({zz_bad = 1})", LogSoftmax = "nn.LogSoftmax({zz_bad = 1})",
  MaxPool1d = "nn.MaxPool1d(2, {zz_bad = 1})", AvgPool1d = "nn.AvgPool1d(2, {zz_bad = 1})",
  AdaptiveAvgPool1d = "nn.AdaptiveAvgPool1d(2, {zz_bad = 1})", Upsample = "nn.Upsample({zz_bad = 1})",
}

-- the Python that writes DIR/<case>.pt and DIR/meta.lua (reprs, signatures)
local function fixture_code(names)
  local lines = {"import inspect, torch", "from torch import nn", "reprs, sigs = {}, {}"}
  for i, c in ipairs(CASES) do
    local shape = "(" .. table.concat(c[4], ", ") .. ",)"
    lines[#lines + 1] = "torch.manual_seed(" .. i .. ")"
    lines[#lines + 1] = "m = " .. c[3]
    if c.stats then
      lines[#lines + 1] = "for p in m.parameters(): p.data = torch.randn(p.shape)"
      lines[#lines + 1] = "if getattr(m, 'running_mean', None) is not None: " ..
        "m.running_mean.copy_(torch.randn(m.running_mean.shape)); " ..
        "m.running_var.copy_(torch.rand(m.running_var.shape) + 0.5); m.num_batches_tracked.fill_(3)"
    end
    lines[#lines + 1] = c.train and "m.train()" or "m.eval()"
    lines[#lines + 1] = "x = torch.randn(" .. shape .. ") * 3"
    lines[#lines + 1] = "sd, x0 = {k: v.clone() for k, v in m.state_dict().items()}, x.clone()"
    lines[#lines + 1] = "with torch.no_grad(): y = " .. (c.call and c.call[1] or "m(x)")
    lines[#lines + 1] = "d = {'sd': sd, 'x': x0, 'after': dict(m.state_dict())}"
    if c.indices then
      lines[#lines + 1] = "d['y'], d['indices'] = y[0].contiguous(), y[1].contiguous()"
    else
      lines[#lines + 1] = "d['y'] = y.contiguous()"
    end
    lines[#lines + 1] = string.format("torch.save(d, DIR + '/%s.pt')", c[1])
    lines[#lines + 1] = string.format("reprs['%s'] = repr(m)", c[1])
  end
  lines[#lines + 1] = "for n in " .. "['" .. table.concat(names, "', '") .. "']:"
  lines[#lines + 1] = "    sigs[n] = ', '.join(p for p in inspect.signature(getattr(nn, n).__init__).parameters if p != 'self')"
  lines[#lines + 1] = [[
with open(DIR + '/meta.lua', 'w') as f:
    f.write('return {reprs = {\n')
    for k, v in reprs.items(): f.write('  %s = [==[%s]==],\n' % (k, v))
    f.write('}, sigs = {\n')
    for k, v in sigs.items(): f.write('  %s = [==[%s]==],\n' % (k, v))
    f.write('}}\n')
]]
  return table.concat(lines, "\n")
end

describe("layers against PyTorch", function()
  local dir, meta
  local names = {}
  for k in pairs(KEYWORDS) do names[#names + 1] = k end
  table.sort(names)

  setup(function()
    if not H.has_python() then return end
    dir = H.tmpdir()
    H.py_fixtures(fixture_code(names), dir)
    meta = dofile(dir .. "/meta.lua")
  end)
  teardown(function() if dir then H.rmdir(dir) end end)

  -- builds case c in ltorch, loads PyTorch's state dict strictly, runs it
  -- and compares the output (and the state dict after training)
  local function check(c)
    local f = torch.load(dir .. "/" .. c[1] .. ".pt")
    local m = c[2]()
    if not c.train then m:eval() end
    m:load_state_dict(f.sd)
    local y, idx
    if c.call then y, idx = c.call[2](m, f.x) else y, idx = m(f.x) end
    H.assert_parity(y, f.y, 1e-4, c[1])
    if c.indices then H.assert_parity(idx, f.indices + 1, 0, c[1] .. " indices") end
    if not c.train then   -- the same values in a non-contiguous layout
      local xn = f.x:transpose(1, -1):contiguous():transpose(1, -1)
      assert.is_false(xn:is_contiguous())
      if c.call then y = c.call[2](m, xn) else y = m(xn) end
      H.assert_parity(y, f.y, 1e-4, c[1] .. " (non-contiguous input)")
    else
      for k, want in pairs(f.after) do
        H.assert_parity(m:state_dict()[k], want, 1e-4, c[1] .. " " .. k .. " after the step")
      end
    end
  end

  for _, fam in ipairs(FAMILIES) do
    it(fam[1] .. ": PyTorch's output on the same weights", function()
      if not dir then pending("no " .. H.PYTHON) return end
      local missing = {}
      for _, c in ipairs(fam[2]) do
        if fam.optional then
          local ok, e = pcall(check, c)
          if not ok and tostring(e):match("is not supported%)$") then missing[#missing + 1] = c[1] .. ": " .. e
          elseif not ok then error(e, 0) end
        else
          check(c)
        end
      end
      if #missing > 0 then pending(table.concat(missing, "; ")) end
    end)
  end

  it("gives PyTorch's repr for every case (1-based dims aside)", function()
    if not dir then pending("no " .. H.PYTHON) return end
    for _, c in ipairs(CASES) do
      local m = c[2]()
      local want = meta.reprs[c[1]]
      if c.lua_dims then want = want:gsub("dim=1", "dim=2") end
      assert.are.equal(want, tostring(m), c[1])
    end
  end)

  it("knows every keyword of PyTorch 1.13's constructors, in PyTorch's order", function()
    if not dir then pending("no " .. H.PYTHON) return end
    for _, n in ipairs(names) do
      local e = err_of(KEYWORDS[n])
      local list = e:match("%(valid options: (.*)%)$") or (e:match("%(it takes no options%)$") and "")
      assert.are.equal(meta.sigs[n], list, n)
    end
  end)
end)

describe("layer shapes and init", function()
  it("gives the parameters PyTorch's shapes and bounds", function()
    torch.manual_seed(3)
    local c = nn.Conv1d(4, 6, 3, {groups = 2})
    assert.are.same({6, 2, 3}, c.weight:size())
    assert.are.same({6}, c.bias:size())
    assert.is_true(c.weight:abs():max():item() <= 1 / math.sqrt(6))
    local t = nn.ConvTranspose2d(4, 6, {3, 2}, {groups = 2})
    assert.are.same({4, 3, 3, 2}, t.weight:size())
    assert.is_true(t.bias:abs():max():item() <= 1 / math.sqrt(18))
    local g = nn.GroupNorm(2, 6)
    assert.are.same({1, 1, 1, 1, 1, 1}, g.weight:tolist())
    assert.are.same({0, 0, 0, 0, 0, 0}, g.bias:tolist())
    local bn = nn.BatchNorm1d(3, {dtype = "float64"})
    assert.are.equal("float64", bn.running_var:dtype())
    assert.are.equal("int64", bn.num_batches_tracked:dtype())
    assert.is_nil(nn.BatchNorm1d(3, {track_running_stats = false}).running_mean)
    assert.are.equal("float64", nn.Conv1d(1, 1, 1, {dtype = "float64"}).weight:dtype())
  end)

  it("is repeatable under torch.manual_seed", function()
    torch.manual_seed(11)
    local a = nn.ConvTranspose2d(2, 3, 3)
    torch.manual_seed(11)
    local b = nn.ConvTranspose2d(2, 3, 3)
    assert.is_true(torch.equal(a.weight, b.weight))
    assert.is_true(torch.equal(a.bias, b.bias))
  end)

  it("round-trips through a whole-module file", function()
    local dir = H.tmpdir()
    local m = nn.Sequential(nn.Conv1d(2, 3, 4, {padding = "same", padding_mode = "reflect"}), nn.GroupNorm(1, 3),
      nn.LeakyReLU(0.1), nn.Upsample({scale_factor = 2}))
    torch.save(m, dir .. "/m.pt")
    local m2 = torch.load(dir .. "/m.pt")
    assert.are.equal(tostring(m), tostring(m2))
    H.rmdir(dir)
  end)
end)

describe("layer errors", function()
  it("raises PyTorch's messages for bad constructor calls", function()
    assert.are.equal("user.lua:2: Conv1d: padding='same' is not supported for strided convolutions",
      err_of("nn.Conv1d(1, 1, 3, {stride = 2, padding = 'same'})"))
    assert.are.equal("user.lua:2: Conv2d: padding='same' is not supported for strided convolutions",
      err_of("nn.Conv2d(1, 1, 3, {stride = {1, 2}, padding = 'same'})"))
    assert.are.equal("user.lua:2: GroupNorm: num_channels must be divisible by num_groups",
      err_of("nn.GroupNorm(4, 6)"))
    assert.are.equal("user.lua:2: Conv2d: Invalid padding string 'full', should be one of {'same', 'valid'}",
      err_of("nn.Conv2d(1, 1, 3, {padding = 'full'})"))
    assert.are.equal("user.lua:2: Conv1d: padding_mode must be one of {'zeros', 'reflect', 'replicate', " ..
      "'circular'}, but got padding_mode='mirror'", err_of("nn.Conv1d(1, 1, 3, {padding_mode = 'mirror'})"))
    assert.are.equal('user.lua:2: ConvTranspose2d: Only "zeros" padding mode is supported for ConvTranspose2d',
      err_of("nn.ConvTranspose2d(1, 1, 3, {padding_mode = 'reflect'})"))
    assert.are.equal("user.lua:2: Conv1d: in_channels must be divisible by groups",
      err_of("nn.Conv1d(3, 4, 3, {groups = 2})"))
    assert.are.equal("user.lua:2: Conv1d: kernel_size must be an integer or a list of 1, got string",
      err_of("nn.Conv1d(3, 4, 'x')"))
    assert.are.equal("user.lua:2: bad argument #1 to 'LogSoftmax' (dim must be an integer, got string)",
      err_of("nn.LogSoftmax('x')"))
    assert.are.equal("user.lua:2: bad option 'scale' to 'Upsample' (valid options: size, scale_factor, mode, " ..
      "align_corners, recompute_scale_factor)", err_of("nn.Upsample({scale = 2})"))
  end)

  it("raises PyTorch's messages for bad inputs", function()
    assert.has_error(function() nn.BatchNorm1d(3)(torch.zeros(2, 3, 4, 5)) end,
      "expected 2D or 3D input (got 4D input)")
    local t = nn.ConvTranspose2d(1, 1, 3, {stride = 2})
    assert.has_error(function() t(torch.zeros(1, 1, 4, 4), {12, 9}) end,
      "requested an output size of {12, 9}, but valid sizes range from {9, 9} to {10, 10} (for an input of {4, 4})")
    assert.has_error(function() t(torch.zeros(1, 1, 4, 4), {1, 12, 9}) end,
      "ConvTranspose2D: for 4D input, output_size must have 2 or 4 elements (got 3)")
  end)
end)
