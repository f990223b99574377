-- formats/safetensors.lua: Hugging Face safetensors (docs/formats.md; the
-- layout is in src/safetensors.c), including R torch's torch_save files and
-- packed modules.
--
-- load(path, opts) -> ordered state dict [, extras]. opts: mmap (zero-copy
-- views of one mapping), keys (list or predicate), rename ({{pattern, repl},
-- ...}), progress(done_bytes, total_bytes); as_dict (internal: an R torch
-- single-tensor file as a dict). extras: the __metadata__ entries named
-- "ltorch.NAME", as {NAME = text}. Metadata: torch.safe_open(path):metadata().
-- save(obj, tmp, opts, final, extras): obj a flat name -> tensor table;
-- writes {"format":"pt"}, extras as "ltorch.NAME" and opts.metadata
-- (string -> string). Tensors are
-- streamed one after another through a bounded buffer: opts.dtype casts
-- floating tensors chunk by chunk while writing, opts.release_mapped drops
-- the pages of file-mapped sources once written, opts.progress(done, total)
-- reports the bytes of tensor data written.
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")

local M = {name = "safetensors", extensions = {".safetensors"}, extras = true, streams = true,
  load_options = {"mmap", "keys", "rename", "progress"}, save_options = {"metadata"}}

function M.detect(head)
  if #head < 10 then return false end
  local n = string.unpack("<I8", head)
  if n < 2 or n > 100000000 then return false end
  return head:sub(9, 9) == "{" and head:sub(10, 10):match('[%s"}]') ~= nil
end

function M.can_hold(obj)
  return common.flat_dict(obj, "safetensors")
end

-- open path and parse its header: handle, entries, metadata odict, data start
function M.open(path)
  local h = common.guard(path, core._fopen, path)
  local ok, entries, mkeys, mvals, start = pcall(core._st_header, h)
  if not ok then
    h:close()
    common.fail(path, entries)
  end
  return h, entries, odict.from(mkeys, mvals), start
end

local function r_info(meta, path)
  local r = meta["__r__"]
  if r == nil then return nil end
  local ok, v = pcall(require("ltorch.json").decode, r)
  if not ok or type(v) ~= "table" then common.fail(path, "__metadata__ '__r__' is not a JSON object") end
  return v
end

-- an R special_dtype entry's shape must cover its bytes exactly: numel *
-- itemsize == end - begin (else the tensor would read past its entry)
local function check_special(path, e, dtype, shape)
  local nb, isz = e["end"] - e.begin, dtype == "complex64" and 8 or 16
  local dims, zero = {}, false
  for i, d in ipairs(shape) do
    local n = math.tointeger(d)
    if not n or n < 0 then
      common.fail(path, string.format("tensor '%s': R special_dtype shape dim %d is %s (a count expected)",
        e.name, i, tostring(d)))
    end
    dims[i] = n
    if n == 0 then zero = true end
  end
  if #dims ~= #shape then common.fail(path, "tensor '" .. e.name .. "': R special_dtype shape is not a list") end
  local need = isz   -- numel * itemsize, nil when it overflows
  if zero then need = 0 else
    for _, n in ipairs(dims) do
      if need > math.maxinteger // n then need = nil; break end
      need = need * n
    end
  end
  if need ~= nb then
    common.fail(path, string.format("tensor '%s': R special_dtype shape [%s] of %s needs %s bytes, the entry holds %d",
      e.name, table.concat(dims, ", "), dtype, need and tostring(need) or "more than 2^63", nb))
  end
end

function M.load(path, opts)
  opts = opts or {}
  local h, entries, meta, start = M.open(path)
  return common.using(h, path, function()
    local select = common.selector(opts)
    local progress = common.progress(opts)
    local r = r_info(meta, path)
    local special = r and type(r.special_dtype) == "table" and r.special_dtype or {}
    local grads = r and type(r.requires_grad) == "table" and r.requires_grad or {}
    local total = 0
    for _, e in ipairs(entries) do total = total + (e["end"] - e.begin) end
    local sd, done, robj = odict.new(), 0, nil
    for _, e in ipairs(entries) do
      if r and e.name == "__robj__" then
        robj = {present = true, bytes = e["end"] - e.begin}
      else
        local name = select(e.name)
        if name then
          local dtype, shape = e.dtype, e.shape
          if e.unsupported and not special[e.name] then
            common.fail(path, string.format("tensor '%s': dtype %s has no ltorch dtype (keys can leave it out)",
              e.name, e.unsupported))
          end
          local sp = special[e.name]
          if type(sp) == "table" then   -- R: complex stored as raw bytes
            local map = {cfloat = "complex64", cdouble = "complex128", complex64 = "complex64",
              complex128 = "complex128", cfloat64 = "complex64", cfloat128 = "complex128"}
            dtype = map[tostring(sp.dtype)]
            if not dtype then common.fail(path, "tensor '" .. e.name .. "': unsupported R special dtype '" .. tostring(sp.dtype) .. "'") end
            shape = type(sp.shape) == "table" and sp.shape or {sp.shape}
            check_special(path, e, dtype, shape)
          end
          local t = common.guard(path .. ": tensor '" .. e.name .. "'", h.tensor, h, start + e.begin, dtype, shape, opts.mmap, nil, false, e.name)
          if grads[e.name] == true then t:requires_grad(true) end
          common.put(sd, name, t, path)
        end
        done = done + (e["end"] - e.begin)
        progress(done, total)
      end
    end
    if r then
      if r.type == "tensor" and not opts.as_dict then
        local only = sd["...unnamed..."]
        if only then return only end
      end
      if robj and not opts.as_dict then sd.__robj__ = robj end
      return sd
    end
    local extras
    for k, v in pairs(meta) do
      local n = k:match("^ltorch%.(.+)$")
      if n then extras = extras or {}; extras[n] = v end
    end
    return sd, extras
  end)
end

function M.save(obj, tmp, opts, final, extras)
  opts = opts or {}
  local tensors, mkeys, mvals = obj, {"format"}, {format = "pt"}
  local function addmeta(k, v)
    if type(k) ~= "string" or type(v) ~= "string" then
      -- named with the file saved, as the writers' option errors are
      common.fail(final or tmp, string.format("bad option 'metadata' (string keys and values expected, got %s -> %s)",
        type(k), type(v)))
    end
    if mvals[k] == nil then mkeys[#mkeys + 1] = k end
    mvals[k] = v
  end
  for _, k in ipairs(common.ordered_keys(extras or {})) do addmeta("ltorch." .. k, extras[k]) end
  if opts.metadata ~= nil then
    if type(opts.metadata) ~= "table" then common.fail(final or tmp, "bad option 'metadata' (table expected)") end
    for _, k in ipairs(common.ordered_keys(opts.metadata)) do addmeta(k, opts.metadata[k]) end
  end
  local names, ts = common.items(tensors)
  common.write(core._st_save, tmp, final, opts, names, ts, mkeys, mvals)
end

return M
