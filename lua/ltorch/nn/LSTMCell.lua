-- LSTMCell.lua: one step of a long short-term memory cell (PyTorch's
-- nn.LSTMCell): parameters weight_ih {4H, in}, weight_hh {4H, H}, bias_ih,
-- bias_hh {4H} (gates i, f, g, o), init as PyTorch's (rnn_base.lua).
--
--   local h1, c1 = cell(x [, {h0, c0}])
--
-- x is {N, input_size} or unbatched {input_size}; h0, c0 (zeros when not
-- given), h1 and c1 are {N, hidden_size} ({hidden_size} unbatched).
-- PyTorch returns the tuple (h1, c1); here two values.
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "LSTMCell"

return base.module(NAME, {
  -- LSTMCell(input_size, hidden_size [, bias = true, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "bias", "device", "dtype"}, ...)
    rb.cell_init(self, NAME, "LSTM", a)
  end,

  forward = function(self, x, state)
    local h0, c0 = rb.lstm_state(NAME, state)
    return rb.cell_forward(self, NAME, x, h0, c0)
  end,

  extra_repr = rb.cell_repr,
}, {builtin = true})
