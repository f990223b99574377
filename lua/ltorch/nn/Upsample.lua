-- Upsample.lua: resizing by size or scale_factor (PyTorch's nn.Upsample):
-- modes nearest, linear, bilinear, bicubic, trilinear (and what
-- F.interpolate takes). scale_factor is kept as floats, as PyTorch. The
-- math is F.interpolate.
local base = require("ltorch.nn.module")
local pyrepr = base.pyrepr

local F = require("ltorch.nn.functional")

return base.module("Upsample", {
  -- Upsample([size, scale_factor, mode = "nearest", align_corners,
  -- recompute_scale_factor]) or a trailing table of those
  initialize = function(self, ...)
    local a = base.args("Upsample", {"size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"}, ...)
    local size, sf = a.size, a.scale_factor
    base.check(size == nil or math.type(size) == "integer" or type(size) == "table", "Upsample",
      "size must be an integer or a list of integers, got %s", type(size))
    if type(size) == "table" then
      local copy = {}
      for i, v in ipairs(size) do
        base.check(math.type(v) == "integer", "Upsample", "size must be an integer or a list of integers")
        copy[i] = v
      end
      size = copy
    end
    if type(sf) == "table" then
      local copy = {}
      for i, v in ipairs(sf) do
        base.check(type(v) == "number", "Upsample", "scale_factor must be a number or a list of numbers")
        copy[i] = v + 0.0
      end
      sf = copy
    elseif type(sf) == "number" then
      sf = sf ~= 0 and sf + 0.0 or nil   -- PyTorch: float(scale_factor) if scale_factor else None
    else
      base.check(sf == nil, "Upsample", "scale_factor must be a number or a list of numbers, got %s", type(sf))
    end
    local mode = a.mode or "nearest"
    base.check(type(mode) == "string", "Upsample", "mode must be a string, got %s", type(mode))
    self.size, self.scale_factor, self.mode = size, sf, mode
    self.align_corners = a.align_corners
    self.recompute_scale_factor = a.recompute_scale_factor
  end,
  forward = function(self, x)
    return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
      self.recompute_scale_factor)
  end,
  extra_repr = function(self)
    local s
    if self.scale_factor ~= nil then s = "scale_factor=" .. pyrepr(self.scale_factor)
    else s = "size=" .. pyrepr(self.size) end
    return s .. ", mode=" .. self.mode
  end,
}, {builtin = true})
