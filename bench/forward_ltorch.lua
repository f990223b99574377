-- The ltorch side of `make bench`'s forward rows: builds the same model as
-- forward_torch.py, loads its state dict strictly, and times forward on the
-- same input in eval mode.   forward_ltorch.lua CASE FIXTURE REPS -> "seconds"
local torch = require("ltorch")
local nn = torch.nn
local clock = require("ltorch.core")._clock

local case, fixture, reps = arg[1], arg[2], tonumber(arg[3])
local m
if case == "resnet18" then m = require("ltorch.models").resnet18()
elseif case == "mobilenet_v2" then m = require("ltorch.models").mobilenet_v2()
elseif case == "transformer" then
  m = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, {dim_feedforward = 1024,
    dropout = 0.0, batch_first = true}), 2)
elseif case == "lstm" then m = nn.LSTM(128, 256, {num_layers = 2, batch_first = true})
else error("unknown case " .. tostring(case)) end
local f = torch.load(fixture)
m:load_state_dict(f.state_dict)
m:eval()
local x = f.input
local ts = {}
for i = 1, reps + 2 do
  local t0 = clock()
  m(x)
  if i > 2 then ts[#ts + 1] = clock() - t0 end
end
table.sort(ts)
print(ts[(#ts + 1) // 2])
