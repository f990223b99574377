-- ModuleDict.lua: modules by name (PyTorch's nn.ModuleDict). d.name or
-- d["name"] reads a child; pairs(d) visits them in insertion order. Built
-- from an odict (its order) or a plain table (keys sorted).
local odict = require("ltorch.odict")
local base = require("ltorch.nn.module")
local list = require("ltorch.nn.Sequential").list

return base.module("ModuleDict", {
  -- ModuleDict([table or odict of name -> module])
  initialize = function(self, ms)
    if ms == nil then return end
    if type(ms) ~= "table" then
      base.raise("bad argument #1 to 'ModuleDict' (table of modules expected, got " .. type(ms) .. ")")
    end
    local keys = odict.keys(ms)
    if not odict.is(ms) then table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
    for _, k in ipairs(keys) do
      if not base.is_module(ms[k]) then
        base.raise(string.format("bad argument #1 to 'ModuleDict' (module expected at '%s', got %s)",
          tostring(k), type(ms[k])))
      end
      self:add_module(tostring(k), ms[k])
    end
  end,
  keys = function(self)
    return table.move(base.state_of(self).modules.names, 1, #base.state_of(self).modules.names, 1, {})
  end,
  values = function(self) return self:children() end,
  items = function(self) return self:named_children() end,
  __len = list.len,
  __pairs = list.pairs,
}, {builtin = true})
