-- Embedding.lua: a lookup table (PyTorch's nn.Embedding: weight {num, dim},
-- init normal(0, 1)). Indices are 1-based, as in R torch; padding_idx too
-- (its row starts as zeros).
local torch = require("ltorch")
local base = require("ltorch.nn.module")

return base.module("Embedding", {
  -- Embedding(num_embeddings, embedding_dim [, padding_idx])
  initialize = function(self, ...)
    local a = base.args({"num_embeddings", "embedding_dim", "padding_idx"}, ...)
    assert(math.type(a.num_embeddings) == "integer" and math.type(a.embedding_dim) == "integer",
      "Embedding: num_embeddings and embedding_dim must be integers")
    self.num_embeddings, self.embedding_dim = a.num_embeddings, a.embedding_dim
    local w = torch.randn(a.num_embeddings, a.embedding_dim)
    if a.padding_idx ~= nil then
      local p = a.padding_idx
      if p < 0 then p = p + a.num_embeddings + 1 end
      assert(p >= 1 and p <= a.num_embeddings, "Embedding: padding_idx must be within num_embeddings")
      self.padding_idx = p
      w[p]:fill(0)
    end
    self.weight = torch.nn.Parameter(w)
  end,
  forward = function(self, indices)
    return torch.embedding(self.weight, indices)
  end,
  extra_repr = function(self)
    local s = string.format("%d, %d", self.num_embeddings, self.embedding_dim)
    if self.padding_idx then s = s .. ", padding_idx=" .. self.padding_idx end
    return s
  end,
}, {builtin = true})
