-- clone.lua: a deep copy of a module (PyTorch's copy.deepcopy(module)), as
-- TransformerEncoder and TransformerDecoder make of their layer.
--
--   local copy = require("ltorch.nn.clone")(module)
--
-- The copy is built from the module's contents, not by calling its
-- constructor again: an instance of the same class made without initialize
-- (cls.raw()), filled with copies of its plain fields (tables copied deeply),
-- of its parameters and buffers (t:clone(), a parameter stays a parameter, a
-- non-persistent buffer stays one) and of its children, copied the same way.
-- So it works for any module, user classes included, and the copy's forward
-- gives the same results. Within one copy, a tensor or module reached twice
-- (tied weights, a child used twice) is copied once and stays shared; nothing
-- is shared with the original. Functions in fields are shared (they are code).
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local odict = require("ltorch.odict")

local clone_module

-- a copy of value v; memo maps what was copied to its copy
local function copy(v, memo)
  if torch.is_tensor(v) then
    local c = memo[v]
    if c == nil then
      c = v:clone()
      if v:requires_grad() then c:requires_grad(true) end
      memo[v] = c
    end
    return c
  end
  if type(v) ~= "table" then return v end
  if memo[v] ~= nil then return memo[v] end
  if base.is_module(v) then return clone_module(v, memo) end
  if odict.is(v) then
    local out = odict.new()
    memo[v] = out
    for k, x in pairs(v) do out[copy(k, memo)] = copy(x, memo) end
    return out
  end
  local out = {}
  memo[v] = out
  for k, x in next, v do rawset(out, copy(k, memo), copy(x, memo)) end
  return setmetatable(out, getmetatable(v))
end

clone_module = function(m, memo)
  if memo[m] ~= nil then return memo[m] end
  local c = base.contents(m)
  local new = c.class.raw()
  memo[m] = new
  local out = {training = c.training, fields = {}, parameters = {}, buffers = {}, children = {}}
  for k, v in pairs(c.fields) do out.fields[k] = copy(v, memo) end
  for i, p in ipairs(c.parameters) do out.parameters[i] = {p[1], copy(p[2], memo)} end
  for i, b in ipairs(c.buffers) do out.buffers[i] = {b[1], copy(b[2], memo), b[3]} end
  for i, ch in ipairs(c.children) do out.children[i] = {ch[1], clone_module(ch[2], memo)} end
  return base.restore(new, out)
end

-- clone(m) -> a deep copy of module m
return function(m)
  if not base.is_module(m) then
    error("bad argument #1 to 'clone' (module expected, got " .. type(m) .. ")", 2)
  end
  return clone_module(m, {})
end
