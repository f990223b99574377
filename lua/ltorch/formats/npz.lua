-- formats/npz.lua: NumPy .npz, a zip of .npy members (docs/formats.md),
-- read with ltorch's zip reader (ptzip.c) and written through libzip.
-- load(path, opts) -> ordered dict name -> tensor (names without ".npy");
-- opts.keys / opts.rename / opts.mmap / opts.progress as for safetensors.
-- save(obj, tmp, opts): obj a table of named tensors, or a list of tensors
-- (named arr_0, arr_1, ... like np.savez); opts.compress = true deflates.
-- Members are written in odict.ordered_keys' order and dated 1980-01-01
-- 00:00:00 (src/lfmt.c), so one value always gives the same bytes.
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")
local npy = require("ltorch.formats.npy")

local M = {name = "npz", extensions = {".npz"},
  load_options = {"mmap", "keys", "rename", "progress"}, save_options = {"compress"}}

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

function M.can_hold(obj)
  return common.flat_dict(as_dict(obj), ".npz")
end

-- Members are read with ltorch's zip reader: under mmap a stored member
-- whose data is aligned is mapped, and every other member is read on first
-- use (so convert and inspect hold one member at a time); an eager load
-- reads the members it keeps at once.
function M.load(path, opts)
  opts = opts or {}
  local entries = common.guard(path, core._npz_load, path, opts.mmap)
  local select = common.selector(opts)
  local progress = common.progress(opts)
  local kept, total = {}, 0
  for _, e in ipairs(entries) do
    local name = select((e.name:gsub("%.npy$", "")))
    if name then
      kept[#kept + 1] = {name, e}
      total = total + e.tensor:numel() * e.tensor:element_size()
    end
  end
  local d, done = odict.new(), 0
  for _, k in ipairs(kept) do
    local name, e = k[1], k[2]
    if not opts.mmap then
      common.guard(path, core._fill, e.tensor)
      done = done + e.tensor:numel() * e.tensor:element_size()
      progress(done, total)
    end
    common.put(d, name, e.fortran and npy.unfortran(e.tensor) or e.tensor, path)
  end
  if opts.mmap then progress(total, total) end
  return d
end

function M.save(obj, tmp, opts, final)
  opts = opts or {}
  local names, ts = common.items(as_dict(obj))
  common.write(core._npz_save, tmp, final, opts, names, ts, opts.compress)
end

return M
