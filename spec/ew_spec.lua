-- Elementwise math against PyTorch 1.13 on the same inputs: unary ops,
-- binary ops with broadcasting and type promotion, masked_fill, where,
-- clamp and the activation kernels, over several dtypes, non-contiguous,
-- 0-dim and empty inputs and special values (nan, inf, -0.0, out of
-- domain). One Python process (in setup) writes the inputs and every
-- expected result; each case runs the same op in ltorch and compares:
-- the dtype, the positions of nan and +-inf, and the finite values within
-- rtol 1e-5 (float32/float64; 1e-3 for float16/bfloat16, whose results
-- round from float32 as PyTorch's do) both as H.assert_parity (against the
-- largest value) and element by element; integer and bool results exactly.
-- PyTorch 1.13's CPU build has no float16 kernel for most of these ops:
-- there the reference is the op in float32 rounded to float16, what
-- PyTorch does where it has one (bfloat16, CUDA).
local torch = require("ltorch")
local H = require("nn_helpers")

local INF = math.huge

-- Python: the inputs P (saved to in.pt) and helpers. uf/bf run an op and,
-- where PyTorch has no float16 kernel, run it in float32 and round.
local PY_PRE = [==[
import torch, torch.nn.functional as F, warnings
warnings.simplefilter('ignore')
torch.manual_seed(0)
nan, inf = float('nan'), float('inf')
sp = [nan, inf, -inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 1.5, -1.5, 3.0, -3.0, 7.0,
      1e-30, 100.0, -100.0, 0.999, -0.999, 1.001, 6.5, -6.5]
base = torch.cat([torch.tensor(sp), torch.randn(40) * 3]).reshape(8, 8)
P = {}
P['f'] = base.float()
P['d'] = base.double()
P['h'] = base.half()
P['b'] = base.bfloat16()
P['g'] = (torch.randn(8, 8) * 3).float()          # a second float operand
P['gd'] = P['g'].double()
P['gh'] = P['g'].half()
P['gb'] = P['g'].bfloat16()
P['col'] = torch.tensor([[2.0], [-3.0], [0.0], [-0.0], [inf], [0.75], [nan], [-1.25]])
P['row'] = (torch.randn(1, 8) * 2).float()
P['f0'] = torch.tensor(1.75)
P['fe'] = torch.zeros(0, 8)
P['i'] = torch.randint(-20, 20, (8, 8))
P['i8'] = torch.randint(-100, 100, (8, 8)).to(torch.int8)
P['i16'] = torch.randint(-3000, 3000, (8, 8)).to(torch.int16)
P['i32'] = torch.randint(-100000, 100000, (8, 8)).to(torch.int32)
P['u8'] = torch.randint(0, 256, (8, 8)).to(torch.uint8)
P['bool'] = torch.randint(0, 2, (8, 8)).bool()
P['mask'] = torch.randint(0, 2, (8, 1)).bool()
nz = torch.randint(1, 7, (8, 8)) * (torch.randint(0, 2, (8, 8)) * 2 - 1)
P['inz'] = nz                                      # nonzero integer divisors
P['icol'] = torch.tensor([[3], [-3], [1], [-1], [7], [-7], [2], [-2]])
P['u8nz'] = torch.randint(1, 256, (8, 8)).to(torch.uint8)
P['i0'] = torch.tensor(-1)
P['c'] = torch.complex(torch.randn(4, 4), torch.randn(4, 4))
P['z'] = P['c'].to(torch.complex128)
torch.save(P, DIR + '/in.pt')

def uf(fn, x, *a, **k):
    try:
        return fn(x, *a, **k)
    except RuntimeError:
        if x.dtype not in (torch.float16, torch.bfloat16):
            raise
        return fn(x.float(), *a, **k).to(x.dtype)
def bf(fn, a, b):
    try:
        return fn(a, b)
    except RuntimeError:
        ta = a.float() if isinstance(a, torch.Tensor) else a
        tb = b.float() if isinstance(b, torch.Tensor) else b
        r = fn(ta, tb)
        if r.dtype == torch.bool:
            return r
        return r.to(torch.result_type(a, b))
R = {}
]==]

