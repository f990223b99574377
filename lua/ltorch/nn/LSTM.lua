-- LSTM.lua: a multi-layer long short-term memory network (PyTorch's
-- nn.LSTM), parameters and init as PyTorch's (see rnn_base.lua).
--
--   local out, state = lstm(x [, {h0, c0}])   -- state = {h_n, c_n}
--
-- x is {T, N, input_size} ({N, T, input_size} with batch_first) or {T,
-- input_size} unbatched; h0, c0 (zeros when not given) and h_n, c_n are
-- {num_layers * directions, N, size} ({num_layers * directions, size}
-- unbatched), never batch-first, as PyTorch. out is {T, N, directions *
-- size}, where size is proj_size when it is set, else hidden_size.
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "LSTM"

return base.module(NAME, {
  -- LSTM(input_size, hidden_size [, num_layers = 1, bias = true, batch_first = false,
  --   dropout = 0, bidirectional = false, proj_size = 0, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "num_layers", "bias", "batch_first",
      "dropout", "bidirectional", "proj_size", "device", "dtype"}, ...)
    rb.init(self, NAME, "LSTM", a)
  end,

  forward = function(self, x, state)
    local h0, c0 = rb.lstm_state(NAME, state)
    local out, h_n, c_n = rb.forward(self, NAME, x, h0, c0)
    return out, {h_n, c_n}
  end,

  flatten_parameters = rb.flatten_parameters,
  extra_repr = rb.extra_repr,
}, {builtin = true})
