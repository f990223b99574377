-- Embedding.lua: a lookup table (PyTorch's nn.Embedding: weight {num, dim},
-- init normal(0, 1)). Indices are 1-based, as in R torch; padding_idx too
-- (its row starts as zeros).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Embedding", {
  -- Embedding(num_embeddings, embedding_dim [, padding_idx, max_norm, norm_type = 2,
  -- scale_grad_by_freq = false, sparse = false, _weight, device, dtype]).
  -- max_norm (renormalising rows in forward) is not supported; norm_type,
  -- scale_grad_by_freq and sparse only matter for max_norm and gradients,
  -- and are recorded; _weight is used as the weight (its padding row kept).
  initialize = function(self, ...)
    local a = base.args("Embedding", {"num_embeddings", "embedding_dim", "padding_idx", "max_norm",
      "norm_type", "scale_grad_by_freq", "sparse", "_weight", "device", "dtype"}, ...)
    base.check(math.type(a.num_embeddings) == "integer" and math.type(a.embedding_dim) == "integer",
      "Embedding", "num_embeddings and embedding_dim must be integers")
    if a.max_norm ~= nil then base.fail("Embedding", "max_norm is not supported") end
    self.num_embeddings, self.embedding_dim = a.num_embeddings, a.embedding_dim
    self.norm_type = a.norm_type or 2.0
    self.scale_grad_by_freq = a.scale_grad_by_freq == true
    self.sparse = a.sparse == true
    local w = a._weight
    if w ~= nil then
      if not torch.is_tensor(w) or w:dim() ~= 2 or w:size(1) ~= a.num_embeddings
          or w:size(2) ~= a.embedding_dim then
        base.fail("Embedding", "_weight must be a tensor of shape {%d, %d}", a.num_embeddings, a.embedding_dim)
      end
    else
      w = torch.randn(a.num_embeddings, a.embedding_dim)
    end
    if a.padding_idx ~= nil then
      local p = a.padding_idx
      base.check(math.type(p) == "integer", "Embedding", "padding_idx must be an integer")
      if p < 0 then p = p + a.num_embeddings + 1 end
      base.check(p >= 1 and p <= a.num_embeddings, "Embedding", "padding_idx must be within num_embeddings")
      self.padding_idx = p
      if a._weight == nil then w[p]:fill(0) end
    end
    self.weight = torch.nn.Parameter(w)
    if a.dtype ~= nil then self:to(a.dtype) end
    if a.device ~= nil then self:to(a.device) end
  end,
  forward = function(self, indices)
    return torch.embedding(self.weight, indices)
  end,
  extra_repr = function(self)
    local s = string.format("%d, %d", self.num_embeddings, self.embedding_dim)
    if self.padding_idx then s = s .. ", padding_idx=" .. self.padding_idx end
    if self.norm_type ~= nil and self.norm_type ~= 2 then s = s .. ", norm_type=" .. base.pyrepr(self.norm_type) end
    if self.scale_grad_by_freq then s = s .. ", scale_grad_by_freq=True" end
    if self.sparse then s = s .. ", sparse=True" end
    return s
  end,
}, {builtin = true})
