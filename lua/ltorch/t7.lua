-- t7.lua: torch.t7, what Torch7 values are once loaded (formats/t7.lua
-- loads and saves the files; src/t7.c reads them).
--
-- A torch class object (nn.Linear, nngraph.Node, a user class "Blah") is a
-- Lua table of its fields whose metatable names the class; tds.Hash and
-- tds.Vec are tables the same way; a serialized function is an inert table
-- {bytecode =, upvalues =, tag =} that is never loaded or run; tensors and
-- storages are ltorch tensors (a storage as a 1-D tensor of all its
-- elements, shared with the tensors viewing it).
--   typename(v)    the Torch7 class name of v ("nn.Linear",
--                  "torch.FloatTensor", "tds.Hash", "function"), or nil
--   version(v)     the class version the file gave (0 before versions)
--   is_function(v) whether v is a loaded (inert) function
--   state_dict(m)  the flat state dict of an nn model, with PyTorch's names
--                  (docs/t7.md has the mapping per class)
local core = require("ltorch.core")
local odict = require("ltorch.odict")

local M = {}

local classes = {}                              -- "name\0version" -> metatable
local userdata_class = setmetatable({}, {__mode = "k"})   -- tensor -> class name

-- the metatable of the objects of class name, version v
function M.class_meta(name, v)
  local key = name .. "\0" .. tostring(v)
  local mt = classes[key]
  if not mt then
    mt = {__name = name, __t7class = name, __t7version = v}
    classes[key] = mt
  end
  return mt
end

local FUNCTION_MT = {__name = "function", __t7class = "function", __t7version = 0,
  __tostring = function() return "function (bytecode, not run)" end}

function M.inert_function(bytecode, upvalues, tag)
  return setmetatable({bytecode = bytecode, upvalues = upvalues, tag = tag}, FUNCTION_MT)
end

function M.is_function(v)
  return type(v) == "table" and getmetatable(v) == FUNCTION_MT
end

-- remember the class a loaded tensor or storage had
function M.mark(t, name)
  userdata_class[t] = name
end

local TENSOR_CLASS = {uint8 = "Byte", int8 = "Char", int16 = "Short", int32 = "Int", int64 = "Long",
  float32 = "Float", float64 = "Double", float16 = "Half"}
M.TENSOR_CLASS = TENSOR_CLASS

function M.typename(v)
  if core.is_tensor(v) then
    local c = userdata_class[v]
    if c then return c end
    local t = TENSOR_CLASS[v:dtype()]
    return t and ("torch." .. t .. "Tensor") or nil
  end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" then return rawget(mt, "__t7class") end
  end
  return nil
end

function M.version(v)
  if type(v) == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" and rawget(mt, "__t7class") then return rawget(mt, "__t7version") end
  end
  return nil
end

-- whether v is a loaded torch class object (a table with a class)
function M.is_object(v)
  return type(v) == "table" and M.typename(v) ~= nil and not M.is_function(v)
end

---------------------------------------------------------------------------
-- the object tree (ltorch inspect)

