-- GRU.lua: a multi-layer gated recurrent unit network (PyTorch's nn.GRU),
-- parameters and init as PyTorch's (see rnn_base.lua); gates r, z, n:
--   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
--   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
--   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
--   h' = (1 - z) * n + z * h
--
--   local out, h_n = gru(x [, h0])
--
-- Shapes as LSTM's (LSTM.lua), without proj_size.
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "GRU"

return base.module(NAME, {
  -- GRU(input_size, hidden_size [, num_layers = 1, bias = true, batch_first = false,
  --   dropout = 0, bidirectional = false, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "num_layers", "bias", "batch_first",
      "dropout", "bidirectional", "device", "dtype"}, ...)
    rb.init(self, NAME, "GRU", a)
  end,

  forward = function(self, x, h0) return rb.forward_h(self, NAME, x, h0) end,

  flatten_parameters = rb.flatten_parameters,
  extra_repr = rb.extra_repr,
}, {builtin = true})
