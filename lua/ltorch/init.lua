-- ltorch: the module users require. local torch = require("ltorch")
-- Tensors and their math come from the C core (ltorch.core); this file adds
-- the Lua-level pieces: printing, save/load dispatch, and lazy submodules.

local core = require("ltorch.core")
local format = require("ltorch.format")

local torch = {}
for k, v in pairs(core) do
  if k:sub(1, 1) ~= "_" then torch[k] = v end
end

-- The core fills the tensor metatable, __tostring included; the text of
-- tostring(t) is Lua code, handed to the core once here (ltorch.c, t_tostring)
core._set_tostring(format.tensor_tostring)
torch._methods, torch._meta = core._methods, core._meta

-- torch.null stands for Python's None in saved files and loaded values
torch.null = setmetatable({}, {
  __tostring = function() return "torch.null" end,
  __name = "ltorch.null",
  __newindex = function() error("torch.null is read-only", 2) end,
})

torch.version = "0.1.0"

-- torch.cuda: the GPUs the NVIDIA driver (opened at run time) reports
torch.cuda = {
  is_available = function() return core._cuda_count() ~= nil end,
  device_count = function() return core._cuda_count() or 0 end,
  -- get_device_name([index = 0]): indices of CUDA devices are 0-based, as
  -- in device names ("cuda:0")
  get_device_name = function(i) return core._cuda_name(i or 0) end,
  memory_allocated = function() return core._cuda_live_bytes() end,
}

-- creation functions take {device = "cuda[:N]"}: the tensor is made on the
-- CPU and moved (the core makes CPU tensors only). Each wrapper calls the
-- core function through a local of its own name, so argument errors still
-- name it ("bad argument #1 to 'zeros'").
local WRAP = [[
  local NAME, is_tensor = ...
  return function(...)
    local n = select("#", ...)
    local last = n > 0 and select(n, ...) or nil
    if type(last) ~= "table" or is_tensor(last) or last.device == nil or last.device == "cpu" then
      return (NAME(...))
    end
    local args, opts = table.pack(...), {}
    for k, v in pairs(last) do if k ~= "device" then opts[k] = v end end
    args[n] = opts
    return (NAME(table.unpack(args, 1, n))):to(last.device)
  end
]]
for _, name in ipairs({"tensor", "zeros", "ones", "empty", "full", "rand", "randn", "randint",
                       "arange", "linspace", "eye", "zeros_like", "ones_like", "full_like",
                       "empty_like", "rand_like", "randn_like"}) do
  if torch[name] then
    torch[name] = assert(load(WRAP:gsub("NAME", name), "=" .. name))(torch[name], core.is_tensor)
  end
end

-- torch.einsum plans in Lua over the core's views and bmm (einsum.lua)
torch.einsum = require("ltorch.einsum").einsum

-- submodules load on first use: torch.nn, torch.models
local lazy = {nn = "ltorch.nn", models = "ltorch.models", t7 = "ltorch.t7", gguf = "ltorch.gguf"}
lazy.safe_open = "ltorch.safe_open"   -- torch.safe_open(path): lazy safetensors access
-- torch.scan(path): the static pickle audit of a file (ltorch.scan; never runs it)
torch.scan = function(path) return require("ltorch.scan").scan(path) end
setmetatable(torch, {
  __index = function(t, k)
    local name = lazy[k]
    if name then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
  end,
})

package.loaded["ltorch"] = torch
local ok, io_mod = pcall(require, "ltorch.serialize")
if ok then io_mod.install(torch)
elseif not tostring(io_mod):find("module 'ltorch.serialize' not found", 1, true) then error(io_mod, 0) end

return torch
