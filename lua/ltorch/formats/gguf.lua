-- formats/gguf.lua: GGUF files (llama.cpp, ggml). Headers are read and
-- checked by src/gguf.c, quantized blocks by src/gguf_quant.c; what a load
-- gives is described in lua/ltorch/gguf.lua (torch.gguf) and docs/gguf.md.
-- load(path, opts) -> {metadata = M, tensors = T}; opts: mmap (plain
--   tensors are views of the file's mapping where aligned, raw blocks
--   too), raw (quantized tensors kept as their blocks), keys, rename,
--   progress. A split model (general split.* keys, files NAME-0000i-of-
--   0000n.gguf) loads whole from any of its files.
-- save(value, tmp, opts): value {metadata = M, tensors = T} or a flat state
--   dict; opts.metadata (merged over M), opts.quantize ("q8_0", ...: 2-D
--   floating tensors whose rows fit the block). GGUF v3, little-endian, the
--   alignment of general.alignment (default 32).
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")
local G = require("ltorch.gguf")

local M = {name = "gguf", title = "GGUF", extensions = {".gguf"}, streams = true,
  load_options = {"mmap", "raw", "keys", "rename", "progress"},
  save_options = {"metadata", "quantize"}, nested = true}

-- "GGUF", and the magics of ggml's formats before it (refused with a reason)
local MAGICS = {GGUF = true, lmgg = true, fmgg = true, tjgg = true, GGML = true, GGMF = true, GGJT = true}

function M.detect(head)
  return MAGICS[head:sub(1, 4)] == true
end

---------------------------------------------------------------------------
-- load

local SPLIT = "^(.*)%-(%d%d%d%d%d)%-of%-(%d%d%d%d%d)%.gguf$"

local function scan(path)
  return common.with_file(path, function(h) return core._gguf_scan(h) end)
end
M.scan = scan

-- tensorless files read whose header was not padded (vocab-only files may
-- end right after their metadata): saved again the same way
local unpadded = setmetatable({}, {__mode = "k"})

-- the metadata dict of a scanned header, each value's type remembered
local function metadata_of(info, size)
  local md = odict.new()
  local types = {}
  for i, k in ipairs(info.keys) do
    md[k] = info.values[i]
    types[k] = info.types[i]
  end
  G.set_types(md, types)
  if #info.tensors == 0 and size and size < info.data_start then unpadded[md] = true end
  return md
end

