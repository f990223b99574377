-- at_helper.lua: parity cases of the attention and recurrent layers
-- (attention_spec.lua, rnn_spec.lua). A case is
--   {name, py_make = "nn.LSTM(4, 6)", py_inp = "dict(x=r(5, 3, 4))",
--    py_call = "m(i['x'])", make = function() ... end, call = function(m, i) ... end,
--    repr = false (the repr differs from PyTorch's: not compared)}
-- One Python process writes every case of a spec file: PyTorch builds the
-- module with a fixed seed, draws random parameters (LayerNorm weights near
-- 1), runs it in eval mode on random inputs and saves {sd, in, out} to
-- DIR/<name>.pt, and each module's state dict keys, shapes and repr to
-- DIR/meta.json. Outputs are flattened in order (an LSTM's out, (h, c)
-- gives three), None ones are listed. The forward runs with autograd on
-- (parameters require grad), so PyTorch takes its reference path, not the
-- fused inference kernels.
local torch = require("ltorch")
local H = require("nn_helpers")
local B = require("busted")   -- describe, it, setup, teardown for the suite built here
local assert = require("luassert")

local A = {}

A.PY_PRELUDE = [==[
import torch, json
import torch.nn as nn
import warnings
warnings.simplefilter('ignore')
def r(*s): return torch.randn(*s)
def bmask(*s):
    # a bool mask (True: may not attend); the first key is never masked, so
    # no row is masked whole
    m = torch.rand(*s) > 0.6
    m[..., 0] = False
    return m
def causal(n): return torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
def rnd(m):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1 and 'norm' in n and n.endswith('weight'):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.4 * torch.randn_like(p))
    return m.eval()
def flat(v):
    if isinstance(v, (tuple, list)):
        out = []
        for x in v:
            out += flat(x)
        return out
    return [v]
def packed(m, x, lengths, state=None, batch_first=False, enforce_sorted=True):
    # a packed batch through m: the padded output, its lengths, the batch
    # sizes and the final state (torch.nn.utils.rnn)
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    p = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    out, st = m(p) if state is None else m(p, state)
    o, lens = pad_packed_sequence(out, batch_first=batch_first)
    return (o, lens, out.batch_sizes, st)
META = {}
def case(name, make, inp, call):
    torch.manual_seed(7)
    m = rnd(make())
    torch.manual_seed(8)
    i = inp()
    outs = flat(call(m, i))
    out = {str(k + 1): o.detach() for k, o in enumerate(outs) if o is not None}
    torch.save({'sd': m.state_dict(), 'in': i, 'out': out}, DIR + '/' + name + '.pt')
    META[name] = {'n': len(outs), 'none': [k + 1 for k, o in enumerate(outs) if o is None],
                  'keys': [[k, list(v.shape)] for k, v in m.state_dict().items()], 'repr': repr(m)}
]==]

-- the Python program writing every case's fixture into DIR
function A.python_code(cases, extra)
  local lines = {A.PY_PRELUDE}
  for _, c in ipairs(cases) do
    lines[#lines + 1] = string.format("case(%q, lambda: %s, lambda: %s, lambda m, i: %s)",
      c.name, c.py_make, c.py_inp, c.py_call)
  end
  lines[#lines + 1] = extra or ""
  lines[#lines + 1] = "json.dump(META, open(DIR + '/meta.json', 'w'))"
  return table.concat(lines, "\n") .. "\n"
end

-- writes the fixtures; returns the meta table
function A.fixtures(cases, dir, extra)
  H.py_fixtures(A.python_code(cases, extra), dir)
  local f = assert(io.open(dir .. "/meta.json", "rb"))
  local meta = require("ltorch.modsave").json_decode(f:read("a"))
  f:close()
  return meta
end

-- outputs as a flat list (tables of tensors, e.g. an LSTM state, spread;
-- nil kept as false); p is a table.pack of the outputs
local function flatten_into(list, n, out)
  for k = 1, n do
    local v = list[k]
    if v == nil then out[#out + 1] = false
    elseif torch.is_tensor(v) then out[#out + 1] = v
    else flatten_into(v, #v, out) end
  end
  return out
end
function A.flatten(p) return flatten_into(p, p.n, {}) end

-- the state dict keys and shapes of m, as PyTorch's meta lists them
function A.check_keys(m, keys, what)
  local i = 0
  for k, t in pairs(m:state_dict()) do
    i = i + 1
    assert(keys[i] ~= nil, what .. ": extra key " .. k)
    assert.are.equal(keys[i][1], k, what)
    assert.are.same({table.unpack(keys[i][2])}, t:size(), what .. ": " .. k)
  end
  assert.are.equal(#keys, i, what .. ": number of keys")
end

-- a case against its fixture: keys and shapes, strict load, outputs (rtol)
function A.check_case(c, dir, meta, rtol)
  local mt = meta[c.name]
  local m = c.make()
  A.check_keys(m, mt.keys, c.name)
  if c.repr ~= false then assert.are.equal(mt.repr, tostring(m), c.name .. ": repr") end
  local f = torch.load(dir .. "/" .. c.name .. ".pt")
  m:load_state_dict(f.sd)
  m:eval()
  local outs = A.flatten(table.pack(c.call(m, f["in"])))
  assert.are.equal(mt.n, #outs, c.name .. ": number of outputs")
  local none = {}
  for _, k in ipairs(mt.none) do none[k] = true end
  for k = 1, mt.n do
    if none[k] then
      assert.are.equal(false, outs[k], c.name .. ": output " .. k .. " should be nil")
    else
      H.assert_parity(outs[k], f.out[tostring(k)], rtol or 1e-4, c.name .. ": output " .. k)
    end
  end
end

-- the error of code run as a chunk named user.lua (nn, torch on line 1;
-- the code starts on line 2)
function A.err_of(code, ...)
  local f = assert(load("local nn, torch = ...\n" .. code, "=user.lua"))
  local ok, e = pcall(f, torch.nn, torch, ...)
  assert.is_false(ok, "no error from: " .. code)
  return e
end

-- the fixtures of cases (and extra Python) made once in setup, removed in
-- teardown, and one parity test per case; returns the fixtures' meta table
-- (filled in setup) for tests of their own
function A.parity_suite(cases, extra)
  local setup, teardown, describe, it = B.setup, B.teardown, B.describe, B.it
  local st, meta = {}, {}
  setup(function()
    st.dir = H.tmpdir()
    for k, v in pairs(A.fixtures(cases, st.dir, extra)) do meta[k] = v end
  end)
  teardown(function() H.rmdir(st.dir) end)
  describe("parity with PyTorch 1.13", function()
    for _, c in ipairs(cases) do
      it(c.name, function() A.check_case(c, st.dir, meta) end)
    end
  end)
  return meta
end

return A
