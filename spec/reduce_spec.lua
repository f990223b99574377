-- reduce_spec.lua: reductions (sum mean prod var std norm any all amax amin
-- logsumexp max min argmax argmin), scans (cumsum cumprod), sorting (sort
-- argsort topk) and softmax/log_softmax against PyTorch 1.13 on the same
-- inputs: one Python process (setup) makes every input with a fixed seed and
-- saves them with PyTorch's results; ltorch runs the same calls (1-based
-- dims and indices, lists of dims, keepdim, dtypes, non-contiguous views,
-- empty dims, nan, ties) and must match to rtol 1e-5 (integers and bools
-- exactly, dtypes too). PyTorch's errors for bad calls are checked beside
-- ltorch's exact messages.
local torch = require("ltorch")
local H = require("nn_helpers")

-- Lua dims (1-based, negative from the end) as Python's
local function pydims(d)
  if type(d) == "number" then return tostring(d > 0 and d - 1 or d) end
  local t = {}
  for i, v in ipairs(d) do t[i] = tostring(v > 0 and v - 1 or v) end
  return "[" .. table.concat(t, ", ") .. "]"
end
local function pybool(b) return b and "True" or "False" end

-- the inputs: PyTorch makes the bases; both sides take the same views
local PY_INPUTS = [==[
import torch, math
torch.manual_seed(0)
B = {}
B['f32'] = torch.randn(4, 3, 5)
B['f64'] = torch.randn(3, 5, 4, dtype=torch.float64)
B['i64'] = torch.randint(-9, 10, (4, 3, 5))
B['i32'] = torch.randint(-9, 10, (4, 5, 3), dtype=torch.int32)
B['bool'] = torch.rand(4, 3, 5) > 0.5
B['u8'] = torch.randint(0, 3, (4, 5), dtype=torch.uint8)
B['f16'] = torch.randn(4, 6).half()
B['c64'] = torch.randn(3, 4, dtype=torch.complex64)
n = torch.randn(3, 6)
n[0, 2] = n[1, 0] = n[1, 4] = float('nan')
n[2, 1] = float('inf')
n[2, 3] = -float('inf')
B['nan'] = n
B['ties'] = torch.randint(0, 3, (4, 3, 7)).float()
B['ities'] = torch.randint(0, 3, (5, 8))
B['big'] = torch.rand(200000) * 1000 + 1
B['bigi'] = torch.tensor([2**62, 2**62, 7, -3])
B['empty'] = torch.zeros(0, 3)
B['scalar'] = torch.tensor(2.5)
B['ninf'] = torch.tensor([[-float('inf')] * 3, [1.0, 2.0, 3.0]])
w = torch.randn(4, 37) * 4        # rows longer than the 8-lane kernels: nan in a lane and in the tail
w[1, 3] = w[2, 35] = float('nan')
w[3, 9] = float('inf')
B['wide'] = w
X = dict(B)
X['f32nc'] = B['f32'].permute(2, 0, 1)
X['f64nc'] = B['f64'].transpose(0, 2)
X['i64nc'] = B['i64'].permute(1, 2, 0)
X['i32nc'] = B['i32'].transpose(1, 2)
X['boolnc'] = B['bool'].transpose(0, 1)
X['nannc'] = B['nan'].t()
X['tiesnc'] = B['ties'].transpose(0, 1)
NATIVE_LIST = {'sum', 'mean', 'amax', 'amin', 'logsumexp', 'var', 'std', 'norm'}
def red(x, op, dims=None, keepdim=False, **kw):
    f = getattr(torch, op)
    if dims is None:
        return f(x, None, **kw) if 'correction' in kw else f(x, **kw)
    if isinstance(dims, int) or op in NATIVE_LIST:
        return f(x, dims, keepdim=keepdim, **kw)
    ds = sorted(d % x.dim() for d in dims)
    for d in reversed(ds):
        x = f(x, d, keepdim=True, **kw)
    if not keepdim:
        for d in reversed(ds):
            x = x.squeeze(d)
    return x
def one(t):                       # 1-based indices
    return t + 1
R = {}
]==]

