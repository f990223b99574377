-- rnn_spec.lua: LSTM, GRU and RNN against PyTorch 1.13 on the same weights
-- (at_helper.lua: one Python process writes every case; ltorch builds the
-- same module, must have PyTorch's state dict keys, shapes and repr, loads
-- the state dict strictly and gives the same output and final states, rtol
-- 1e-4): multi-layer, bidirectional, batch_first, no bias, initial states,
-- proj_size, unbatched input, packed batches (torch.nn.utils.rnn), and the
-- cells (LSTMCell, GRUCell, RNNCell). Then init, training mode, errors, and a
-- whole-module round trip of a user class through a fresh process.
local torch = require("ltorch")
local H = require("nn_helpers")
local A = require("at_helper")
local nn = torch.nn

local CASES = {}
local function case(name, py_make, py_inp, py_call, make, call)
  CASES[#CASES + 1] = {name = name, py_make = py_make, py_inp = py_inp, py_call = py_call, make = make, call = call}
end
local function with_state(m, i) return m(i.x, {i.h0, i.c0}) end
local function plain(m, i) return m(i.x) end
local function with_h0(m, i) return m(i.x, i.h0) end

case("lstm", "nn.LSTM(4, 6)", "dict(x=r(5, 3, 4))", "m(i['x'])", function() return nn.LSTM(4, 6) end, plain)
case("lstm_2_layers_bidirectional_state", "nn.LSTM(4, 6, num_layers=2, bidirectional=True)",
  "dict(x=r(5, 3, 4), h0=r(4, 3, 6), c0=r(4, 3, 6))", "m(i['x'], (i['h0'], i['c0']))",
  function() return nn.LSTM(4, 6, {num_layers = 2, bidirectional = true}) end, with_state)
case("lstm_batch_first_no_bias", "nn.LSTM(4, 6, 2, False, True)",
  "dict(x=r(3, 5, 4), h0=r(2, 3, 6), c0=r(2, 3, 6))", "m(i['x'], (i['h0'], i['c0']))",
  function() return nn.LSTM(4, 6, 2, false, true) end, with_state)
case("lstm_proj_bidirectional", "nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)",
  "dict(x=r(5, 2, 4), h0=r(4, 2, 3), c0=r(4, 2, 6))", "m(i['x'], (i['h0'], i['c0']))",
  function() return nn.LSTM(4, 6, {num_layers = 2, bidirectional = true, proj_size = 3}) end, with_state)
case("lstm_unbatched_state", "nn.LSTM(4, 6, bidirectional=True, batch_first=True)",
  "dict(x=r(5, 4), h0=r(2, 6), c0=r(2, 6))", "m(i['x'], (i['h0'], i['c0']))",
  function() return nn.LSTM(4, 6, {bidirectional = true, batch_first = true}) end, with_state)
case("lstm_unbatched", "nn.LSTM(4, 6, num_layers=3)", "dict(x=r(5, 4))", "m(i['x'])",
  function() return nn.LSTM(4, 6, {num_layers = 3}) end, plain)
case("lstm_dropout_eval", "nn.LSTM(4, 6, num_layers=2, dropout=0.5)", "dict(x=r(5, 3, 4))", "m(i['x'])",
  function() return nn.LSTM(4, 6, {num_layers = 2, dropout = 0.5}) end, plain)

case("gru", "nn.GRU(4, 6)", "dict(x=r(5, 3, 4))", "m(i['x'])", function() return nn.GRU(4, 6) end, plain)
case("gru_2_layers_bidirectional_h0", "nn.GRU(4, 6, 2, bidirectional=True)",
  "dict(x=r(5, 3, 4), h0=r(4, 3, 6))", "m(i['x'], i['h0'])",
  function() return nn.GRU(4, 6, 2, {bidirectional = true}) end, with_h0)
case("gru_batch_first_no_bias", "nn.GRU(4, 6, bias=False, batch_first=True, num_layers=2)",
  "dict(x=r(3, 5, 4), h0=r(2, 3, 6))", "m(i['x'], i['h0'])",
  function() return nn.GRU(4, 6, {bias = false, batch_first = true, num_layers = 2}) end, with_h0)
case("gru_unbatched_h0", "nn.GRU(4, 6, num_layers=2, bidirectional=True)",
  "dict(x=r(5, 4), h0=r(4, 6))", "m(i['x'], i['h0'])",
  function() return nn.GRU(4, 6, {num_layers = 2, bidirectional = true}) end, with_h0)

case("rnn_tanh_bidirectional_h0", "nn.RNN(4, 6, 2, bidirectional=True)",
  "dict(x=r(5, 3, 4), h0=r(4, 3, 6))", "m(i['x'], i['h0'])",
  function() return nn.RNN(4, 6, 2, {bidirectional = true}) end, with_h0)
case("rnn_relu_batch_first", "nn.RNN(4, 6, nonlinearity='relu', batch_first=True)",
  "dict(x=r(3, 5, 4))", "m(i['x'])",
  function() return nn.RNN(4, 6, {nonlinearity = "relu", batch_first = true}) end, plain)

-- batch 6 and 4H = 80 / 3H = 60: the step kernel's 4-row block, its single
-- rows and a partial 16-column strip (smallmm.c)
case("lstm_batch6_h20", "nn.LSTM(8, 20, num_layers=2)", "dict(x=r(7, 6, 8))", "m(i['x'])",
  function() return nn.LSTM(8, 20, {num_layers = 2}) end, plain)
case("gru_batch6_h20_h0", "nn.GRU(8, 20, batch_first=True)", "dict(x=r(6, 7, 8), h0=r(1, 6, 20))",
  "m(i['x'], i['h0'])", function() return nn.GRU(8, 20, {batch_first = true}) end, with_h0)

-- cells: one step, batched and unbatched, with and without state and bias
case("lstmcell_state", "nn.LSTMCell(4, 6)", "dict(x=r(3, 4), h0=r(3, 6), c0=r(3, 6))",
  "m(i['x'], (i['h0'], i['c0']))", function() return nn.LSTMCell(4, 6) end, with_state)
case("lstmcell_unbatched_no_bias", "nn.LSTMCell(4, 6, bias=False)", "dict(x=r(4))", "m(i['x'])",
  function() return nn.LSTMCell(4, 6, false) end, plain)
case("grucell_h0", "nn.GRUCell(4, 6)", "dict(x=r(3, 4), h0=r(3, 6))", "m(i['x'], i['h0'])",
  function() return nn.GRUCell(4, 6) end, with_h0)
case("grucell_unbatched_no_bias_h0", "nn.GRUCell(4, 6, bias=False)", "dict(x=r(4), h0=r(6))",
  "m(i['x'], i['h0'])", function() return nn.GRUCell(4, 6, {bias = false}) end, with_h0)
case("rnncell_relu_no_bias", "nn.RNNCell(4, 6, bias=False, nonlinearity='relu')", "dict(x=r(3, 4))",
  "m(i['x'])", function() return nn.RNNCell(4, 6, {bias = false, nonlinearity = "relu"}) end, plain)
case("rnncell_unbatched_h0", "nn.RNNCell(4, 6)", "dict(x=r(4), h0=r(6))", "m(i['x'], i['h0'])",
  function() return nn.RNNCell(4, 6) end, with_h0)

-- packed batches (torch.nn.utils.rnn): sequences of different lengths,
-- sorted or not (ties included), batch-first, with and without states
local R = torch.nn.utils.rnn
local function packed(opts, state_of)
  return function(m, i)
    local p = next(opts) and R.pack_padded_sequence(i.x, i.lengths, opts) or R.pack_padded_sequence(i.x, i.lengths)
    local out, st = m(p, state_of and state_of(i))
    local o, lens = R.pad_packed_sequence(out, opts.batch_first or false)
    return o, lens, out.batch_sizes, st
  end
end
local function hc(i) return {i.h0, i.c0} end
local function h(i) return i.h0 end
case("lstm_packed_2_layers_bidirectional_state", "nn.LSTM(4, 6, num_layers=2, bidirectional=True)",
  "dict(x=r(5, 3, 4), lengths=torch.tensor([5, 3, 2]), h0=r(4, 3, 6), c0=r(4, 3, 6))",
  "packed(m, i['x'], i['lengths'], (i['h0'], i['c0']))",
  function() return nn.LSTM(4, 6, {num_layers = 2, bidirectional = true}) end, packed({}, hc))
case("lstm_packed_unsorted_batch_first_proj", "nn.LSTM(4, 6, bidirectional=True, batch_first=True, proj_size=3)",
  "dict(x=r(3, 5, 4), lengths=torch.tensor([2, 5, 3]), h0=r(2, 3, 3), c0=r(2, 3, 6))",
  "packed(m, i['x'], i['lengths'], (i['h0'], i['c0']), batch_first=True, enforce_sorted=False)",
  function() return nn.LSTM(4, 6, {bidirectional = true, batch_first = true, proj_size = 3}) end,
  packed({batch_first = true, enforce_sorted = false}, hc))
case("gru_packed_unsorted_ties_h0", "nn.GRU(4, 6, 2, bidirectional=True)",
  "dict(x=r(4, 4, 4), lengths=torch.tensor([1, 4, 4, 2]), h0=r(4, 4, 6))",
  "packed(m, i['x'], i['lengths'], i['h0'], enforce_sorted=False)",
  function() return nn.GRU(4, 6, 2, {bidirectional = true}) end, packed({enforce_sorted = false}, h))
case("rnn_relu_packed", "nn.RNN(4, 6, nonlinearity='relu', num_layers=2)",
  "dict(x=r(4, 3, 4), lengths=torch.tensor([4, 4, 1]))", "packed(m, i['x'], i['lengths'])",
  function() return nn.RNN(4, 6, {nonlinearity = "relu", num_layers = 2}) end, packed({}))
case("lstm_packed_batch6_h20", "nn.LSTM(8, 20, num_layers=2, bidirectional=True)",
  "dict(x=r(7, 6, 8), lengths=torch.tensor([7, 6, 6, 3, 2, 1]))", "packed(m, i['x'], i['lengths'])",
  function() return nn.LSTM(8, 20, {num_layers = 2, bidirectional = true}) end, packed({}))

A.parity_suite(CASES)

describe("the recurrent step kernel", function()
  local core = require("ltorch.core")
  it("is there on an x86-64 CPU with AVX2 and FMA", function()
    local f = io.open("/proc/cpuinfo")
    local info = f and f:read("a") or ""
    if f then f:close() end
    local flags = info:match("\nflags%s*:([^\n]*)") or ""
    local has = flags:find(" avx2", 1, true) ~= nil and flags:find(" fma", 1, true) ~= nil
    assert.are.equal(has, core._step_pack(torch.randn(2, 2)) ~= nil)
  end)

  it("gives linear's values for every row count, width and depth", function()
    torch.manual_seed(4)
    for _, M in ipairs({1, 3, 4, 5, 8, 9, 16}) do
      for _, N in ipairs({1, 15, 16, 17, 40}) do
        for _, K in ipairs({0, 1, 7, 64}) do
          local a, w, b = torch.randn(M, K), torch.randn(N, K), torch.randn(N)
          local wp = core._step_pack(w)
          if wp == nil then return end   -- a CPU without AVX2 and FMA: the layers take linear
          assert.are.same({(N + 15) // 16, K, 16}, wp:size())
          local what = string.format("M=%d N=%d K=%d", M, N, K)
          H.assert_parity(core._step_mm(a, wp, N, b), torch.linear(a, w, b), 1e-6, what)
          H.assert_parity(core._step_mm(a, wp, N), torch.linear(a, w), 1e-6, what .. " no bias")
          -- a row-strided a (a narrow of a wider tensor) is read through a copy
          local wide = torch.randn(M, K + 3)
          H.assert_parity(core._step_mm(wide:narrow(2, 2, K), wp, N, b), torch.linear(wide:narrow(2, 2, K), w, b),
            1e-6, what .. " strided")
        end
      end
    end
  end)

  it("declines what it does not do, and the layers then take linear", function()
    local w = torch.randn(8, 4)
    local wp = core._step_pack(w)
    if wp == nil then return end
    assert.is_nil(core._step_pack(w:to("float64")))
    assert.is_nil(core._step_mm(torch.randn(2, 4):to("float64"), wp, 8))
    assert.is_nil(core._step_mm(torch.randn(2, 5), wp, 8))
    assert.is_nil(core._step_mm(torch.randn(2, 4), wp, 17))
    assert.is_nil(core._step_mm(torch.randn(2, 4), wp, 8, torch.randn(7)))
    local m = nn.LSTM(4, 6):to("float64")
    local out = m(torch.randn(5, 3, 4):to("float64"))
    assert.are.equal("float64", out:dtype())
  end)
end)

describe("LSTM and GRU", function()
  it("initialise every parameter uniform(-1/sqrt(hidden), 1/sqrt(hidden))", function()
    torch.manual_seed(1)
    local m = nn.LSTM(5, 16, {num_layers = 2})
    for k, p in pairs(m:named_parameters()) do
      local mx = p:abs():max():item()
      assert.is_true(mx <= 0.25 and mx > 0.2, k)
    end
  end)

  it("return states of PyTorch's shapes, zeros when no state is given", function()
    torch.manual_seed(2)
    local m = nn.LSTM(4, 6, {num_layers = 2, bidirectional = true, batch_first = true})
    local out, state = m(torch.randn(3, 5, 4))
    assert.are.same({3, 5, 12}, out:size())
    assert.are.same({4, 3, 6}, state[1]:size())
    assert.are.same({4, 3, 6}, state[2]:size())
    local out2, state2 = m(torch.randn(5, 3, 4):transpose(1, 2), {torch.zeros(4, 3, 6), torch.zeros(4, 3, 6)})
    assert.are.same(out:size(), out2:size())
    assert.are.same(state[1]:size(), state2[1]:size())
    -- the last forward step of the forward direction is h_n of the last layer
    local g = nn.GRU(4, 6, {num_layers = 2})
    local x = torch.randn(5, 3, 4)
    local o, h = g(x)
    assert.is_true(torch.equal(o:select(1, 5), h:select(1, 2)))
    assert.is_true(torch.equal(o, (g(x, torch.zeros(2, 3, 6)))))
  end)

  it("apply dropout between layers in training mode only", function()
    torch.manual_seed(3)
    local m = nn.LSTM(4, 6, {num_layers = 2, dropout = 0.5})
    local x = torch.randn(5, 3, 4)
    m:eval()
    local e = m(x)
    m:train()
    local t = m(x)
    assert.are.same(e:size(), t:size())
    assert.is_false(torch.allclose(e, t))
  end)

  it("have PyTorch's reprs", function()
    assert.are.equal("LSTM(4, 6, proj_size=3, num_layers=2, bias=False, batch_first=True, dropout=0.5, " ..
      "bidirectional=True)", tostring(nn.LSTM(4, 6, {proj_size = 3, num_layers = 2, bias = false,
        batch_first = true, dropout = 0.5, bidirectional = true})))
    assert.are.equal("GRU(4, 6)", tostring(nn.GRU(4, 6)))
    assert.are.equal("RNNCell(4, 6, bias=False, nonlinearity=relu)",
      tostring(nn.RNNCell(4, 6, {bias = false, nonlinearity = "relu"})))
  end)

  it("cells refuse inputs and states of the wrong shape, naming the argument", function()
    local c = nn.LSTMCell(4, 6)
    assert.has_error(function() c(torch.randn(2, 3, 4)) end,
      "bad argument #1 to 'LSTMCell' (expected input to be 1-D or 2-D, got 3-D)")
    assert.has_error(function() c(torch.randn(3, 5)) end,
      "bad argument #1 to 'LSTMCell' (input:size(-1) must be equal to input_size: expected 4, got 5)")
    assert.has_error(function() c(torch.randn(3, 4), {torch.zeros(2, 6), torch.zeros(3, 6)}) end,
      "bad argument #2 to 'LSTMCell' (h0 of size {3, 6} expected, got {2, 6})")
    assert.has_error(function() c(torch.randn(3, 4), torch.zeros(3, 6)) end,
      "bad argument #2 to 'LSTMCell' (state {h0, c0} expected, got tensor)")
    assert.has_error(function() nn.GRUCell(4, 6)(torch.randn(4), torch.zeros(1, 6)) end,
      "bad argument #2 to 'GRUCell' (h0 of size {6} expected, got {1, 6})")
    assert.has_error(function() nn.RNNCell(4, 6, {nonlinearity = "gelu"}) end)
  end)
end)

describe("errors", function()
  local BAD_CTOR = {
    {"nn.GRU(4, 6, {proj_size = 2})", "bad option 'proj_size' to 'GRU' (valid options: input_size, hidden_size, " ..
      "num_layers, bias, batch_first, dropout, bidirectional, device, dtype)"},
    {"nn.LSTM(4, 6, {proj_size = 6})", "LSTM: proj_size has to be smaller than hidden_size"},
    {"nn.LSTM(4, 6, {dropout = 2})", "LSTM: dropout should be a number in range [0, 1] representing the " ..
      "probability of an element being zeroed, got 2"},
    {"nn.GRU(4)", "GRU: hidden_size must be a positive integer"},
    {"nn.RNN(4, 6, {nonlinearity = 'sigmoid'})", "RNN: unknown nonlinearity 'sigmoid' (expected 'tanh' or 'relu')"},
  }
  for _, c in ipairs(BAD_CTOR) do
    it("refuses " .. c[1], function()
      assert.are.equal("user.lua:2: " .. c[2], A.err_of(c[1]))
    end)
  end

  local function err(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    return e
  end

  it("names the bad argument of forward", function()
    local lstm = nn.LSTM(4, 6, {num_layers = 2})
    local gru = nn.GRU(4, 6)
    local x = torch.randn(5, 3, 4)
    assert.are.equal("bad argument #1 to 'LSTM' (input:size(-1) must be equal to input_size: expected 4, got 5)",
      err(function() lstm(torch.randn(5, 3, 5)) end))
    assert.are.equal("bad argument #1 to 'LSTM' (2-D (unbatched) or 3-D input expected, got 4-D)",
      err(function() lstm(torch.randn(1, 5, 3, 4)) end))
    assert.are.equal("bad argument #1 to 'GRU' (input tensor expected, got nil)", err(function() gru() end))
    assert.are.equal("bad argument #2 to 'LSTM' (h0 of size {2, 3, 6} expected, got {2, 2, 6})",
      err(function() lstm(x, {torch.zeros(2, 2, 6), torch.zeros(2, 3, 6)}) end))
    assert.are.equal("bad argument #2 to 'LSTM' (c0 of size {2, 3, 6} expected, got {1, 3, 6})",
      err(function() lstm(x, {torch.zeros(2, 3, 6), torch.zeros(1, 3, 6)}) end))
    assert.are.equal("bad argument #2 to 'LSTM' (state {h0, c0} expected, got tensor)",
      err(function() lstm(x, torch.zeros(2, 3, 6)) end))
    assert.are.equal("bad argument #2 to 'LSTM' (state {h0, c0} expected, got a table without c0)",
      err(function() lstm(x, {torch.zeros(2, 3, 6)}) end))
    assert.are.equal("bad argument #2 to 'GRU' (for batched 3-D input, h0 should be 3-D, got 2-D)",
      err(function() gru(x, torch.zeros(1, 6)) end))
    assert.are.equal("bad argument #2 to 'GRU' (for unbatched 2-D input, h0 should be 2-D, got 3-D)",
      err(function() gru(torch.randn(5, 4), torch.zeros(1, 1, 6)) end))
    assert.are.equal("bad argument #2 to 'GRU' (h0 of size {1, 6} expected, got {2, 6})",
      err(function() gru(torch.randn(5, 4), torch.zeros(2, 6)) end))
    assert.are.equal("bad argument #2 to 'GRU' (h0 tensor expected, got table)",
      err(function() gru(x, {torch.zeros(1, 3, 6)}) end))
  end)
end)

-- a user model: embedding, a 2-layer bidirectional LSTM, a head on the last step
local TinyLSTM = nn.module("at_tiny_lstm", {
  initialize = function(self, vocab, d, hidden)
    self.emb = nn.Embedding(vocab, d)
    self.rnn = nn.LSTM(d, hidden, {num_layers = 2, bidirectional = true, batch_first = true})
    self.head = nn.Linear(2 * hidden, 3)
  end,
  forward = function(self, ids)
    local out, state = self.rnn(self.emb(ids))
    return self.head(out:select(2, out:size(2))), state[1]
  end,
})

describe("whole-module round trip", function()
  it("saves an LSTM model and loads it in a fresh process with the same output", function()
    torch.manual_seed(9)
    local m = TinyLSTM(10, 4, 5):eval()
    local ids = torch.tensor({{1, 4, 7, 2}, {5, 5, 8, 9}})
    local y, h = m(ids)
    local d = H.tmpdir()
    torch.save(m, d .. "/model.pt")
    torch.save(ids, d .. "/ids.pt")
    -- the class defined again in the fresh process (no trust_code needed)
    local ok, out = H.lua(string.format([[
local torch = require("ltorch")
local nn = torch.nn
nn.module("at_tiny_lstm", {
  initialize = function(self) end,
  forward = function(self, ids)
    local out, state = self.rnn(self.emb(ids))
    return self.head(out:select(2, out:size(2))), state[1]
  end,
})
local m = torch.load(%q)
local y, h = m(torch.load(%q))
torch.save({y = y, h = h}, %q)
print(tostring(m.rnn))
]], d .. "/model.pt", d .. "/ids.pt", d .. "/y.pt"), d)
    assert.is_true(ok, out)
    assert.are.equal("LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True)\n", out)
    local got = torch.load(d .. "/y.pt")
    assert.is_true(torch.equal(y, got.y))
    assert.is_true(torch.equal(h, got.h))
    -- and PyTorch runs the same weights to the same output
    local py = H.python(string.format([[
import torch
sd = torch.load(%q, weights_only=True)
emb = torch.nn.Embedding(10, 4); rnn = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
head = torch.nn.Linear(10, 3)
emb.weight.data.copy_(sd['emb.weight'])
rnn.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith('rnn.')})
head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith('head.')})
ids = torch.load(%q)
with torch.no_grad():
    out, (h, c) = rnn(emb(ids - 1))
    torch.save({'y': head(out[:, -1])}, %q)
]], d .. "/model.pt", d .. "/ids.pt", d .. "/py.pt"), d)
    H.assert_parity(y, torch.load(d .. "/py.pt").y, 1e-4, "PyTorch on the saved weights")
    H.rmdir(d)
  end)
end)