local function numel_of(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- the tensor of entry e (a scanned tensor info) of the file open as h
local function tensor_of(h, info, e, opts, path)
  local qt = G.qtypes()
  local dt = G.DTYPE_OF[e.type]
  local what = string.format("tensor '%s'", e.name)
  if dt then
    return common.guard(path, h.tensor, h, e.offset, dt, e.shape, opts.mmap, nil, info.big_endian, what)
  end
  local q = qt[e.type]
  if info.big_endian then
    common.fail(path, what .. ": a quantized tensor (" .. q.name .. ") of a big-endian file cannot be read")
  end
  if opts.raw then
    local rs = {}
    for i = 1, #e.shape - 1 do rs[i] = e.shape[i] end
    rs[#rs + 1] = e.shape[#e.shape] // q.block * q.bytes
    local t = common.guard(path, h.tensor, h, e.offset, "uint8", rs, opts.mmap, nil, nil, what)
    G.mark_raw(t, {type = q.name, shape = e.shape})
    return t
  end
  if not q.dequant then
    common.fail(path, string.format("%s: ggml type %s cannot be dequantized yet " ..
      "(load with {raw = true} to keep its blocks)", what, q.name))
  end
  local blocks = common.guard(path, h.tensor, h, e.offset, "uint8", {e.nbytes}, true, nil, nil, what)
  local t = common.guard(path, core._gguf_dequantize, q.id, blocks, numel_of(e.shape)):view(e.shape)
  core._release(blocks)
  return t
end
M.tensor_of = tensor_of
M.metadata_of = metadata_of

-- the tensors of one file into T (h open on it)
local function load_tensors(h, info, path, opts, T, select, progress, done, total)
  for _, e in ipairs(info.tensors) do
    local name = select(e.name)
    if name then common.put(T, name, tensor_of(h, info, e, opts, path), path) end
    done = done + e.nbytes
    progress(done, total)
  end
  return done
end

function M.load(path, opts)
  opts = opts or {}
  local select = common.selector(opts)
  local progress = common.progress(opts)
  local open = {}   -- every file opened once, for its header and its tensors; closed whatever happens
  local function file(p)
    local h = common.guard(p, core._fopen, p)
    open[#open + 1] = h
    return {path = p, h = h, info = common.guard(p, core._gguf_scan, h)}
  end
  local ok, res = pcall(function()
    local first = file(path)
    local md = metadata_of(first.info, first.h:size())
    local files = {first}
    local n = md["split.count"]
    if math.type(n) == "integer" and n > 1 then
      -- a split model: every shard by its number, this one included
      local stem, _, of = path:match(SPLIT)
      if not stem or tonumber(of) ~= n then
        common.fail(path, string.format("split.count is %d but the name is not NAME-%05d-of-%05d.gguf", n, 1, n))
      end
      files = {}
      for i = 1, n do
        local p = string.format("%s-%05d-of-%05d.gguf", stem, i, n)
        local f = p == path and first or file(p)
        local no
        for j, k in ipairs(f.info.keys) do if k == "split.no" then no = f.info.values[j] end end
        if no ~= i - 1 then common.fail(p, string.format("split.no is %s, expected %d", tostring(no), i - 1)) end
        files[i] = f
      end
      md = metadata_of(files[1].info)
      local types = G.types(md)
      for _, k in ipairs({"split.count", "split.no", "split.tensors.count"}) do
        md[k] = nil
        types[k] = nil
      end
    end
    local total = 0
    for _, f in ipairs(files) do
      for _, e in ipairs(f.info.tensors) do total = total + e.nbytes end
    end
    local T, done = odict.new(), 0
    for _, f in ipairs(files) do
      done = load_tensors(f.h, f.info, f.path, opts, T, select, progress, done, total)
    end
    progress(total, total)
    return {metadata = md, tensors = T}
  end)
  for _, h in ipairs(open) do h:close() end
  if not ok then error(res, 0) end
  return res
end

-- the tensors of a loaded value (torch.load_state_dict, convert, diff)
function M.state_dict(value)
  if type(value) == "table" and value.tensors ~= nil and value.metadata ~= nil then
    return value.tensors, "a GGUF file"
  end
  return nil
end

---------------------------------------------------------------------------
-- save

local CODE = {uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7,
  string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12}
local PACK = {uint8 = "<I1", int8 = "<i1", uint16 = "<I2", int16 = "<i2", uint32 = "<I4", int32 = "<i4",
  float32 = "<f", uint64 = "<i8", int64 = "<i8", float64 = "<d"}
local RANGE = {uint8 = {0, 0xff}, int8 = {-0x80, 0x7f}, uint16 = {0, 0xffff}, int16 = {-0x8000, 0x7fff},
  uint32 = {0, 0xffffffff}, int32 = {-0x80000000, 0x7fffffff}}

-- does v fit type t (so a loaded type is kept)?
local function fits(t, v)
  if t:sub(1, 6) == "array:" then
    if type(v) ~= "table" or G.is_typed(v) then return false end
    local et = t:sub(7)
    for i = 1, #v do if not fits(et, v[i]) then return false end end
    return true
  end
  if t == "array" then return type(v) == "table" and #v == 0 end
  if t == "string" then return type(v) == "string" end
  if t == "bool" then return type(v) == "boolean" end
  if t == "float32" or t == "float64" then return type(v) == "number" end
  if math.type(v) ~= "integer" then return false end
  local r = RANGE[t]
  return r == nil or (v >= r[1] and v <= r[2])
end

local function encode(out, t, v, key)
  if G.is_typed(v) then v = v.value end
  if t:sub(1, 6) == "array:" or t == "array" then
    local et = t == "array" and "uint8" or t:sub(7)
    if type(v) ~= "table" then error(string.format("key '%s': a list expected for %s, got a %s", key, t, type(v)), 0) end
    local base = et:match("^array") and "array" or et
    out[#out + 1] = string.pack("<I4<I8", CODE[base], #v)
    for i = 1, #v do encode(out, et, v[i], key) end
    return
  end
  if t == "string" then
    if type(v) ~= "string" then error(string.format("key '%s': a string expected, got a %s", key, type(v)), 0) end
    out[#out + 1] = string.pack("<I8", #v) .. v
  elseif t == "bool" then
    if type(v) ~= "boolean" then error(string.format("key '%s': a boolean expected, got a %s", key, type(v)), 0) end
    out[#out + 1] = v and "\1" or "\0"
  else
    if type(v) ~= "number" then error(string.format("key '%s': a number expected for %s, got a %s", key, t, type(v)), 0) end
    if t ~= "float32" and t ~= "float64" then
      if math.type(v) ~= "integer" then
        error(string.format("key '%s': %s is not an integer, as %s needs", key, tostring(v), t), 0)
      end
      local r = RANGE[t]
      if r and (v < r[1] or v > r[2]) then
        error(string.format("key '%s': %d is out of the range of %s", key, v, t), 0)
      end
    end
    out[#out + 1] = string.pack(PACK[t], v)
  end
end

local function value_type(md, types, k, v)
  if G.is_typed(v) then return v.type end
  local t = types and types[k]
  if t and fits(t, v) then return t end
  local ok, d = pcall(G.default_type, v)
  if not ok then error(string.format("key '%s': %s", k, d), 0) end
  return d
end

local function gguf_name(n)
  if type(n) ~= "string" then error("tensor name " .. tostring(n) .. " is not a string", 0) end
  return n
end

function M.can_hold(v)
  if core.is_tensor(v) then return false, "GGUF stores named tensors, not a single tensor (wrap it: {name = t})" end
  if type(v) ~= "table" then return false, "GGUF stores named tensors, got a " .. type(v) end
  return true
end

local function plan(value, opts)
  local md, T
  local pad = true
  if type(value.tensors) == "table" and (value.metadata == nil or type(value.metadata) == "table") and
     not core.is_tensor(value.tensors) then
    md, T = value.metadata, value.tensors
  else
    T = value
  end
  local meta, types = odict.new(), {}
  if md then
    pad = not unpadded[md]
    local mt = G.types(md)
    for _, k in ipairs(odict.ordered_keys(md)) do meta[k] = md[k]; types[k] = mt[k] end
  end
  if opts.metadata ~= nil then
    if type(opts.metadata) ~= "table" then
      error("bad option 'metadata' (table expected, got " .. type(opts.metadata) .. ")", 0)
    end
    local mt = G.types(opts.metadata)
    for _, k in ipairs(odict.ordered_keys(opts.metadata)) do
      meta[k] = opts.metadata[k]
      types[k] = mt[k]
    end
  end
  return meta, types, T, pad
end

local function encode_file(value, opts)
  local meta, types, T, pad_empty = plan(value, opts)
  local qt = G.qtypes()
  local quant
  if opts.quantize ~= nil then
    quant = type(opts.quantize) == "string" and qt[opts.quantize:upper()]
    if not quant or not quant.quant then
      local list = {}
      for _, e in ipairs(core._gguf_types()) do if e.quant then list[#list + 1] = e.name:lower() end end
      error(string.format("bad option 'quantize' (one of %s expected, got %s)", table.concat(list, ", "),
        tostring(opts.quantize)), 0)
    end
  end
  -- the tensors: ggml type, ne, the bytes to write
  local infos, quantized = {}, false
  for _, name in ipairs(odict.ordered_keys(T)) do
    local t = T[name]
    gguf_name(name)
    if not core.is_tensor(t) then
      error(string.format("tensor '%s': a %s, not a tensor", name, type(t)), 0)
    end
    local raw = G.raw_info(t)
    local e = {name = name}
    local shape
    if raw then
      e.type, shape, e.data = qt[raw.type].id, raw.shape, t
    else
      shape = t:size()
      if #shape == 0 then shape = {1} end
      local dt = t:dtype()
      local q = quant and (dt:match("^float") or dt == "bfloat16") and #shape == 2 and shape[2] % quant.block == 0
      if q then
        e.type, e.data = quant.id, core._gguf_quantize(quant.id, t:to("float32"))
        quantized = true
      else
        local id = G.TYPE_OF_DTYPE[dt]
        if not id then
          error(string.format("tensor '%s': a %s tensor has no ggml type (float32, float16, bfloat16, " ..
            "float64, int8, int16, int32, int64)", name, dt), 0)
        end
        e.type, e.data = id, t
      end
    end
    if #shape > 4 then error(string.format("tensor '%s': %d dims, GGUF holds at most 4", name, #shape), 0) end
    for _, s in ipairs(shape) do
      if s == 0 then error(string.format("tensor '%s' has no elements: ggml needs every dim at least 1", name), 0) end
    end
    e.ne = {}
    for i = #shape, 1, -1 do e.ne[#e.ne + 1] = shape[i] end
    local q = qt[e.type]
    e.nbytes = numel_of(shape) // q.block * q.bytes
    infos[#infos + 1] = e
  end
  if quantized and meta["general.quantization_version"] == nil then
    meta["general.quantization_version"] = 2
    types["general.quantization_version"] = "uint32"
  end
  local align = 32
  local a = meta["general.alignment"]
  if a ~= nil then
    if math.type(G.is_typed(a) and a.value or a) ~= "integer" then error("key 'general.alignment': an integer expected", 0) end
    align = G.is_typed(a) and a.value or a
    if align <= 0 or align & (align - 1) ~= 0 or align > 0xffffffff then
      error("key 'general.alignment': " .. tostring(align) .. " is not a power of two", 0)
    end
    types["general.alignment"] = "uint32"
  end
  local out = {"GGUF", string.pack("<I4<I8<I8", 3, #infos, odict.count(meta))}
  for _, k in ipairs(odict.ordered_keys(meta)) do
    if type(k) ~= "string" then error("metadata key " .. tostring(k) .. " is not a string", 0) end
    local v = meta[k]
    local t = value_type(meta, types, k, v)
    local base = t:match("^array") and "array" or t
    out[#out + 1] = string.pack("<I8", #k) .. k .. string.pack("<I4", CODE[base])
    encode(out, t, v, k)
  end
  local off = 0
  for _, e in ipairs(infos) do
    out[#out + 1] = string.pack("<I8", #e.name) .. e.name .. string.pack("<I4", #e.ne)
    for _, s in ipairs(e.ne) do out[#out + 1] = string.pack("<I8", s) end
    out[#out + 1] = string.pack("<I4<I8", e.type, off)
    e.offset = off
    off = off + (e.nbytes + align - 1) // align * align
  end
  local header = table.concat(out)
  local parts = {header}
  -- the data section starts aligned (a file without tensors too, as gguf-py
  -- writes it, unless it was read unpadded)
  if #infos > 0 or pad_empty then parts[1] = header .. string.rep("\0", (-#header) % align) end
  if #infos > 0 then
    for _, e in ipairs(infos) do
      parts[#parts + 1] = e.data
      local p = (-e.nbytes) % align
      if p > 0 then parts[#parts + 1] = string.rep("\0", p) end
    end
  end
  return parts
end

function M.save(value, tmp, opts, final)
  opts = opts or {}
  local parts = common.guard(final or tmp, encode_file, value, opts)
  common.write(core._write_parts, tmp, final, opts, parts)
end

---------------------------------------------------------------------------
-- inspect

local function summary(v, t)
  if type(v) == "table" then
    local n = #v
    local et = t and t:match("^array:(.*)$") or "?"
    local shown = {}
    for i = 1, math.min(n, 3) do
      local e = v[i]
      shown[i] = type(e) == "string" and string.format("%q", #e > 24 and e:sub(1, 21) .. "..." or e)
        or type(e) == "table" and "[...]" or tostring(e)
    end
    return string.format("[%d %s%s]%s", n, et == "string" and "strings" or et, "",
      n > 0 and (" " .. table.concat(shown, ", ") .. (n > 3 and ", ..." or "")) or "")
  end
  if type(v) == "string" then
    local s = string.format("%q", #v > 60 and v:sub(1, 57) .. "..." or v)
    return (s:gsub("\\\n", "\\n"))
  end
  return tostring(v)
end

-- what inspect shows without reading tensor data: metadata lines and the
-- tensor infos with ggml type, shape, bytes and bits per weight
function M.describe(path)
  local info = scan(path)
  local qt = G.qtypes()
  local d = {version = info.version, alignment = info.alignment, big_endian = info.big_endian,
    metadata = {}, tensors = {}}
  for i, k in ipairs(info.keys) do
    d.metadata[#d.metadata + 1] = {key = k, type = info.types[i], value = summary(info.values[i], info.types[i])}
  end
  for _, e in ipairs(info.tensors) do
    local n = numel_of(e.shape)
    d.tensors[#d.tensors + 1] = {key = e.name, ggml_type = qt[e.type].name, shape = e.shape, numel = n,
      bytes = e.nbytes, bpw = e.nbytes * 8 / n, dtype = G.DTYPE_OF[e.type]}
  end
  return d
end

return M
