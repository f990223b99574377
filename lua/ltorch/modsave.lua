-- modsave.lua: whole modules in checkpoint files (structure + state dict).
-- The only code that knows what a module file is: serialize.lua hands it
-- every value that holds modules, and every loaded file's extra records.
--
-- pack(obj, fmt, opts) turns a module, or a table holding modules, into
-- what the format writes: a value and extra records {module = <JSON>}.
--   - a format that holds nested values (fmt.nested: .pt) gets the PyTorch
--     view: the value with each module replaced by its state dict (an
--     ordered dict, PyTorch's keys and order), so torch.load(weights_only=
--     True) sees the same nested table;
--   - a flat format (safetensors) gets every tensor under its dotted key
--     path ("model.fc1.weight"); a tensor reachable under several keys (tied
--     weights, a module used twice) is stored once and the other keys are
--     listed in the structure's "aliases".
-- The format stores the extra records beside its tensors (.pt: zip records
-- "<archive>/.ltorch/NAME"; safetensors: __metadata__ "ltorch.NAME") and
-- hands them back from its load. unpack() rebuilds the modules: instances
-- are made WITHOUT calling initialize; their fields, children, parameters
-- and buffers come from the structure and the tensors, so forward gives
-- identical results. view() gives the PyTorch view without any class
-- (torch.load_state_dict), convert() re-targets a loaded file to another
-- format (ltorch convert).
--
-- The structure (docs/modules.md has the full description; version 2):
--   {"ltorch_module_format": 2, "ltorch_version": "...",
--    "root": NODE, "classes": [CLASS, ...], "aliases": [[key, stored key]...]}
--   NODE   {"module": class, "id": n, "training": b, "fields": [[name, VALUE]...],
--           "parameters": [[name, key]...], "buffers": [[name, key, true] |
--           [name, null, false, TENSOR]...], "children": [[name, NODE]...]}
--        | {"ref": n}                      the module with that id, again
--        | {"table": [[KEY, NODE]...]}      a Lua table (KEY: string or integer)
--        | {"tensor": key}                  a tensor stored under key
--        | {"value": VALUE}                 plain data
--   key    a tensor's dotted key path from the saved value ("model.fc1.weight")
--   VALUE  JSON string/boolean/integer, a float written with a '.' or exponent,
--          [VALUE...] for a Lua sequence, {"$table": [[VALUE, VALUE]...]} for
--          other tables, {"$float": "inf"|"-inf"|"nan"}, {"$null": true}
--   TENSOR {"$tensor": {"dtype": s, "shape": [n...], "base64": bytes}}: the
--          value of a non-persistent buffer (never in the state dict)
--   CLASS  {"name": s, "builtin": b, "lib": module|null, "inherit": name|null,
--           "methods": [{"name": s, "source": text|null}...],
--           "constants": [[name, VALUE]...], "bindings": [[method, upvalue, what]...],
--           "captures": [[method, upvalue, type]...]}
--   "what" of a binding: "torch", "nn", "class:NAME", "require:MODULE",
--   "global:NAME" (a standard global) or "global:LIB.NAME" (a library function).
-- Version 1 files (data.pkl a flat state dict, no aliases, no buffer
-- values) still load.

local torch = require("ltorch")
local odict = require("ltorch.odict")
local json = require("ltorch.json")
-- torch.nn (and its built-in classes) loads when a module is packed or
-- rebuilt, not when this file is required to look at a loaded file
local nn = setmetatable({}, {__index = function(t, k)
  local lib = require("ltorch.nn")
  setmetatable(t, {__index = lib})
  return lib[k]
end})
local base = require("ltorch.nn.module")

local M = {}

M.FORMAT_VERSION = 2

---------------------------------------------------------------------------
-- JSON through ltorch.json. In a structure, objects are plain tables
-- (written with sorted keys) and lists are tables marked by json.array (so
-- an empty list is written []); a decoded structure is given the same form.
-- Integers stay integers and floats floats across a round trip.

local arr, is_list = json.array, json.is_array