describe("torch.nn.utils.rnn", function()
  local function vals(t) local o = {} for i = 1, t:numel() do o[i] = t:reshape(-1)[i]:item() end return o end

  it("packs and pads as PyTorch lays them out (1-based sorted_indices)", function()
    local a, b, c = torch.tensor({1, 2, 3}), torch.tensor({4}), torch.tensor({5, 6})
    local padded = R.pad_sequence({a, b, c})
    assert.are.same({3, 3}, padded:size())
    assert.are.same({1, 4, 5, 2, 0, 6, 3, 0, 0}, vals(padded))
    assert.are.same({1, 2, 3, 4, -1, -1, 5, 6, -1}, vals(R.pad_sequence({a, b, c}, true, -1)))
    -- not sorted: refused, unless enforce_sorted = false
    assert.has_error(function() R.pack_sequence({a, b, c}) end)
    local p = R.pack_sequence({a, b, c}, false)
    assert.are.same({1, 5, 4, 2, 6, 3}, vals(p.data))
    assert.are.same({3, 2, 1}, vals(p.batch_sizes))
    assert.are.same({1, 3, 2}, vals(p.sorted_indices))
    assert.are.same({1, 3, 2}, vals(p.unsorted_indices))
    assert.are.equal("int64", p.batch_sizes:dtype())
    local back = R.unpack_sequence(p)
    assert.are.same({{1, 2, 3}, {4}, {5, 6}}, {vals(back[1]), vals(back[2]), vals(back[3])})
    local out, lens = R.pad_packed_sequence(p, {batch_first = true, total_length = 4})
    assert.are.same({3, 4}, out:size())
    assert.are.same({3, 1, 2}, vals(lens))
    assert.are.same({1, 2, 3, 0, 4, 0, 0, 0, 5, 6, 0, 0}, vals(out))
    local un = R.unpad_sequence(out, lens, true)
    assert.are.same({4}, vals(un[2]))
    assert.is_truthy(tostring(p):find("^PackedSequence%(data=tensor"))
  end)

  it("refuses what PyTorch refuses", function()
    local x = torch.randn(3, 2, 4)
    assert.has_error(function() R.pack_padded_sequence(x, {1, 3}) end,
      "pack_padded_sequence: 'lengths' array must be sorted in decreasing order when 'enforce_sorted' is true. " ..
      "You can pass enforce_sorted = false to pack_padded_sequence and/or pack_sequence to sidestep this " ..
      "requirement if you do not need ONNX exportability.")
    assert.has_error(function() R.pack_padded_sequence(x, {3, 0}) end,
      "pack_padded_sequence: length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0")
    assert.has_error(function() R.pack_padded_sequence(x, {3}) end,
      "pack_padded_sequence: expected 2 lengths (the batch size), got 1")
    assert.has_error(function() R.pack_padded_sequence(x, {4, 1}) end,
      "pack_padded_sequence: lengths[1] is 4, past the input's 3 steps")
    local p = R.pack_padded_sequence(x, {3, 1})
    assert.has_error(function() R.pad_packed_sequence(p, {total_length = 2}) end,
      "pad_packed_sequence: expected total_length to be at least the length of the longest sequence in the input, " ..
      "but got total_length=2 and max sequence length being 3")
    assert.has_error(function() R.pack_padded_sequence(x, {3, 1}, {enforce_sort = false}) end)
    -- a layer given a packed batch of the wrong width or state
    local lstm = nn.LSTM(5, 6)
    assert.has_error(function() lstm(p) end,
      "bad argument #1 to 'LSTM' (input:size(-1) must be equal to input_size: expected 5, got 4)")
    assert.has_error(function() nn.GRU(4, 6)(p, torch.zeros(1, 3, 6)) end,
      "bad argument #2 to 'GRU' (h0 of size {1, 2, 6} expected, got {1, 3, 6})")
  end)

  it("gives a packed batch's states as the padded batch's, each at its sequence's last step", function()
    torch.manual_seed(5)
    local m = nn.GRU(4, 6, {bidirectional = true})
    local x = torch.randn(5, 3, 4)
    local lens = {2, 5, 4}
    local out, hn = m(R.pack_padded_sequence(x, lens, {enforce_sorted = false}))
    local o = R.pad_packed_sequence(out)
    for i, l in ipairs(lens) do
      -- each sequence alone, unbatched, over its own steps
      local oi, hi = m(x:select(2, i):narrow(1, 1, l))
      H.assert_parity(o:select(2, i):narrow(1, 1, l), oi, 1e-5, "output of sequence " .. i)
      H.assert_parity(hn:select(2, i), hi, 1e-5, "state of sequence " .. i)
      if l < 5 then assert.are.equal(0, o:select(2, i):narrow(1, l + 1, 5 - l):abs():max():item()) end
    end
  end)
end)
