-- module.lua: the class machinery of torch.nn (R torch's nn_module, in Lua).
--
--   local M = nn.module("my_module", {
--     initialize = function(self, n) self.fc = nn.Linear(n, 1) end,
--     forward = function(self, x) return self.fc(x) end,
--   })
--   local model = M(10)        -- calls initialize
--   local y = model(x)         -- calls forward
--
-- An instance is an empty table whose metatable routes every field access:
-- parameters, buffers, child modules and plain fields live in ordered
-- internal tables (one private state table per instance), so that assigning
-- a field always passes through __newindex and registration (in assignment
-- order) also works for reassignment. Classes are kept in a registry by name;
-- whole-module loading (ltorch.modsave) finds them there.

local torch = require("ltorch")
local odict = require("ltorch.odict")

local M = {}

local STATE = setmetatable({}, {__name = "ltorch.nn.state"})  -- private key of an instance
local BUFFER = {}                         -- marker of nn.buffer(t) values

local registry = {}        -- class name -> class
M.registry = registry
local Module = {}          -- methods every module has
M.Module = Module

local is_tensor = torch.is_tensor

-- the private state of an instance (nil for anything else)
local function state_of(m)
  return type(m) == "table" and rawget(m, STATE) or nil
end
M.state_of = state_of

local function is_module(v) return state_of(v) ~= nil end
M.is_module = is_module

-- an ordered set of named slots: names in order plus a map
local function slots() return {names = {}, map = {}} end
local function slot_set(s, k, v)
  if s.map[k] == nil then s.names[#s.names + 1] = k end
  s.map[k] = v
end
local function slot_del(s, k)
  if s.map[k] == nil then return end
  s.map[k] = nil
  for i, n in ipairs(s.names) do if n == k then table.remove(s.names, i) break end end
end

---------------------------------------------------------------------------
-- markers

-- nn.Parameter(t): marks t as a parameter (requires_grad) and returns it
function M.Parameter(t)
  if not is_tensor(t) then
    error("bad argument #1 to 'Parameter' (tensor expected, got " .. type(t) .. ")", 2)
  end
  t:requires_grad(true)
  return t
end

-- nn.buffer(t [, persistent]): assigned to a field, registers t as a buffer;
-- the field then reads back as the tensor. persistent (default true) buffers
-- are part of the state dict.
function M.buffer(t, persistent)
  if not is_tensor(t) then
    error("bad argument #1 to 'buffer' (tensor expected, got " .. type(t) .. ")", 2)
  end
  return setmetatable({t = t, persistent = persistent ~= false}, BUFFER)
end
BUFFER.__name = "ltorch.nn.buffer"

---------------------------------------------------------------------------
-- field routing

local function unregister(st, k)
  slot_del(st.params, k)
  slot_del(st.buffers, k)
  slot_del(st.modules, k)
  st.fields[k] = nil
  st.non_persistent[k] = nil
end

-- assignment to a field of an instance: what the value is decides where it
-- goes. A plain tensor assigned to a registered parameter stays a parameter
-- (it is marked requires_grad); to a registered buffer it replaces the buffer.
local function newindex(self, k, v)
  local st = rawget(self, STATE)
  if type(k) == "number" then
    local setitem = getmetatable(self).__ltorch_module.setitem
    if setitem then return setitem(self, k, v) end
  end
  if k == "training" then st.training = v and true or false return end
  if is_module(v) then
    if st.modules.map[k] == nil then unregister(st, k) end
    slot_set(st.modules, k, v)
  elseif getmetatable(v) == BUFFER then
    if st.buffers.map[k] == nil then unregister(st, k) end
    slot_set(st.buffers, k, v.t)
    st.non_persistent[k] = (not v.persistent) or nil
  elseif is_tensor(v) then
    if st.params.map[k] ~= nil then
      v:requires_grad(true)
      slot_set(st.params, k, v)
    elseif st.buffers.map[k] ~= nil then
      slot_set(st.buffers, k, v)
    elseif v:requires_grad() then
      unregister(st, k)
      slot_set(st.params, k, v)
    else
      unregister(st, k)
      st.fields[k] = v
    end
  else
    -- a plain value (or nil, PyTorch's `self.bias = None`) ends any registration
    unregister(st, k)
    st.fields[k] = v
  end
end

-- read access: registered values first, then plain fields, then methods
local function make_index(cls)
  local methods = cls.methods
  local getitem = cls.getitem
  return function(self, k)
    local st = rawget(self, STATE)
    local v = st.params.map[k]
    if v ~= nil then return v end
    v = st.buffers.map[k]
    if v ~= nil then return v end
    v = st.modules.map[k]
    if v ~= nil then return v end
    if k == "training" then return st.training end
    v = st.fields[k]
    if v ~= nil then return v end
    if getitem and type(k) == "number" then return getitem(self, k) end
    return methods[k]
  end
end

---------------------------------------------------------------------------
-- forward, with errors that say which module failed

local frames = {}          -- modules whose forward is running, innermost last
local last_wrapped         -- the last message wrapped (passed through by outer modules)
local finish

-- the name of child inside parent, searching the subtree when not a direct child
local function child_path(parent, child)
  local st = rawget(parent, STATE)
  for _, n in ipairs(st.modules.names) do
    if st.modules.map[n] == child then return tostring(n) end
  end
  for _, n in ipairs(st.modules.names) do
    local sub = st.modules.map[n]
    local p = sub ~= child and child_path(sub, child)
    if p then return tostring(n) .. "." .. p end
  end
  return nil
end

-- the path of frames[n] from the outermost running module ("a.b.c");
-- computed only when an error is reported
local function frame_path(n)
  local parts = {}
  for i = 2, n do parts[#parts + 1] = child_path(frames[i - 1], frames[i]) or "?" end
  return table.concat(parts, ".")
end

local function call(self, ...)
  local n = #frames + 1
  local forward = self.forward
  if type(forward) ~= "function" then
    error(string.format("module '%s' has no forward method", getmetatable(self).__ltorch_module.name), 2)
  end
  frames[n] = self
  return finish(n, pcall(forward, self, ...))
end

-- the end of a call: pops the frame; an error is wrapped once, by the
-- innermost module that was called from another module's forward
finish = function(n, ok, ...)
  if ok then frames[n] = nil return ... end
  local e = ...
  if n == 1 or e == last_wrapped then frames[n] = nil error(e, 0) end
  local cls = getmetatable(frames[n]).__ltorch_module
  local msg = string.format("error in forward of '%s' (%s): %s", frame_path(n), cls.name, tostring(e))
  frames[n] = nil
  last_wrapped = msg
  error(msg, 0)
end

---------------------------------------------------------------------------
-- classes

-- Python-like text of a value, for extra_repr
local function pyrepr(v)
  if v == true then return "True" elseif v == false then return "False"
  elseif v == nil or v == torch.null then return "None"
  elseif math.type(v) == "float" then
    if v == math.floor(v) and math.abs(v) < 1e16 then return string.format("%.1f", v) end
    for p = 1, 17 do
      local s = string.format("%." .. p .. "g", v)
      if tonumber(s) == v then return s end
    end
    return string.format("%.17g", v)
  elseif type(v) == "string" then return "'" .. v .. "'"
  elseif type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = pyrepr(x) end
    if #parts == 1 then return "(" .. parts[1] .. ",)" end
    return "(" .. table.concat(parts, ", ") .. ")"
  end
  return tostring(v)
end
M.pyrepr = pyrepr

-- the source text of function fn as a function expression ("function(...) ... end"),
-- or nil when it cannot be recovered (C function, stripped or command-line chunk)
local file_cache = {}
local function source_lines(src)
  if file_cache[src] ~= nil then return file_cache[src] or nil end
  local text
  if src:sub(1, 1) == "@" then
    local fh = io.open(src:sub(2), "rb")
    if fh then text = fh:read("a"); fh:close() end
  elseif src:sub(1, 1) ~= "=" then
    text = src
  end
  local lines = false
  if text then
    lines = {}
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  end
  file_cache[src] = lines
  return lines or nil
end

function M.function_source(fn)
  local info = debug.getinfo(fn, "Su")
  if info.what ~= "Lua" or info.linedefined <= 0 then return nil end
  local lines = source_lines(info.source)
  if not lines or info.lastlinedefined > #lines then return nil end
  local body = table.concat(lines, "\n", info.linedefined, info.lastlinedefined)
  -- candidate starts: each `function` keyword on the first line; candidate
  -- ends: each `end` keyword on the last line, rightmost first
  local first_len = #lines[info.linedefined]
  local starts, ends = {}, {}
  local pos = 1
  while true do
    local s, e = body:find("%f[%w_]function%f[^%w_]", pos)
    if not s or s > first_len then break end
    starts[#starts + 1] = {s, e}
    pos = e + 1
  end
  local last_start = #body - #lines[info.lastlinedefined] + 1
  pos = last_start
  while true do
    local s, e = body:find("%f[%w_]end%f[^%w_]", pos)
    if not s then break end
    table.insert(ends, 1, e)
    pos = e + 1
  end
  for _, st in ipairs(starts) do
    -- drop a name (`function def.forward(`) to make it an expression
    local head = body:sub(st[1], #body)
    head = head:gsub("^function%s*[%w_%.:]*%s*%(", "function(", 1)
    local shift = (#body - st[1] + 1) - #head
    for _, e in ipairs(ends) do
      local stop = e - st[1] + 1 - shift
      if stop > 0 then
        local text = head:sub(1, stop)
        local chunk = load("return " .. text, "=source", "t", {})
        if chunk then
          local ok, f = pcall(chunk)
          if ok and type(f) == "function" then
            local i2 = debug.getinfo(f, "u")
            if i2.nparams == info.nparams and i2.isvararg == info.isvararg then
              return text
            end
          end
        end
      end
    end
  end
  return nil
end

local CLASS = {__name = "ltorch.nn.class"}
CLASS.__index = function(cls, k) return cls.methods[k] end
CLASS.__call = function(cls, ...) return cls.new(...) end
CLASS.__tostring = function(cls) return "<nn.module class '" .. cls.name .. "'>" end
M.CLASS = CLASS

function M.is_class(v) return getmetatable(v) == CLASS end

local function instance_tostring(self) return self:_repr() end

-- nn.module(name, def [, opts]): a class. def holds methods (initialize,
-- forward, extra_repr, anything else) and optionally `inherit = Parent`.
-- opts (internal): builtin = true for ltorch's own classes (no source is
-- stored for them), lib = module to require to define them, sources = a
-- table of stored source texts (classes rebuilt by modsave).
function M.module(name, def, opts)
  if type(name) ~= "string" or name == "" then
    error("bad argument #1 to 'module' (class name expected, got " .. type(name) .. ")", 2)
  end
  if type(def) ~= "table" then
    error("bad argument #2 to 'module' (table of methods expected, got " .. type(def) .. ")", 2)
  end
  opts = opts or {}
  local old = registry[name]
  if old and old.builtin and not opts.builtin then
    error("bad argument #1 to 'module' (class name '" .. name .. "' is taken by a built-in class)", 2)
  end
  local parent = def.inherit
  if parent ~= nil and getmetatable(parent) ~= CLASS then
    error("bad argument #2 to 'module' (field 'inherit' must be a class made by nn.module)", 2)
  end
  local methods = setmetatable({}, {__index = parent and parent.methods or Module})
  local sources, order = {}, {}
  for k, v in pairs(def) do
    if k ~= "inherit" then
      methods[k] = v
      if type(v) == "function" then order[#order + 1] = k end
    end
  end
  -- methods in definition order, for stable saved sources
  table.sort(order, function(a, b)
    local ia, ib = debug.getinfo(def[a], "S"), debug.getinfo(def[b], "S")
    if ia.linedefined ~= ib.linedefined then return ia.linedefined < ib.linedefined end
    return a < b
  end)
  if not opts.builtin then
    for _, k in ipairs(order) do
      sources[k] = opts.sources and opts.sources[k] or M.function_source(def[k])
    end
  end
  local cls = setmetatable({
    name = name, methods = methods, def = def, parent = parent,
    builtin = opts.builtin or false, lib = opts.lib, sources = sources, method_order = order,
    getitem = def.__getitem or (parent and parent.getitem),
    setitem = def.__setitem or (parent and parent.setitem),
  }, CLASS)
  local imt = {
    __ltorch_module = cls,
    __name = "ltorch.nn." .. name,
    __newindex = newindex,
    __call = call,
    __tostring = instance_tostring,
  }
  imt.__index = make_index(cls)
  for _, mm in ipairs({"__len", "__pairs"}) do
    local f = def[mm] or (parent and parent.imt[mm])
    if f then imt[mm] = f end
  end
  cls.imt = imt
  -- an instance made without initialize (used by modsave, and by new)
  function cls.raw()
    local self = {}
    self[STATE] = {
      params = slots(), buffers = slots(), modules = slots(),
      fields = {}, non_persistent = {}, training = true,
    }
    return setmetatable(self, imt)
  end
  function cls.new(...)
    local self = cls.raw()
    local init = methods.initialize
    if init then init(self, ...) end
    return self
  end
  registry[name] = cls
  return cls
end

---------------------------------------------------------------------------
-- Module methods

local function class_of(self) return getmetatable(self).__ltorch_module end
function Module:class_name() return class_of(self).name end

-- PyTorch's register_parameter / register_buffer / add_module
function Module:register_parameter(name, t)
  if t ~= nil then t = M.Parameter(t) end
  local st = rawget(self, STATE)
  if t == nil then unregister(st, name) return end
  if st.params.map[name] == nil then unregister(st, name) end
  slot_set(st.params, name, t)
end
function Module:register_buffer(name, t, persistent)
  if t == nil then unregister(rawget(self, STATE), name) return end
  newindex(self, name, M.buffer(t, persistent))
end
function Module:add_module(name, m)
  if not is_module(m) then error("bad argument #2 to 'add_module' (module expected)", 2) end
  newindex(self, name, m)
end

-- each (name, module) of the subtree, preorder, self first with name ""
local function walk(self, prefix, fn, seen)
  if seen[self] then return end
  seen[self] = true
  fn(prefix, self)
  local st = rawget(self, STATE)
  for _, n in ipairs(st.modules.names) do
    walk(st.modules.map[n], prefix == "" and tostring(n) or prefix .. "." .. tostring(n), fn, seen)
  end
end

function Module:named_modules()
  local out = odict.new()
  walk(self, "", function(p, m) out[p] = m end, {})
  return out
end
function Module:modules()
  local out = {}
  walk(self, "", function(_, m) out[#out + 1] = m end, {})
  return out
end
function Module:named_children()
  local st = rawget(self, STATE)
  local out = odict.new()
  for _, n in ipairs(st.modules.names) do out[n] = st.modules.map[n] end
  return out
end
function Module:children()
  local st = rawget(self, STATE)
  local out = {}
  for _, n in ipairs(st.modules.names) do out[#out + 1] = st.modules.map[n] end
  return out
end

local function named_tensors(self, kind, recurse)
  local out, seen = odict.new(), {}
  local function visit(prefix, m)
    local st = rawget(m, STATE)
    local s = st[kind]
    for _, n in ipairs(s.names) do
      local t = s.map[n]
      if not seen[t] then
        seen[t] = true
        out[prefix == "" and tostring(n) or prefix .. "." .. tostring(n)] = t
      end
    end
  end
  if recurse == false then visit("", self)
  else walk(self, "", visit, {}) end
  return out
end
function Module:named_parameters(recurse) return named_tensors(self, "params", recurse) end
function Module:named_buffers(recurse) return named_tensors(self, "buffers", recurse) end
function Module:parameters(recurse)
  local out = {}
  for _, t in pairs(named_tensors(self, "params", recurse)) do out[#out + 1] = t end
  return out
end
function Module:buffers(recurse)
  local out = {}
  for _, t in pairs(named_tensors(self, "buffers", recurse)) do out[#out + 1] = t end
  return out
end

-- the state dict: an ordered dict of PyTorch key names to the module's own
-- tensors (not copies): per module its parameters, then its persistent
-- buffers, then each child's entries under "child." (a child that appears
-- twice is listed under both names, as PyTorch does)
function Module:state_dict(prefix, dest)
  dest = dest or odict.new()
  prefix = prefix or ""
  local st = rawget(self, STATE)
  for _, n in ipairs(st.params.names) do dest[prefix .. tostring(n)] = st.params.map[n] end
  for _, n in ipairs(st.buffers.names) do
    if not st.non_persistent[n] then dest[prefix .. tostring(n)] = st.buffers.map[n] end
  end
  for _, n in ipairs(st.modules.names) do
    st.modules.map[n]:state_dict(prefix .. tostring(n) .. ".", dest)
  end
  return dest
end

local function shape_str(t)
  return "{" .. table.concat(t:size(), ", ") .. "}"
end

local function quote_list(list)
  local q = {}
  for i, k in ipairs(list) do q[i] = '"' .. tostring(k) .. '"' end
  return table.concat(q, ", ")
end

-- load_state_dict(sd [, {strict = true}]): copies each entry into the
-- module's tensor (converting the dtype). Returns {missing, unexpected,
-- mismatched}; under strict (the default) any of them raises with that report.
-- Shape-mismatched entries are never copied.
function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" then
    error("bad argument #1 to 'load_state_dict' (state dict expected, got " .. type(sd) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'load_state_dict' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "strict" then
      error("bad option '" .. tostring(k) .. "' to 'load_state_dict' (valid options: strict)", 2)
    end
  end
  if is_module(sd) then sd = sd:state_dict() end   -- e.g. torch.load of a whole-module file
  local strict = not (opts and opts.strict == false)
  local own = self:state_dict()
  local report = {missing = {}, unexpected = {}, mismatched = {}}
  for k, t in pairs(own) do
    local src = sd[k]
    if src == nil or src == torch.null then
      report.missing[#report.missing + 1] = k
    elseif not is_tensor(src) then
      report.mismatched[#report.mismatched + 1] = {key = k, expected = shape_str(t), got = type(src)}
    else
      local a, b = t:size(), src:size()
      local same = #a == #b
      if same then for i = 1, #a do if a[i] ~= b[i] then same = false end end end
      if not same then
        report.mismatched[#report.mismatched + 1] = {key = k, expected = shape_str(t), got = shape_str(src)}
      end
    end
  end
  for k in pairs(sd) do
    if own[k] == nil then report.unexpected[#report.unexpected + 1] = k end
  end
  local bad = #report.missing + #report.unexpected + #report.mismatched > 0
  if strict and bad then
    local lines = {"error(s) in loading state_dict for " .. class_of(self).name .. ":"}
    if #report.missing > 0 then lines[#lines + 1] = "  missing keys: " .. quote_list(report.missing) end
    if #report.unexpected > 0 then lines[#lines + 1] = "  unexpected keys: " .. quote_list(report.unexpected) end
    for _, m in ipairs(report.mismatched) do
      lines[#lines + 1] = string.format('  size mismatch for "%s": expected %s, got %s', m.key, m.expected, m.got)
    end
    error(table.concat(lines, "\n"), 2)
  end
  local bad_key = {}
  for _, m in ipairs(report.mismatched) do bad_key[m.key] = true end
  for k, t in pairs(own) do
    local src = sd[k]
    if is_tensor(src) and not bad_key[k] then t:copy(src) end
  end
  return report
end

-- train([mode]) / eval(): set the training flag of the whole subtree
function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawget(m, STATE).training = mode and true or false end
  return self
end
function Module:eval() return self:train(false) end

-- to(dtype | device): converts floating-point parameters and buffers (as
-- PyTorch's Module.to), in place in the module; returns self
local function is_float_dtype(dt)
  return dt:match("^float") ~= nil or dt:match("^bfloat") ~= nil or dt:match("^complex") ~= nil
end
function Module:to(what)
  if type(what) ~= "string" then
    error("bad argument #1 to 'to' (dtype or device name expected, got " .. type(what) .. ")", 2)
  end
  local to_dtype = not (what == "cpu" or what:match("^cuda"))
  for _, m in ipairs(self:modules()) do
    local st = rawget(m, STATE)
    for _, kind in ipairs({"params", "buffers"}) do
      local s = st[kind]
      for _, n in ipairs(s.names) do
        local t = s.map[n]
        if not to_dtype or is_float_dtype(t:dtype()) then
          local c = t:to(what)
          if kind == "params" then c:requires_grad(true) end
          s.map[n] = c
        end
      end
    end
  end
  return self
end

-- apply(fn): calls fn(m) on every module of the tree, children first, then
-- self (PyTorch's Module.apply, e.g. for custom initialisation); returns self
function Module:apply(fn)
  local seen = {}
  local function visit(m)
    if seen[m] then return end
    seen[m] = true
    for _, c in ipairs(m:children()) do visit(c) end
    fn(m)
  end
  visit(self)
  return self
end

-- the text inside the parentheses of the repr (classes override it)
function Module:extra_repr() return "" end

-- PyTorch's repr: Name(extra) or a tree of "(name): child" lines
function Module:_repr()
  local cls = class_of(self)
  local st = rawget(self, STATE)
  local extra = self:extra_repr() or ""
  local lines = {}
  if extra ~= "" then
    for l in (extra .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  end
  for _, n in ipairs(st.modules.names) do
    local text = st.modules.map[n]:_repr():gsub("\n", "\n  ")
    lines[#lines + 1] = "(" .. tostring(n) .. "): " .. text
  end
  local s = cls.name .. "("
  if #lines == 1 and #st.modules.names == 0 then return s .. lines[1] .. ")" end
  if #lines > 0 then s = s .. "\n  " .. table.concat(lines, "\n  ") .. "\n" end
  return s .. ")"
end

---------------------------------------------------------------------------
-- helpers for the built-in layers

-- ltorch's nn and models folders: a built-in constructor's errors are the
-- caller's, so they are raised past the frames of these files
local NN_DIR = debug.getinfo(1, "S").source:match("^(@.*/)[^/]*$")
local MODELS_DIR = NN_DIR and NN_DIR:gsub("/nn/$", "/models/")

-- the error level, as seen from the function calling user_level, of the
-- constructor's caller: the first frame outside ltorch's nn and models
-- files (initialize, the class's new and __call, these helpers); a C
-- caller (pcall) gives no position
local function user_level()
  local level = 3   -- 1 is user_level, 2 the function calling it
  while NN_DIR do
    local info = debug.getinfo(level, "S")
    if info == nil or info.what == "C" then break end
    local src = info.source
    if src:sub(1, #NN_DIR) ~= NN_DIR and src:sub(1, #MODELS_DIR) ~= MODELS_DIR then break end
    level = level + 1
  end
  return level - 1
end

-- M.raise(msg): a built-in constructor's error, raised at its caller
-- ("user.lua:2: bad argument #1 to 'Softmax' (dim expected, got nil)")
function M.raise(msg)
  error(msg, user_level())
end

-- M.fail(class, fmt, ...): raise "class: message" at the constructor's
-- caller ("user.lua:2: Linear: in_features must be an integer")
function M.fail(class, fmt, ...)
  error(class .. ": " .. string.format(fmt, ...), user_level())
end

-- M.check(ok, class, fmt, ...): M.fail(class, fmt, ...) unless ok
function M.check(ok, class, fmt, ...)
  if not ok then error(class .. ": " .. string.format(fmt, ...), user_level()) end
  return ok
end

-- M.args(class, names, ...) -> {name = value}: a built-in constructor's
-- arguments, PyTorch's positional ones in the order of names, then a
-- trailing table of keyword options (string keys only):
--   args("Conv2d", {"in_channels", ..., "stride"}, 3, 64, 11, {stride = 4})
-- Everything is checked, and errors are raised at the constructor's caller
-- (the first frame outside ltorch's nn files): an option not in names
-- ("bad option 'biass' to 'Linear' (valid options: in_features, ...)"), one
-- given twice, more positional arguments than names, and the factory
-- keywords every PyTorch layer with parameters has: dtype (a floating dtype
-- name) and device ("cpu", "cuda", "cuda:N"), which the class applies.
function M.args(class, names, ...)
  if type(class) ~= "string" or type(names) ~= "table" then
    error("args(class, names, ...): class name and list of names expected", 2)
  end
  -- errors are the constructor's caller's (user_level)
  local level = user_level()
  local function fail(fmt, ...) error(string.format(fmt, ...), level + 1) end
  local n = select("#", ...)
  local pos = {...}
  local opts = {}
  local last = pos[n]
  if n > 0 and type(last) == "table" and not is_module(last) and getmetatable(last) == nil then
    local named = next(last) ~= nil
    for k in pairs(last) do if type(k) ~= "string" then named = false break end end
    if named then opts = last; n = n - 1 end
  end
  if n > #names then
    if #names == 0 then fail("bad argument #%d to '%s' (no arguments expected, got %s)", n, class, type(pos[n])) end
    fail("bad argument #%d to '%s' (at most %d argument%s expected: %s)", n, class, #names,
      #names == 1 and "" or "s", table.concat(names, ", "))
  end
  local index = {}
  for i, name in ipairs(names) do index[name] = i end
  local given = {}
  for k in pairs(opts) do given[#given + 1] = k end
  table.sort(given)
  for _, k in ipairs(given) do
    if not index[k] then
      fail("bad option '%s' to '%s' (%s)", k, class,
        #names == 0 and "it takes no options" or "valid options: " .. table.concat(names, ", "))
    end
    if index[k] <= n and pos[index[k]] ~= nil then
      fail("bad option '%s' to '%s' (given twice: as argument #%d and as an option)", k, class, index[k])
    end
  end
  local out = {}
  for i, name in ipairs(names) do
    if i <= n then out[name] = pos[i] end
  end
  for k, v in pairs(opts) do out[k] = v end
  local dt, dev = out.dtype, out.device
  if index.dtype and dt ~= nil and dt ~= "float16" and dt ~= "bfloat16" and dt ~= "float32" and dt ~= "float64" then
    fail("bad option 'dtype' to '%s' (floating dtype name expected: float16, bfloat16, float32 or float64; got %s)",
      class, type(dt) == "string" and "'" .. dt .. "'" or type(dt))
  end
  if index.device and dev ~= nil and not (dev == "cpu" or dev == "cuda"
      or type(dev) == "string" and dev:match("^cuda:%d+$")) then
    fail("bad option 'device' to '%s' (device name expected: 'cpu', 'cuda' or 'cuda:N'; got %s)",
      class, type(dev) == "string" and "'" .. dev .. "'" or type(dev))
  end
  return out
end

-- v or {v, v}: a 2-element list of a number or a {h, w} pair; else the
-- constructor of class fails ("Conv2d: kernel_size must be ...")
function M.pair(v, what, class)
  if type(v) == "number" then return {v, v} end
  if type(v) == "table" and #v == 2 then return {v[1], v[2]} end
  M.fail(class, "%s must be a number or a {h, w} pair, got %s", what, type(v))
end

-- uniform(-bound, bound) of the given sizes, float32, from torch.rand
-- (repeatable under torch.manual_seed)
function M.uniform(sizes, bound)
  return torch.rand(sizes) * (2 * bound) - bound
end

---------------------------------------------------------------------------
-- what whole-module files (ltorch.modsave) need: an instance's contents,
-- and an instance made from contents without calling initialize

-- M.contents(m) -> {class = cls, training = b, fields = {name -> value},
--   parameters = {{name, t}...}, buffers = {{name, t, persistent}...},
--   children = {{name, module}...}}; lists in registration order
function M.contents(m)
  local st = state_of(m)
  if not st then error("bad argument #1 to 'contents' (module expected, got " .. type(m) .. ")", 2) end
  local c = {class = getmetatable(m).__ltorch_module, training = st.training, fields = {},
    parameters = {}, buffers = {}, children = {}}
  for k, v in pairs(st.fields) do c.fields[k] = v end
  for _, n in ipairs(st.params.names) do c.parameters[#c.parameters + 1] = {n, st.params.map[n]} end
  for _, n in ipairs(st.buffers.names) do
    c.buffers[#c.buffers + 1] = {n, st.buffers.map[n], not st.non_persistent[n]}
  end
  for _, n in ipairs(st.modules.names) do c.children[#c.children + 1] = {n, st.modules.map[n]} end
  return c
end

M.newindex = newindex   -- for the containers' __setitem (Sequential, ModuleList)

-- M.restore(m, c): fills m (an instance from cls.raw(), so initialize never
-- ran) with contents c in the form M.contents returns (class ignored)
function M.restore(m, c)
  local st = state_of(m)
  st.training = c.training ~= false
  for k, v in pairs(c.fields or {}) do st.fields[k] = v end
  for _, p in ipairs(c.parameters or {}) do
    p[2]:requires_grad(true)
    slot_set(st.params, p[1], p[2])
  end
  for _, b in ipairs(c.buffers or {}) do
    slot_set(st.buffers, b[1], b[2])
    st.non_persistent[b[1]] = (b[3] == false) or nil
  end
  for _, ch in ipairs(c.children or {}) do slot_set(st.modules, ch[1], ch[2]) end
  return m
end

return M
