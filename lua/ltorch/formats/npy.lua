-- formats/npy.lua: NumPy .npy (layout in src/npy.c).
-- load(path, {mmap=}) -> tensor. Big-endian data is byte-swapped on load
-- (under mmap, when first used); Fortran-order data loads as a transposed
-- (non-contiguous) view of the file's bytes, no copy.
-- save(t, tmp): header v1.0 (v2.0 when large), data starts at a multiple
-- of 64; strided views are streamed in C order.
local core = require("ltorch.core")
local common = require("ltorch.formats.common")

local M = {name = "npy", extensions = {".npy"}, load_options = {"mmap"}, save_options = {}}

function M.detect(head)
  return head:sub(1, 6) == "\x93NUMPY"
end

function M.can_hold(obj)
  if core.is_tensor(obj) then return true end
  return false, ".npy stores one tensor, got a " .. type(obj) .. " (.npz stores a table of tensors)"
end

-- the tensor t stored with reversed (Fortran) dims, as its transposed view
function M.unfortran(t)
  local n = t:dim()
  if n < 2 then return t end
  local perm = {}
  for i = 1, n do perm[i] = n + 1 - i end
  return t:permute(perm)
end

function M.load(path, opts)
  opts = opts or {}
  return common.with_file(path, function(h)
    local hd = core._npy_header(h)
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
  common.write(core._npy_save, tmp, final, opts, obj)
end

return M
