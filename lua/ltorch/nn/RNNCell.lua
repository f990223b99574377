-- RNNCell.lua: one step of an Elman cell (PyTorch's nn.RNNCell):
-- h1 = tanh (or relu)(x W_ih^T + b_ih + h0 W_hh^T + b_hh); parameters
-- weight_ih {H, in}, weight_hh {H, H}, bias_ih, bias_hh {H}, init as
-- PyTorch's (rnn_base.lua).
--
--   local h1 = cell(x [, h0])
--
-- x is {N, input_size} or unbatched {input_size}; h0 (zeros when not
-- given) and h1 are {N, hidden_size} ({hidden_size} unbatched).
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "RNNCell"

return base.module(NAME, {
  -- RNNCell(input_size, hidden_size [, bias = true, nonlinearity = "tanh", device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "bias", "nonlinearity", "device", "dtype"}, ...)
    local nl = rb.nonlinearity(NAME, a)
    self.nonlinearity = nl
    rb.cell_init(self, NAME, nl == "tanh" and "RNN_TANH" or "RNN_RELU", a)
  end,

  forward = function(self, x, h0) return (rb.cell_forward(self, NAME, x, h0)) end,

  extra_repr = rb.cell_repr,
}, {builtin = true})
