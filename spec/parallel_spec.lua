-- parallel_spec.lua: the contiguous fast paths split over the thread pool
-- (src/pool.c) for tensors of LT_PAR_MIN (2^20) elements and more: sums,
-- means, max/min, arithmetic, comparisons and casts of float32 and float64
-- give what PyTorch gives on the same data (sums: within float32 rounding
-- of the exact sum, which ltorch's compensated double sum is nearer), and
-- the same bits whatever the number of threads (LTORCH_NUM_THREADS=1).
local torch = require("ltorch")
local H = require("fmt_helper")
local sh = require("sh_helper")

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmdir(dir) end)

-- 3,000,017 elements: items of 2^18 and a short last one
local N = 3000017

local function make()
  local p, r = dir .. "/in.pt", dir .. "/ref.pt"
  if io.open(r) then return p, r end
  H.py(string.format([[
import sys, torch
g = torch.Generator().manual_seed(7)
x = torch.randn(%d, generator=g) * 100
y = torch.randn(%d, generator=g) * 100
x[12345] = y[12345]                      # equal elements for eq/ne
n = x.clone(); n[2999999] = float('nan')  # a nan in the last item
d = x.double()
ref = {
  'sum': x.sum(), 'mean': x.mean(), 'dsum': d.sum(), 'exact': d.sum(),
  'max': x.max(), 'min': x.min(), 'amax': x.amax(), 'nmax': n.max(), 'nmin': n.amin(),
  'dmax': d.max(), 'add': x + y, 'mul2': x * 2, 'div': x / y, 'dsub': d - y.double(),
  'gt0': x > 0, 'lt': x < y, 'eq': x == y, 'ne': x != y, 'ge': d >= 50, 'le': x <= y,
  'bf16': x.to(torch.bfloat16), 'f16': x.to(torch.float16), 'f64': x.double(),
  'back': x.to(torch.float16).float(), 'd32': d.float(),
  'cols': x[:3000000].view(3000, 1000).double().sum(0), 'cols3': x[:3000000].view(30, 100, 1000).double().sum((0, 1)),
  'dcols': d[:3000000].view(3000, 1000).sum(0),
}
torch.save({'x': x, 'y': y, 'n': n, 'd': d}, sys.argv[1])
torch.save(ref, sys.argv[2])
]], N, N), p, r)
  return p, r
end

describe("big contiguous kernels (the thread pool)", function()
  it("equal PyTorch's results on 3M-element tensors", function()
    local p, r = make()
    local v, ref = torch.load(p), torch.load(r)
    local x, y, n, d = v.x, v.y, v.n, v.d
    -- sums: float32 results within a few float32 ulps of the exact (float64) sum
    local exact = ref.exact:item()
    assert.is_true(math.abs(x:sum():item() - exact) <= 4e-7 * math.abs(exact) + 1e-3, "sum")
    assert.is_true(math.abs(x:mean():item() - exact / N) <= 4e-7 * math.abs(exact / N) + 1e-9, "mean")
    assert.is_true(math.abs(x:sum():item() - ref.sum:item()) <= 1e-5 * math.abs(exact) + 1e-2, "sum vs PyTorch")
    assert.is_true(math.abs(d:sum():item() - ref.dsum:item()) <= 1e-12 * math.abs(exact) + 1e-6, "float64 sum")
    for _, k in ipairs({"max", "min", "amax"}) do
      local got = k == "amax" and x:amax() or x[k](x)
      assert.equals(ref[k]:item(), got:item(), k)
    end
    assert.is_true(n:max():item() ~= n:max():item(), "a nan makes max nan")
    assert.is_true(n:amin():item() ~= n:amin():item(), "a nan makes amin nan")
    assert.equals(ref.dmax:item(), d:max():item())
    local same = {
      add = x + y, mul2 = x * 2, div = x / y, dsub = d - y:to("float64"),
      gt0 = x:gt(0), lt = x:lt(y), eq = x:eq(y), ne = x:ne(y), ge = d:ge(50), le = x:le(y),
      bf16 = x:to("bfloat16"), f16 = x:to("float16"), f64 = x:to("float64"),
      back = x:to("float16"):to("float32"), d32 = d:to("float32"),
    }
    for k, got in pairs(same) do
      assert.equals(ref[k]:dtype(), got:dtype(), k)
      assert.is_true(torch.equal(ref[k], got), k .. " differs from PyTorch's")
    end
    assert.equals(1, x:eq(y):sum():item())
    -- sums over leading dims (rows added into column accumulators)
    local m = x:narrow(1, 1, 3000000):view(3000, 1000)
    local cols = m:sum(1)
    assert.equals("float32", cols:dtype())
    assert.same({1000}, cols:size())
    assert.is_true(torch.allclose(cols:to("float64"), ref.cols, 1e-6, 1e-3), "sum over dim 1")
    assert.is_true(torch.allclose(m:mean(1):to("float64"), ref.cols / 3000, 1e-6, 1e-6), "mean over dim 1")
    local m3 = x:narrow(1, 1, 3000000):view(30, 100, 1000)
    assert.is_true(torch.allclose(m3:sum({1, 2}):to("float64"), ref.cols3, 1e-6, 1e-3), "sum over dims 1, 2")
    local dm = d:narrow(1, 1, 3000000):view(3000, 1000)
    assert.is_true(torch.allclose(dm:sum(1), ref.dcols, 1e-13, 1e-9), "float64 sum over dim 1")
  end)

  it("give the same bits with one thread as with the pool", function()
    local p = make()
    local script = dir .. "/bits.lua"
    H.write(script, [[
local torch = require("ltorch")
local v = torch.load(arg[1])
local x, d = v.x, v.d
print(string.format("%a %a %a %a %a", x:sum():item(), x:mean():item(), d:sum():item(),
  x:max():item(), (x * 3):sum():item()))
]])
    local build = os.getenv("LTORCH_BUILD") or "build"
    local run = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=" .. sh.quote(build .. "/?.so;;")
      .. " lua5.4 " .. sh.quote(script) .. " " .. sh.quote(p)
    local one, c1, e1 = sh.run("LTORCH_NUM_THREADS=1 " .. run)
    local four, c4, e4 = sh.run("LTORCH_NUM_THREADS=4 " .. run)
    assert.equals(0, c1, e1)
    assert.equals(0, c4, e4)
    assert.equals(one, four)
    assert.is_truthy(one:match("^%S+ %S+ %S+ %S+ %S+\n$"), one)
  end)
end)
