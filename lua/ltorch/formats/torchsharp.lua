-- formats/torchsharp.lua: TorchSharp .dat files (layouts in src/torchsharp.c;
-- TorchSharp's C# reader is the reference). A file is one of three layouts,
-- told apart only by parsing it whole:
--   state dict (Module.save, exportsd.py save_state_dict) -> ordered dict
--   one tensor (Tensor.Save, exportsd.py write_tensor)     -> tensor
--   optimizer state (optimizer.save_state_dict, exportsd.py save_sgd, ...)
--     -> {optimizer = "Adam", param_groups = {{initial_lr =, lr =, beta1 =,
--        ...}, ...}, state = {{step =, exp_avg = tensor, ...}, ...}}
--        (field names and order: core._ts_layouts(); an absent conditional
--        tensor, e.g. SGD's momentum_buffer, is nil)
-- Names are written with their UTF-8 byte length, as C#'s ReadString wants.
-- load(path, opts) opts: mmap, keys, rename (state dicts only), progress.
-- save(obj, tmp) picks the layout from obj: a tensor, an optimizer state
-- table as load returns it, or a flat table of named tensors in
-- odict.ordered_keys' order (an odict's own; a plain table's names sorted).
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")

local M = {name = "torchsharp", title = "TorchSharp", extensions = {".dat"}, streams = true,
  load_options = {"mmap", "keys", "rename", "progress"}, save_options = {}}

local VALID = {[0] = true, true, true, true, true, true, true, true, [9] = true, [10] = true,
  [11] = true, [15] = true}

-- LEB128 at byte i of s: value and next position, or nil
local function leb(s, i)
  local v, shift = 0, 0
  while i <= #s and shift < 63 do
    local b = s:byte(i)
    v = v | ((b & 0x7f) << shift)
    i = i + 1
    if b < 0x80 then return v, i end
    shift = shift + 7
  end
  return nil
end

-- the layouts, in the order they are tried, and their scanners
local LAYOUTS = {
  {what = "state dict", scan = function(h) return core._ts_scan(h) end},
  {what = "optimizer state", scan = function(h) return core._ts_scan_optim(h) end},
  {what = "tensor", scan = function(h) return core._ts_scan_tensor(h) end},
}

-- the first layout the whole file at h parses as: its entry, its scan; or
-- nil and "state dict: why; optimizer state: why; tensor: why"
local function probe(h)
  local why = {}
  for _, l in ipairs(LAYOUTS) do
    local ok, r = pcall(l.scan, h)
    if ok then return l, r end
    why[#why + 1] = l.what .. ": " .. tostring(r)
  end
  return nil, table.concat(why, "; ")
end

local optim_layout

-- the start of a state dict, as far as 64 bytes go (count, name, dtype
-- code), or of an optimizer state (a name TorchSharp writes)
local function looks_like(head)
  local n, j = leb(head, 1)
  -- a class name: one TorchSharp writes, or another (then named in the error)
  if n and n > 0 and n < 64 and head:sub(j, j + n - 1):match("^%a[%w_]*$") and j + n - 1 < #head then
    return true
  end
  -- JSON (an index) can look like a count and a name: leave it alone
  if head:match('^%s*{%s*"') or head:match("^%s*{%s*}") then return false end
  local count, i = leb(head, 1)
  if not count or count == 0 then return #head == 1 and head:byte(1) == 0 end
  local len
  len, i = leb(head, i)
  if not len or len == 0 or len > 4096 then return false end
  local name = head:sub(i, i + len - 1)
  if name:find("[%z\1-\31]") or not utf8.len(name) and #name == len then return false end
  if i + len - 1 > #head then return true end   -- the name runs past the head
  i = i + len
  local code
  code, i = leb(head, i)
  if code == nil then return i == nil and #head < 64 end
  if head:match("^%s*{") and not VALID[code] then return false end
  return true
end

-- No magic: a file is TorchSharp's when one of the layouts parses it whole.
-- A ".dat" file whose start looks like a state dict is claimed too, so that
-- a damaged TorchSharp file is reported as such (load says which layouts
-- were tried and why each failed) rather than as of an unknown format.
function M.detect(head, path)
  if #head == 0 or type(path) ~= "string" then return false end
  local ok, h = pcall(core._fopen, path)
  if not ok then return false end
  local pok, l = pcall(probe, h)
  h:close()
  if pok and l then return true end
  return path:lower():sub(-4) == ".dat" and looks_like(head)
end

-- the layouts of the optimizers, by class name
local optim_layouts
function optim_layout(name)
  if not optim_layouts then
    optim_layouts = {}
    for _, l in ipairs(core._ts_layouts()) do optim_layouts[l.name] = l end
  end
  return optim_layouts[name]
end

local function optim_names()
  local list = {}
  for _, l in ipairs(core._ts_layouts()) do list[#list + 1] = l.name end
  return table.concat(list, ", ")
end

-- is obj an optimizer state table (it names its optimizer)?
local function is_optim(obj)
  return type(obj) == "table" and not core.is_tensor(obj) and not odict.is(obj)
    and type(rawget(obj, "optimizer")) == "string"
end

-- can obj be written as that optimizer's state? true, or false + why
local function check_optim(obj)
  local ly = optim_layout(obj.optimizer)
  if not ly then
    return false, string.format("optimizer '%s' has no TorchSharp layout (TorchSharp saves %s)",
      obj.optimizer, optim_names())
  end
  for _, part in ipairs({{"param_groups", "options", "group"}, {"state", "state", "state"}}) do
    local list = obj[part[1]]
    if type(list) ~= "table" then
      return false, string.format("optimizer state: '%s' must be a list, got %s", part[1], type(list))
    end
    for i, rec in ipairs(list) do
      if type(rec) ~= "table" then
        return false, string.format("optimizer state: %s %d is a %s, not a table", part[3], i, type(rec))
      end
      for _, f in ipairs(ly[part[2]]) do
        local v, kind = rec[f[1]], f[2]
        local good = kind == "f64" and type(v) == "number"
          or kind == "i64" and math.type(v) == "integer"
          or kind == "bool" and type(v) == "boolean"
          or kind == "tensor" and core.is_tensor(v)
          or kind == "tensor?" and (v == nil or core.is_tensor(v))
        if not good then
          local want = ({f64 = "a number", i64 = "an integer", bool = "a boolean", tensor = "a tensor",
            ["tensor?"] = "a tensor or nil"})[kind]
          return false, string.format("%s state: %s %d '%s' must be %s, got %s", obj.optimizer, part[3], i,
            f[1], want, math.type(v) or type(v))
        end
      end
    end
  end
  return true
end

function M.can_hold(obj)
  if core.is_tensor(obj) then return true end
  if is_optim(obj) then return check_optim(obj) end
  return common.flat_dict(obj, "TorchSharp .dat")
end

local function load_state_dict(path, h, entries, opts)
  local select = common.selector(opts)
  local progress = common.progress(opts)
  local total = h:size()
  local d = odict.new()
  for _, e in ipairs(entries) do
    local name = select(e.name)
    if name then
      if e.unsupported then
        error(string.format("entry '%s': dtype code %d has no ltorch dtype (keys can leave it out)",
          e.name, e.unsupported), 0)
      end
      local ok2, t = pcall(h.tensor, h, e.offset, e.dtype, e.shape, opts.mmap, nil, false, e.name)
      if not ok2 then error("entry '" .. e.name .. "': " .. tostring(t), 0) end
      common.put(d, name, t, path)
    end
    progress(e.offset, total)
  end
  progress(total, total)
  return d
end

local function tensor_of(h, e, opts, what)
  local ok, t = pcall(h.tensor, h, e.offset, e.dtype, e.shape, opts.mmap, nil, false, what)
  if not ok then error(what .. ": " .. tostring(t), 0) end
  return t
end

local function load_optim(h, o, opts)
  local ly = optim_layout(o.optimizer)
  for i, st in ipairs(o.state) do
    for _, f in ipairs(ly.state) do
      if type(st[f[1]]) == "table" then
        st[f[1]] = tensor_of(h, st[f[1]], opts, string.format("state %d '%s'", i, f[1]))
      end
    end
  end
  return o
end

function M.load(path, opts)
  opts = opts or {}
  return common.with_file(path, function(h)
    local l, r = probe(h)
    if not l then error("fits no TorchSharp layout (" .. r .. ")", 0) end
    if l.what == "state dict" then return load_state_dict(path, h, r, opts) end
    if opts.keys ~= nil or opts.rename ~= nil then
      error("a TorchSharp " .. l.what .. " has no names: 'keys' and 'rename' select from state dicts", 0)
    end
    local progress = common.progress(opts)
    local v = l.what == "tensor" and tensor_of(h, r, opts, "tensor") or load_optim(h, r, opts)
    progress(h:size(), h:size())
    return v
  end)
end

-- LEB128Codec.Encode
local function enc(v)
  local out = {}
  repeat
    local b = v & 0x7f
    v = v >> 7
    out[#out + 1] = string.char(v ~= 0 and (b | 0x80) or b)
  until v == 0
  return table.concat(out)
end

-- BinaryWriter.Write(string): LEB128 byte length, then the UTF-8 bytes
local function str(s) return enc(#s) .. s end

-- the parts of an optimizer file for core._ts_write: strings and tensors
local function optim_parts(obj)
  local ly = optim_layout(obj.optimizer)
  local parts = {str(obj.optimizer), enc(#obj.param_groups), enc(#obj.state)}
  local function put(rec, fields)
    for _, f in ipairs(fields) do
      local v, kind = rec[f[1]], f[2]
      if kind == "f64" then parts[#parts + 1] = string.pack("<d", v)
      elseif kind == "i64" then parts[#parts + 1] = string.pack("<i8", v)
      elseif kind == "bool" then parts[#parts + 1] = v and "\1" or "\0"
      elseif kind == "tensor" then parts[#parts + 1] = v
      elseif v == nil then parts[#parts + 1] = "\0"
      else
        parts[#parts + 1] = "\1"
        parts[#parts + 1] = v
      end
    end
  end
  for _, g in ipairs(obj.param_groups) do put(g, ly.options) end
  for _, s in ipairs(obj.state) do put(s, ly.state) end
  return parts
end

function M.save(obj, tmp, opts, final)
  if core.is_tensor(obj) then return common.write(core._ts_write, tmp, final, opts, {obj}) end
  if is_optim(obj) then return common.write(core._ts_write, tmp, final, opts, optim_parts(obj)) end
  local names, ts = common.items(obj)
  common.write(core._ts_save, tmp, final, opts, names, ts)
end

return M
