-- GRUCell.lua: one step of a gated recurrent unit (PyTorch's nn.GRUCell):
-- parameters weight_ih {3H, in}, weight_hh {3H, H}, bias_ih, bias_hh {3H}
-- (gates r, z, n, as GRU.lua), init as PyTorch's (rnn_base.lua).
--
--   local h1 = cell(x [, h0])
--
-- x is {N, input_size} or unbatched {input_size}; h0 (zeros when not
-- given) and h1 are {N, hidden_size} ({hidden_size} unbatched).
local base = require("ltorch.nn.module")
local rb = require("ltorch.nn.rnn_base")

local NAME = "GRUCell"

return base.module(NAME, {
  -- GRUCell(input_size, hidden_size [, bias = true, device, dtype])
  initialize = function(self, ...)
    local a = base.args(NAME, {"input_size", "hidden_size", "bias", "device", "dtype"}, ...)
    rb.cell_init(self, NAME, "GRU", a)
  end,

  forward = function(self, x, h0) return (rb.cell_forward(self, NAME, x, h0)) end,

  extra_repr = rb.cell_repr,
}, {builtin = true})
