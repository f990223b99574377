-- LogSoftmax.lua: log(softmax(x)) along dim (1-based, negative counts from
-- the end), PyTorch's nn.LogSoftmax. Without a dim, PyTorch's legacy choice:
-- dim 1 for 0-, 1- and 3-D inputs, else dim 2. The math is F.log_softmax.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("LogSoftmax", {
  -- LogSoftmax([dim])
  initialize = function(self, ...)
    local a = base.args("LogSoftmax", {"dim"}, ...)
    if a.dim ~= nil and math.type(a.dim) ~= "integer" then
      base.raise("bad argument #1 to 'LogSoftmax' (dim must be an integer, got " .. type(a.dim) .. ")")
    end
    self.dim = a.dim
  end,
  forward = function(self, x)
    local dim = self.dim
    if dim == nil then
      local n = x:dim()
      dim = (n == 0 or n == 1 or n == 3) and 1 or 2
    end
    return F.log_softmax(x, dim)
  end,
  extra_repr = function(self) return "dim=" .. (self.dim == nil and "None" or tostring(self.dim)) end,
}, {builtin = true})