-- inputs by tag: Python expression, Lua function of the loaded P
local INPUTS = {
  f = {"P['f']"}, d = {"P['d']"}, h = {"P['h']"}, b = {"P['b']"},
  g = {"P['g']"}, gd = {"P['gd']"}, gh = {"P['gh']"}, gb = {"P['gb']"},
  col = {"P['col']"}, row = {"P['row']"}, f0 = {"P['f0']"}, fe = {"P['fe']"},
  i = {"P['i']"}, i8 = {"P['i8']"}, i16 = {"P['i16']"}, i32 = {"P['i32']"}, u8 = {"P['u8']"},
  bool = {"P['bool']"}, mask = {"P['mask']"}, inz = {"P['inz']"}, icol = {"P['icol']"},
  u8nz = {"P['u8nz']"}, i0 = {"P['i0']"}, c = {"P['c']"}, z = {"P['z']"},
  -- non-contiguous views
  ft = {"P['f'].t()", function(P) return P.f:t() end},
  dt = {"P['d'].t()", function(P) return P.d:t() end},
  ht = {"P['h'].t()", function(P) return P.h:t() end},
  it = {"P['i'].t()", function(P) return P.i:t() end},
  fc = {"P['f'][:, 2]", function(P) return P.f:select(2, 3) end},
  ct = {"P['c'].t()", function(P) return P.c:t() end},
}

local function input(P, tag)
  local e = INPUTS[tag]
  if not e then return load("return " .. tag)() end      -- a number literal
  return e[2] and e[2](P) or P[tag]
end
local function pyinput(tag)
  local e = INPUTS[tag]
  return e and e[1] or tag
end