local function views(B)
  local V = {}
  for k, v in pairs(B) do V[k] = v end
  V.f32nc = B.f32:permute(3, 1, 2)
  V.f64nc = B.f64:transpose(1, 3)
  V.i64nc = B.i64:permute(2, 3, 1)
  V.i32nc = B.i32:transpose(2, 3)
  V.boolnc = B.bool:transpose(1, 2)
  V.nannc = B.nan:t()
  V.tiesnc = B.ties:transpose(1, 2)
  return V
end

-- {name, input, Python expression (x: the input), Lua function of x,
-- results}: results 1 (a tensor) or 2 (values and 1-based indices, saved as
-- name.v and name.i)
local CASES = {}
local function case(name, input, py, lua, nres)
  assert(not CASES[name], name)
  CASES[#CASES + 1] = {name = name, input = input, py = py, lua = lua, nres = nres or 1}
  CASES[name] = true
end

-- dims to try by rank: {label, Lua dims or nil, keepdim}
local DIMS = {
  [3] = {{"all"}, {"d2", 2, false}, {"dneg_keep", -1, true}, {"list", {1, 3}, false},
         {"list_neg_keep", {3, -3}, true}, {"list_all", {1, 2, 3}, false}, {"d1_keep", 1, true}},
  [2] = {{"all"}, {"d1", 1, false}, {"dneg_keep", -1, true}, {"list_keep", {1, 2}, true}},
  [1] = {{"all"}, {"d1", 1, false}},
  [0] = {{"all"}, {"d1", 1, false}, {"dneg_keep", -1, true}},
}
local RANK = {f32nc = 3, f64nc = 3, i64nc = 3, i32nc = 3, boolnc = 3, u8 = 2, f16 = 2, c64 = 2,
              nan = 2, nannc = 2, wide = 2, ties = 3, tiesnc = 3, ities = 2, big = 1, bigi = 1, empty = 2,
              scalar = 0, ninf = 2}

-- reductions over dims: op(x [, dims, keepdim] [, extra]) on each input
local function reductions(op, inputs, extra)
  for _, input in ipairs(inputs) do
    for _, d in ipairs(DIMS[RANK[input]]) do
      local label, dims, keep = d[1], d[2], d[3]
      if not (op == "logsumexp" and dims == nil) then
        local pyx = extra and extra.py or ""
        local py, lua
        if dims == nil then
          py = string.format("red(x, %q%s)", op, pyx)
          lua = function(x) if extra then return x[op](x, extra.lua) end return x[op](x) end
        else
          py = string.format("red(x, %q, %s, %s%s)", op, pydims(dims), pybool(keep), pyx)
          lua = function(x)
            if extra then
              local o = {keepdim = keep}
              for k, v in pairs(extra.lua) do o[k] = v end
              return x[op](x, dims, o)
            end
            if op == "var" or op == "std" then return x[op](x, dims, {keepdim = keep}) end  -- (dim, unbiased, keepdim)
            return x[op](x, dims, keep)
          end
        end
        case(op .. (extra and extra.tag or "") .. "_" .. input .. "_" .. label, input, py, lua)
      end
    end
  end
end

reductions("sum", {"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "u8", "f16", "nan", "big", "bigi", "empty", "scalar", "c64"})
reductions("sum", {"i32nc", "f32nc"}, {tag = "_f64", py = ", dtype=torch.float64", lua = {dtype = "float64"}})
reductions("sum", {"f32nc"}, {tag = "_i64", py = ", dtype=torch.int64", lua = {dtype = "int64"}})
reductions("mean", {"f32nc", "f64nc", "f16", "nan", "empty", "scalar", "c64"})
reductions("mean", {"i64nc"}, {tag = "_f64", py = ", dtype=torch.float64", lua = {dtype = "float64"}})
reductions("prod", {"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "bigi", "empty", "c64"})
reductions("prod", {"f32nc"}, {tag = "_f64", py = ", dtype=torch.float64", lua = {dtype = "float64"}})
reductions("var", {"f32nc", "f64nc", "nan", "c64", "scalar"})
reductions("var", {"f32nc"}, {tag = "_biased", py = ", unbiased=False", lua = {unbiased = false}})
reductions("var", {"f64nc"}, {tag = "_corr2", py = ", correction=2", lua = {correction = 2}})
reductions("std", {"f32nc", "f64nc", "c64", "empty"})
reductions("std", {"f32nc"}, {tag = "_corr0", py = ", correction=0", lua = {correction = 0}})
reductions("any", {"boolnc", "tiesnc", "f64nc", "i64nc", "i32nc", "u8", "c64", "empty", "nan"})
reductions("all", {"boolnc", "tiesnc", "f64nc", "i64nc", "i32nc", "u8", "c64", "empty", "nan"})
reductions("amax", {"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "nan", "f16", "tiesnc", "scalar"})
reductions("amin", {"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "nan", "f16", "tiesnc"})
reductions("logsumexp", {"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "nan", "ninf", "empty"})

-- norm(p, dim, keepdim): PyTorch's positional order
local NORM_P = {{"p2", 2, "2"}, {"p1", 1, "1"}, {"pinf", math.huge, "math.inf"}, {"pninf", -math.huge, "-math.inf"},
                {"p0", 0, "0"}, {"p3", 3, "3"}, {"fro", "fro", "'fro'"}, {"p05", 0.5, "0.5"}}
for _, input in ipairs({"f32nc", "f64nc", "c64", "nan"}) do
  for _, p in ipairs(NORM_P) do
    for _, d in ipairs(DIMS[RANK[input]]) do
      local label, dims, keep = d[1], d[2], d[3]
      if dims == nil then
        case("norm_" .. p[1] .. "_" .. input .. "_all", input, "x.norm(" .. p[3] .. ")",
          function(x) return x:norm(p[2]) end)
      elseif not (p[2] == "fro" and type(dims) == "table" and #dims > 2) then
        case("norm_" .. p[1] .. "_" .. input .. "_" .. label, input,
          string.format("x.norm(%s, %s, %s)", p[3], pydims(dims), pybool(keep)),
          function(x) return x:norm(p[2], dims, keep) end)
      end
    end
  end
end
case("norm_default_f32nc", "f32nc", "x.norm()", function(x) return x:norm() end)
case("norm_dtype_f32nc", "f32nc", "x.norm(2, 1, dtype=torch.float64)",
  function(x) return x:norm(2, 2, {dtype = "float64"}) end)
case("norm_dtype_i64nc", "i64nc", "torch.norm(x, 1, dtype=torch.float64)",
  function(x) return torch.norm(x, 1, {dtype = "float64"}) end)
case("norm_inf_empty", "empty", "x.norm(math.inf, 0)", function(x) return x:norm(math.huge, 1) end)
case("norm_opts_f32nc", "f32nc", "x.norm(p=1, dim=[0, 1], keepdim=True)",
  function(x) return x:norm({p = 1, dim = {1, 2}, keepdim = true}) end)

-- the (unbiased) overload var(input, unbiased) and the keyword forms
case("var_ubool_f32nc", "f32nc", "x.var(False)", function(x) return x:var(false) end)
case("std_ubool_f64nc", "f64nc", "x.std(True)", function(x) return x:std(true) end)
case("var_pos_f32nc", "f32nc", "x.var(1, False, True)", function(x) return x:var(2, false, true) end)
case("std_opts_f32nc", "f32nc", "torch.std(x, dim=[0, 2], correction=0, keepdim=True)",
  function(x) return torch.std(x, {dim = {1, 3}, correction = 0, keepdim = true}) end)
case("var_corr_all_f32nc", "f32nc", "torch.var(x, None, correction=3)",
  function(x) return x:var({correction = 3}) end)
case("var_corr_big_f64nc", "f64nc", "torch.var(x, 0, correction=9)",
  function(x) return x:var(1, {correction = 9}) end)

-- max/min with a dim: values and 1-based indices (the first of ties, the
-- first nan); without: the value
for _, op in ipairs({"max", "min"}) do
  for _, input in ipairs({"f32nc", "f64nc", "tiesnc", "i64nc", "i32nc", "boolnc", "nannc", "ities", "f16", "scalar"}) do
    case(op .. "_" .. input .. "_all", input, "x." .. op .. "()", function(x) return x[op](x) end)
    local r = RANK[input]
    local dims = r == 0 and {1, -1} or r == 2 and {1, -1} or {1, 2, -1}
    for _, d in ipairs(dims) do
      for _, keep in ipairs({false, true}) do
        local py = string.format("(lambda r: (r.values, one(r.indices)))(x.%s(%s, %s))", op, pydims(d), pybool(keep))
        case(string.format("%s_%s_d%d%s", op, input, d, keep and "_keep" or ""), input, py,
          function(x) return x[op](x, d, keep) end, 2)
      end
    end
  end
  case(op .. "_opts_f32nc", "f32nc", string.format("(lambda r: (r.values, one(r.indices)))(torch.%s(x, dim=1, keepdim=True))", op),
    function(x) return torch[op](x, {dim = 2, keepdim = true}) end, 2)
end
case("max_other", "f32nc", "torch.max(x, x.flip(0))", function(x) return torch.max(x, x:contiguous():index(1, torch.tensor({5, 4, 3, 2, 1}))) end)
case("min_empty_rows", "empty", "(lambda r: (r.values, one(r.indices)))(x.min(1))", function(x) return x:min(2) end, 2)

for _, op in ipairs({"argmax", "argmin"}) do
  for _, input in ipairs({"f32nc", "f64nc", "tiesnc", "i64nc", "i32nc", "nannc", "ities", "scalar"}) do
    case(op .. "_" .. input .. "_all", input, "one(x." .. op .. "())", function(x) return x[op](x) end)
    case(op .. "_" .. input .. "_all_keep", input, "one(x." .. op .. "(keepdim=True))",
      function(x) return x[op](x, nil, true) end)
    local r = RANK[input]
    local dims = r == 0 and {1} or r == 2 and {1, -1} or {1, 2, -1}
    for _, d in ipairs(dims) do
      case(op .. "_" .. input .. "_d" .. d, input, string.format("one(x.%s(%s))", op, pydims(d)),
        function(x) return x[op](x, d) end)
      case(op .. "_" .. input .. "_d" .. d .. "_keep", input, string.format("one(x.%s(%s, True))", op, pydims(d)),
        function(x) return torch[op](x, {dim = d, keepdim = true}) end)
    end
  end
end

-- scans
for _, op in ipairs({"cumsum", "cumprod"}) do
  for _, input in ipairs({"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "c64", "nannc", "scalar", "empty", "bigi"}) do
    local r = RANK[input]
    for _, d in ipairs(r == 0 and {1, -1} or r == 1 and {1} or r == 2 and {1, -1} or {1, 2, -1}) do
      case(op .. "_" .. input .. "_d" .. d, input, string.format("x.%s(%s)", op, pydims(d)),
        function(x) return x[op](x, d) end)
    end
  end
  case(op .. "_f64_f32nc", "f32nc", "x." .. op .. "(1, dtype=torch.float64)",
    function(x) return x[op](x, 2, {dtype = "float64"}) end)
  case(op .. "_i32_i32nc", "i32nc", "x." .. op .. "(2, dtype=torch.int32)",
    function(x) return torch[op](x, 3, {dtype = "int32"}) end)
  case(op .. "_f32_i64nc", "i64nc", "x." .. op .. "(-1, dtype=torch.float32)",
    function(x) return x[op](x, {dim = -1, dtype = "float32"}) end)
end

-- sorting: always stable (PyTorch's stable=True); nan sorts as the largest
local function sortcases(op, inputs)
  for _, input in ipairs(inputs) do
    local r = RANK[input]
    local dims = r == 0 and {-1} or r == 2 and {1, -1} or {1, 2, -1}
    for _, d in ipairs(dims) do
      for _, desc in ipairs({false, true}) do
        local py = string.format("x.sort(dim=%s, descending=%s, stable=True)", pydims(d), pybool(desc))
        local name = string.format("%s_%s_d%d%s", op, input, d, desc and "_desc" or "")
        if op == "sort" then
          case(name, input, "(lambda r: (r.values, one(r.indices)))(" .. py .. ")",
            function(x) return x:sort(d, desc, {stable = true}) end, 2)
        else
          case(name, input, "one(" .. py .. ".indices)", function(x) return x:argsort(d, desc) end)
        end
      end
    end
  end
end
sortcases("sort", {"f32nc", "tiesnc", "ities", "i32nc", "boolnc", "nan", "nannc", "f16", "scalar"})
sortcases("argsort", {"f32nc", "f64nc", "tiesnc", "i64nc", "nannc"})
case("sort_default_f32nc", "f32nc", "(lambda r: (r.values, one(r.indices)))(x.sort())",
  function(x) return x:sort() end, 2)
case("sort_desc_opts_f64nc", "f64nc", "(lambda r: (r.values, one(r.indices)))(torch.sort(x, dim=0, descending=True))",
  function(x) return torch.sort(x, {dim = 1, descending = true}) end, 2)
case("sort_empty", "empty", "(lambda r: (r.values, one(r.indices)))(x.sort(0))", function(x) return x:sort(1) end, 2)

-- topk of distinct values as PyTorch; of ties, the first of the tied (as
-- the stable sort): PyTorch leaves which tied index comes back unspecified
for _, c in ipairs({{"f32nc", 2, -1, true}, {"f32nc", 3, 1, false}, {"f64nc", 4, 2, true}, {"i64nc", 1, 3, false},
                    {"nannc", 2, -1, true}, {"nannc", 3, 1, false}, {"f32nc", 0, 2, true}, {"scalar", 1, -1, true}}) do
  local input, k, d, largest = c[1], c[2], c[3], c[4]
  case(string.format("topk_%s_k%d_d%d%s", input, k, d, largest and "" or "_smallest"), input,
    string.format("(lambda r: (r.values, one(r.indices)))(x.topk(%d, %s, %s))", k, pydims(d), pybool(largest)),
    function(x) return x:topk(k, d, largest) end, 2)
end
for _, c in ipairs({{"tiesnc", 3, -1, true}, {"tiesnc", 2, 1, false}, {"ities", 5, 2, true}}) do
  local input, k, d, largest = c[1], c[2], c[3], c[4]
  case(string.format("topk_%s_k%d_d%d%s", input, k, d, largest and "" or "_smallest"), input,
    string.format("(lambda r, s: (torch._assert(torch.equal(r.values, s.values.narrow(%s, 0, %d)), 'topk'), " ..
                  "(r.values, one(s.indices.narrow(%s, 0, %d))))[1])(x.topk(%d, %s, %s), " ..
                  "x.sort(dim=%s, descending=%s, stable=True))",
                  pydims(d), k, pydims(d), k, k, pydims(d), pybool(largest), pydims(d), pybool(largest)),
    function(x) return torch.topk(x, k, {dim = d, largest = largest, sorted = true}) end, 2)
end

-- softmax and log_softmax (moved here from lops.c)
for _, op in ipairs({"softmax", "log_softmax"}) do
  for _, input in ipairs({"f32nc", "f64nc", "nannc", "ninf", "wide", "scalar"}) do
    local r = RANK[input]
    for _, d in ipairs(r == 0 and {1} or r == 2 and {1, -1} or {1, 2, -1}) do
      case(op .. "_" .. input .. "_d" .. d, input, string.format("torch.%s(x, %s)", op, pydims(d)),
        function(x) return torch[op](x, d) end)
    end
  end
  case(op .. "_f64_f32nc", "f32nc", "torch." .. op .. "(x, 1, dtype=torch.float64)",
    function(x) return x[op](x, 2, {dtype = "float64"}) end)
  case(op .. "_f32_i64nc", "i64nc", "torch." .. op .. "(x, 2, dtype=torch.float32)",
    function(x) return x[op](x, 3, "float32") end)
end

-- bad calls: PyTorch's must raise too; ltorch's exact messages
local ERRORS = {
  {"torch.zeros(0, 3).max()", function() return torch.zeros(0, 3):max() end,
    "calling 'max' on bad self (expected a dim to reduce for an empty tensor: max has no identity)"},
  {"torch.zeros(0, 3).amax(0)", function() return torch.zeros(0, 3):amax(1) end,
    "bad argument #1 to 'amax' (dimension 1 has size 0: amax has no identity)"},
  {"torch.zeros(0, 3).argmax()", function() return torch.argmax(torch.zeros(0, 3)) end,
    "bad argument #1 to 'argmax' (expected a dim to reduce for an empty tensor: argmax has no identity)"},
  {"torch.zeros(0, 3).min(0)", function() return torch.zeros(0, 3):min({dim = 1}) end,
    "bad option 'dim' to 'min' (dimension 1 has size 0: min has no identity)"},
  {"torch.zeros(2, 3, 4).sum(3)", function() return torch.zeros(2, 3, 4):sum(4) end,
    "bad argument #1 to 'sum' (dimension 4 out of range (expected 1 to 3, or -3 to -1))"},
  {"torch.zeros(2, 3, 4).sum([0, -3])", function() return torch.zeros(2, 3, 4):sum({1, -3}) end,
    "bad argument #1 to 'sum' (dim 1 appears multiple times in the list of dims)"},
  {"torch.tensor([1, 2]).mean()", function() return torch.tensor({1, 2}):mean() end,
    "calling 'mean' on bad self (expected a floating point or complex tensor, got int64)"},
  {"torch.tensor([1, 2]).mean(dtype=torch.int32)", function() return torch.tensor({1, 2}):mean({dtype = "int32"}) end,
    "bad option 'dtype' to 'mean' (expected a floating point or complex dtype, got int32)"},
  {"torch.tensor([1, 2]).var()", function() return torch.var(torch.tensor({1, 2})) end,
    "bad argument #1 to 'var' (expected a floating point or complex tensor, got int64)"},
  {"torch.tensor([1, 2]).norm()", function() return torch.tensor({1, 2}):norm() end,
    "calling 'norm' on bad self (expected a floating point or complex tensor, got int64)"},
  {"torch.zeros(2, 5).topk(6)", function() return torch.zeros(2, 5):topk(6) end,
    "bad argument #1 to 'topk' (k 6 out of range for dimension 2 of size 5)"},
  {"torch.zeros(2, 5).topk(-1)", function() return torch.zeros(2, 5):topk(-1) end,
    "bad argument #1 to 'topk' (k -1 out of range for dimension 2 of size 5)"},
  {"torch.zeros(2, dtype=torch.complex64).max()", function() return torch.zeros(2, {dtype = "complex64"}):max() end,
    "calling 'max' on bad self (not supported for complex tensors)"},
  {"torch.zeros(2, dtype=torch.complex64).sort()", function() return torch.zeros(2, {dtype = "complex64"}):sort() end,
    "calling 'sort' on bad self (not supported for complex tensors)"},
  {"torch.zeros(2, 3).cumsum()", function() return torch.zeros(2, 3):cumsum() end,
    "bad argument #1 to 'cumsum' (integer expected, got no value)"},
  {"torch.zeros(2, 3).logsumexp()", function() return torch.zeros(2, 3):logsumexp() end,
    "bad argument #1 to 'logsumexp' (integer or list of integers expected, got no value)"},
  {"torch.zeros(2, 3).sum(keepdims=True)", function() return torch.zeros(2, 3):sum({keepdims = true}) end,
    "bad option 'keepdims' to 'sum' (valid options: dim, keepdim, dtype)"},
  {"torch.zeros(2, 3).sum(0, 1)", function() return torch.zeros(2, 3):sum(1, 1) end,
    "bad argument #2 to 'sum' (boolean expected, got number)"},
  {"torch.zeros(2, 3).max(dim=[0, 1])", function() return torch.zeros(2, 3):max({1, 2}) end,
    "bad argument #1 to 'max' (integer expected, got table)"},
  {"torch.zeros(2, 3).std(0, True, False, True)", function() return torch.zeros(2, 3):std(1, true, false, true) end,
    "bad argument #4 to 'std' (at most 3 arguments expected: dim, unbiased, keepdim)"},
  {"torch.zeros(2, 3).var(0, True, correction=1)", function() return torch.zeros(2, 3):var(1, true, {correction = 1}) end,
    "bad option 'correction' to 'var' (give unbiased or correction, not both)"},
  {"torch.zeros(2, 3).softmax(2)", function() return torch.zeros(2, 3):softmax(3) end,
    "bad argument #1 to 'softmax' (dimension 3 out of range (expected 1 to 2, or -2 to -1))"},
}

local PY_TAIL = [==[
def raises(code):
    try:
        eval(code)
    except (RuntimeError, IndexError, TypeError, ValueError):
        return
    raise AssertionError('PyTorch did not raise: ' + code)
for code in ERRORS:
    raises(code)
out = {}
for k, v in R.items():
    if isinstance(v, tuple):
        out[k + '.v'] = v[0].contiguous()
        out[k + '.i'] = v[1].contiguous()
    else:
        out[k] = v.contiguous()
torch.save({'B': B, 'R': out}, DIR + '/reduce.pt')
]==]

local function py_source()
  local parts = {PY_INPUTS}
  for _, c in ipairs(CASES) do
    parts[#parts + 1] = string.format("x = X[%q]\nR[%q] = %s\n", c.input, c.name, c.py)
  end
  local errs = {}
  for i, e in ipairs(ERRORS) do errs[i] = string.format("%q", e[1]) end
  parts[#parts + 1] = "ERRORS = [" .. table.concat(errs, ", ") .. "]\n"
  parts[#parts + 1] = PY_TAIL
  return table.concat(parts)
end

-- complex tensors compare as {re, im} pairs
local function complex_parity(got, want, rtol, what)
  assert.are.same(want:size(), got:size(), what)
  local function flat(t)
    local out = {}
    local function rec(v)
      if type(v) == "table" and type(v[1]) == "table" then for _, x in ipairs(v) do rec(x) end
      elseif type(v) == "table" and #v == 2 and type(v[1]) == "number" and t:dim() > 0 then out[#out + 1] = v
      elseif type(v) == "table" then for _, x in ipairs(v) do rec(x) end end
    end
    local l = t:tolist()
    if t:dim() == 0 then out[1] = l else rec(l) end
    return out
  end
  local g, w = flat(got), flat(want)
  local scale = 0
  for _, v in ipairs(w) do scale = math.max(scale, math.abs(v[1]), math.abs(v[2])) end
  for i = 1, #w do
    for p = 1, 2 do
      assert(math.abs(g[i][p] - w[i][p]) <= rtol * math.max(scale, 1e-12),
        string.format("%s: element %d differs: %s vs PyTorch's %s", what, i, tostring(g[i][p]), tostring(w[i][p])))
    end
  end
end

local function parity(got, want, what)
  assert(torch.is_tensor(got), what .. ": expected a tensor, got " .. type(got))
  assert.are.equal(want:dtype(), got:dtype(), what .. ": dtype")
  if want:dtype():match("complex") then return complex_parity(got, want, 1e-5, what) end
  if not want:dtype():match("float") or want:numel() == 0 then return H.assert_parity(got, want, 1e-5, what) end
  -- nan and inf exactly where PyTorch has them, the finite values to rtol
  local gl, wl = H.flat(got:to("float64")), H.flat(want:to("float64"))
  local special = false
  for i = 1, #wl do
    local wn, gn = wl[i] ~= wl[i], gl[i] ~= gl[i]
    assert(wn == gn, what .. ": nan at element " .. i .. " differs from PyTorch's")
    if not wn and math.abs(wl[i]) == math.huge then
      assert(wl[i] == gl[i], what .. ": inf at element " .. i .. " differs from PyTorch's")
    end
    if wn or math.abs(wl[i]) == math.huge then special = true end
  end
  if not special then return H.assert_parity(got, want, 1e-5, what) end
  local scale, diff = 0, 0
  for i = 1, #wl do
    if wl[i] == wl[i] and math.abs(wl[i]) ~= math.huge then
      scale = math.max(scale, math.abs(wl[i]))
      diff = math.max(diff, math.abs(gl[i] - wl[i]))
    end
  end
  assert(diff <= 1e-5 * math.max(scale, 1e-12),
    string.format("%s: max |difference| %.3g with PyTorch's max |value| %.3g", what, diff, scale))
end

describe("reductions, scans and sorting against PyTorch", function()
  local dir, B, V, R
  setup(function()
    dir = H.tmpdir()
    H.py_fixtures(py_source(), dir)
    local f = torch.load(dir .. "/reduce.pt")
    B, R = f.B, f.R
    V = views(B)
  end)
  teardown(function() if dir then H.rmdir(dir) end end)

  it("takes the views PyTorch takes (non-contiguous inputs)", function()
    for _, k in ipairs({"f32nc", "f64nc", "i64nc", "i32nc", "boolnc", "nannc", "tiesnc"}) do
      assert.is_false(V[k]:is_contiguous(), k)
    end
    assert.are.same({5, 4, 3}, V.f32nc:size())
  end)

  local groups = {}
  for _, c in ipairs(CASES) do
    local g = c.name:match("^(%a+)")
    if g == "log" then g = "log_softmax" end
    if not groups[g] then groups[g] = {}; groups[#groups + 1] = g end
    table.insert(groups[g], c)
  end
  for _, g in ipairs(groups) do
    it(g .. " matches PyTorch (" .. #groups[g] .. " calls)", function()
      for _, c in ipairs(groups[g]) do
        local x = V[c.input]
        local ok, a, b = pcall(c.lua, x)
        if not ok then error(c.name .. ": " .. tostring(a), 0) end
        if c.nres == 1 then
          parity(a, R[c.name], c.name)
        else
          parity(a, R[c.name .. ".v"], c.name .. " values")
          parity(b, R[c.name .. ".i"], c.name .. " indices")
        end
      end
    end)
  end

  it("sums float32 exactly enough: 200,000 values as PyTorch's to 1e-7", function()
    local got, want = V.big:sum():item(), R.sum_big_all:item()
    assert.is_true(math.abs(got - want) <= 1e-7 * math.abs(want), got .. " vs " .. want)
  end)

  it("wraps int64 sums and products as PyTorch", function()
    assert.are.equal(math.mininteger + 4, V.bigi:sum():item())
    assert.are.equal(R.prod_bigi_all:item(), V.bigi:prod():item())
  end)
end)

describe("reduction calls", function()
  local x = torch.arange(24, {dtype = "float32"}):view(2, 3, 4)
  it("take positional arguments or a trailing table of options", function()
    local a = x:sum(2, true)
    assert.is_true(torch.equal(a, x:sum({dim = 2, keepdim = true})))
    assert.is_true(torch.equal(a, torch.sum(x, 2, true)))
    assert.is_true(torch.equal(a, x:sum(2, {keepdim = true})))
    assert.is_true(torch.equal(x:sum({1, 3}), x:sum({dim = {1, 3}})))
    assert.are.same({1, 3, 1}, x:sum({1, 3}, true):size())
    assert.are.equal(0, x:sum():dim())
    assert.are.equal(0, x:sum({}):dim())
    assert.are.equal("float64", x:sum({dtype = "float64"}):dtype())
  end)
  it("max and min with a dim give values and 1-based indices", function()
    local v, i = x:max(3)
    assert.are.same({{3, 7, 11}, {15, 19, 23}}, v:tolist())
    assert.are.same({{4, 4, 4}, {4, 4, 4}}, i:tolist())
    local v2, i2 = torch.tensor({3, 1, 3}):min(1)
    assert.are.equal(1, v2:item())
    assert.are.equal(2, i2:item())
    assert.are.equal(24, x:argmax():item())
    assert.are.equal(1, torch.tensor({2, 5, 5}):argmax():item() - 1)
  end)
  it("sort, argsort and topk give 1-based indices and keep ties in order", function()
    local v, i = torch.tensor({2, 1, 2, 1}):sort()
    assert.are.same({1, 1, 2, 2}, v:tolist())
    assert.are.same({2, 4, 1, 3}, i:tolist())
    local _, j = torch.tensor({2, 1, 2, 1}):sort(1, true)
    assert.are.same({1, 3, 2, 4}, j:tolist())
    assert.are.same({2, 4, 1, 3}, torch.tensor({2, 1, 2, 1}):argsort():tolist())
    local tv, ti = torch.tensor({1, 3, 3, 2}):topk(2)
    assert.are.same({3, 3}, tv:tolist())
    assert.are.same({2, 3}, ti:tolist())
  end)
  it("raise PyTorch's errors with exact messages", function()
    for _, e in ipairs(ERRORS) do
      assert.has_error(e[2], e[3])
    end
  end)
  it("say which options they take", function()
    assert.has_error(function() x:sort({reverse = true}) end,
      "bad option 'reverse' to 'sort' (valid options: dim, descending, stable)")
    assert.has_error(function() x:sum(1, {dim = 2}) end,
      "bad option 'dim' to 'sum' (given twice: as argument #1 and as an option)")
    assert.has_error(function() x:cumsum(1, {dtype = "float31"}) end,
      "bad option 'dtype' to 'cumsum' (unknown dtype 'float31')")
    assert.has_error(function() x:sum({1, keepdim = true}) end,
      "bad argument #1 to 'sum' (a list of dims holds integers only: give options in a table of their own)")
    assert.has_error(function() x:norm("nuc") end,
      "bad argument #1 to 'norm' (the nuclear norm is not supported)")
  end)
end)
