-- walkthrough.lua: R torch's serialization vignette, in Lua (`make demo`).
--
--   1. save a tensor and load it back
--   2. define a module, save it whole (structure + state dict), load it back
--      and check that it computes the same thing
--   3. load a state dict written by PyTorch into a model defined in Lua
--   4. save the same module as safetensors
--
-- Run: bin/ltorch examples/walkthrough.lua
local torch = require("ltorch")
local nn = torch.nn

local function say(fmt, ...) print(string.format(fmt, ...)) end

-- a temporary directory for the files of this walkthrough
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function path(name) return dir .. "/" .. name end

torch.manual_seed(42)

-- 1. tensors ----------------------------------------------------------------
local x = torch.randn(10)
torch.save(x, path("tensor.pt"))
local y = torch.load(path("tensor.pt"))
say("1. saved a tensor of %d values to tensor.pt and loaded it back: allclose = %s",
  x:numel(), tostring(torch.allclose(x, y)))

-- 2. a whole module -----------------------------------------------------------
local my_module = nn.module("my_module", {
  initialize = function(self)
    self.fc1 = nn.Linear(10, 10)
    self.fc2 = nn.Linear(10, 1)
  end,
  forward = function(self, input)
    return self.fc2(torch.relu(self.fc1(input)))
  end,
})

local model = my_module()
print(model)
torch.save(model, path("model.pt"))
local model_ = torch.load(path("model.pt"))
local input = torch.randn(5, 10)
say("2. saved my_module whole to model.pt and loaded it back: allclose(model(x), model_(x)) = %s",
  tostring(torch.allclose(model(input), model_(input))))

-- the same file is also an ordinary state dict
local sd = torch.load_state_dict(path("model.pt"))
local keys = {}
for k, t in pairs(sd) do keys[#keys + 1] = k .. " {" .. table.concat(t:size(), ", ") .. "}" end
say("   its state dict: %s", table.concat(keys, ", "))

-- 3. a state dict written by PyTorch -------------------------------------------
local python = "/usr/bin/python3"
local fh = io.open(python, "rb")
local has_torch = false
if fh then
  fh:close()
  has_torch = os.execute(python .. " -c 'import torch' 2>/dev/null") == true
end
if has_torch then
  local script = path("make_sd.py")
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
import torch
from torch import nn
torch.manual_seed(0)
m = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1))
torch.save({'fc1.weight': m[0].weight, 'fc1.bias': m[0].bias,
            'fc2.weight': m[2].weight, 'fc2.bias': m[2].bias}, %q)
x = torch.ones(2, 10)
print(' '.join('%%.6f' %% v for v in m(x).detach().reshape(-1).tolist()))
]], path("pytorch_sd.pt")))
  f:close()
  local p = io.popen(python .. " '" .. script .. "'")
  local expected = p:read("a"):gsub("%s+$", "")
  p:close()
  local lua_model = my_module()
  local report = lua_model:load_state_dict(torch.load(path("pytorch_sd.pt")))
  local out = lua_model(torch.ones(2, 10))
  local got = {}
  for i = 1, out:size(1) do got[i] = string.format("%.6f", out[i][1]:item()) end
  say("3. loaded a state dict written by PyTorch into my_module (missing %d, unexpected %d)",
    #report.missing, #report.unexpected)
  say("   PyTorch's output: %s", expected)
  say("   ltorch's output:  %s", table.concat(got, " "))
else
  say("3. skipped: no PyTorch at %s to write a state dict with", python)
end

-- 4. safetensors ----------------------------------------------------------------
torch.save(model, path("model.safetensors"))
local model_st = torch.load(path("model.safetensors"))
say("4. saved my_module to model.safetensors (the state dict as tensors, the structure in " ..
  "__metadata__) and loaded it back: allclose = %s",
  tostring(torch.allclose(model(input), model_st(input))))

os.execute("rm -rf '" .. dir .. "'")
