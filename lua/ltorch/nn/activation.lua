-- activation.lua: what the element-wise activation layers with an inplace
-- flag share (ReLU, ReLU6, SiLU, Mish, Hardswish, Hardsigmoid, ELU,
-- LeakyReLU): the constructor, which accepts and records inplace (the
-- result is always a new tensor) and at most one number option, the
-- forward and the repr. Not a class; the layer files use it.
local base = require("ltorch.nn.module")

local M = {}

-- M.inplace(name, forward [, show_inplace = true]) -> the class
-- name([inplace = false]) with the method forward (the layer file's, so
-- that its errors name the math it calls). The repr is "inplace=True" when
-- set, unless show_inplace is false (PyTorch's Hardswish and Hardsigmoid
-- do not show it).
function M.inplace(name, forward, show_inplace)
  return base.module(name, {
    initialize = function(self, ...)
      local a = base.args(name, {"inplace"}, ...)
      self.inplace = a.inplace == true
    end,
    forward = forward,
    extra_repr = show_inplace ~= false
      and function(self) return self.inplace and "inplace=True" or "" end or nil,
  }, {builtin = true})
end

-- M.scalar(name, option, default, forward) -> the class
-- name([option = default, inplace = false]) with option a number (the
-- field self[option]) and the method forward, as M.inplace; the repr is
-- "option=v[, inplace=True]"
function M.scalar(name, option, default, forward)
  return base.module(name, {
    initialize = function(self, ...)
      local a = base.args(name, {option, "inplace"}, ...)
      local v = a[option] or default
      base.check(type(v) == "number", name, "%s must be a number, got %s", option, type(v))
      self[option] = v
      self.inplace = a.inplace == true
    end,
    forward = forward,
    extra_repr = function(self)
      return option .. "=" .. base.pyrepr(self[option]) .. (self.inplace and ", inplace=True" or "")
    end,
  }, {builtin = true})
end

return M
