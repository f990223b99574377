-- formats/t7.lua: Torch7 (.t7, Lua Torch) files. The layout and the reader's
-- checks are in src/t7.c; what the values are once loaded in
-- lua/ltorch/t7.lua (torch.t7).
-- load(path, opts) -> the file's value graph; opts: mmap (storages whose
--   bytes can be used in place are mapped, the others read on first use),
--   long_size (4 or 8: the writer's C long; default: 8, else 4 when the file
--   parses only so).
-- save(value, tmp, opts): tensors, numbers, strings, booleans and nested
--   tables (shared and cyclic ones kept, as back-references), and the
--   objects a load gave (class tables, tds containers), in the binary
--   format with 8-byte longs; table keys in odict.ordered_keys' order, so
--   one value always gives the same bytes.
-- state_dict(value, path): the flat state dict of a loaded nn model.
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")
local T7 = require("ltorch.t7")

local M = {name = "t7", extensions = {".t7"}, load_options = {"mmap", "long_size", "progress"},
  save_options = {}, nested = true, modules = false, title = "Torch7"}

local MAX_DEPTH = 1000   -- src/t7.c's LT_T7_MAX_DEPTH: what is written must load

function M.detect(head, path)
  local size = #head
  if size == 64 and path then
    local f = io.open(path, "rb")
    if f then size = f:seek("end") f:close() end
  end
  return core._t7_detect(head, size)
end

function M.can_hold(v)
  if type(v) ~= "table" and not core.is_tensor(v) and type(v) ~= "number" and type(v) ~= "string"
     and type(v) ~= "boolean" then
    return false, "Torch7 files hold tensors, numbers, strings, booleans and tables, not a " .. type(v)
  end
  return true
end

---------------------------------------------------------------------------
-- load

local function build(root, h, mmap, torch)
  local memo = {}
  local value
  local function fill(t, nd)
    local p = nd.pairs
    for i = 1, 2 * nd.n, 2 do
      local k = value(p[i])
      local v = value(p[i + 1])
      if k ~= k then error(string.format("a table key is nan (object at byte %d)", nd.at), 0) end
      t[k] = v
    end
  end
  local function storage(nd)
    local s = memo[nd]
    if s then return s end
    s = nd.tensor or h:tensor(nd.offset, nd.dtype, {nd.count}, mmap, nd.widen, nil,
      string.format("%s at byte %d", nd.class, nd.at))
    T7.mark(s, nd.class)
    memo[nd] = s
    return s
  end
  function value(v)
    if type(v) ~= "table" then return v end
    local m = memo[v]
    if m ~= nil then return m end
    local k = v.kind
    if k == "storage" then return storage(v) end
    if k == "tensor" then
      local t
      if v.storage and #v.size > 0 then
        t = storage(v.storage):as_strided(v.size, v.stride, v.offset)
      else
        -- Torch7's tensor of no dims (or of no storage) is empty
        t = torch.empty({0}, {dtype = v.dtype})
      end
      T7.mark(t, v.class)
      memo[v] = t
      return t
    end
    if k == "function" then
      local f = T7.inert_function(v.bytecode, nil, v.tag)
      memo[v] = f
      f.upvalues = value(v.upvalues)
      return f
    end
    local t = {}
    memo[v] = t
    if k ~= "table" then setmetatable(t, T7.class_meta(v.class, v.version)) end
    if k == "vec" then
      for i = 1, v.n do t[i] = value(v.items[i]) end
    elseif k == "object" then
      local p = v.payload
      if type(p) == "table" and p.kind == "table" then
        if memo[p] == nil then memo[p] = t end
        fill(t, p)
      elseif p ~= nil then
        error(string.format("%s at byte %d: its fields are not a table", v.class, v.at), 0)
      end
    else
      fill(t, v)
    end
    return t
  end
  return value(root)
end

function M.load(path, opts)
  opts = opts or {}
  local ls = opts.long_size
  if ls ~= nil and ls ~= 4 and ls ~= 8 then
    error("bad option 'long_size' (4 or 8 expected, got " .. tostring(ls) .. ")", 0)
  end
  local torch = require("ltorch")
  local progress = common.progress(opts)
  return common.with_file(path, function(h)
    local size = h:size()
    progress(0, size)
    local root = core._t7_scan(h, ls)
    local v = build(root, h, opts.mmap, torch)
    progress(size, size)
    return v
  end)
end

-- the graph without any tensor data: root, nodes, info (core._t7_scan)
function M.scan(path, opts)
  return common.with_file(path, function(h) return core._t7_scan(h, opts and opts.long_size) end)
end

---------------------------------------------------------------------------
-- save

