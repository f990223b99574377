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
local torch = require("ltorch")
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
    local h0, c0
    if state ~= nil then
      if type(state) ~= "table" or torch.is_tensor(state) or getmetatable(state) ~= nil then
        error(string.format("bad argument #2 to '%s' (state {h0, c0} expected, got %s)", NAME,
          torch.is_tensor(state) and "tensor" or type(state)), 0)
      end
      h0, c0 = state[1], state[2]
      if h0 == nil or c0 == nil then
        error(string.format("bad argument #2 to '%s' (state {h0, c0} expected, got a table without %s)",
          NAME, h0 == nil and "h0" or "c0"), 0)
      end
    end
    local out, h_n, c_n = rb.forward(self, NAME, x, h0, c0)
    return out, {h_n, c_n}
  end,

  flatten_parameters = rb.flatten_parameters,
  extra_repr = rb.extra_repr,
}, {builtin = true})
