-- RNN.lua: a multi-layer Elman network, h' = tanh(W_ih x + b_ih + W_hh h +
-- b_hh) or with relu (PyTorch's nn.RNN), parameters and init as PyTorch's
-- (see rnn_base.lua).
--
--   local out, h_n = rnn(x [, h0])
--
-- Shapes as LSTM's (LSTM.lua), without proj_size.
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "RNN"

return base.module(NAME, {
  -- RNN(input_size, hidden_size [, num_layers = 1, nonlinearity = "tanh", bias = true,
  --   batch_first = false, dropout = 0, bidirectional = false, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "num_layers", "nonlinearity", "bias",
      "batch_first", "dropout", "bidirectional", "device", "dtype"}, ...)
    local nl = rb.nonlinearity(NAME, a)
    self.nonlinearity = nl
    rb.init(self, NAME, nl == "tanh" and "RNN_TANH" or "RNN_RELU", a)
  end,

  forward = function(self, x, h0) return rb.forward_h(self, NAME, x, h0) end,

  flatten_parameters = rb.flatten_parameters,
  extra_repr = rb.extra_repr,
}, {builtin = true})