local function writer()
  local parts, buf = {}, {}
  local w = {}
  function w.raw(s) buf[#buf + 1] = s end
  function w.int(i) buf[#buf + 1] = string.pack("<i4", i) end
  function w.long(i) buf[#buf + 1] = string.pack("<i8", i) end
  function w.str(s) w.int(#s) buf[#buf + 1] = s end
  function w.tensor(t)   -- its elements, streamed by the C writer
    parts[#parts + 1] = table.concat(buf)
    buf = {}
    parts[#parts + 1] = t
  end
  function w.finish()
    parts[#parts + 1] = table.concat(buf)
    return parts
  end
  return w
end

local function encode(value, cast)
  local w = writer()
  local index = 0
  local seen = {}          -- table -> its index
  local storages = {}      -- storage identity -> dtype -> index
  local function new_index()
    index = index + 1
    return index
  end
  local obj
  local function where(path) return path == "" and "the value" or path end
  local function key_path(path, k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path == "" and k or path .. "." .. k end
    return path .. "[" .. (type(k) == "string" and string.format("%q", k) or tostring(k)) .. "]"
  end
  local function tensor(t, path)
    local dt = t:dtype()
    if cast and dt:match("^float") or cast and dt == "bfloat16" then
      t = t:to(cast)
      dt = cast
    end
    local tc = T7.TENSOR_CLASS[dt]
    if not tc then
      error(string.format("%s: a %s tensor has no Torch7 type (Byte, Char, Short, Int, Long, Float, " ..
        "Double or Half)", where(path), dt), 0)
    end
    w.int(4)
    local ti = new_index()
    seen[t] = ti
    w.int(ti)
    w.str("V 1")
    w.str("torch." .. tc .. "Tensor")
    local size, stride = t:size(), t:stride()
    if #size == 0 then size, stride = {1}, {1} end   -- a 0-dim tensor: Torch7 has none, one element
    w.int(#size)
    for _, s in ipairs(size) do w.long(s) end
    for _, s in ipairs(stride) do w.long(s) end
    w.long(t:storage_offset() + 1)
    local id = t:_storage_info()
    local by = storages[id]
    if not by then by = {} storages[id] = by end
    if by[dt] then
      w.int(4)
      w.int(by[dt])
      return
    end
    local si = new_index()
    by[dt] = si
    local all = t:_storage_view()
    w.int(4)
    w.int(si)
    w.str("V 1")
    w.str("torch." .. tc .. "Storage")
    w.long(all:numel())
    w.tensor(all)
  end
  local function pairs_of(v, path, depth)
    local keys = odict.ordered_keys(v)
    w.int(#keys)
    for _, k in ipairs(keys) do
      obj(k, path .. "(key)", depth)
      obj(v[k], key_path(path, k), depth)
    end
  end
  function obj(v, path, depth)
    local tv = type(v)
    if v == nil then w.int(0)
    elseif tv == "number" then w.int(1) w.raw(string.pack("<d", v))
    elseif tv == "string" then w.int(2) w.str(v)
    elseif tv == "boolean" then w.int(5) w.int(v and 1 or 0)
    elseif core.is_tensor(v) then
      if seen[v] then w.int(4) w.int(seen[v]) return end
      tensor(v, path)
    elseif tv == "table" then
      local cls = T7.typename(v)
      if seen[v] then w.int(cls and 4 or 3) w.int(seen[v]) return end
      if depth >= MAX_DEPTH then
        error(string.format("%s: tables nested deeper than %d (Torch7 readers stop there)", where(path), MAX_DEPTH), 0)
      end
      if T7.is_function(v) then
        error(where(path) .. ": a function cannot be saved (a loaded Torch7 function stays inert)", 0)
      end
      local mt = getmetatable(v)
      if mt ~= nil and not cls and not odict.is(v) then
        error(string.format("%s: a table with a metatable (%s) cannot be saved to a Torch7 file",
          where(path), tostring(rawget(mt, "__name") or "no name")), 0)
      end
      local i = new_index()
      seen[v] = i
      if cls == "tds.Hash" or cls == "tds.Vec" then
        w.int(4) w.int(i) w.str("V " .. tostring(T7.version(v) or 0)) w.str(cls)
        if cls == "tds.Vec" then
          w.long(#v)
          for j = 1, #v do obj(v[j], path .. "[" .. j .. "]", depth + 1) end
        else
          local keys = odict.ordered_keys(v)
          w.long(#keys)
          for _, k in ipairs(keys) do
            obj(k, path .. "(key)", depth + 1)
            obj(v[k], key_path(path, k), depth + 1)
          end
        end
      elseif cls then
        local ver = T7.version(v) or 1
        w.int(4) w.int(i)
        w.str("V " .. (math.type(ver) == "float" and ver == math.floor(ver) and string.format("%d", ver) or tostring(ver)))
        w.str(cls)
        w.int(3) w.int(new_index())   -- the fields, as one table
        pairs_of(v, path, depth + 1)
      else
        w.int(3) w.int(i)
        pairs_of(v, path, depth + 1)
      end
    else
      error(string.format("%s: a %s cannot be saved to a Torch7 file", where(path), tv), 0)
    end
  end
  obj(value, "", 0)
  return w.finish()
end

function M.save(value, tmp, opts, final)
  local parts = common.guard(final or tmp, encode, value, opts and opts.dtype)
  common.write(core._write_parts, tmp, final, opts, parts)
end

---------------------------------------------------------------------------
-- state dicts

function M.state_dict(value, path)
  local function find(v)
    if T7.is_object(v) and T7.typename(v) ~= "tds.Hash" and T7.typename(v) ~= "tds.Vec" then return v end
    return nil
  end
  local m = find(value)
  if not m and type(value) == "table" and not core.is_tensor(value) then
    for _, k in ipairs({"model", "net", "network", "module", "protos"}) do
      m = find(value[k])
      if m then break end
    end
  end
  if not m then return nil end
  return common.guard(path, T7.state_dict, m), "a Torch7 nn model (" .. T7.typename(m) .. ")"
end

return M
