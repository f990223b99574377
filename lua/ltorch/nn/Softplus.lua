-- Softplus.lua: log(1 + exp(beta * x)) / beta, and x itself where
-- beta * x > threshold (PyTorch's nn.Softplus). The math is F.softplus.
local base = require("ltorch.nn.module")

local F = require("ltorch.nn.functional")

return base.module("Softplus", {
  -- Softplus([beta = 1, threshold = 20])
  initialize = function(self, ...)
    local a = base.args("Softplus", {"beta", "threshold"}, ...)
    local beta, threshold = a.beta or 1, a.threshold or 20
    base.check(type(beta) == "number", "Softplus", "beta must be a number, got %s", type(beta))
    base.check(type(threshold) == "number", "Softplus", "threshold must be a number, got %s", type(threshold))
    self.beta, self.threshold = beta, threshold
  end,
  forward = function(self, x) return F.softplus(x, self.beta, self.threshold) end,
  extra_repr = function(self)
    return "beta=" .. base.pyrepr(self.beta) .. ", threshold=" .. base.pyrepr(self.threshold)
  end,
}, {builtin = true})
