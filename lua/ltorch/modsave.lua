-- modsave.lua: whole modules in checkpoint files (structure + state dict).
--
-- torch.save(model, path) (serialize.lua) calls pack(), which turns a module,
-- or a table holding modules, into
--   {__ltorch_pack = true, tensors = <odict: the state dict>, extra = {module = <JSON>}}
-- The format stores `tensors` as its tensors under PyTorch's key names (so
-- PyTorch's torch.load(weights_only=True) and safetensors readers see the
-- state dict) and `extra.module` beside them. torch.load() hands back
--   {__ltorch_module_file = true, state_dict = sd, extra = {module = json}}
-- and unpack() rebuilds the module: instances are made WITHOUT calling
-- initialize; their fields, children, parameters and buffers come from the
-- structure and the state dict, so forward gives identical results.
--
-- The structure (docs/modules.md has the full description; version 1):
--   {"ltorch_module_format": 1, "ltorch_version": "...",
--    "root": NODE, "classes": [CLASS, ...]}
--   NODE   {"module": class, "id": n, "training": b, "fields": [[name, VALUE]...],
--           "parameters": [[name, key]...], "buffers": [[name, key|null, persistent]...],
--           "children": [[name, NODE]...]}
--        | {"ref": n}                      the module with that id, again
--        | {"table": [[KEY, NODE]...]}      a Lua table (KEY: string or integer)
--        | {"tensor": key}                  a tensor stored under key
--        | {"value": VALUE}                 plain data
--   VALUE  JSON string/boolean/integer, a float written with a '.' or exponent,
--          [VALUE...] for a Lua sequence, {"$table": [[VALUE, VALUE]...]} for
--          other tables, {"$float": "inf"|"-inf"|"nan"}, {"$null": true}
--   CLASS  {"name": s, "builtin": b, "lib": module|null, "inherit": name|null,
--           "methods": [{"name": s, "source": text|null}...],
--           "constants": [[name, VALUE]...], "bindings": [[method, upvalue, what]...],
--           "captures": [[method, upvalue, type]...]}
--   "what" of a binding: "torch", "nn", "class:NAME", "require:MODULE",
--   "global:NAME" (a standard global) or "global:LIB.NAME" (a library function).

local torch = require("ltorch")
local odict = require("ltorch.odict")
local base = require("ltorch.nn.module")

local M = {}

M.FORMAT_VERSION = 1

---------------------------------------------------------------------------
-- JSON: a small encoder and a strict decoder, local to the structure so that
-- integers stay integers and floats stay floats across a round trip.

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local ARRAY = {}   -- metatable marking a Lua table to be written as a JSON array

local function arr(t) return setmetatable(t or {}, ARRAY) end

