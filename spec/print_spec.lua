-- print_spec.lua: tostring(t) is PyTorch 1.13's repr(t), character for
-- character. One /usr/bin/python3 run builds a few hundred tensors with a
-- fixed seed (every dtype; 0-dim, 1-D to 4-D, empty, summarised; tiny, huge
-- and mixed magnitudes; nan, inf, -0.; integer-valued floats; requires_grad),
-- saves them in one .pt file and writes each one's repr to a JSON file.
local torch = require("ltorch")
local json = require("ltorch.json")
local H = require("nn_helpers")

local GEN = [==[
import json, math, sys, torch
torch.manual_seed(1234)
out, reprs = {}, []
def add(group, name, t):
    name = group + '/' + name
    assert name not in out, name
    out[name] = t
    reprs.append([name, group, repr(t)])

nan, inf = float('nan'), float('inf')
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
INTS = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
COMPLEX = [torch.complex64, torch.complex128]
SHAPES = [(), (1,), (5,), (13,), (3, 4), (2, 3, 4), (1, 1, 1), (2, 1, 3, 2), (4, 9)]
BIG = [(1001,), (40, 40), (2, 3, 400), (7, 7, 21), (2, 600), (1000,), (2, 7, 8, 10)]
EMPTY = [(0,), (0, 3), (2, 0, 3), (3, 0)]

def dn(dt):
    return str(dt).split('.')[1]

# float values: kind -> tensor of float64 values of a shape
def fvals(kind, shape):
    n = 1
    for s in shape: n *= s
    r = torch.randn(n, dtype=torch.float64)
    if kind == 'randn': v = r
    elif kind == 'tiny': v = r * 1e-5
    elif kind == 'huge': v = r * 1e9
    elif kind == 'mixed': v = r * torch.pow(10.0, torch.randint(-6, 7, (n,)).double())
    elif kind == 'ints': v = torch.randint(-100, 100, (n,)).double()
    elif kind == 'bigints': v = torch.randint(-100, 100, (n,)).double() * 1000
    elif kind == 'hugeints': v = torch.randint(1, 100, (n,)).double() * 1e8
    elif kind == 'wide': v = torch.rand(n, dtype=torch.float64) * 999 + 1
    elif kind == 'zeros': v = torch.zeros(n, dtype=torch.float64)
    elif kind == 'special':
        v = r.clone()
        sp = [nan, inf, -inf, -0.0, 0.0]
        for i in range(min(n, 5)): v[(i * 7) % n] = sp[i]
    elif kind == 'specialints':
        v = torch.randint(-9, 9, (n,)).double()
        sp = [nan, inf, -inf, -0.0]
        for i in range(min(n, 4)): v[(i * 3) % n] = sp[i]
    return v.reshape(shape)

for dt in FLOATS:
    g = dn(dt)
    for kind in ['randn', 'tiny', 'huge', 'mixed', 'ints', 'bigints', 'hugeints', 'wide', 'zeros', 'special', 'specialints']:
        for shape in SHAPES:
            add(g, '%s%s' % (kind, shape), fvals(kind, shape).to(dt))
    for shape in BIG:
        for kind in ['randn', 'mixed', 'ints', 'special']:
            add(g, 'big_%s%s' % (kind, shape), fvals(kind, shape).to(dt))
    for shape in EMPTY:
        add(g, 'empty%s' % (shape,), torch.zeros(shape, dtype=dt))
    for i, vals in enumerate([[nan], [inf], [-inf], [-0.0], [0.0], [nan, inf, -inf],
                              [1e-4], [1e-4, 1.0], [0.1, 100.0], [0.1, 100.01], [1.0, 1000.0],
                              [1.0, 1000.5], [1.0, 1001.0], [1e8], [1.5e8], [123456789.0],
                              [0.00005, 0.5], [0.12345, 2.5, -3.75], [3.4e38, 1.0],
                              [1e300, 1e-300, 5e-324], [2.5, 0.5, 1.5, -2.5], [0.00015, 0.5]]):
        add(g, 'vals%d' % i, torch.tensor(vals, dtype=torch.float64).to(dt))
        add(g, 'scalar%d' % i, torch.tensor(vals[0], dtype=torch.float64).to(dt))
    # the line-wrapping of the suffixes: lengths around 80 columns
    for n in range(1, 12):
        add(g, 'grad%d' % n, torch.randn(n, dtype=torch.float64).to(dt).requires_grad_())
    add(g, 'grad_scalar', torch.tensor(1.5, dtype=dt, requires_grad=True))
    add(g, 'grad_empty', torch.zeros(0, dtype=dt, requires_grad=True))
    add(g, 'grad_2d', torch.randn(3, 4, dtype=torch.float64).to(dt).requires_grad_())
    add(g, 'grad_big', torch.randn(30, 40, dtype=torch.float64).to(dt).requires_grad_())
    add(g, 'transposed', fvals('randn', (3, 5)).to(dt).t())

for dt in INTS:
    g = dn(dt)
    info = torch.iinfo(dt)
    lo, hi = max(info.min, -2**31), min(info.max, 2**31 - 1)
    for shape in SHAPES + BIG:
        add(g, 'rand%s' % (shape,), torch.randint(lo, hi, shape, dtype=torch.int64).to(dt))
        add(g, 'small%s' % (shape,), torch.randint(max(lo, -5), 6, shape, dtype=torch.int64).to(dt))
    for shape in EMPTY:
        add(g, 'empty%s' % (shape,), torch.zeros(shape, dtype=dt))
    add(g, 'extremes', torch.tensor([info.min, info.max, 0, 1], dtype=dt))
    add(g, 'min', torch.tensor(info.min, dtype=dt))
    add(g, 'long', torch.arange(60, dtype=dt))
    add(g, 'transposed', torch.arange(12, dtype=dt).reshape(3, 4).t())

g = 'bool'
for shape in SHAPES + BIG:
    add(g, 'rand%s' % (shape,), torch.rand(shape) > 0.5)
for shape in EMPTY:
    add(g, 'empty%s' % (shape,), torch.zeros(shape, dtype=torch.bool))
add(g, 'true', torch.tensor(True))
add(g, 'false', torch.tensor(False))
add(g, 'all_true', torch.ones(5, dtype=torch.bool))
add(g, 'all_false', torch.zeros(2, 3, dtype=torch.bool))

for dt in COMPLEX:
    g = dn(dt)
    for kr, ki in [('randn', 'randn'), ('ints', 'ints'), ('tiny', 'randn'), ('randn', 'huge'),
                   ('special', 'special'), ('zeros', 'zeros'), ('ints', 'special'),
                   ('mixed', 'specialints'), ('zeros', 'tiny')]:
        for shape in SHAPES + [(1001,), (40, 40)]:
            add(g, '%s_%s%s' % (kr, ki, shape), torch.complex(fvals(kr, shape), fvals(ki, shape)).to(dt))
    for shape in EMPTY:
        add(g, 'empty%s' % (shape,), torch.zeros(shape, dtype=dt))
    for i, (re, im) in enumerate([(1.0, -0.0), (-0.0, 0.0), (nan, nan), (inf, -inf), (1.5, nan),
                                  (1e-5, 1.0), (2.0, -3.0), (0.0, 1e10)]):
        add(g, 'scalar%d' % i, torch.tensor(complex(re, im), dtype=dt))
    for n in (1, 3, 6):
        add(g, 'grad%d' % n, torch.randn(n, dtype=dt, requires_grad=True))

torch.save(out, sys.argv[1] + '/tensors.pt')
with open(sys.argv[1] + '/reprs.json', 'w') as f:
    json.dump(reprs, f)
print(len(reprs))
]==]

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("tostring(t) is PyTorch 1.13's repr(t)", function()
  local dir, tensors, cases, groups
  lazy_setup(function()
    if not H.has_python() then return end
    dir = H.tmpdir()
    local f = assert(io.open(dir .. "/gen.py", "w"))
    f:write(GEN)
    f:close()
    local p = io.popen("env -u LD_PRELOAD " .. H.PYTHON .. " " .. quote(dir .. "/gen.py") .. " "
      .. quote(dir) .. " 2>&1")
    local out = p:read("a")
    assert(p:close(), "python failed:\n" .. out)
    tensors = torch.load(dir .. "/tensors.pt")
    local jf = assert(io.open(dir .. "/reprs.json", "rb"))
    cases = json.decode(jf:read("a"))
    jf:close()
    groups = {}
    for _, c in ipairs(cases) do
      local g = c[2]
      groups[g] = groups[g] or {}
      table.insert(groups[g], c)
    end
  end)
  lazy_teardown(function() if dir then H.rmdir(dir) end end)

  -- every case of a group; the first mismatches shown in full
  local function check(group)
    if not H.has_python() then pending("no " .. H.PYTHON) return end
    local list = groups[group]
    assert.is_truthy(list and #list > 0, "no cases for " .. group)
    local bad, shown = 0, {}
    for _, c in ipairs(list) do
      local name, want = c[1], c[3]
      local t = tensors[name]
      assert.is_truthy(t, "missing tensor " .. name)
      local ok, got = pcall(tostring, t)
      if not ok then got = "<error: " .. tostring(got) .. ">" end
      if got ~= want then
        bad = bad + 1
        if #shown < 4 then
          shown[#shown + 1] = string.format("%s\nexpected:\n%s\ngot:\n%s", name, want, got)
        end
      end
    end
    assert(bad == 0, string.format("%d of %d %s tensors print differently; first ones:\n\n%s",
      bad, #list, group, table.concat(shown, "\n\n")))
  end

  for _, g in ipairs({"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32",
                      "int64", "uint8", "bool", "complex64", "complex128"}) do
    it("for " .. g .. " tensors", function() check(g) end)
  end

  it("covers a few hundred tensors of every dtype", function()
    if not H.has_python() then pending("no " .. H.PYTHON) return end
    assert.is_true(#cases >= 300, "only " .. #cases .. " cases")
    local n = 0
    for _ in pairs(groups) do n = n + 1 end
    assert.are.equal(12, n)
  end)
end)
