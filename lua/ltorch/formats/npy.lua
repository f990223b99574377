-- formats/npy.lua: NumPy .npy (layout in src/npy.c).
-- load(path, {mmap=, unknown=}) -> tensor, or for a string array (U, S)
-- its strings and for an object array (O) its values: a 0-d array as the
-- value itself, an N-d one as nested Lua lists following its shape.
-- Big-endian data is byte-swapped on load (under mmap, when first used);
-- Fortran-order data loads as a transposed (non-contiguous) view of the
-- file's bytes, no copy.
-- save(t, tmp): header v1.0 (v2.0 when large), data starts at a multiple
-- of 64; strided views are streamed in C order. A string, or nested lists
-- of strings, is saved as NumPy's '<U<longest>'.
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")

local M = {name = "npy", extensions = {".npy"}, streams = true, load_options = {"mmap", "unknown"}, save_options = {}}

function M.detect(head)
  return head:sub(1, 6) == "\x93NUMPY"
end

-- could v be a string array (a string, or a plain table: nested lists)?
local function stringish(v)
  if type(v) == "string" then return true end
  while type(v) == "table" and getmetatable(v) == nil do
    if rawlen(v) == 0 then return next(v) == nil end
    v = rawget(v, 1)
  end
  return type(v) == "string"
end
M.stringish = stringish

-- the .npy bytes of a string array, or nil and why
function M.pack_strings(v)
  local ok, bytes = pcall(core._npy_pack_strings, v)
  if not ok then return nil, tostring(bytes) end
  return bytes
end

function M.can_hold(obj)
  if core.is_tensor(obj) then return true end
  if stringish(obj) then
    local bytes, why = M.pack_strings(obj)
    if not bytes then return false, why end
    return true
  end
  return false, ".npy stores one tensor or an array of strings, got a " .. type(obj) ..
    " (.npz stores a table of tensors)"
end

-- the tensor t stored with reversed (Fortran) dims, as its transposed view
function M.unfortran(t)
  local n = t:dim()
  if n < 2 then return t end
  local perm = {}
  for i = 1, n do perm[i] = n + 1 - i end
  return t:permute(perm)
end

-- The strings of a U or S array whose data is bytes from offset on (hd:
-- its header, core._npy_header's table): a Lua string for a 0-d array,
-- else nested lists of them. Raises without the path.
function M.strings(bytes, offset, hd)
  local flat = core._npy_strings(bytes, offset, hd.kind, hd.itemsize, hd.shape, hd.fortran, hd.big_endian)
  return core._npy_nest(flat, hd.shape)
end

local RECONSTRUCT = {
  ["numpy.core.multiarray._reconstruct"] = true,     -- NumPy 1
  ["numpy._core.multiarray._reconstruct"] = true,    -- NumPy 2
}

local function is_inert(x)
  return type(x) == "table" and getmetatable(x) == nil and type(rawget(x, "__global")) == "string"
end

-- the distinct globals of inert objects in v, in the order met
local function globals_in(v, seen, out, have)
  if type(v) ~= "table" or seen[v] then return end
  seen[v] = true
  if is_inert(v) and not have[v.__global] then
    have[v.__global] = true
    out[#out + 1] = v.__global
  end
  for k, x in pairs(v) do
    globals_in(k, seen, out, have)
    globals_in(x, seen, out, have)
  end
end

-- The values of an object array: its data pkl is the pickle of the whole
-- ndarray (src/npy.c), run by ltorch's pickle reader (which never runs
-- code). None is torch.null; str and bytes are strings; lists and tuples
-- Lua lists; dicts ordered dicts. Objects of other globals (NumPy scalars,
-- nested arrays, classes) are refused unless unknown == "inert", which
-- keeps them as the pickle reader's inert tables. shape: the header's.
-- Raises without the path.
function M.objects(pkl, shape, unknown)
  local torch = require("ltorch")
  local v = core._pickle_loads(pkl, {null = torch.null, odict_from = odict.from, unknown = "inert"})
  local function bad(why) error("the pickle is not a NumPy object array (" .. why .. ")", 0) end
  if not is_inert(v) or not RECONSTRUCT[v.__global] then
    bad("numpy.core.multiarray._reconstruct expected, got " ..
      (is_inert(v) and v.__global or v == torch.null and "None" or type(v)))
  end
  local st = rawget(v, "state")
  if type(st) ~= "table" or getmetatable(st) ~= nil or #st ~= 5 then bad("its state is not (version, shape, dtype, fortran, data)") end
  local pshape, dtype, items = st[2], st[3], st[5]
  local same = type(pshape) == "table" and #pshape == #shape
  for i = 1, #shape do same = same and pshape[i] == shape[i] end
  if not same then bad("its shape differs from the header's") end
  local dargs = is_inert(dtype) and dtype.__global == "numpy.dtype" and rawget(dtype, "args")
  if type(dargs) ~= "table" or type(dargs[1]) ~= "string" or not dargs[1]:match("^O%d*$") then
    bad("its dtype is not object")
  end
  if type(items) ~= "table" or getmetatable(items) ~= nil then bad("its data is not a list") end
  if unknown ~= "inert" then
    local found = {}
    globals_in(items, {}, found, {})
    if #found > 0 then
      error("unsupported globals: " .. table.concat(found, ", ") ..
        " (pass {unknown = \"inert\"} to load them as inert tables)", 0)
    end
  end
  return core._npy_nest(items, shape)
end

-- the value of a string or object array (hd.kind set) whose member or
-- file bytes are bytes, the data from hd.data_offset on
function M.decode(bytes, hd, opts)
  if hd.kind == "O" then
    return M.objects(hd.data_offset == 0 and bytes or bytes:sub(hd.data_offset + 1), hd.shape, opts.unknown)
  end
  return M.strings(bytes, hd.data_offset, hd)
end

function M.load(path, opts)
  opts = opts or {}
  return common.with_file(path, function(h)
    local hd = core._npy_header(h)
    if hd.kind then
      local n = h:size() - hd.data_offset
      if hd.kind ~= "O" then
        n = hd.itemsize
        for _, d in ipairs(hd.shape) do n = n * d end
      end
      local data = h:read(hd.data_offset, n)
      return M.decode(data, {kind = hd.kind, itemsize = hd.itemsize, shape = hd.shape, fortran = hd.fortran,
        big_endian = hd.big_endian, data_offset = 0}, opts)
    end
    local shape = hd.shape
    if hd.fortran then
      shape = {}
      for i = #hd.shape, 1, -1 do shape[#shape + 1] = hd.shape[i] end
    end
    local t = h:tensor(hd.data_offset, hd.dtype, shape, opts.mmap, nil, hd.big_endian)
    if hd.fortran then t = M.unfortran(t) end
    return t
  end)
end

function M.save(obj, tmp, opts, final)
  if core.is_tensor(obj) then
    common.write(core._npy_save, tmp, final, opts, obj)
    return
  end
  local bytes = common.guard(final or tmp, core._npy_pack_strings, obj)
  common.write(core._write_parts, tmp, final, opts, {bytes})
end

return M
