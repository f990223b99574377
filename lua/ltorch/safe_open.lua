-- safe_open.lua: torch.safe_open(path), lazy access to a safetensors file
-- (as the Python safetensors.safe_open; torch.safe_open(path, {framework =
-- "pt", device = "cpu"}) takes its options). Opening reads only the header;
-- the tensors are views of one read-only-private mapping of the file. A
-- GGUF file opens the same way: keys, its metadata (typed, as torch.load
-- gives it) and its tensors one at a time (quantized ones dequantized).
-- A URL (http://, https://, s3://; opts.remote as torch.load's) opens for
-- the header's bytes; each tensor's are fetched on its first use.
--   f:keys()            names in data order
--   f:metadata()        the __metadata__ dict (ordered), or an empty one
--   f:get_tensor(name)  the tensor (zero-copy; {copy = true} reads it instead)
--   f:get_slice(name)   s:shape(), s:dtype(), s:rows(first, count) reads
--                       only those rows (1-based first), s:get() the whole
--   f:close()           also <close>; tensors already taken stay valid
local safetensors = require("ltorch.formats.safetensors")

local File = {}
File.__index = File
File.__name = "ltorch.SafeFile"

local Slice = {}
Slice.__index = Slice

local function check(self)
  if not self.h then error("attempt to use a closed safetensors file", 3) end
end

local function entry(self, name)
  check(self)
  local e = self.by_name[name]
  if not e then error(string.format("%s: no tensor named '%s'", self.path, tostring(name)), 3) end
  return e
end

-- opts of safe_open(path [, opts]) as Python's safe_open(path, framework,
-- device): framework "pt" (the only one), device "cpu"; anything else raises
local function check_opts(opts, fname, valid, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table of options expected, got %s)", argn, fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not valid[k] then
      local list = {}
      for n in pairs(valid) do list[#list + 1] = n end
      table.sort(list)
      error(string.format("bad option '%s' to '%s' (valid options: %s)", tostring(k), fname,
        table.concat(list, ", ")), 3)
    end
  end
  return opts
end

local function safe_open(path, opts)
  if type(path) ~= "string" then
    error("bad argument #1 to 'safe_open' (string expected, got " .. type(path) .. ")", 2)
  end
  opts = check_opts(opts, "safe_open", {framework = true, device = true, remote = true}, 2)
  if opts.framework ~= nil and opts.framework ~= "pt" then
    error("bad option 'framework' to 'safe_open' ('pt' expected, got '" .. tostring(opts.framework) .. "')", 2)
  end
  local dev
  if opts.device ~= nil and opts.device ~= "cpu" then
    dev = type(opts.device) == "string" and (opts.device == "cuda" and "0" or opts.device:match("^cuda:(%d+)$"))
    if not dev then
      error("bad option 'device' to 'safe_open' (unknown device '" .. tostring(opts.device) .. "')", 2)
    end
    local count, why = require("ltorch.core")._cuda_count()
    if not count then error("device '" .. opts.device .. "': " .. why, 2) end
    dev = tonumber(dev)
    if dev >= count then error("device '" .. opts.device .. "' does not exist", 2) end
  end
  local function open(file)
    local head = io.open(file, "rb")
    local magic = head and head:read(4)
    if head then head:close() end
    if magic == "GGUF" then return require("ltorch.safe_open_gguf")(file) end
    local h, entries, meta, start = safetensors.open(file)
    local by_name = {}
    for _, e in ipairs(entries) do by_name[e.name] = e end
    return setmetatable({path = file, h = h, entries = entries, meta = meta, start = start,
      by_name = by_name, device = dev}, File)
  end
  local remote = require("ltorch.remote")
  if remote.is_url(path) then
    -- the header fetched into the object's mirror, each tensor's bytes on
    -- its first use (remote.lua); errors name the URL
    local ropts = remote.check_opts(opts.remote, 2)
    return remote.with_mirror(path, ropts, false, function(mirror, rh)
      local f = open(mirror)
      f.path, f.remote = path, rh   -- the object stays open while f is
      return f
    end)
  end
  if opts.remote ~= nil then error("bad option 'remote' to 'safe_open' (the path is not a URL)", 2) end
  return open(path)
end

function File:keys()
  check(self)
  local ks = {}
  for i, e in ipairs(self.entries) do ks[i] = e.name end
  return ks
end

function File:metadata() check(self); return self.meta end

function File:get_tensor(name, opts)
  local e = entry(self, name)
  if e.unsupported then
    error(string.format("%s: tensor '%s': dtype %s has no ltorch dtype", self.path, name, e.unsupported), 2)
  end
  local copy = check_opts(opts, "get_tensor", {copy = true}, 2).copy
  local ok, t = pcall(self.h.tensor, self.h, self.start + e.begin, e.dtype, e.shape, not copy)
  if not ok then error(self.path .. ": tensor '" .. name .. "': " .. tostring(t), 2) end
  -- on a GPU: from the mapping through the staging buffers, pages dropped
  if self.device then t = require("ltorch.core")._cuda_upload_all({t}, self.device)[1] end
  return t
end

function File:get_slice(name)
  local e = entry(self, name)
  return setmetatable({file = self, e = e}, Slice)
end

function File:close()
  if self.h then self.h:close(); self.h = nil end
  if self.remote then self.remote:close(); self.remote = nil end
end
File.__close = File.close
File.__gc = File.close

function Slice:shape() return table.move(self.e.shape, 1, #self.e.shape, 1, {}) end
function Slice:dtype() return self.e.dtype end
function Slice:get() return self.file:get_tensor(self.e.name) end

-- rows first .. first+count-1 along the first dimension (1-based), read
-- from the mapping: only those bytes are touched
function Slice:rows(first, count)
  local f, e = self.file, self.e
  check(f)
  if #e.shape == 0 then error("bad argument #1 to 'rows' (the tensor is a scalar)", 2) end
  local n = e.shape[1]
  count = count or 1
  if math.type(first) ~= "integer" or first < 1 or first > n + 1 then
    error(string.format("bad argument #1 to 'rows' (row %s out of range 1..%d)", tostring(first), n), 2)
  end
  if math.type(count) ~= "integer" or count < 0 or first + count - 1 > n then
    error(string.format("bad argument #2 to 'rows' (%s rows from row %d exceed %d)", tostring(count), first, n), 2)
  end
  local rowbytes = n > 0 and (e["end"] - e.begin) // n or 0
  local shape = table.move(e.shape, 1, #e.shape, 1, {})
  shape[1] = count
  local ok, t = pcall(f.h.tensor, f.h, f.start + e.begin + (first - 1) * rowbytes, e.dtype, shape, true)
  if not ok then error(f.path .. ": tensor '" .. e.name .. "': " .. tostring(t), 2) end
  return t
end
Slice.narrow = function(self, dim, first, count)
  if dim ~= 1 then error("bad argument #1 to 'narrow' (only dimension 1 can be read lazily)", 2) end
  return self:rows(first, count)
end

return safe_open