-- The cases: name -> {py = Python expression, lua = function(P) -> result
-- (or a list of results that must all match, e.g. torch.X and t:X),
-- rtol = tolerance, zsign = compare the sign of zeros}
local CASES, ORDER = {}, {}
local function case(name, py, lua, opts)
  assert(not CASES[name], name)
  opts = opts or {}
  CASES[name] = {py = py, lua = lua, rtol = opts.rtol, zsign = opts.zsign, ertol = opts.ertol}
  ORDER[#ORDER + 1] = name
end

local HALFTAG = {h = true, b = true, ht = true, gh = true, gb = true}

-- a unary op over input tags: torch.op(x, ...) and x:op(...)
local function unary(op, tags, extra, opts)
  extra = extra or {}
  local pyfn = (opts and opts.py) or ("torch." .. op)
  local pyargs, luaargs = "", extra
  for _, v in ipairs(extra) do pyargs = pyargs .. ", " .. tostring(v) end
  for tag in tags:gmatch("%S+") do
    local o = {zsign = opts and opts.zsign, rtol = HALFTAG[tag] and 1e-3 or nil,
               ertol = tag == "b" and opts and opts.bf16_steps and 1.6e-2 or nil}
    case(op .. "(" .. tag .. (#extra > 0 and ", " .. table.concat(extra, ", ") or "") .. ")",
      string.format("uf(%s, %s%s)", pyfn, pyinput(tag), pyargs),
      function(P)
        local x = input(P, tag)
        return {torch[op](x, table.unpack(luaargs)), x[op](x, table.unpack(luaargs))}
      end, o)
  end
end

-- a binary op over pairs "a:b" of tags or number literals: torch.op(a, b),
-- a:op(b) when a is a tensor, and the operator when given
local function binary(op, pairs_, opts)
  opts = opts or {}
  local pyfn = opts.py or ("torch." .. op)
  for p in pairs_:gmatch("%S+") do
    local ta, tb = p:match("^(.-):(.+)$")
    local half = HALFTAG[ta] or HALFTAG[tb]
    case(op .. "(" .. ta .. ", " .. tb .. ")",
      string.format("bf(%s, %s, %s)", pyfn, pyinput(ta), pyinput(tb)),
      function(P)
        local a, b = input(P, ta), input(P, tb)
        local r = {torch[op](a, b)}
        if torch.is_tensor(a) then r[#r + 1] = a[op](a, b) end
        if opts.operator then r[#r + 1] = opts.operator(a, b) end
        return r
      end, {zsign = opts.zsign, rtol = half and 1e-3 or nil})
  end
end

-- ---- the cases ------------------------------------------------------------

local FLOATING = "f d h b ft fc f0 fe"
local ALL_REAL = FLOATING .. " i i8 i16 u8 bool it"

for _, op in ipairs({"sin", "cos", "tan", "asin", "acos", "atan", "rsqrt"}) do
  unary(op, ALL_REAL .. " c ct")
end
-- not uint8: PyTorch's float32 sinh and cosh overflow from 88.7 in its
-- vectorised loop but from 89.4 in its scalar one (and libm's)
unary("sinh", FLOATING .. " i i8 i16 bool it c ct")
unary("cosh", FLOATING .. " i i8 i16 bool it c ct")
unary("exp", ALL_REAL .. " c")
unary("log", ALL_REAL .. " c")
unary("sqrt", ALL_REAL .. " c")
unary("tanh", FLOATING .. " i bool c")
unary("sigmoid", FLOATING .. " i bool c")
unary("erf", ALL_REAL)
unary("erfinv", ALL_REAL)
for _, op in ipairs({"floor", "ceil", "round", "trunc"}) do
  unary(op, FLOATING .. " i i8 i16 u8 it", nil, {zsign = true})
end
unary("sign", ALL_REAL, nil, {zsign = true})
unary("neg", FLOATING .. " i i8 u8 c", nil, {zsign = true})
unary("abs", FLOATING .. " i i8 c")
unary("relu", FLOATING .. " i i8", nil, {zsign = true})
for _, op in ipairs({"logical_not", "isinf", "isnan", "isfinite"}) do
  unary(op, ALL_REAL .. " c")
end
unary("nan_to_num", ALL_REAL, nil, {zsign = true})
unary("nan_to_num", "f d h b ft", {1.5, 2.5, -3.5})
case("nan_to_num(f, nil, 1e300)", "torch.nan_to_num(P['f'], posinf=1e300)",
  function(P) return {torch.nan_to_num(P.f, nil, 1e300), P.f:nan_to_num(nil, 1e300)} end)

-- activations (torch.nn.functional's kernels, at torch level)
-- bf16_steps: PyTorch 1.13 rounds each step of bfloat16 silu and tanh-gelu
-- to bfloat16 (x / (1 + exp(-x)): three roundings); ltorch rounds the float
-- result once, so an element may differ by up to 2 units in the last place
unary("silu", FLOATING .. " c", nil, {py = "F.silu", bf16_steps = true})
unary("mish", FLOATING, nil, {py = "F.mish"})
unary("hardswish", FLOATING, nil, {py = "F.hardswish"})
unary("hardsigmoid", FLOATING, nil, {py = "F.hardsigmoid"})
unary("relu6", FLOATING .. " i i8 u8", nil, {py = "F.relu6", zsign = true})
unary("leaky_relu", FLOATING, nil, {py = "F.leaky_relu", zsign = true})
unary("leaky_relu", "f d b", {0.2}, {py = "F.leaky_relu"})
unary("elu", FLOATING, nil, {py = "F.elu"})
unary("elu", "f d b", {0.5}, {py = "F.elu"})
unary("softplus", FLOATING, nil, {py = "F.softplus"})
unary("softplus", "f d b", {2, 5}, {py = "F.softplus"})
unary("gelu", FLOATING, nil, {py = "F.gelu"})
for tag in FLOATING:gmatch("%S+") do
  case("gelu(" .. tag .. ", 'tanh')", string.format("uf(lambda x: F.gelu(x, approximate='tanh'), %s)", pyinput(tag)),
    function(P)
      local x = input(P, tag)
      return {torch.gelu(x, "tanh"), x:gelu("tanh")}
    end, {rtol = HALFTAG[tag] and 1e-3 or nil, ertol = tag == "b" and 1.6e-2 or nil})
end

-- round with decimals: float32 and float64 in their own type; bfloat16
-- (and float16, which 1.13 lacks on the CPU) round after each step
for _, tag in ipairs({"f", "d", "b", "ft"}) do
  for _, d in ipairs({2, 1, -1}) do
    case(string.format("round(%s, {decimals = %d})", tag, d),
      string.format("torch.round(%s, decimals=%d)", pyinput(tag), d),
      function(P)
        local x = input(P, tag)
        return {torch.round(x, {decimals = d}), x:round(d)}
      end, {rtol = tag == "b" and 1e-3 or nil, zsign = true})
  end
end
case("round(h, {decimals = 2})",
  "(torch.round((P['h'] * torch.tensor(100., dtype=torch.half)).float()) / 100.).half()",
  function(P) return torch.round(P.h, {decimals = 2}) end, {rtol = 1e-3})

-- binary ops
local ARITH_PAIRS = "f:g f:col ft:g fc:g f:f0 f0:g fe:row d:gd h:gh b:gb h:f0 f:2.5 2.5:f i:inz"
binary("atan2", "f:g f:col ft:g f:f0 fe:row d:gd h:gh b:gb i:inz i:f bool:i8 u8:g", {zsign = true})
binary("remainder", ARITH_PAIRS .. " it:inz i:icol i8:inz u8:u8nz i8:-3 u8:7 5:inz h:0.1 i:f u8:456",
  {zsign = true, operator = function(a, b) return a % b end})
binary("floor_divide", ARITH_PAIRS .. " it:inz i:icol i8:inz u8:u8nz i8:-3 u8:7 h:0.1 i:f u8:456",
  {zsign = true, operator = function(a, b) return a // b end})
binary("pow", "f:g f:col ft:g f:f0 d:gd h:gh b:gb f:2 f:0.5 f:-1 f:3 h:0.1 b:0.3 i:2 i:0 i8:3 u8:2 "
  .. "i:icol 2:i 2.5:i 2.5:f i:0.5 bool:2 bool:2.5 2:bool bool:icol i:f",
  {operator = function(a, b) return a ^ b end})
for _, op in ipairs({"maximum", "minimum"}) do
  binary(op, "f:g f:col ft:g f:f0 fe:row d:gd h:gh b:gb i:inz i:f u8:i8 bool:bool bool:i8 u8:i0 f:d",
    {zsign = true})
end
local PYCMP = {eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="}
for _, op in ipairs({"eq", "ne", "lt", "le", "gt", "ge"}) do
  binary(op, "f:g f:col ft:g f:f0 fe:row d:gd h:gh h:0.1 b:0.1 f:0.1 d:0.1 i:inz i:2 i:2.5 i:f "
    .. "u8:-1 u8:456 i8:300 u8:i0 bool:i8 2:i 2.5:f", {py = "(lambda a, b: a " .. PYCMP[op] .. " b)"})
end
for _, op in ipairs({"eq", "ne"}) do binary(op, "c:ct c:z") end
for _, op in ipairs({"logical_and", "logical_or", "logical_xor"}) do
  binary(op, "f:g f:col ft:bool fe:row bool:mask i:f u8:bool h:i c:ct z:c i8:i0")
end
-- the existing arithmetic: PyTorch's promotion (0-dim tensors and numbers
-- decide only by category) and opmath scalars
binary("add", "f:col h:f0 h:0.1 i:f0 i:2.5 u8:i0 i8:300 bool:bool bool:2 f:d i32:2.5 i:f",
  {operator = function(a, b) return a + b end})
binary("sub", "f:col h:f0 u8:i0 u8:2 i8:300", {operator = function(a, b) return a - b end})
binary("mul", "f:col b:0.1 h:gh i:f0 bool:bool", {operator = function(a, b) return a * b end})
binary("div", "f:col h:0.1 i:inz i:2 i8:3 u8:i0 bool:bool", {operator = function(a, b) return a / b end})

-- pow with special values
case("pow(special)",
  "torch.pow(torch.tensor([-8.0, 0.0, -0.0, inf, nan, 1.0, -2.0, 0.0]), torch.tensor([1/3, -1, -1, -1, 0, nan, 3, 0]))",
  function()
    return torch.pow(torch.tensor({-8.0, 0.0, -0.0, INF, 0 / 0, 1.0, -2.0, 0.0}),
      torch.tensor({1 / 3, -1, -1, -1, 0, 0 / 0, 3, 0}))
  end, {zsign = true})
case("pow(int, negative int tensor)", "torch.pow(torch.tensor([2, 3, -2, 0, 1, -1]), torch.tensor(-3))",
  function() return torch.pow(torch.tensor({2, 3, -2, 0, 1, -1}), torch.tensor(-3)) end)
case("maximum(-0.0, 0.0)", "torch.maximum(torch.tensor([-0.0, 0.0, nan, 1.0]), torch.tensor([0.0, -0.0, 1.0, nan]))",
  function() return torch.maximum(torch.tensor({-0.0, 0.0, 0 / 0, 1.0}), torch.tensor({0.0, -0.0, 1.0, 0 / 0})) end,
  {zsign = true})
case("minimum(-0.0, 0.0)", "torch.minimum(torch.tensor([-0.0, 0.0, nan, 1.0]), torch.tensor([0.0, -0.0, 1.0, nan]))",
  function() return torch.minimum(torch.tensor({-0.0, 0.0, 0 / 0, 1.0}), torch.tensor({0.0, -0.0, 1.0, 0 / 0})) end,
  {zsign = true})
case("eq(int64 2^24 + 1, 2^24.0)", "torch.tensor([16777217, 16777216]) == 16777216.0",
  function() return torch.tensor({16777217, 16777216}):eq(16777216.0) end)
case("add(int32 2049, float16 0.5)", "torch.tensor([2049], dtype=torch.int32) + torch.tensor([0.5], dtype=torch.half)",
  function() return torch.tensor({2049}, {dtype = "int32"}) + torch.tensor({0.5}, {dtype = "float16"}) end)

-- clamp
case("clamp(f, -1, 2)", "torch.clamp(P['f'], -1, 2)", function(P) return {torch.clamp(P.f, -1, 2), P.f:clamp(-1, 2)} end, {zsign = true})
case("clamp(f, nil, 0.5)", "torch.clamp(P['f'], None, 0.5)", function(P) return P.f:clamp(nil, 0.5) end)
case("clamp(ft, -0.0)", "torch.clamp(P['f'].t(), -0.0)", function(P) return P.f:t():clamp(-0.0) end, {zsign = true})
case("clamp(f, nan, 1)", "torch.clamp(P['f'], nan, 1)", function(P) return P.f:clamp(0 / 0, 1) end)
case("clamp(f, 2, 1)", "torch.clamp(P['f'], 2, 1)", function(P) return P.f:clamp(2, 1) end)
case("clamp(d, -1.5, 1.5)", "torch.clamp(P['d'], -1.5, 1.5)", function(P) return P.d:clamp(-1.5, 1.5) end)
case("clamp(b, -1.5, 0.1)", "torch.clamp(P['b'], -1.5, 0.1)", function(P) return P.b:clamp(-1.5, 0.1) end, {rtol = 1e-3})
case("clamp(h, -1.5, 0.1)", "torch.clamp(P['h'].float(), -1.5, torch.tensor(0.1).half().item()).half()",
  function(P) return P.h:clamp(-1.5, 0.1) end, {rtol = 1e-3})
case("clamp(i, -5, 5)", "torch.clamp(P['i'], -5, 5)", function(P) return P.i:clamp(-5, 5) end)
case("clamp(i, 2.5)", "torch.clamp(P['i'], 2.5)", function(P) return P.i:clamp(2.5) end)
case("clamp(u8, 10, 200)", "torch.clamp(P['u8'], 10, 200)", function(P) return P.u8:clamp(10, 200) end)
case("clamp(bool, 0, 1)", "torch.clamp(P['bool'], 0, 1)", function(P) return P.bool:clamp(0, 1) end)
case("clamp(f, col, row)", "torch.clamp(P['f'], P['col'], P['row'])", function(P) return P.f:clamp(P.col, P.row) end)
case("clamp(f, nil, col)", "torch.clamp(P['f'], None, P['col'])", function(P) return P.f:clamp(nil, P.col) end)
case("clamp(i, g, nil)", "torch.clamp(P['i'], P['g'])", function(P) return P.i:clamp(P.g) end)
case("clamp(fe, row)", "torch.clamp(P['fe'], P['row'])", function(P) return P.fe:clamp(P.row) end)
case("clamp(f0, -1, 1)", "torch.clamp(P['f0'], -1, 1)", function(P) return P.f0:clamp(-1, 1) end)

-- where
case("where(mask, f, g)", "torch.where(P['mask'], P['f'], P['g'])", function(P) return torch.where(P.mask, P.f, P.g) end)
case("where(bool, ft, col)", "torch.where(P['bool'], P['f'].t(), P['col'])", function(P) return torch.where(P.bool, P.f:t(), P.col) end)
case("where(bool, 1, 2)", "torch.where(P['bool'], 1, 2)", function(P) return torch.where(P.bool, 1, 2) end)
case("where(bool, 1.5, 2)", "torch.where(P['bool'], 1.5, 2)", function(P) return torch.where(P.bool, 1.5, 2) end)
case("where(bool, i, 2.5)", "torch.where(P['bool'], P['i'], 2.5)", function(P) return torch.where(P.bool, P.i, 2.5) end)
case("where(bool, h, 0.1)", "torch.where(P['bool'], P['h'], 0.1)", function(P) return torch.where(P.bool, P.h, 0.1) end)
case("where(bool, u8, -1)", "torch.where(P['bool'], P['u8'], -1)", function(P) return torch.where(P.bool, P.u8, -1) end)
case("where(bool, i8, f0)", "torch.where(P['bool'], P['i8'], P['f0'])", function(P) return torch.where(P.bool, P.i8, P.f0) end)
case("where(u8 cond, f, g)", "torch.where(P['u8'] > 100, P['f'], P['g'])", function(P) return torch.where(P.u8:gt(100), P.f, P.g) end)
case("f:where(mask, 0)", "P['f'].where(P['mask'], torch.tensor(0.))", function(P) return P.f:where(P.mask, 0) end)
case("where(mask, fe, row)", "torch.where(P['mask'][:0], P['fe'], P['row'])",
  function(P) return torch.where(P.mask:narrow(1, 1, 0), P.fe, P.row) end)

-- masked_fill
case("masked_fill(f, mask, -inf)", "P['f'].masked_fill(P['mask'], -inf)",
  function(P) return {torch.masked_fill(P.f, P.mask, -INF), P.f:masked_fill(P.mask, -INF)} end)
case("masked_fill(ft, bool, 2.5)", "P['f'].t().masked_fill(P['bool'], 2.5)", function(P) return P.f:t():masked_fill(P.bool, 2.5) end)
case("masked_fill(row, mask, 1)", "torch.masked_fill(P['row'], P['mask'], 1)", function(P) return P.row:masked_fill(P.mask, 1) end)
case("masked_fill(i, bool, 2.7)", "P['i'].masked_fill(P['bool'], 2.7)", function(P) return P.i:masked_fill(P.bool, 2.7) end)
case("masked_fill(i8, bool, -128)", "P['i8'].masked_fill(P['bool'], -128)", function(P) return P.i8:masked_fill(P.bool, -128) end)
case("masked_fill(h, bool, 0.1)", "P['h'].masked_fill(P['bool'], 0.1)", function(P) return P.h:masked_fill(P.bool, 0.1) end)
case("masked_fill(b, mask, f0)", "P['b'].masked_fill(P['mask'], P['f0'])", function(P) return P.b:masked_fill(P.mask, P.f0) end)
case("masked_fill(d, mask, i0)", "P['d'].masked_fill(P['mask'], P['i0'])", function(P) return P.d:masked_fill(P.mask, P.i0) end)
case("masked_fill(bool, mask, 0)", "P['bool'].masked_fill(P['mask'], 0)", function(P) return P.bool:masked_fill(P.mask, 0) end)
case("masked_fill(c, mask, 2)", "P['c'].masked_fill(P['mask'][:4], 2)", function(P) return P.c:masked_fill(P.mask:narrow(1, 1, 4), 2) end)
case("masked_fill(fe, mask, 1)", "P['fe'].masked_fill(P['mask'][:0], 1)", function(P) return P.fe:masked_fill(P.mask:narrow(1, 1, 0), 1) end)
case("masked_fill(f0, true, 3)", "P['f0'].masked_fill(torch.tensor(True), 3)", function(P) return P.f0:masked_fill(torch.tensor(true), 3) end)

-- ---- comparison -------------------------------------------------------------

local function is_float(dt) return dt:match("float") ~= nil end

-- got against want: dtype, shape, nan and +-inf positions, the sign of
-- zeros (zsign), finite values (rtol: H.assert_parity and element by
-- element); complex values part by part
local function check(got, want, rtol, zsign, what, ertol)
  assert(torch.is_tensor(got), what .. ": expected a tensor, got " .. type(got))
  assert.are.equal(want:dtype(), got:dtype(), what .. ": dtype")
  assert.are.same(want:size(), got:size(), what .. ": shape")
  local dt = want:dtype()
  if dt:match("complex") then
    local g, w = H.flat(got), {}
    local function rec(v) if type(v[1]) == "table" then for _, x in ipairs(v) do rec(x) end else w[#w + 1] = v end end
    rec(want:tolist())
    local function flat2(t)
      local out = {}
      local function r(v) if type(v[1]) == "table" then for _, x in ipairs(v) do r(x) end else out[#out + 1] = v end end
      r(t:tolist())
      return out
    end
    g = flat2(got)
    for i = 1, #w do
      local mod = math.sqrt(w[i][1] ^ 2 + w[i][2] ^ 2)
      for k = 1, 2 do
        local a, b = g[i][k], w[i][k]
        local ok = (a ~= a and b ~= b) or a == b or math.abs(a - b) <= (rtol or 1e-5) * math.max(mod, 1e-6)
        assert(ok, string.format("%s: element %d part %d is %.9g, PyTorch's %.9g", what, i, k, a, b))
      end
    end
    return
  end
  if not is_float(dt) then
    assert(torch.equal(got, want), what .. ": values differ from PyTorch's:\n" .. tostring(got) .. "\n" .. tostring(want))
    return
  end
  local g, w = got:to("float64"), want:to("float64")
  assert(torch.equal(g:isnan(), w:isnan()), what .. ": nan positions differ:\n" .. tostring(got) .. "\n" .. tostring(want))
  assert(torch.equal(g:eq(INF), w:eq(INF)), what .. ": +inf positions differ:\n" .. tostring(got) .. "\n" .. tostring(want))
  assert(torch.equal(g:eq(-INF), w:eq(-INF)), what .. ": -inf positions differ:\n" .. tostring(got) .. "\n" .. tostring(want))
  local fin = w:isfinite():logical_not()
  local gf, wf = g:masked_fill(fin, 0), w:masked_fill(fin, 0)
  H.assert_parity(gf, wf, rtol or 1e-5, what)
  if g:numel() > 0 then
    -- element by element: rtol (or ertol) of the element plus 1e-6 rtol of
    -- the largest (float32 rounding of tails that cancel)
    local er = ertol or rtol or 1e-5
    local scale = wf:abs():max():item()
    local over = ((gf - wf):abs() - wf:abs() * er):max():item()
    assert(over <= 1e-6 * (rtol or 1e-5) / 1e-5 * scale, string.format("%s: an element is off by %.3g beyond rtol:\n%s\n%s",
      what, over, tostring(got), tostring(want)))
  end
  if zsign then   -- where PyTorch's result is a zero, its sign
    local z = w:eq(0)
    local gneg = torch.div(1, g):lt(0):logical_and(z)
    local wneg = torch.div(1, w):lt(0):logical_and(z)
    assert(torch.equal(gneg, wneg), what .. ": the sign of a zero differs:\n" .. tostring(got) .. "\n" .. tostring(want))
  end
end

-- ---- the specs --------------------------------------------------------------

describe("elementwise math against PyTorch", function()
  local dir, P, R
  setup(function()
    dir = H.tmpdir()
    local py = {PY_PRE}
    for _, name in ipairs(ORDER) do
      py[#py + 1] = string.format("R[%q] = %s", name, CASES[name].py)
    end
    py[#py + 1] = "torch.save(R, DIR + '/out.pt')"
    H.py_fixtures(table.concat(py, "\n") .. "\n", dir)
    P = torch.load(dir .. "/in.pt")
    R = torch.load(dir .. "/out.pt")
  end)
  teardown(function() if dir then H.rmdir(dir) end end)

  for _, name in ipairs(ORDER) do
    it(name, function()
      local c = CASES[name]
      local want = R[name]
      assert(want ~= nil, "no fixture for " .. name)
      local got = c.lua(P)
      if torch.is_tensor(got) then got = {got} end
      for k, g in ipairs(got) do
        check(g, want, c.rtol, c.zsign, name .. (k > 1 and " (form " .. k .. ")" or ""), c.ertol)
      end
    end)
  end
end)

describe("elementwise errors", function()
  it("names the function and the argument", function()
    assert.has_error(function() torch.remainder(torch.tensor({1, 2}), 0) end,
      "bad argument #2 to 'remainder' (integer division by zero)")
    assert.has_error(function() torch.floor_divide(torch.tensor({1, 2}), torch.tensor({1, 0})) end,
      "bad argument #2 to 'floor_divide' (integer division by zero)")
    assert.has_error(function() torch.silu(torch.tensor({1, 2})) end,
      "bad argument #1 to 'silu' (expected a floating point or complex tensor, got int64)")
    assert.has_error(function() torch.leaky_relu(torch.tensor({true})) end,
      "bad argument #1 to 'leaky_relu' (expected a floating point tensor, got bool)")
    assert.has_error(function() torch.abs(torch.tensor({true})) end,
      "bad argument #1 to 'abs' (not supported for bool tensors)")
    assert.has_error(function() torch.erf(torch.zeros(2, {dtype = "complex64"})) end,
      "bad argument #1 to 'erf' (not supported for complex tensors)")
    assert.has_error(function() torch.round(torch.tensor({1, 2}), {decimals = 1}) end,
      "bad argument #1 to 'round' (expected a floating point tensor, got int64)")
    assert.has_error(function() torch.round(torch.zeros(2), {digits = 1}) end,
      "bad argument #2 to 'round' (unknown option 'digits': the only option is 'decimals')")
  end)
  it("checks masks, values and shapes", function()
    local t = torch.zeros(2, 3)
    assert.has_error(function() t:masked_fill(torch.tensor({1, 0, 1}), 1) end,
      "bad argument #1 to 'masked_fill' (expected a bool mask tensor, got int64)")
    assert.has_error(function() t:masked_fill(nil, 1) end,
      "bad argument #1 to 'masked_fill' (mask tensor expected, got nil)")
    assert.has_error(function() t:masked_fill(torch.tensor({true, false, true}), torch.zeros(1)) end,
      "bad argument #2 to 'masked_fill' (expected a 0-dim value tensor, got 1 dims)")
    assert.has_error(function() t:masked_fill(torch.tensor({true, false, true}), "x") end,
      "bad argument #2 to 'masked_fill' (number, boolean or 0-dim tensor expected, got string)")
    assert.has_error(function() torch.zeros(2, {dtype = "int8"}):masked_fill(torch.tensor({true, false}), 300) end,
      "bad argument #2 to 'masked_fill' (value 300 cannot be converted to int8 without overflow)")
    assert.has_error(function() torch.zeros(2, {dtype = "float16"}):masked_fill(torch.tensor({true, false}), 1e6) end,
      "bad argument #2 to 'masked_fill' (value 1000000.0 cannot be converted to float16 without overflow)")
    assert.has_error(function() t:masked_fill(torch.tensor({true, false}), 1) end,
      "bad argument #1 to 'masked_fill' (shapes {2, 3} and {2} cannot be broadcast)")
    assert.has_error(function() torch.where(torch.tensor({1, 0}), 1, 2) end,
      "bad argument #1 to 'where' (expected a bool condition tensor, got int64)")
    assert.has_error(function() torch.where(torch.tensor({true, false}), torch.zeros(3), 2) end,
      "bad argument #2 to 'where' (shapes {2} and {3} cannot be broadcast)")
    assert.has_error(function() torch.atan2(torch.zeros(2, 3), torch.zeros(4)) end,
      "bad argument #2 to 'atan2' (shapes {2, 3} and {4} cannot be broadcast)")
  end)
  it("rejects what PyTorch rejects", function()
    assert.has_error(function() torch.pow(torch.tensor({2, 3}), -1) end,
      "bad argument #2 to 'pow' (integers to negative integer powers are not allowed)")
    assert.has_error(function() torch.remainder(torch.tensor({true}), torch.tensor({true})) end,
      "bad argument #1 to 'remainder' (not supported for bool tensors)")
    assert.has_error(function() torch.lt(torch.zeros(2, {dtype = "complex64"}), 1) end,
      "bad argument #1 to 'lt' (not supported for complex tensors)")
    assert.has_error(function() torch.clamp(torch.zeros(2, {dtype = "int8"}), -300, 300) end,
      "bad argument #2 to 'clamp' (value -300 cannot be converted to int8 without overflow)")
    assert.has_error(function() torch.clamp(torch.zeros(2)) end,
      "bad argument #2 to 'clamp' (at least one of min and max must be given)")
    assert.has_error(function() torch.sin("x") end)
  end)
end)
