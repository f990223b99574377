-- formats/npz.lua: NumPy .npz, a zip of .npy members (docs/formats.md),
-- read with ltorch's zip reader (ptzip.c) and written through libzip.
-- load(path, opts) -> ordered dict name -> value (names without ".npy"):
-- a tensor, or for a string or object member what formats/npy.lua's load
-- gives (a string or value for a 0-d array, nested lists for N-d ones);
-- opts.keys / opts.rename / opts.mmap / opts.progress as for safetensors,
-- selecting on the member names before any header is read; opts.unknown
-- for object members as for .npy. The internal opts.as_dict (set by
-- torch.load_state_dict) keeps the tensors only: string and object members
-- are then not read at all.
-- save(obj, tmp, opts): obj a table of named tensors and string arrays (a
-- string: a 0-d '<U' array; nested lists of strings of equal lengths), or
-- a list of tensors (named arr_0, arr_1, ... like np.savez);
-- opts.compress = true deflates.
-- Members are written in odict.ordered_keys' order and dated 1980-01-01
-- 00:00:00 (src/lfmt.c), so one value always gives the same bytes.
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")
local npy = require("ltorch.formats.npy")

local M = {name = "npz", extensions = {".npz"},
  load_options = {"mmap", "keys", "rename", "progress", "unknown"}, save_options = {"compress"}}

function M.detect(head)
  if head:sub(1, 4) == "PK\5\6" then return true end
  if head:sub(1, 4) ~= "PK\3\4" or #head < 30 then return false end
  local nlen = string.unpack("<I2", head, 27)
  local name = head:sub(31, 30 + nlen)
  return #name == nlen and name:sub(-4) == ".npy"
end

local function as_dict(obj)
  if type(obj) == "table" and not odict.is(obj) and #obj > 0 and core.is_tensor(obj[1]) then
    local d = odict.new()
    for i, t in ipairs(obj) do d["arr_" .. (i - 1)] = t end
    return d
  end
  return obj
end

-- the values of a dict to save: tensors as they are, string arrays as
-- their .npy bytes; nil and why when one is neither
local function members(obj)
  local names, values = {}, {}
  for _, k in ipairs(common.ordered_keys(obj)) do
    local v = obj[k]
    if type(k) ~= "string" then return nil, select(2, common.flat_dict(obj, ".npz")) end
    if not core.is_tensor(v) then
      if not npy.stringish(v) then
        return nil, string.format("value '%s' is a %s: .npz stores only tensors and arrays of strings (.pt can store it)",
          k, type(v) == "table" and "nested table" or type(v))
      end
      local bytes, why = npy.pack_strings(v)
      if not bytes then return nil, string.format("value '%s': %s", k, why) end
      v = bytes
    end
    names[#names + 1] = k
    values[#values + 1] = v
  end
  return names, values
end

function M.can_hold(obj)
  obj = as_dict(obj)
  local ok, why = common.flat_dict(obj, ".npz")
  if ok then return true end
  if type(obj) ~= "table" or core.is_tensor(obj) or getmetatable(obj) and not odict.is(obj) then return false, why end
  local names, why2 = members(obj)
  if not names then return false, why2 end
  return true
end

-- Members are read with ltorch's zip reader: under mmap a stored member
-- whose data is aligned is mapped, and every other member is read on first
-- use (so convert and inspect hold one member at a time); an eager load
-- reads the members it keeps at once.
function M.load(path, opts)
  opts = opts or {}
  local select = common.selector(opts)
  local progress = common.progress(opts)
  local entries = common.guard(path, core._npz_load, path, opts.mmap,
    function(n) return select((n:gsub("%.npy$", ""))) end, opts.as_dict)
  local total = 0
  for _, e in ipairs(entries) do
    if e.tensor then total = total + e.tensor:numel() * e.tensor:element_size() end
  end
  local d, done = odict.new(), 0
  for _, e in ipairs(entries) do
    local name = e.key
    if e.kind then
      local ok, v = pcall(npy.decode, e.bytes, e, opts)
      if not ok then common.fail(path, "entry '" .. e.name .. "': " .. tostring(v)) end
      e.bytes = nil
      common.put(d, name, v, path)
    elseif not opts.mmap then
      common.guard(path, core._fill, e.tensor)
      done = done + e.tensor:numel() * e.tensor:element_size()
      progress(done, total)
    end
    if e.tensor then common.put(d, name, e.fortran and npy.unfortran(e.tensor) or e.tensor, path) end
  end
  if opts.mmap then progress(total, total) end
  return d
end

function M.save(obj, tmp, opts, final)
  opts = opts or {}
  local names, values = members(as_dict(obj))
  if not names then common.fail(final or tmp, values) end
  common.write(core._npz_save, tmp, final, opts, names, values, opts.compress)
end

return M
