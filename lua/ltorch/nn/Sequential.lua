-- Sequential.lua: a chain of modules run in order (PyTorch's nn.Sequential).
-- Children are named "0", "1", ... as in PyTorch, so state dict keys match
-- (`features.0.weight`); indexing from Lua is 1-based: seq[1] is child "0".
-- #seq is the number of children; ipairs(seq) and pairs(seq) visit them.
local odict = require("ltorch.odict")
local base = require("ltorch.nn.module")

local list = {}

-- the string name of 1-based position i (negative counts from the end)
function list.name(self, i, n)
  n = n or #base.state_of(self).modules.names
  if i < 0 then i = i + n + 1 end
  if math.type(i) ~= "integer" or i < 1 or i > n then return nil end
  return base.state_of(self).modules.names[i]
end

function list.getitem(self, i) local n = list.name(self, i) return n and base.state_of(self).modules.map[n] end
function list.setitem(self, i, m)
  local st = base.state_of(self)
  local n = #st.modules.names
  if math.type(i) == "integer" and i == n + 1 then
    return base.newindex(self, tostring(n), m)
  end
  local name = list.name(self, i, n)
  if not name then error(string.format("index %s out of range (size %d)", tostring(i), n), 2) end
  if not base.is_module(m) then error("only modules can be stored in a " .. self:class_name(), 2) end
  st.modules.map[name] = m
end
function list.len(self) return #base.state_of(self).modules.names end
function list.pairs(self)
  local st = base.state_of(self)
  local i = 0
  return function()
    i = i + 1
    local n = st.modules.names[i]
    if n ~= nil then return n, st.modules.map[n] end
  end, self, nil
end
-- add modules given as arguments, or an odict / table of name -> module
function list.fill(self, ...)
  local first = ...
  if select("#", ...) == 1 and type(first) == "table" and not base.is_module(first) then
    if odict.is(first) then
      for k, m in pairs(first) do
        if not base.is_module(m) then
          base.raise(string.format("bad argument #1 to '%s' (module expected at '%s', got %s)",
            self:class_name(), tostring(k), type(m)))
        end
        self:add_module(k, m)
      end
    else
      -- a plain table must be a list: its other keys would have no order
      local n = #first
      for k in pairs(first) do
        if math.type(k) ~= "integer" or k < 1 or k > n then
          base.raise(string.format("bad argument #1 to '%s' (list of modules or odict of name -> module " ..
            "expected; a plain table's names have no order, got key %s)", self:class_name(),
            type(k) == "string" and "'" .. k .. "'" or tostring(k)))
        end
      end
      for i, m in ipairs(first) do
        if not base.is_module(m) then
          base.raise(string.format("bad argument #1 to '%s' (module expected at [%d], got %s)",
            self:class_name(), i, type(m)))
        end
        self:add_module(tostring(i - 1), m)
      end
    end
    return
  end
  for i = 1, select("#", ...) do
    local m = select(i, ...)
    if not base.is_module(m) then
      base.raise(string.format("bad argument #%d to '%s' (module expected, got %s)", i,
        self:class_name(), type(m)))
    end
    self:add_module(tostring(i - 1), m)
  end
end
function list.append(self, m)
  if not base.is_module(m) then error("bad argument #1 to 'append' (module expected, got " .. type(m) .. ")", 2) end
  self:add_module(tostring(#base.state_of(self).modules.names), m)
  return self
end
function list.extend(self, ms)
  for _, m in ipairs(ms) do list.append(self, m) end
  return self
end
-- list.methods(t) -> t with the methods every list of modules has (append,
-- extend, indexing, #, pairs) added
function list.methods(t)
  t.append, t.extend = list.append, list.extend
  t.__getitem, t.__setitem, t.__len, t.__pairs = list.getitem, list.setitem, list.len, list.pairs
  return t
end

local Sequential = base.module("Sequential", list.methods({
  -- Sequential(m1, m2, ...) or Sequential(odict of name -> module)
  initialize = function(self, ...) list.fill(self, ...) end,
  forward = function(self, x, ...)
    local st = base.state_of(self)
    for i, n in ipairs(st.modules.names) do
      if i == 1 then x = st.modules.map[n](x, ...) else x = st.modules.map[n](x) end
    end
    return x
  end,
}), {builtin = true})

Sequential.list = list
return Sequential