local function describe(v)
  if core.is_tensor(v) then
    local c = M.typename(v) or "tensor"
    if c:find("Storage", 1, true) then return string.format("%s %s, %d elements", c, v:dtype(), v:numel()) end
    return string.format("%s %s {%s}", c, v:dtype(), table.concat(v:size(), ", "))
  end
  if M.is_function(v) then return "function (bytecode, not run)" end
  local tv = type(v)
  if tv == "string" then
    local s = string.format("%q", #v > 40 and v:sub(1, 37) .. "..." or v)
    return (s:gsub("\\\n", "\\n"))
  end
  if tv ~= "table" then return tostring(v) end
  local n = odict.count(v)
  local c = M.typename(v)
  if c then return n == 0 and c or string.format("%s (%d fields)", c, n) end
  return n == 0 and "{}" or string.format("table (%d entries)", n)
end

local function key_str(k)
  if type(k) == "string" then return k end
  if type(k) == "number" then return "[" .. tostring(k) .. "]" end
  return "[" .. describe(k) .. "]"
end

-- lines "  key: what" (two spaces a level) for the graph under v; a value
-- reached again says where it was first; at most max lines
function M.tree_lines(v, max)
  max = max or 5000
  local lines, first = {}, {}
  local function walk(x, indent, label, path)
    if #lines >= max then return end
    local shared = (type(x) == "table" or core.is_tensor(x)) and first[x]
    if shared then
      lines[#lines + 1] = string.format("%s%s: (the same as %s)", indent, label, shared)
      return
    end
    lines[#lines + 1] = string.format("%s%s: %s", indent, label, describe(x))
    if type(x) ~= "table" or M.is_function(x) then
      if core.is_tensor(x) or M.is_function(x) then first[x] = path end
      return
    end
    first[x] = path
    for _, k in ipairs(odict.ordered_keys(x)) do
      local kp = type(k) == "string" and path .. "." .. k or path .. key_str(k)
      walk(x[k], indent .. "  ", key_str(k), kp)
    end
  end
  walk(v, "", "root", "root")
  if #lines >= max then lines[#lines + 1] = "..." end
  return lines
end

---------------------------------------------------------------------------
-- state dicts

-- the parameters and buffers a module contributes, by Torch7 field name,
-- in PyTorch's order
local PARAMS = {"weight", "bias", "running_mean", "running_var"}

-- a Torch7 class name without its package ("nn.SpatialConvolution" ->
-- "SpatialConvolution"; cudnn's and user packages' alike)
local function base_name(cls)
  return cls:match("([^.]+)$") or cls
end

local CONV = {SpatialConvolution = 2, SpatialConvolutionMM = 2, SpatialDilatedConvolution = 2,
  VolumetricConvolution = 3, TemporalConvolution = 1}

local function num(m, k, cls)
  local v = rawget(m, k)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("%s has no positive integer field '%s' to reshape its weight", cls, k), 0)
  end
  return v
end

-- weight as PyTorch's layer has it: Torch7's convolutions may keep it
-- flattened {out, in * k...} (SpatialConvolutionMM always, old
-- SpatialConvolution files too)
local function pytorch_weight(m, cls, w)
  local b = base_name(cls)
  local nd = CONV[b]
  if not nd or w:dim() == nd + 2 then return w end
  if b == "TemporalConvolution" then
    -- {out, kW * in} with the input frame fastest: Conv1d's {out, in, kW}
    local kw, inp = num(m, "kW", cls), num(m, "inputFrameSize", cls)
    return w:contiguous():view(w:size(1), kw, inp):transpose(2, 3):contiguous()
  end
  if w:dim() ~= 2 then return w end
  local inp = num(m, "nInputPlane", cls)
  local shape = {w:size(1), inp}
  if nd == 3 then shape[3] = num(m, "kT", cls) end
  shape[#shape + 1] = num(m, "kH", cls)
  shape[#shape + 1] = num(m, "kW", cls)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  if n ~= w:numel() then
    error(string.format("%s weight of %d elements does not fit {%s}", cls, w:numel(), table.concat(shape, ", ")), 0)
  end
  return w:contiguous():view(shape)
end

local function is_batchnorm(cls)
  return base_name(cls):find("BatchNormalization", 1, true) ~= nil
end

-- the children of a container, in order: its modules list
local function children(m)
  local mods = rawget(m, "modules")
  if type(mods) ~= "table" or M.typename(mods) ~= nil then return nil end
  local list = {}
  for i = 1, #mods do list[i] = mods[i] end
  return list
end

function M.state_dict(root)
  if not M.is_object(root) then
    error("a Torch7 nn module expected, got " .. (M.typename(root) or type(root)), 0)
  end
  local sd = odict.new()
  local seen = {}
  local function walk(m, prefix, path)
    if seen[m] then return end   -- a module shared twice is listed once, at its first place
    seen[m] = true
    local cls = M.typename(m)
    local kids = children(m)
    if kids then
      for i, c in ipairs(kids) do
        if M.is_object(c) then walk(c, prefix .. (i - 1) .. ".", path .. ".modules[" .. i .. "]") end
      end
      return
    end
    for _, k in ipairs(PARAMS) do
      local v = rawget(m, k)
      if core.is_tensor(v) and v:numel() > 0 then
        if k == "weight" then
          local ok, w = pcall(pytorch_weight, m, cls, v)
          if not ok then error(path .. ": " .. w, 0) end
          v = w
        end
        sd[prefix .. k] = v
      end
    end
    if is_batchnorm(cls) then
      -- old nn kept running_std (1 / sqrt(var + eps)); PyTorch keeps the variance
      local rs = rawget(m, "running_std")
      if sd[prefix .. "running_var"] == nil and core.is_tensor(rs) then
        local eps = tonumber(rawget(m, "eps")) or 1e-5
        sd[prefix .. "running_var"] = (rs * rs):reciprocal() - eps
      end
      if sd[prefix .. "running_mean"] ~= nil then
        sd[prefix .. "num_batches_tracked"] = core.tensor(0, {dtype = "int64"})
      end
    end
  end
  walk(root, "", "root")
  return sd
end

return M
