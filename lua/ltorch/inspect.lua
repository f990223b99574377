-- inspect.lua: what is inside a checkpoint, without running it. Backs
-- `ltorch inspect`, `ltorch diff`, `ltorch convert` and the REPL's summaries.
--
--   local inspect = require("ltorch.inspect")
--   local r = inspect.report(path, {stats = false, filter = nil})
--   print(inspect.render(r, {depth = nil}))      -- 80-column text
--   print(inspect.to_json({r}))                   -- the same as JSON
--
-- Files are loaded with mmap = true (tensor bytes stay on disk until touched)
-- and unknown = "inert" (foreign pickle globals become inert tables
-- {__global = "module.Name", args = ..., state = ...}: nothing is imported or
-- called). Only --stats reads tensor data, one tensor at a time.

local torch = require("ltorch")
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local pymodule = require("ltorch.pymodule")
local progress = require("ltorch.progress")

local M = {}

local human_bytes = progress.human_bytes

---------------------------------------------------------------------------
-- flattening a loaded value into dotted keys
---------------------------------------------------------------------------

local function is_tensor(v) return torch.is_tensor(v) end

local function is_module(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and type(mt) == "table" and rawget(mt, "__ltorch_module") ~= nil
end

local function is_inert(v)
  return type(v) == "table" and type(rawget(v, "__global")) == "string"
end

-- a loaded Torch7 function (ltorch.t7): a value described, not walked
local function is_t7_function(v)
  local mt = type(v) == "table" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__t7class") == "function"
end

local ordered_keys = odict.ordered_keys
M.ordered_keys = ordered_keys

local function join(prefix, k)
  k = tostring(k)
  if prefix == "" then return k end
  return prefix .. "." .. k
end

-- a short one-line description of a non-tensor value
local function short(v)
  if v == torch.null then return "None" end
  local tv = type(v)
  if tv == "string" then
    local s = string.format("%q", #v > 40 and v:sub(1, 37) .. "..." or v)
    return (s:gsub("\\\n", "\\n"))
  end
  if tv == "number" or tv == "boolean" then return tostring(v) end
  if tv == "table" then
    if is_inert(v) then return "<" .. v.__global .. ">" end
    if is_t7_function(v) then return tostring(v) end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == 0 and "{}" or string.format("{%d entries}", n)
  end
  return "<" .. tv .. ">"
end
M.short = short

-- Walk v: every tensor under a dotted key, every scalar leaf, and every
-- foreign global. Returns {entries = {{key=, tensor=}}, values = {{key=, value=}},
-- globals = {name = count}, global_order = {names}}.
function M.flatten(v)
  local out = {entries = {}, values = {}, globals = {}, global_order = {}}
  local seen = {}
  local function note_global(name)
    if not out.globals[name] then out.global_order[#out.global_order + 1] = name end
    out.globals[name] = (out.globals[name] or 0) + 1
  end
  local walk
  -- globals nested in an inert table's other fields (e.g. a dtype or a class
  -- reference)
  local function walk_extra(x, prefix)
    for k, a in pairs(x) do
      if k ~= "state" and k ~= "args" and k ~= "__global" and type(a) == "table" then
        walk(a, join(prefix, k))
      end
    end
  end
  local function walk_module(x, prefix)
    -- a pickled torch.nn.Module: the keys, order and tensors of PyTorch's
    -- state_dict() (ltorch.pymodule); each module's global is noted once,
    -- however many names it has
    local first = {}
    pymodule.visit(x, {
      module = function(m)
        if m == x or not seen[m] then
          seen[m] = true
          first[m] = true
          note_global(m.__global)
        end
      end,
      leave = function(m, p)
        if first[m] then first[m] = nil; walk_extra(m, p) end
      end,
      entry = function(k, t) walk(t, k) end,
      other = function(k, c) walk(c, k) end,
    }, {prefix = prefix, cycles = "skip"})
  end
  walk = function(x, prefix)
    if is_tensor(x) then
      out.entries[#out.entries + 1] = {key = prefix, tensor = x}
      return
    end
    if type(x) ~= "table" or x == torch.null or is_t7_function(x) then
      if x ~= torch.null or prefix ~= "" then
        out.values[#out.values + 1] = {key = prefix, value = x}
      end
      return
    end
    if seen[x] then return end
    seen[x] = true
    if is_module(x) and x.state_dict then
      walk(x:state_dict(), prefix)
      return
    end
    if pymodule.is_module(x) then
      walk_module(x, prefix)
      return
    end
    if is_inert(x) then
      note_global(x.__global)
      local st = rawget(x, "state")
      if type(st) == "table" and not is_inert(st) then
        for _, k in ipairs(ordered_keys(st)) do walk(st[k], join(prefix, k)) end
      elseif st ~= nil then
        walk(st, join(prefix, "state"))
      end
      local args = rawget(x, "args")
      if type(args) == "table" then
        for i, a in ipairs(args) do
          if type(a) == "table" or is_tensor(a) then walk(a, join(prefix, "args" .. i)) end
        end
      end
      walk_extra(x, prefix)
      return
    end
    for _, k in ipairs(ordered_keys(x)) do walk(x[k], join(prefix, k)) end
  end
  walk(v, "")
  -- a file holding one bare tensor (torch.save(t), .npy)
  if #out.entries == 1 and out.entries[1].key == "" then out.entries[1].key = "(tensor)" end
  return out
end

---------------------------------------------------------------------------
-- filters and statistics
---------------------------------------------------------------------------

-- A key filter from --filter PATTERN: a Lua pattern, or a plain substring
-- when the pattern is not valid Lua pattern syntax.
function M.matcher(pat)
  if pat == nil or pat == "" then return function() return true end end
  return function(key)
    local ok, found = pcall(string.find, key, pat)   -- raises on a malformed pattern
    if ok and found then return true end
    return key:find(pat, 1, true) ~= nil
  end
end

local function is_floating(dt)
  return dt:match("^float") ~= nil or dt:match("^bfloat") ~= nil
end
M.is_floating = is_floating

-- min, max, mean and std (unbiased) over the finite values, nan and inf
-- counted apart, in one streamed pass in C (complex values by magnitude; a
-- tensor still in its file is read for it and freed after). Fields are nil
-- when there is nothing to say (no finite value, one value for std).
function M.stats(t)
  local s = core._stats(t)
  return {min = s.min, max = s.max, mean = s.mean, std = s.std, nan = s.nan or 0,
    inf = s.inf or 0, numel = s.numel or t:numel()}
end

---------------------------------------------------------------------------
-- the report
---------------------------------------------------------------------------

local function shape_of(t) return t:size() end

local function tensor_bytes(t) return t:numel() * t:element_size() end

-- the byte range a view covers in its storage: first, last+1
local function extent(t)
  local es = t:element_size()
  local lo, hi = t:storage_offset(), t:storage_offset()
  local size, stride = t:size(), t:stride()
  if t:numel() == 0 then return lo * es, lo * es end
  for d = 1, #size do
    local span = (size[d] - 1) * stride[d]
    if span < 0 then lo = lo + span else hi = hi + span end
  end
  return lo * es, (hi + 1) * es
end

-- Group tensors by storage. A PyTorch file names its storages, so identity is
-- what matters; a mapped file of another format may hand out views of one big
-- mapping, so there only overlapping byte ranges count as sharing.
local function shared_groups(entries, by_identity)
  local by_storage, order = {}, {}
  for i, e in ipairs(entries) do
    local ok, id, nbytes, mapped = pcall(e.tensor._storage_info, e.tensor)
    if ok and id then
      local g = by_storage[id]
      if not g then
        g = {storage_bytes = nbytes, mapped = mapped, members = {}}
        by_storage[id] = g
        order[#order + 1] = id
      end
      local lo, hi = extent(e.tensor)
      g.members[#g.members + 1] = {index = i, lo = lo, hi = hi}
    end
  end
  local groups = {}
  for _, id in ipairs(order) do
    local g = by_storage[id]
    if #g.members > 1 then
      if by_identity or not g.mapped then
        local keys = {}
        for _, m in ipairs(g.members) do keys[#keys + 1] = entries[m.index].key end
        groups[#groups + 1] = {storage_bytes = g.storage_bytes, keys = keys}
      else
        -- union of overlapping ranges
        table.sort(g.members, function(a, b) return a.lo < b.lo or (a.lo == b.lo and a.index < b.index) end)
        local cur, cur_hi
        local function flush()
          if cur and #cur.keys > 1 then groups[#groups + 1] = cur end
        end
        for _, m in ipairs(g.members) do
          if cur and m.lo < cur_hi then
            cur.keys[#cur.keys + 1] = entries[m.index].key
            if m.hi > cur_hi then cur_hi = m.hi end
            cur.storage_bytes = cur_hi - cur.lo
          else
            flush()
            cur = {lo = m.lo, storage_bytes = m.hi - m.lo, keys = {entries[m.index].key}}
            cur_hi = m.hi
          end
        end
        flush()
        for _, c in ipairs(groups) do c.lo = nil end
      end
    end
  end
  return groups
end

-- torch.load for the tools: mmap, foreign globals inert (nothing is run),
-- module files rebuilt with the classes this program defines; one whose
-- classes are not defined gives its PyTorch view (modules as state dicts),
-- with the reason second. opts: progress. Also returns the raw value, the
-- extra records and the format, for ltorch convert.
function M.load(path, opts)
  local serialize = require("ltorch.serialize")
  local modsave = require("ltorch.modsave")
  local lopts = {mmap = true}
  for k, v in pairs(opts or {}) do lopts[k] = v end
  local ok, raw, extras, f = pcall(serialize.read, path, lopts, {unknown = "inert"})
  if not ok then error(raw, 0) end
  if f and f.state_dict then
    -- a Torch7 nn model: its state dict, by PyTorch's names
    local sd, what = f.state_dict(raw, path)
    if sd then return sd, nil, raw, extras, f, what end
  end
  if not modsave.is_module_file(extras) then return raw, nil, raw, extras, f end
  local uok, v = pcall(modsave.unpack, raw, extras, {}, path)
  if uok then return v, nil, raw, extras, f end
  if not tostring(v):find("class", 1, true) then error(v, 0) end
  return modsave.view(raw, extras, path), tostring(v), raw, extras, f
end

local FORMAT_NAMES = {
  pt = "PyTorch", safetensors = "safetensors", npy = "NumPy .npy", npz = "NumPy .npz",
  torchsharp = "TorchSharp", index = "sharded index", t7 = "Torch7", gguf = "GGUF",
}

-- Load path and describe it. opts: stats (boolean), filter (pattern),
-- progress (callback), load (extra torch.load options). Raises
-- "path: what is wrong" when the file cannot be read.
function M.report(path, opts)
  opts = opts or {}
  local remote = require("ltorch.remote")
  if remote.is_url(path) then
    -- the object's mirror, with its header fetched: tensors are fetched
    -- only if --stats reads them
    return remote.with_mirror(path, nil, false, function(local_path)
      local r = M.report(local_path, opts)
      r.path = path
      return r
    end)
  end
  local serialize = require("ltorch.serialize")
  -- raises "path: no such file", "path: is a directory", ... as every load does
  local _, file_bytes = require("ltorch.core")._head(path, 0)
  local fmt = serialize.detect(path)
  local lopts = {progress = opts.progress}
  for k, v in pairs(opts.load or {}) do lopts[k] = v end
  -- GGUF: the header says all (quantized tensors are not dequantized) unless --stats
  local gg = fmt and fmt.describe and not opts.stats and fmt.describe(path) or nil
  local value, note, raw, model, flat
  if gg then
    flat = {entries = {}, values = {}, globals = {}, global_order = {}}
  else
    value, note, raw, _, _, model = M.load(path, lopts)
    flat = M.flatten(value)
  end
  local keep = M.matcher(opts.filter)
  local r = {
    path = path, format = fmt and fmt.name or "unknown",
    format_name = fmt and (FORMAT_NAMES[fmt.name] or fmt.name) or "unknown",
    file_bytes = file_bytes, tensors = {}, values = {}, dtypes = {}, dtype_order = {},
    total_params = 0, total_bytes = 0, all_tensors = gg and #gg.tensors or #flat.entries,
    filter = opts.filter, globals = {}, metadata = nil, shared = {},
    note = note and ("module not rebuilt (" .. note:gsub("^[^:]*: ", "") .. "); its state dict:")
      or model and (model .. "; its state dict, by PyTorch's names:"),
  }
  if r.format == "t7" then r.objects = require("ltorch.t7").tree_lines(raw) end
  local kept = {}
  local entries = flat.entries
  if gg then
    entries = gg.tensors
    r.gguf = gg
  end
  for _, e in ipairs(entries) do
    if keep(e.key) then
      local t = e.tensor
      local info = gg and e or {key = e.key, dtype = t:dtype(), shape = shape_of(t), numel = t:numel(),
        bytes = tensor_bytes(t)}
      if gg then info.dtype = e.ggml_type end
      if opts.stats then
        info.stats = M.stats(t)
        core._release(t)   -- one tensor's data in memory at a time
      end
      r.tensors[#r.tensors + 1] = info
      if not gg then kept[#kept + 1] = e end
      r.total_params = r.total_params + info.numel
      r.total_bytes = r.total_bytes + info.bytes
      local h = r.dtypes[info.dtype]
      if not h then
        h = {tensors = 0, params = 0, bytes = 0}
        r.dtypes[info.dtype] = h
        r.dtype_order[#r.dtype_order + 1] = info.dtype
      end
      h.tensors, h.params, h.bytes = h.tensors + 1, h.params + info.numel, h.bytes + info.bytes
    end
  end
  for _, v in ipairs(flat.values) do
    if keep(v.key) then r.values[#r.values + 1] = {key = v.key, value = short(v.value)} end
  end
  for _, name in ipairs(flat.global_order) do
    r.globals[#r.globals + 1] = {name = name, count = flat.globals[name]}
  end
  r.shared = shared_groups(kept, r.format == "pt")
  if r.format == "safetensors" and torch.safe_open then
    local ok, f = pcall(torch.safe_open, path)
    if ok and f then
      local mok, md = pcall(function() return f:metadata() end)
      if mok and type(md) == "table" and #ordered_keys(md) > 0 then r.metadata = md end
      if f.close then pcall(f.close, f) end
    end
  end
  r.tree = M.tree(r.tensors)
  return r
end

-- The module tree from dotted keys: nodes {name, params, bytes, children
-- (ordered), tensor (info, leaves only)}.
function M.tree(tensors)
  local root = {name = "", params = 0, bytes = 0, children = {}, index = {}}
  for _, info in ipairs(tensors) do
    local node = root
    node.params, node.bytes = node.params + info.numel, node.bytes + info.bytes
    local parts = {}
    for p in (info.key .. "."):gmatch("(.-)%.") do parts[#parts + 1] = p end
    for i, p in ipairs(parts) do
      local child = node.index[p]
      if not child or (i == #parts) or child.tensor then
        child = {name = p, params = 0, bytes = 0, children = {}, index = {}}
        node.children[#node.children + 1] = child
        if i < #parts then node.index[p] = child end
      end
      node = child
      node.params, node.bytes = node.params + info.numel, node.bytes + info.bytes
    end
    node.tensor = info
  end
  return root
end

---------------------------------------------------------------------------
-- text output (80 columns)
---------------------------------------------------------------------------

local WIDTH = 80

-- 1234567 -> "1,234,567"
function M.commas(n)
  local s = string.format("%d", n)
  local sign, digits = s:match("^(-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end
local commas = M.commas

local function dwidth(s) return utf8.len(s) or #s end

local function fit(s, w)
  if dwidth(s) <= w then return s .. string.rep(" ", w - dwidth(s)) end
  -- cut by characters, keep the end (the leaf name) readable
  local chars = {}
  for _, c in utf8.codes(s) do chars[#chars + 1] = utf8.char(c) end
  return table.concat(chars, "", 1, w - 1) .. "~"
end

-- a "name = value" line cut to the terminal width
local function clip(s)
  if #s > WIDTH - 1 then return s:sub(1, WIDTH - 4) .. "..." end
  return s
end

local function rpad(s, w) return string.rep(" ", math.max(w - #s, 0)) .. s end

function M.shape_str(shape)
  return "[" .. table.concat(shape, ", ") .. "]"
end

-- name 35, dtype+shape 21, params 11, bytes 9, 3 spaces between: 79 columns
local NAMEW, TYPEW, PARW, BYTEW = 35, 21, 11, 9

local function tree_lines(root, lines, depth_limit)
  -- a long dtype+shape borrows columns from the name (down to MINNAME)
  local MINNAME = 20
  local function row(label, typ, params, bytes)
    local nw = NAMEW
    if #typ > TYPEW then nw = math.max(NAMEW + TYPEW - #typ, MINNAME) end
    lines[#lines + 1] = fit(label, nw) .. " " .. fit(typ, NAMEW + TYPEW - nw) .. " " ..
      rpad(params, PARW) .. " " .. rpad(bytes, BYTEW)
  end
  local function visit(node, prefix, last, depth)
    local branch = prefix .. (last and "└─ " or "├─ ")
    local label = branch .. node.name
    if node.tensor then
      local t = node.tensor
      local typ = t.dtype .. " " .. M.shape_str(t.shape)
      if #typ > NAMEW + TYPEW - MINNAME then typ = t.dtype .. " [" .. #t.shape .. "-d]" end
      row(label, typ, commas(t.numel), human_bytes(t.bytes))
      return
    end
    local n = 0
    for _ in pairs(node.children) do n = n + 1 end
    row(label, "", commas(node.params), human_bytes(node.bytes))
    if depth_limit and depth >= depth_limit then return end
    local sub = prefix .. (last and "   " or "│  ")
    for i, c in ipairs(node.children) do visit(c, sub, i == n, depth + 1) end
  end
  for i, c in ipairs(root.children) do visit(c, "", i == #root.children, 1) end
end

local function heading(lines, s) lines[#lines + 1] = ""; lines[#lines + 1] = s end

-- wrap "a, b, c" lists to the width with an indent
local function wrap_list(items, indent, lines)
  local cur = indent
  for i, it in ipairs(items) do
    local piece = it .. (i < #items and ", " or "")
    if #cur + #piece > WIDTH - 1 and cur ~= indent then
      lines[#lines + 1] = cur:gsub("%s+$", "")
      cur = indent
    end
    cur = cur .. piece
  end
  if cur ~= indent then lines[#lines + 1] = cur end
end

local function g4(x)
  if x == nil then return "-" end
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  return string.format("%.4g", x)
end
M.g4 = g4

-- The report as text lines. opts.depth limits the module tree's depth.
function M.render(r, opts)
  opts = opts or {}
  local lines = {}
  lines[#lines + 1] = string.format("%s: %s, %s", r.path, r.format_name, human_bytes(r.file_bytes))
  if r.note then lines[#lines + 1] = r.note end
  if r.filter then
    lines[#lines + 1] = string.format("filter '%s': %d of %d tensors", r.filter, #r.tensors, r.all_tensors)
  end
  if #r.tensors > 0 then
    heading(lines, fit("module tree", NAMEW) .. " " .. fit("dtype shape", TYPEW) .. " " ..
      rpad("params", PARW) .. " " .. rpad("bytes", BYTEW))
    tree_lines(r.tree, lines, opts.depth)
  else
    heading(lines, "no tensors")
  end
  if #r.dtype_order > 0 then
    heading(lines, "dtypes")
    for _, dt in ipairs(r.dtype_order) do
      local h = r.dtypes[dt]
      local pct = r.total_params > 0 and 100 * h.params / r.total_params or 0
      lines[#lines + 1] = string.format("  %-14s %6d tensors %15s params %5.1f%% %10s",
        dt, h.tensors, commas(h.params), pct, human_bytes(h.bytes)) ..
        (r.gguf and h.params > 0 and string.format(" %6.2f bits/weight", h.bytes * 8 / h.params) or "")
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("total: %d tensors, %s params, %s", #r.tensors,
    commas(r.total_params), human_bytes(r.total_bytes))
  if #r.shared > 0 then
    heading(lines, string.format("shared storage (%d groups)", #r.shared))
    for i, g in ipairs(r.shared) do
      lines[#lines + 1] = string.format("  %d. %d tensors in %s:", i, #g.keys, human_bytes(g.storage_bytes))
      wrap_list(g.keys, "     ", lines)
    end
  end
  if r.metadata then
    heading(lines, "metadata")
    local ks = ordered_keys(r.metadata)
    for _, k in ipairs(ks) do
      local v = tostring(r.metadata[k])
      lines[#lines + 1] = clip("  " .. tostring(k) .. " = " .. v)
    end
  end
  if r.gguf then
    heading(lines, string.format("metadata (GGUF v%d%s, alignment %d)", r.gguf.version,
      r.gguf.big_endian and ", big-endian" or "", r.gguf.alignment))
    for _, m in ipairs(r.gguf.metadata) do
      lines[#lines + 1] = clip(string.format("  %s: %s (%s)", m.key, m.value, m.type))
    end
  end
  if r.objects then
    heading(lines, "objects (Torch7 classes are listed, never run)")
    local shown = 0
    for _, l in ipairs(r.objects) do
      if opts.depth == nil or #l:match("^ *") // 2 < opts.depth + 1 then
        shown = shown + 1
        if shown > 400 and not opts.all then
          lines[#lines + 1] = "  ... (more objects; --depth N shows fewer levels)"
          break
        end
        lines[#lines + 1] = clip("  " .. l)
      end
    end
  end
  if #r.values > 0 then
    heading(lines, "other values")
    local shown = 0
    for _, v in ipairs(r.values) do
      shown = shown + 1
      if shown > 40 and not opts.all then
        lines[#lines + 1] = string.format("  ... %d more", #r.values - 40)
        break
      end
      lines[#lines + 1] = clip("  " .. v.key .. " = " .. v.value)
    end
  end
  if #r.globals > 0 then
    heading(lines, "foreign globals (not run; loaded as inert tables)")
    for _, g in ipairs(r.globals) do
      lines[#lines + 1] = string.format("  %-68s %8s", g.name, g.count > 1 and ("x" .. g.count) or "")
        :gsub("%s+$", "")
    end
  end
  if r.tensors[1] and r.tensors[1].stats ~= nil or (#r.tensors > 0 and opts.stats) then
    heading(lines, fit("stats", 27) .. string.format(" %9s %9s %9s %9s %5s %5s", "min", "max", "mean", "std", "nan", "inf"))
    for _, t in ipairs(r.tensors) do
      local s = t.stats
      if s then
        lines[#lines + 1] = fit(t.key, 27) .. string.format(" %9s %9s %9s %9s %5d %5d",
          g4(s.min), g4(s.max), g4(s.mean), g4(s.std), s.nan, s.inf)
      else
        lines[#lines + 1] = fit(t.key, 27) .. "  (no stats for " .. t.dtype .. ")"
      end
    end
  end
  return table.concat(lines, "\n")
end

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

-- JSON goes through ltorch.json: objects are ordered dicts (keys in the
-- order given), nil and non-finite numbers become null, lists are arrays
-- (empty ones included).
local function obj(...)
  local n = select("#", ...)
  local keys, data = {}, {}
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v == nil or (type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge)) then
      v = torch.null
    end
    keys[#keys + 1] = k
    data[k] = v
  end
  return odict.from(keys, data)
end

local function arr(t)
  return require("ltorch.json").array(t)
end

local function json_tree(node)
  if node.tensor then return obj("name", node.name, "key", node.tensor.key, "params", node.params, "bytes", node.bytes) end
  local kids = {}
  for _, c in ipairs(node.children) do kids[#kids + 1] = json_tree(c) end
  return obj("name", node.name, "params", node.params, "bytes", node.bytes, "children", arr(kids))
end

local function gguf_json(g)
  local md = {}
  for _, m in ipairs(g.metadata) do md[#md + 1] = obj("key", m.key, "type", m.type, "value", m.value) end
  local ts = {}
  for _, t in ipairs(g.tensors) do
    ts[#ts + 1] = obj("key", t.key, "ggml_type", t.ggml_type, "shape", arr(t.shape), "bytes", t.bytes,
      "bits_per_weight", t.bpw)
  end
  return obj("version", g.version, "alignment", g.alignment, "big_endian", g.big_endian,
    "metadata", arr(md), "tensors", arr(ts))
end

local function json_report(r)
  local tensors = {}
  for _, t in ipairs(r.tensors) do
    local st = t.stats and obj("min", t.stats.min, "max", t.stats.max, "mean", t.stats.mean,
      "std", t.stats.std, "nan", t.stats.nan, "inf", t.stats.inf) or nil
    tensors[#tensors + 1] = obj("key", t.key, "dtype", t.dtype, "shape", arr(table.move(t.shape, 1, #t.shape, 1, {})),
      "numel", t.numel, "bytes", t.bytes, "stats", st)
  end
  local dt = {}
  for _, name in ipairs(r.dtype_order) do
    local h = r.dtypes[name]
    dt[#dt + 1] = name
    dt[#dt + 1] = obj("tensors", h.tensors, "params", h.params, "bytes", h.bytes)
  end
  local md
  if r.metadata then
    local kv = {}
    for _, k in ipairs(ordered_keys(r.metadata)) do kv[#kv + 1] = k; kv[#kv + 1] = r.metadata[k] end
    md = obj(table.unpack(kv))
  end
  local vals = {}
  for _, v in ipairs(r.values) do vals[#vals + 1] = v.key; vals[#vals + 1] = v.value end
  local shared = {}
  for _, g in ipairs(r.shared) do shared[#shared + 1] = obj("storage_bytes", g.storage_bytes, "keys", arr(g.keys)) end
  local globals = {}
  for _, g in ipairs(r.globals) do globals[#globals + 1] = obj("name", g.name, "count", g.count) end
  return obj("path", r.path, "format", r.format, "file_bytes", r.file_bytes,
    "filter", r.filter, "total_tensors", #r.tensors, "total_params", r.total_params,
    "total_bytes", r.total_bytes, "dtypes", obj(table.unpack(dt)), "tensors", arr(tensors),
    "tree", json_tree(r.tree), "shared", arr(shared), "metadata", md, "values", obj(table.unpack(vals)),
    "globals", arr(globals), "objects", r.objects and arr(r.objects) or nil,
    "gguf", r.gguf and gguf_json(r.gguf) or nil)
end

M.json_obj = obj

-- reports (a list) as one JSON document: {"files": [...], "errors": [...]}
function M.to_json(reports, errors)
  local files = {}
  for _, r in ipairs(reports) do files[#files + 1] = json_report(r) end
  return require("ltorch.json").encode(obj("files", arr(files), "errors", arr(errors or {})))
end

return M
