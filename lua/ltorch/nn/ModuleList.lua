-- ModuleList.lua: a list of modules, registered as children "0", "1", ...
-- (PyTorch's nn.ModuleList); l[1] is child "0". It has no forward.
local base = require("ltorch.nn.module")
local list = require("ltorch.nn.Sequential").list

return base.module("ModuleList", list.methods({
  -- ModuleList([list of modules]) or ModuleList({modules = list})
  initialize = function(self, ...)
    local ms = base.args("ModuleList", {"modules"}, ...).modules
    if ms ~= nil then list.fill(self, ms) end
  end,
  -- insert(i, m): puts m at 1-based position i, renumbering the ones after it
  insert = function(self, i, m)
    local st = base.state_of(self)
    local ms = {}
    for _, n in ipairs(st.modules.names) do ms[#ms + 1] = st.modules.map[n] end
    local n = #ms
    if i < 0 then i = i + n + 1 end
    if i < 1 then i = 1 elseif i > n + 1 then i = n + 1 end
    table.insert(ms, i, m)
    for j = 1, n do self[tostring(j - 1)] = nil end
    for j, x in ipairs(ms) do self:add_module(tostring(j - 1), x) end
    return self
  end,
}), {builtin = true})