-- a value from json.decode in the structure's form: objects (odicts) become
-- plain tables, lists are marked (json.decode bounds the nesting)
local function structure_form(v)
  if type(v) ~= "table" or v == torch.null then return v end
  if odict.is(v) then
    local t = {}
    for k, x in pairs(v) do t[k] = structure_form(x) end
    return t
  end
  for i = 1, #v do v[i] = structure_form(v[i]) end
  return arr(v)
end

local json_encode = json.encode
M.json_encode = json_encode

-- decodes JSON text into the structure's form; raises "module structure:
-- json: ..." with the byte offset
local function json_decode(s)
  if type(s) ~= "string" then error("module structure: expected a JSON string, got " .. type(s), 0) end
  local ok, v = pcall(json.decode, s)
  if not ok then error("module structure: " .. tostring(v), 0) end
  return structure_form(v)
end
M.json_decode = json_decode

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
    if is_list(j) then
      local out = {}
      for i, e in ipairs(j) do out[i] = decode_value(e, where) end
      return out
    end
    if j["$null"] == true then return torch.null end
    local f = j["$float"]
    if f == "nan" then return 0.0 / 0.0 elseif f == "inf" then return math.huge
    elseif f == "-inf" then return -math.huge end
    local t = j["$table"]
    if is_list(t) then
      local out = {}
      for _, kv in ipairs(t) do
        if not is_list(kv) or #kv ~= 2 then
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
  if nn.is_class(v) then return "class:" .. v.name end
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
-- tensors of non-persistent buffers: kept in the structure as
-- {"$tensor": {"dtype": s, "shape": [n...], "base64": s}} (not in the
-- state dict, so PyTorch and safetensors readers never see them)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_ENC, B64_DEC = {}, {}
for i = 1, 64 do
  B64_DEC[B64:sub(i, i)] = i - 1
end
for i = 0, 4095 do
  B64_ENC[i] = B64:sub((i >> 6) + 1, (i >> 6) + 1) .. B64:sub((i & 63) + 1, (i & 63) + 1)
end

