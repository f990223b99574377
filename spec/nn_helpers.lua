-- nn_helpers.lua: shared helpers of the nn, modsave and models specs:
-- running real PyTorch, temp dirs, comparing tensors. Where the C math of
-- ltorch is not built yet, small Lua fallbacks for scalar arithmetic are
-- installed here (never in the library) so the class machinery can be tested.
local torch = require("ltorch")

local H = {}

H.PYTHON = "/usr/bin/python3"
H.LUA = "lua5.4"

local function flat(t)
  local out = {}
  local function rec(v) if type(v) == "table" then for _, x in ipairs(v) do rec(x) end else out[#out + 1] = v end end
  rec(t:tolist())
  return out
end
H.flat = flat

-- Lua fallbacks for `tensor op number` when the core has no arithmetic yet
local meta = torch._meta
if meta.__mul == nil then
  local function lift(f)
    return function(a, b)
      local t = torch.is_tensor(a) and a or b
      local va = torch.is_tensor(a) and flat(a) or nil
      local vb = torch.is_tensor(b) and flat(b) or nil
      local out = {}
      for i = 1, t:numel() do out[i] = f(va and va[i] or a, vb and vb[i] or b) end
      return torch.tensor(out, {dtype = t:dtype()}):view(t:size())
    end
  end
  meta.__add = lift(function(x, y) return x + y end)
  meta.__sub = lift(function(x, y) return x - y end)
  meta.__mul = lift(function(x, y) return x * y end)
  meta.__div = lift(function(x, y) return x / y end)
  H.fallback_math = true
end

function H.has_python()
  local f = io.open(H.PYTHON, "rb")
  if f then f:close() return true end
  return false
end

-- a fresh temporary directory; H.rmdir removes it
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end
function H.rmdir(p) os.execute("rm -rf '" .. p .. "'") end

-- run python code (a string) with /usr/bin/python3; raises with its output on failure
function H.python(code, dir)
  local script = (dir or H.tmpdir()) .. "/script.py"
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  -- without the sanitizer runtime `make asan` preloads: python does not need it
  local p = io.popen("env -u LD_PRELOAD " .. H.PYTHON .. " '" .. script .. "' 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("python failed:\n" .. out, 2) end
  return out
end

-- run a Lua 5.4 script (a string) in a fresh process with ltorch on the
-- path (this checkout's lua/ and build); returns ok, output (stdout+stderr)
function H.lua(code, dir)
  local script = (dir or H.tmpdir()) .. "/script.lua"
  local build = os.getenv("LTORCH_BUILD") or "build"
  local f = assert(io.open(script, "w"))
  f:write(string.format("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n",
    "lua/?.lua;lua/?/init.lua;spec/?.lua;", build .. "/?.so;"))
  f:write(code)
  f:close()
  local p = io.popen(H.LUA .. " '" .. script .. "' 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

-- python source of load_st(path) -> {name: torch tensor}: a safetensors
-- reader in a few lines (the safetensors package is not installed)
H.PY_LOAD_ST = [==[
import json as _json, struct as _struct, numpy as _np, torch as _torch
def load_st(path):
    b = open(path, 'rb').read()
    n = _struct.unpack('<Q', b[:8])[0]
    h = _json.loads(b[8:8 + n])
    h.pop('__metadata__', None)
    types = {'F32': _np.float32, 'F64': _np.float64, 'I64': _np.int64, 'I32': _np.int32}
    out = {}
    for k, v in h.items():
        s, e = v['data_offsets']
        a = _np.frombuffer(b[8 + n + s:8 + n + e], dtype=types[v['dtype']]).reshape(v['shape'])
        out[k] = _torch.from_numpy(a.copy())
    return out
]==]

-- python source of save_st(tensors, path): a minimal safetensors writer
H.PY_SAVE_ST = [==[
import json as _json, struct as _struct, torch as _torch
def save_st(tensors, path):
    names = {_torch.float32: 'F32', _torch.float64: 'F64', _torch.int64: 'I64'}
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        b = t.detach().contiguous().numpy().tobytes()
        header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = _json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(_struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
]==]

-- largest absolute difference between two tensors of the same shape
function H.maxdiff(a, b)
  local x, y = flat(a), flat(b)
  assert(#x == #y, "sizes differ: " .. #x .. " vs " .. #y)
  local m = 0
  for i = 1, #x do m = math.max(m, math.abs(x[i] - y[i])) end
  return m
end

-- Parity with PyTorch: got and want (tensors of one shape) agree when the
-- largest absolute difference is at most rtol times the largest |want|
-- (the tensor's scale; 1e-4 for layers, 1e-5 for ops). Integer and bool
-- tensors must be equal. Raises with the worst element named otherwise.
function H.assert_parity(got, want, rtol, what)
  what = what or "output"
  assert(torch.is_tensor(got), what .. ": expected a tensor, got " .. type(got))
  local gs, ws = table.concat(got:size(), "x"), table.concat(want:size(), "x")
  if gs ~= ws then error(string.format("%s: shape %s, PyTorch's is %s", what, gs, ws), 2) end
  local dt = want:dtype()
  if not (dt:match("float") or dt:match("complex")) then
    if not torch.equal(got:to(dt), want) then error(what .. ": values differ from PyTorch's", 2) end
    return
  end
  if got:numel() == 0 then return end
  local g, w = got:to("float64"), want:to("float64")
  local diff = (g - w):abs():max():item()
  local scale = w:abs():max():item()
  if diff ~= diff or diff > (rtol or 1e-4) * math.max(scale, 1e-12) then
    error(string.format("%s: max |difference| %.3g with PyTorch's max |value| %.3g (rtol %g)",
      what, diff, scale, rtol or 1e-4), 2)
  end
end

-- run python code that writes PyTorch fixtures into the folder DIR (the code
-- gets DIR as a Python string variable); returns nothing, raises on failure
function H.py_fixtures(code, dir)
  return H.python("DIR = " .. string.format("%q", dir) .. "\n" .. code, dir)
end

-- ref and sd are ordered state dicts with the same keys in the same order,
-- and tensors of the same dtypes, shapes and values (torch.equal)
function H.assert_same_state_dict(ref, sd)
  local odict = require("ltorch.odict")
  local assert = require("luassert")
  assert.is_true(odict.is(sd))
  assert.are.same(odict.keys(ref), odict.keys(sd))
  for k, t in pairs(ref) do
    assert.is_true(torch.is_tensor(sd[k]), k)
    assert.are.equal(t:dtype(), sd[k]:dtype(), k)
    assert.are.same(t:size(), sd[k]:size(), k)
    assert.is_true(torch.equal(t, sd[k]), k)
  end
end

return H
