-- safe_open_gguf.lua: torch.safe_open on a GGUF file (safe_open.lua hands
-- it over): the header is read once; f:keys(), f:metadata(),
-- f:get_tensor(name) (a plain tensor is a view of the file's mapping, a
-- quantized one dequantized then), f:close().
local core = require("ltorch.core")
local gguf = require("ltorch.formats.gguf")
local common = require("ltorch.formats.common")

local File = {}
File.__index = File
File.__name = "ltorch.GGUFFile"

local function check(self)
  if not self.h then error("attempt to use a closed GGUF file", 3) end
end

function File:keys()
  check(self)
  local ks = {}
  for i, e in ipairs(self.info.tensors) do ks[i] = e.name end
  return ks
end

function File:metadata() check(self); return self.md end

function File:get_tensor(name)
  check(self)
  local e = self.by_name[name]
  if not e then error(string.format("%s: no tensor named '%s'", self.path, tostring(name)), 2) end
  return gguf.tensor_of(self.h, self.info, e, {mmap = true}, self.path)
end

function File:close()
  if self.h then self.h:close(); self.h = nil end
end
File.__close = File.close
File.__gc = File.close

return function(path)
  local h = common.guard(path, core._fopen, path)
  local ok, info = pcall(core._gguf_scan, h)
  if not ok then h:close(); common.fail(path, info) end
  local by_name = {}
  for _, e in ipairs(info.tensors) do by_name[e.name] = e end
  return setmetatable({path = path, h = h, info = info, md = gguf.metadata_of(info), by_name = by_name}, File)
end