local function b64_encode(s)
  local pad = (3 - #s % 3) % 3
  local body = (s .. string.rep("\0", pad)):gsub("(.)(.)(.)", function(a, b, c)
    local n = (a:byte() << 16) | (b:byte() << 8) | c:byte()
    return B64_ENC[n >> 12] .. B64_ENC[n & 4095]
  end)
  return body:sub(1, #body - pad) .. string.rep("=", pad)
end

local function b64_decode(s, where)
  if #s % 4 ~= 0 or s:find("[^%w%+/=]") or s:find("=[^=]") then
    error("module structure: " .. where .. ": bad base64 text", 0)
  end
  local pad = #s:match("=*$")
  if pad > 2 then error("module structure: " .. where .. ": bad base64 text", 0) end
  s = s:sub(1, #s - pad) .. string.rep("A", pad)
  local out = s:gsub("(.)(.)(.)(.)", function(a, b, c, d)
    local n = (B64_DEC[a] << 18) | (B64_DEC[b] << 12) | (B64_DEC[c] << 6) | B64_DEC[d]
    return string.char(n >> 16, (n >> 8) & 255, n & 255)
  end)
  return out:sub(1, #out - pad)
end

local function tensor_value(t)
  return {["$tensor"] = {dtype = t:dtype(), shape = arr(t:size()),
    base64 = b64_encode(t:contiguous():tobytes())}}
end

local function value_tensor(j, where)
  local d = type(j) == "table" and j["$tensor"]
  if type(d) ~= "table" or type(d.dtype) ~= "string" or type(d.base64) ~= "string"
     or not is_list(d.shape) then
    error("module structure: " .. where .. ": bad tensor value", 0)
  end
  for _, n in ipairs(d.shape) do
    if math.type(n) ~= "integer" or n < 0 then error("module structure: " .. where .. ": bad tensor shape", 0) end
  end
  local ok, t = pcall(torch.frombytes, b64_decode(d.base64, where), d.dtype, d.shape)
  if not ok then error("module structure: " .. where .. ": " .. tostring(t), 0) end
  return t
end

---------------------------------------------------------------------------
-- pack: a value holding modules -> structure + flat tensors (key -> tensor,
-- in PyTorch's state-dict order; a tensor used twice is there twice)

local function describe(obj, opts)
  local flat = odict.new()
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
    if flat[key] ~= nil and flat[key] ~= t then
      error(string.format("cannot save: two tensors under the key '%s' (%s)", key, where), 0)
    end
    flat[key] = t
  end

  local function module_node(m, prefix)
    if ids[m] then return {ref = ids[m]} end
    next_id = next_id + 1
    ids[m] = next_id
    local c = nn.contents(m)
    add_class(c.class)
    local node = {module = c.class.name, id = next_id, training = c.training,
      fields = arr(), parameters = arr(), buffers = arr(), children = arr(), skipped = arr()}
    local fkeys = {}
    for k in pairs(c.fields) do fkeys[#fkeys + 1] = k end
    table.sort(fkeys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(fkeys) do
      local e = type(k) == "string" and encode_value(c.fields[k]) or nil
      if e ~= nil then node.fields[#node.fields + 1] = arr({k, e})
      else node.skipped[#node.skipped + 1] = tostring(k) end
    end
    for _, p in ipairs(c.parameters) do
      local key = prefix .. tostring(p[1])
      put(key, p[2], "a parameter")
      node.parameters[#node.parameters + 1] = arr({p[1], key})
    end
    for _, b in ipairs(c.buffers) do
      if b[3] then
        local key = prefix .. tostring(b[1])
        put(key, b[2], "a buffer")
        node.buffers[#node.buffers + 1] = arr({b[1], key, true})
      else
        node.buffers[#node.buffers + 1] = arr({b[1], torch.null, false, tensor_value(b[2])})
      end
    end
    for _, ch in ipairs(c.children) do
      local name, child = ch[1], ch[2]
      if ids[child] then
        -- a module seen before: PyTorch's state dict lists its tensors again
        for k, t in pairs(child:state_dict(prefix .. tostring(name) .. ".")) do put(k, t, "a shared module") end
      end
      node.children[#node.children + 1] = arr({name, module_node(child, prefix .. tostring(name) .. ".")})
    end
    return node
  end

  local function node_of(v, prefix, where, seen)
    if nn.is_module(v) then return module_node(v, prefix) end
    if torch.is_tensor(v) then
      local key = prefix:sub(1, -2)
      put(key, v, "a tensor")
      return {tensor = key}
    end
    if type(v) == "table" and (getmetatable(v) == nil or odict.is(v)) and v ~= torch.null then
      if seen[v] then error("cannot save: " .. where .. " contains itself", 0) end
      seen[v] = true
      local entries = arr()
      for _, k in ipairs(odict.ordered_keys(v)) do
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
  return structure, flat
end

---------------------------------------------------------------------------
-- the PyTorch view: the saved value with each module replaced by its state
-- dict (an ordered dict, PyTorch's keys and order), tables kept as tables.
-- Built from the structure alone, so no class needs to be defined.

local function check(cond, path, what)
  if not cond then error(string.format("%s: module structure: %s", path, what), 0) end
end

-- node[field] as a list (absent: empty); anything else is an error
local EMPTY = {}
local function list_of(node, field, where, path)
  local v = node[field]
  if v == nil then return EMPTY end
  check(is_list(v), path, where .. ": '" .. field .. "' must be a list")
  return v
end

-- the module nodes of the structure by id
local function index_nodes(root, path)
  local by_id = {}
  local function walk(node, depth)
    check(depth < 200, path, "nesting too deep")
    if type(node) ~= "table" then return end
    if node.module ~= nil and node.id ~= nil then
      check(math.type(node.id) == "integer" and by_id[node.id] == nil, path, "bad module id")
      by_id[node.id] = node
    end
    for _, field in ipairs({"children", "table"}) do
      if is_list(node[field]) then
        for _, c in ipairs(node[field]) do
          if type(c) == "table" then walk(c[2], depth + 1) end
        end
      end
    end
  end
  walk(root, 0)
  return by_id
end

local function tensor_of(flat, key, what, path)
  check(type(key) == "string", path, what .. ": bad key")
  local t = flat[key]
  if not torch.is_tensor(t) then
    error(string.format("%s: module structure names the state key '%s' (%s), which the file " ..
      "does not hold", path, key, what), 0)
  end
  return t
end

-- a function walk(node, where, depth) -> the node's value: tensors from
-- flat, plain values decoded, tables walked; module and ref nodes are
-- given to on_module(node, where, depth)
local function node_walker(flat, path, on_module)
  local walk
  walk = function(node, where, depth)
    check(depth < 200, path, "nesting too deep")
    check(type(node) == "table" and not is_list(node), path, where .. ": expected a node")
    if node.module ~= nil or node.ref ~= nil then return on_module(node, where, depth) end
    if node.tensor ~= nil then return tensor_of(flat, node.tensor, where, path) end
    if node.value ~= nil then return decode_value(node.value, where) end
    if node.table ~= nil then
      check(is_list(node.table), path, where .. ": bad table")
      local out = {}
      for _, kv in ipairs(node.table) do
        check(type(kv) == "table" and (type(kv[1]) == "string" or math.type(kv[1]) == "integer"),
          path, where .. ": bad table entry")
        out[kv[1]] = walk(kv[2], where .. "." .. tostring(kv[1]), depth + 1)
      end
      return out
    end
    error(string.format("%s: module structure: %s: unknown node", path, where), 0)
  end
  return walk
end

local function view_of(structure, flat, path)
  local by_id = index_nodes(structure.root, path)
  local function module_sd(node, prefix, sd, where, depth)
    check(depth < 200, path, "nesting too deep")
    if node.ref ~= nil then
      node = by_id[node.ref]
      check(node ~= nil, path, where .. ": reference to an unknown module")
    end
    for _, p in ipairs(list_of(node, "parameters", where, path)) do
      check(type(p) == "table", path, where .. ": bad parameter entry")
      sd[prefix .. tostring(p[1])] = tensor_of(flat, p[2], "parameter '" .. tostring(p[1]) .. "' of " .. where, path)
    end
    for _, b in ipairs(list_of(node, "buffers", where, path)) do
      check(type(b) == "table", path, where .. ": bad buffer entry")
      if b[3] ~= false then
        sd[prefix .. tostring(b[1])] = tensor_of(flat, b[2], "buffer '" .. tostring(b[1]) .. "' of " .. where, path)
      end
    end
    for _, c in ipairs(list_of(node, "children", where, path)) do
      check(type(c) == "table" and type(c[2]) == "table", path, where .. ": bad child entry")
      module_sd(c[2], prefix .. tostring(c[1]) .. ".", sd, where .. "." .. tostring(c[1]), depth + 1)
    end
    return sd
  end
  local walk = node_walker(flat, path, function(node, where, depth)
    return module_sd(node, "", odict.new(), where, depth)
  end)
  return walk(structure.root, "root", 0)
end

-- the flat tensors of a loaded value: every tensor under its dotted key
-- path (a state dict's own dotted keys are kept as they are)
local function flatten(v, path)
  local flat = odict.new()
  local function walk(x, prefix, depth)
    check(depth < 200, path, "nesting too deep")
    if torch.is_tensor(x) then flat[prefix:sub(1, -2)] = x return end
    if type(x) ~= "table" or x == torch.null then return end
    for _, k in ipairs(odict.ordered_keys(x)) do walk(x[k], prefix .. tostring(k) .. ".", depth + 1) end
  end
  walk(v, "", 0)
  return flat
end

-- the identity of a tensor's view (one tensor saved twice, or two loaded
-- tensors over the same bytes, are the same record)
local function view_id(t)
  local st = t:_storage_info()
  return string.format("%s|%s|%d|%s|%s", tostring(st), t:dtype(), t:storage_offset(),
    table.concat(t:size(), ","), table.concat(t:stride(), ","))
end

-- what format fmt stores: formats that hold nested values (fmt.nested: .pt)
-- get the PyTorch view; the others a flat dict in which a tensor stored
-- under several keys is kept once, the others recorded as aliases
local function container(structure, flat, fmt, path)
  structure.aliases = nil
  local value
  if fmt.nested then
    value = view_of(structure, flat, path)
  else
    value = odict.new()
    local first, aliases = {}, arr()
    for _, k in ipairs(odict.keys(flat)) do
      local t = flat[k]
      local id = view_id(t)
      if first[id] then aliases[#aliases + 1] = arr({k, first[id]})
      else first[id] = k; value[k] = t end
    end
    if #aliases > 0 then structure.aliases = aliases end
  end
  return value, {module = json_encode(structure)}
end

-- pack(obj, fmt, opts) -> value, extras: what fmt.save writes for a value
-- holding modules (extras.module: the structure as JSON)
function M.pack(obj, fmt, opts)
  local structure, flat = describe(obj, opts or {})
  return container(structure, flat, fmt or {}, "the value")
end

-- does a value hold modules (a module, or a table with one inside)?
function M.holds_modules(obj, seen)
  if type(obj) ~= "table" then return false end
  if base.is_module(obj) then return true end
  if getmetatable(obj) ~= nil and not odict.is(obj) then return false end
  seen = seen or {}
  if seen[obj] then return false end
  seen[obj] = true
  for _, v in pairs(obj) do if M.holds_modules(v, seen) then return true end end
  return false
end

-- a module file's structure, decoded and checked, or nil when extras hold none
local function structure_of(extras, path)
  if type(extras) ~= "table" or extras.module == nil then return nil end
  local ok, structure = pcall(json_decode, extras.module)
  if not ok then error(path .. ": " .. tostring(structure), 0) end
  check(type(structure) == "table" and not is_list(structure), path, "expected an object")
  local version = structure.ltorch_module_format
  check(math.type(version) == "integer", path, "no 'ltorch_module_format' version")
  if version > M.FORMAT_VERSION or version < 1 then
    error(string.format("%s: module structure format %d is not supported by this ltorch " ..
      "(it reads format 1 to %d)", path, version, M.FORMAT_VERSION), 0)
  end
  return structure
end

-- the flat tensors of a loaded module file, aliases tied again
local function flat_of(value, structure, path)
  check(type(value) == "table", path, "the file holds no state dict")
  local flat = flatten(value, path)
  for _, a in ipairs(list_of(structure, "aliases", "aliases", path)) do
    check(type(a) == "table" and type(a[1]) == "string", path, "bad alias entry")
    flat[a[1]] = tensor_of(flat, a[2], "alias '" .. a[1] .. "'", path)
  end
  return flat
end

-- is a loaded file's (value, extras) a module file?
function M.is_module_file(extras) return type(extras) == "table" and extras.module ~= nil end

-- the PyTorch view of a module file (modules as their state dicts), or
-- value itself when extras hold no module
function M.view(value, extras, path)
  local structure = structure_of(extras, path or "?")
  if not structure then return value end
  return view_of(structure, flat_of(value, structure, path), path)
end

-- convert(value, extras, fmt, path) -> value, extras for writing a loaded
-- module file in format fmt (no class needs to be defined)
function M.convert(value, extras, fmt, path)
  local structure = structure_of(extras, path or "?")
  local flat = flat_of(value, structure, path)
  structure.ltorch_module_format = M.FORMAT_VERSION
  return container(structure, flat, fmt, path)
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
  if kind == "class" then return nn.classes[name] end
  if kind == "require" then return require(name) end
  if kind == "global" then
    local lib, f = name:match("^(%a+)%.(.+)$")
    if lib then return _G[lib] and _G[lib][f] end
    return _G[name]
  end
  return nil
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
    if late[k] then return nn.classes[late[k]] end
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
    def.inherit = nn.classes[entry.inherit]
    check(def.inherit ~= nil, path, "class '" .. name .. "' inherits from unknown class '" ..
      tostring(entry.inherit) .. "'")
  end
  return nn.module(name, def, {sources = sources})
end

-- the classes named in the structure, defined or built; raises for a class
-- that is not defined unless opts.trust_code
local function resolve_classes(structure, opts, path)
  local classes = structure.classes
  check(type(classes) == "table", path, "'classes' must be a list")
  for _, entry in ipairs(classes) do
    check(type(entry) == "table" and type(entry.name) == "string", path, "bad class entry")
    local name = entry.name
    if nn.classes[name] == nil and type(entry.lib) == "string" then
      -- a class of ltorch's own libraries (e.g. ltorch.models)
      if entry.lib:match("^ltorch[%w_%.]*$") then pcall(require, entry.lib) end
    end
    if nn.classes[name] == nil then
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

-- unpack(value, extras, opts, path): the value saved by pack, modules
-- rebuilt; value itself when extras hold no module
function M.unpack(value, extras, opts, path)
  opts = opts or {}
  path = path or "?"
  local structure = structure_of(extras, path)
  if not structure then return value end
  local flat = flat_of(value, structure, path)
  resolve_classes(structure, opts, path)

  local by_id = {}
  local loaded_hooks = {}
  local restore
  local function restore_module(node, where, depth)
    check(type(node.module) == "string", path, where .. ": bad class name")
    local cls = nn.classes[node.module]
    check(cls ~= nil, path, where .. ": unknown class '" .. tostring(node.module) .. "'")
    local m = cls.raw()
    if node.id ~= nil then
      check(math.type(node.id) == "integer" and by_id[node.id] == nil, path, where .. ": bad id")
      by_id[node.id] = m
    end
    check(node.training == nil or type(node.training) == "boolean", path, where .. ": bad 'training'")
    local c = {training = node.training ~= false, fields = {}, parameters = {}, buffers = {}, children = {}}
    for _, f in ipairs(list_of(node, "fields", where, path)) do
      check(type(f) == "table" and type(f[1]) == "string", path, where .. ": bad field")
      c.fields[f[1]] = decode_value(f[2], where .. "." .. f[1])
    end
    for _, p in ipairs(list_of(node, "parameters", where, path)) do
      check(type(p) == "table" and p[1] ~= nil, path, where .. ": bad parameter entry")
      c.parameters[#c.parameters + 1] = {p[1], tensor_of(flat, p[2], "parameter '" .. tostring(p[1]) .. "' of " .. where, path)}
    end
    for _, b in ipairs(list_of(node, "buffers", where, path)) do
      check(type(b) == "table" and b[1] ~= nil, path, where .. ": bad buffer entry")
      local what = "buffer '" .. tostring(b[1]) .. "' of " .. where
      if b[3] ~= false then
        c.buffers[#c.buffers + 1] = {b[1], tensor_of(flat, b[2], what, path), true}
      elseif b[4] ~= nil then   -- a non-persistent buffer's value (format 2)
        c.buffers[#c.buffers + 1] = {b[1], value_tensor(b[4], what), false}
      end
    end
    for _, ch in ipairs(list_of(node, "children", where, path)) do
      check(type(ch) == "table" and (type(ch[1]) == "string" or math.type(ch[1]) == "integer"), path,
        where .. ": bad child entry")
      local child = restore(ch[2], where .. "." .. tostring(ch[1]), depth + 1)
      check(nn.is_module(child), path, where .. "." .. tostring(ch[1]) .. ": not a module")
      c.children[#c.children + 1] = {ch[1], child}
    end
    nn.restore(m, c)
    if type(m.on_load) == "function" then loaded_hooks[#loaded_hooks + 1] = m end
    return m
  end

  restore = node_walker(flat, path, function(node, where, depth)
    if node.module ~= nil then return restore_module(node, where, depth) end
    local m = by_id[node.ref]
    check(m ~= nil, path, where .. ": reference to unknown module " .. tostring(node.ref))
    return m
  end)

  local result = restore(structure.root, "root", 0)
  for _, m in ipairs(loaded_hooks) do m:on_load() end
  return result
end

return M
