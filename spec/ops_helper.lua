-- ops_helper: shared by ops_spec and nnfunc_spec. Builds tensors from the
-- PyTorch fixture records and compares results with PyTorch's.
local torch = require("ltorch")
local assert = require("luassert")

local H = {}
H.E = dofile("spec/fixtures/ops_expected.lua")

function H.T(s)
  if s == nil then return nil end
  return torch.tensor(s.data, {dtype = s.dtype}):reshape(s.shape)
end

function H.same(got, want, tol)
  want = H.T(want)
  assert.are.same(want:size(), got:size())
  assert.are.equal(want:dtype(), got:dtype())
  assert.is_true(torch.allclose(got, want, tol or 1e-5, tol or 1e-5),
    "values differ from PyTorch's:\n" .. tostring(got) .. "\nexpected\n" .. tostring(want))
end

return H