local function encode(v, out)
  local tv = type(v)
  if tv == "string" then out[#out + 1] = json_string(v)
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif v == nil then out[#out + 1] = "null"
  elseif math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
  elseif math.type(v) == "float" then
    local s = string.format("%.17g", v)
    for p = 1, 17 do
      local c = string.format("%." .. p .. "g", v)
      if tonumber(c) == v then s = c break end
    end
    if not s:find("[%.eEn]") then s = s .. ".0" end
    out[#out + 1] = s
  elseif getmetatable(v) == ARRAY then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode(v[i], out)
    end
    out[#out + 1] = "]"
  elseif tv == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = json_string(k)
      out[#out + 1] = ":"
      encode(v[k], out)
    end
    out[#out + 1] = "}"
  else
    error("cannot encode a " .. tv .. " in JSON")
  end
end

local function json_encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end
M.json_encode = json_encode

local MAX_DEPTH = 200
local NULL = setmetatable({}, {__name = "json null"})

-- decodes JSON text; raises "module structure: ..." with the byte offset
local function json_decode(s)
  local pos = 1
  local function fail(what) error(string.format("module structure: %s at byte %d", what, pos), 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    pos = pos + 1
    local parts = {}
    while true do
      local a, b = s:find('^[^"\\%c]+', pos)
      if a then parts[#parts + 1] = s:sub(a, b); pos = b + 1 end
      local c = s:sub(pos, pos)
      if c == '"' then pos = pos + 1 return table.concat(parts) end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local simple = ({['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"})[e]
        if simple then parts[#parts + 1] = simple; pos = pos + 2
        elseif e == "u" then
          local h = s:match("^%x%x%x%x", pos + 2)
          if not h then fail("bad \\u escape") end
          local cp = tonumber(h, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local l = s:match("^\\u(%x%x%x%x)", pos)
            local lo = l and tonumber(l, 16)
            if not lo or lo < 0xDC00 or lo > 0xDFFF then fail("unpaired surrogate") end
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
            pos = pos + 6
          end
          parts[#parts + 1] = utf8.char(cp)
        else fail("bad escape") end
      elseif c == "" then fail("unterminated string")
      else fail("control character in string") end
    end
  end
  value = function(depth)
    if depth > MAX_DEPTH then fail("nesting deeper than " .. MAX_DEPTH) end
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a string key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        if t[k] ~= nil then fail("duplicate key '" .. k .. "'") end
        t[k] = value(depth + 1)
        ws()
        c = s:sub(pos, pos)
        pos = pos + 1
        if c == "}" then return t end
        if c ~= "," then pos = pos - 1 fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = arr()
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value(depth + 1)
        ws()
        c = s:sub(pos, pos)
        pos = pos + 1
        if c == "]" then return t end
        if c ~= "," then pos = pos - 1 fail("expected ',' or ']'") end
      end
    elseif c == '"' then return str()
    elseif s:find("^true", pos) then pos = pos + 4 return true
    elseif s:find("^false", pos) then pos = pos + 5 return false
    elseif s:find("^null", pos) then pos = pos + 4 return NULL
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" or num == "-" then fail("unexpected character") end
      pos = pos + #num
      if num:find("[%.eE]") then
        local f = tonumber(num)
        if not f then fail("bad number") end
        return f + 0.0
      end
      local i = math.tointeger(tonumber(num))
      if not i then fail("integer out of range") end
      return i
    end
  end
  if type(s) ~= "string" then error("module structure: expected a JSON string, got " .. type(s), 0) end
  local v = value(0)
  ws()
  if pos <= #s then fail("trailing characters") end
  return v
end
M.json_decode = json_decode
M.NULL = NULL

---------------------------------------------------------------------------
-- plain values (declared fields, class constants, values in saved tables)

local function is_sequence(t)
  local n = #t
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

-- the JSON form of v, or nil, why when v is not plain data
local function encode_value(v, seen)
  local tv = type(v)
  if tv == "string" or tv == "boolean" or math.type(v) == "integer" then return v end
  if math.type(v) == "float" then
    if v ~= v then return {["$float"] = "nan"} end
    if v == math.huge then return {["$float"] = "inf"} end
    if v == -math.huge then return {["$float"] = "-inf"} end
    return v
  end
  if v == torch.null then return {["$null"] = true} end
  if tv == "table" and getmetatable(v) == nil or (tv == "table" and odict.is(v)) then
    seen = seen or {}
    if seen[v] then return nil, "a table that contains itself" end
    seen[v] = true
    local out
    if is_sequence(v) and not odict.is(v) then
      out = arr()
      for i = 1, #v do
        local e, why = encode_value(v[i], seen)
        if e == nil then return nil, why end
        out[i] = e
      end
    else
      local keys = odict.ordered_keys(v)
      local pairs_ = arr()
      for _, k in ipairs(keys) do
        local ek, why = encode_value(k, seen)
        if ek == nil then return nil, why end
        local ev, why2 = encode_value(v[k], seen)
        if ev == nil then return nil, why2 end
        pairs_[#pairs_ + 1] = arr({ek, ev})
      end
      out = {["$table"] = pairs_}
    end
    seen[v] = nil
    return out
  end
  if torch.is_tensor(v) then return nil, "a tensor" end
  return nil, "a " .. tv
end
M.encode_value = encode_value

local function decode_value(j, where)
  local tj = type(j)
  if tj == "string" or tj == "boolean" or tj == "number" then return j end
  if tj == "table" then
    if getmetatable(j) == ARRAY then
      local out = {}
      for i, e in ipairs(j) do out[i] = decode_value(e, where) end
      return out
    end
    if j["$null"] == true then return torch.null end
    local f = j["$float"]
    if f == "nan" then return 0.0 / 0.0 elseif f == "inf" then return math.huge
    elseif f == "-inf" then return -math.huge end
    local t = j["$table"]
    if getmetatable(t) == ARRAY then
      local out = {}
      for _, kv in ipairs(t) do
        if getmetatable(kv) ~= ARRAY or #kv ~= 2 then
          error("module structure: " .. where .. ": bad table entry", 0)
        end
        local k = decode_value(kv[1], where)
        if k == torch.null or (type(k) == "number" and k ~= k) then
          error("module structure: " .. where .. ": bad table key", 0)
        end
        out[k] = decode_value(kv[2], where)
      end
      return out
    end
  end
  error("module structure: " .. where .. ": unexpected value", 0)
end

---------------------------------------------------------------------------
-- what a method captures

local std_names = {"assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawlen", "rawset", "require", "select", "setmetatable", "getmetatable", "tonumber",
  "tostring", "type", "xpcall", "string", "table", "math", "utf8", "os", "io", "coroutine"}

-- what an upvalue's value is, as a name that can be bound again on load
-- ("torch", "nn", "class:NAME", "require:MOD", "global:NAME"), or nil
local function binding_of(v)
  if v == torch then return "torch" end
  if v == torch.nn then return "nn" end
  if base.is_class(v) then return "class:" .. v.name end
  for _, n in ipairs(std_names) do
    if _G[n] == v then return "global:" .. n end
  end
  for _, lib in ipairs({"string", "table", "math", "utf8", "os", "io", "coroutine"}) do
    for k, f in pairs(_G[lib]) do
      if f == v and type(k) == "string" then return "global:" .. lib .. "." .. k end
    end
  end
  if type(v) == "table" or type(v) == "function" then
    for name, mod in pairs(package.loaded) do
      if mod == v and type(name) == "string" and name ~= "_G" then return "require:" .. name end
    end
  end
  return nil
end

local warned = {}

-- the stored description of a user class: sources, bindings, captures
local function describe_class(cls, opts, add_class)
  local entry = {name = cls.name, builtin = cls.builtin, lib = cls.lib,
    inherit = cls.parent and cls.parent.name or nil}
  if cls.builtin then return entry end
  entry.methods, entry.constants, entry.bindings, entry.captures = arr(), arr(), arr(), arr()
  for _, k in ipairs(cls.method_order) do
    entry.methods[#entry.methods + 1] = {name = k, source = cls.sources[k]}
    local fn = cls.def[k]
    local i = 1
    while true do
      local uname, uval = debug.getupvalue(fn, i)
      if uname == nil then break end
      if uname ~= "_ENV" then
        local what = binding_of(uval)
        if what then
          entry.bindings[#entry.bindings + 1] = arr({k, uname, what})
          if what:sub(1, 6) == "class:" then add_class(uval) end
        else
          entry.captures[#entry.captures + 1] = arr({k, uname, type(uval)})
          local msg = string.format("class '%s' method '%s' captures the local '%s' (a %s): " ..
            "it is not saved, so the class cannot be rebuilt from its stored source",
            cls.name, k, uname, type(uval))
          local mode = opts.upvalues or "warn"
          if mode == "error" then error(msg, 0)
          elseif mode ~= "ignore" and not warned[msg] then
            warned[msg] = true   -- once per process, not at every save
            io.stderr:write("ltorch: warning: ", msg, "\n")
          end
        end
      end
      i = i + 1
    end
  end
  local ckeys = {}
  for k, v in pairs(cls.def) do
    if type(v) ~= "function" and k ~= "inherit" and type(k) == "string" then ckeys[#ckeys + 1] = k end
  end
  table.sort(ckeys)
  for _, k in ipairs(ckeys) do
    local e = encode_value(cls.def[k])
    if e ~= nil then entry.constants[#entry.constants + 1] = arr({k, e}) end
  end
  return entry
end

---------------------------------------------------------------------------
-- pack

-- pack(obj, format, opts): see the top of the file
function M.pack(obj, _format, opts)
  opts = opts or {}
  local tensors = odict.new()
  local classes, class_seen = arr(), {}
  local ids, next_id = {}, 0

  local function add_class(cls)
    if class_seen[cls] then return end
    class_seen[cls] = true
    if cls.parent then add_class(cls.parent) end
    local entry = describe_class(cls, opts, add_class)   -- may add classes first
    classes[#classes + 1] = entry
  end

  local function put(key, t, where)
    if tensors[key] ~= nil and tensors[key] ~= t then
      error(string.format("cannot save: two tensors under the key '%s' (%s)", key, where), 0)
    end
    tensors[key] = t
  end

  local function module_node(m, prefix)
    if ids[m] then return {ref = ids[m]} end
    next_id = next_id + 1
    ids[m] = next_id
    local cls = getmetatable(m).__ltorch_module
    add_class(cls)
    local st = base.state_of(m)
    local node = {module = cls.name, id = next_id, training = st.training,
      fields = arr(), parameters = arr(), buffers = arr(), children = arr(), skipped = arr()}
    local fkeys = {}
    for k in pairs(st.fields) do fkeys[#fkeys + 1] = k end
    table.sort(fkeys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(fkeys) do
      local e = type(k) == "string" and encode_value(st.fields[k]) or nil
      if e ~= nil then node.fields[#node.fields + 1] = arr({k, e})
      else node.skipped[#node.skipped + 1] = tostring(k) end
    end
    for _, n in ipairs(st.params.names) do
      local key = prefix .. tostring(n)
      put(key, st.params.map[n], "a parameter")
      node.parameters[#node.parameters + 1] = arr({n, key})
    end
    for _, n in ipairs(st.buffers.names) do
      if st.non_persistent[n] then
        node.buffers[#node.buffers + 1] = arr({n, NULL, false})
      else
        local key = prefix .. tostring(n)
        put(key, st.buffers.map[n], "a buffer")
        node.buffers[#node.buffers + 1] = arr({n, key, true})
      end
    end
    for _, n in ipairs(st.modules.names) do
      local child = st.modules.map[n]
      if ids[child] then
        -- a module seen before: PyTorch's state dict lists its tensors again
        for k, t in pairs(child:state_dict(prefix .. tostring(n) .. ".")) do put(k, t, "a shared module") end
      end
      node.children[#node.children + 1] = arr({n, module_node(child, prefix .. tostring(n) .. ".")})
    end
    return node
  end

  local function node_of(v, prefix, where, seen)
    if base.is_module(v) then return module_node(v, prefix) end
    if torch.is_tensor(v) then
      local key = prefix:sub(1, -2)
      put(key, v, "a tensor")
      return {tensor = key}
    end
    if type(v) == "table" and (getmetatable(v) == nil or odict.is(v)) and v ~= torch.null then
      if seen[v] then error("cannot save: " .. where .. " contains itself", 0) end
      seen[v] = true
      local keys = odict.ordered_keys(v)
      local entries = arr()
      for _, k in ipairs(keys) do
        if type(k) ~= "string" and math.type(k) ~= "integer" then
          error(string.format("cannot save: %s has a key of type %s", where, type(k)), 0)
        end
        local sub = where .. "." .. tostring(k)
        entries[#entries + 1] = arr({k, node_of(v[k], prefix .. tostring(k) .. ".", sub, seen)})
      end
      seen[v] = nil
      return {table = entries}
    end
    local e, why = encode_value(v)
    if e == nil then error(string.format("cannot save %s: %s is not plain data", where, why), 0) end
    return {value = e}
  end

  local root = node_of(obj, "", "the value", {})
  local structure = {
    ltorch_module_format = M.FORMAT_VERSION,
    ltorch_version = torch.version,
    root = root,
    classes = classes,
  }
  return {__ltorch_pack = true, tensors = tensors, extra = {module = json_encode(structure)}}
end

---------------------------------------------------------------------------
-- unpack

local function std_env()
  local env = {}
  for _, n in ipairs(std_names) do env[n] = _G[n] end
  env.torch = torch
  env.nn = torch.nn
  env._G = env
  return env
end

local function resolve_binding(what)
  if what == "torch" then return torch end
  if what == "nn" then return torch.nn end
  local kind, name = what:match("^(%a+):(.+)$")
  if kind == "class" then return base.registry[name] end
  if kind == "require" then return require(name) end
  if kind == "global" then
    local lib, f = name:match("^(%a+)%.(.+)$")
    if lib then return _G[lib] and _G[lib][f] end
    return _G[name]
  end
  return nil
end

local function check(cond, path, what)
  if not cond then error(string.format("%s: module structure: %s", path, what), 0) end
end

-- builds class `entry` from its stored source (under {trust_code = true})
local function build_class(entry, path)
  local name = entry.name
  local env = std_env()
  local captured = {}
  for _, c in ipairs(entry.captures or {}) do
    if type(c) == "table" and type(c[2]) == "string" then captured[c[2]] = c[1] end
  end
  for _, b in ipairs(entry.bindings or {}) do
    check(type(b) == "table" and type(b[2]) == "string" and type(b[3]) == "string", path,
      "class '" .. name .. "': bad binding")
    if b[3]:sub(1, 6) ~= "class:" then env[b[2]] = resolve_binding(b[3]) end
  end
  -- classes are bound when first used (they may be built after this one)
  local late = {}
  for _, b in ipairs(entry.bindings or {}) do
    if b[3]:sub(1, 6) == "class:" then late[b[2]] = b[3]:sub(7) end
  end
  setmetatable(env, {__index = function(_, k)
    if late[k] then return base.registry[late[k]] end
    if captured[k] then
      error(string.format("class '%s' method '%s' used the local '%s', which was captured when " ..
        "the class was saved and is not stored in the file", name, captured[k], k), 2)
    end
  end})
  local def, sources = {}, {}
  check(type(entry.methods) == "table", path, "class '" .. name .. "' has no methods list")
  for _, meth in ipairs(entry.methods) do
    check(type(meth) == "table" and type(meth.name) == "string", path, "class '" .. name .. "': bad method entry")
    if type(meth.source) ~= "string" then
      error(string.format("%s: class '%s' cannot be built from the file: the source of method '%s' " ..
        "was not available when it was saved", path, name, meth.name), 0)
    end
    local chunk, err = load("return " .. meth.source, "=" .. name .. "." .. meth.name, "t", env)
    if not chunk then
      error(string.format("%s: class '%s' method '%s': stored source does not compile: %s",
        path, name, meth.name, err), 0)
    end
    local ok, fn = pcall(chunk)
    if not ok or type(fn) ~= "function" then
      error(string.format("%s: class '%s' method '%s': stored source is not a function",
        path, name, meth.name), 0)
    end
    def[meth.name] = fn
    sources[meth.name] = meth.source
  end
  for _, c in ipairs(entry.constants or {}) do
    check(type(c) == "table" and type(c[1]) == "string", path, "class '" .. name .. "': bad constant")
    def[c[1]] = decode_value(c[2], "class '" .. name .. "'")
  end
  if entry.inherit ~= nil then
    def.inherit = base.registry[entry.inherit]
    check(def.inherit ~= nil, path, "class '" .. name .. "' inherits from unknown class '" ..
      tostring(entry.inherit) .. "'")
  end
  return base.module(name, def, {sources = sources})
end

-- the classes named in the structure, defined or built; raises for a class
-- that is not defined unless opts.trust_code
local function resolve_classes(structure, opts, path)
  local classes = structure.classes
  check(type(classes) == "table", path, "'classes' must be a list")
  for _, entry in ipairs(classes) do
    check(type(entry) == "table" and type(entry.name) == "string", path, "bad class entry")
    local name = entry.name
    if base.registry[name] == nil and type(entry.lib) == "string" then
      -- a class of ltorch's own libraries (e.g. ltorch.models)
      if entry.lib:match("^ltorch[%w_%.]*$") then pcall(require, entry.lib) end
    end
    if base.registry[name] == nil then
      if entry.builtin then
        error(string.format("%s: built-in class '%s' is not known to this ltorch", path, name), 0)
      end
      if not opts.trust_code then
        error(string.format("%s: class '%s' is not defined in this program; define it with " ..
          "nn.module before loading, or pass {trust_code = true} to build it from the source " ..
          "stored in the file", path, name), 0)
      end
      build_class(entry, path)
    end
  end
end

-- unpack(val, opts, path): rebuilds the value saved by pack
function M.unpack(val, opts, path)
  opts = opts or {}
  path = path or "?"
  local sd = val.state_dict
  if opts.state_dict then return sd end
  check(type(val.extra) == "table", path, "missing")
  local ok, structure = pcall(json_decode, val.extra.module)
  if not ok then error(path .. ": " .. tostring(structure), 0) end
  check(type(structure) == "table" and getmetatable(structure) ~= ARRAY, path, "expected an object")
  local version = structure.ltorch_module_format
  check(math.type(version) == "integer", path, "no 'ltorch_module_format' version")
  if version > M.FORMAT_VERSION or version < 1 then
    error(string.format("%s: module structure format %d is not supported by this ltorch " ..
      "(it reads format 1 to %d)", path, version, M.FORMAT_VERSION), 0)
  end
  check(type(sd) == "table", path, "the file holds no state dict")
  resolve_classes(structure, opts, path)

  local by_id = {}
  local loaded_hooks = {}
  local function tensor_at(key, what)
    check(type(key) == "string", path, what .. ": bad key")
    local t = sd[key]
    if not torch.is_tensor(t) then
      error(string.format("%s: module structure names the state key '%s' (%s), which the file " ..
        "does not hold", path, key, what), 0)
    end
    return t
  end

  -- node[field] as a list (absent: empty); anything else is an error
  local EMPTY = {}
  local function list_of(node, field, where)
    local v = node[field]
    if v == nil then return EMPTY end
    check(getmetatable(v) == ARRAY, path, where .. ": '" .. field .. "' must be a list")
    return v
  end

  local restore
  local function restore_module(node, where, depth)
    check(type(node.module) == "string", path, where .. ": bad class name")
    local cls = base.registry[node.module]
    check(cls ~= nil, path, where .. ": unknown class '" .. tostring(node.module) .. "'")
    local m = cls.raw()
    if node.id ~= nil then
      check(math.type(node.id) == "integer" and by_id[node.id] == nil, path, where .. ": bad id")
      by_id[node.id] = m
    end
    local st = base.state_of(m)
    check(node.training == nil or type(node.training) == "boolean", path, where .. ": bad 'training'")
    st.training = node.training ~= false
    for _, f in ipairs(list_of(node, "fields", where)) do
      check(type(f) == "table" and type(f[1]) == "string", path, where .. ": bad field")
      st.fields[f[1]] = decode_value(f[2], where .. "." .. f[1])
    end
    for _, p in ipairs(list_of(node, "parameters", where)) do
      check(type(p) == "table" and p[1] ~= nil, path, where .. ": bad parameter entry")
      local t = tensor_at(p[2], "parameter '" .. tostring(p[1]) .. "' of " .. where)
      t:requires_grad(true)
      base.slot_set(st.params, p[1], t)
    end
    for _, b in ipairs(list_of(node, "buffers", where)) do
      check(type(b) == "table" and b[1] ~= nil, path, where .. ": bad buffer entry")
      if b[3] ~= false then
        base.slot_set(st.buffers, b[1], tensor_at(b[2], "buffer '" .. tostring(b[1]) .. "' of " .. where))
      end
    end
    for _, c in ipairs(list_of(node, "children", where)) do
      check(type(c) == "table" and (type(c[1]) == "string" or math.type(c[1]) == "integer"), path,
        where .. ": bad child entry")
      local child = restore(c[2], where .. "." .. tostring(c[1]), depth + 1)
      check(base.is_module(child), path, where .. "." .. tostring(c[1]) .. ": not a module")
      base.slot_set(st.modules, c[1], child)
    end
    if type(m.on_load) == "function" then loaded_hooks[#loaded_hooks + 1] = m end
    return m
  end

  restore = function(node, where, depth)
    check(depth < 200, path, "nesting too deep")
    check(type(node) == "table" and getmetatable(node) ~= ARRAY, path, where .. ": expected a node")
    if node.module ~= nil then return restore_module(node, where, depth) end
    if node.ref ~= nil then
      local m = by_id[node.ref]
      check(m ~= nil, path, where .. ": reference to unknown module " .. tostring(node.ref))
      return m
    end
    if node.tensor ~= nil then return tensor_at(node.tensor, where) end
    if node.value ~= nil then return decode_value(node.value, where) end
    if node.table ~= nil then
      check(getmetatable(node.table) == ARRAY, path, where .. ": bad table")
      local out = {}
      for _, kv in ipairs(node.table) do
        check(type(kv) == "table" and (type(kv[1]) == "string" or math.type(kv[1]) == "integer"),
          path, where .. ": bad table entry")
        out[kv[1]] = restore(kv[2], where .. "." .. tostring(kv[1]), depth + 1)
      end
      return out
    end
    error(string.format("%s: module structure: %s: unknown node", path, where), 0)
  end

  local result = restore(structure.root, "root", 0)
  for _, m in ipairs(loaded_hooks) do m:on_load() end
  return result
end

return M
