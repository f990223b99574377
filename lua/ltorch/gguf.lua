-- gguf.lua: torch.gguf, what GGUF values are once loaded (formats/gguf.lua
-- loads and saves the files; src/gguf.c reads their headers,
-- src/gguf_quant.c their quantized blocks).
--
-- A load gives {metadata = M, tensors = T}: M an ordered dict of the
-- file's key/value pairs, each value's GGUF type remembered (types(M)), T
-- an ordered dict of name -> tensor. With {raw = true} a quantized tensor
-- is kept as its blocks: a uint8 tensor {rows..., bytes per row} whose
-- ggml type and logical shape raw_info(t) gives; a save writes it back as
-- it was.
--   types(M)               key -> GGUF type name of a loaded (or built)
--                          metadata dict; assign to choose another
--   typed(type, value)     a value to store as the named GGUF type
--                          ("uint32", "float64", "array:int32", ...)
--   raw_info(t)            {type = "Q4_K", shape = {...}} of a raw tensor, or nil
--   default_type(value)    the GGUF type a Lua value is saved as
--   qtypes()               ggml's types: {name = {id, block, bytes, ...}}
local core = require("ltorch.core")

local M = {}

local types_of = setmetatable({}, {__mode = "k"})   -- metadata dict -> {key = type}
local raw_of = setmetatable({}, {__mode = "k"})     -- raw tensor -> {type, shape}

function M.types(md)
  local t = types_of[md]
  if not t then
    t = {}
    types_of[md] = t
  end
  return t
end

function M.set_types(md, t) types_of[md] = t end

local TYPED = {}
TYPED.__index = TYPED
TYPED.__name = "ltorch.gguf.typed"

function M.typed(type_name, value)
  if type(type_name) ~= "string" or not M.valid_type(type_name) then
    error(string.format("bad argument #1 to 'typed' (a GGUF value type expected, got %s)", tostring(type_name)), 2)
  end
  return setmetatable({type = type_name, value = value}, TYPED)
end

function M.is_typed(v) return getmetatable(v) == TYPED end

local SCALARS = {uint8 = true, int8 = true, uint16 = true, int16 = true, uint32 = true, int32 = true,
  float32 = true, bool = true, string = true, uint64 = true, int64 = true, float64 = true}
M.SCALARS = SCALARS

function M.valid_type(t)
  while t:sub(1, 6) == "array:" do t = t:sub(7) end
  return SCALARS[t] == true or t == "array"
end

-- the type a Lua value is saved as when nothing names one: integers as
-- uint32 when 0 <= v < 2^32, int32 when negative and fits, else int64;
-- floats as float32; a list as an array of its elements' common type (an
-- integer list of a negative element as int32 or int64, by its range)
function M.default_type(v)
  local tv = type(v)
  if M.is_typed(v) then return v.type end
  if tv == "boolean" then return "bool" end
  if tv == "string" then return "string" end
  if math.type(v) == "integer" then
    if v >= 0 and v <= 0xffffffff then return "uint32" end
    if v < 0 and v >= -0x80000000 then return "int32" end
    return "int64"
  end
  if math.type(v) == "float" then return "float32" end
  if tv == "table" then
    local n = #v
    if n == 0 then return "array:string" end
    local kinds, lo, hi = {}, 0, 0
    for i = 1, n do
      local e = v[i]
      local k = math.type(e) or type(e)
      if k == "table" then k = "array" end
      kinds[k] = true
      if math.type(e) == "integer" then
        if e < lo then lo = e end
        if e > hi then hi = e end
      end
    end
    local only
    for k in pairs(kinds) do
      if only then
        if (only == "integer" and k == "float") or (only == "float" and k == "integer") then only = "float"
        else error("a metadata list mixes " .. only .. " and " .. k .. " values: GGUF arrays hold one type", 0) end
      else
        only = k
      end
    end
    if only == "integer" then
      if lo >= 0 and hi <= 0xffffffff then return "array:uint32" end
      if lo >= -0x80000000 and hi <= 0x7fffffff then return "array:int32" end
      return "array:int64"
    end
    if only == "float" then return "array:float32" end
    if only == "boolean" then return "array:bool" end
    if only == "string" then return "array:string" end
    if only == "array" then return "array:" .. M.default_type(v[1]) end
    error("a metadata list of " .. only .. " values cannot be stored in GGUF", 0)
  end
  error("a " .. tv .. " cannot be stored as GGUF metadata", 0)
end

function M.mark_raw(t, info) raw_of[t] = info end
function M.raw_info(t) return raw_of[t] end

local qt
function M.qtypes()
  if not qt then
    qt = {}
    for _, e in ipairs(core._gguf_types()) do
      qt[e.name] = e
      qt[e.id] = e
    end
  end
  return qt
end

-- plain ggml types and their dtypes
M.DTYPE_OF = {[0] = "float32", [1] = "float16", [30] = "bfloat16", [28] = "float64", [24] = "int8",
  [25] = "int16", [26] = "int32", [27] = "int64"}
M.TYPE_OF_DTYPE = {float32 = 0, float16 = 1, bfloat16 = 30, float64 = 28, int8 = 24, int16 = 25,
  int32 = 26, int64 = 27}

return M
