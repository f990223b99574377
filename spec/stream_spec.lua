-- stream_spec.lua: streaming writes. `ltorch convert --dtype` keeps peak
-- memory at about one tensor (measured as VmHWM of a fresh process), the
-- save option dtype casts floating tensors while writing, and every writer
-- reports progress(done, total) in bytes as it writes.
local torch = require("ltorch")
local odict = require("ltorch.odict")

local PY = os.getenv("PYTHON") or "/usr/bin/python3"
local MiB = 1024 * 1024

local sh = require("sh_helper")
local sh_quote, run = sh.quote, sh.run

local function python(code, ...)
  local f = os.tmpname()
  local fh = io.open(f, "w")
  fh:write(code)
  fh:close()
  local args = {}
  for i, a in ipairs({...}) do args[i] = sh_quote(a) end
  local out, code_, err = run(PY .. " " .. f .. " " .. table.concat(args, " "))
  os.remove(f)
  assert(code_ == 0, "python failed: " .. err)
  return out
end

local dir
local function P(name) return dir .. "/" .. name end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. sh_quote(dir)))
end)

teardown(function()
  os.execute("rm -rf " .. sh_quote(dir))
end)

-- A child process: baseline VmHWM once ltorch and the command modules are
-- loaded, then `ltorch convert IN OUT ARGS...`, then VmHWM again. Prints
-- "rc base_kib peak_kib".
local CHILD = [[
local function hwm()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) end
  end
end
require("ltorch"); require("ltorch.commands"); require("ltorch.inspect")
local base = hwm()
local rc = require("ltorch.cli").main(arg)
io.write(string.format("%d %d %d\n", rc, base, hwm()))
]]

-- `ltorch CMD ARGS...` in the child: exit code, peak growth in bytes, stderr
local function command_peak(cmd, args)
  local script = P("child.lua")
  local fh = io.open(script, "w")
  fh:write(CHILD)
  fh:close()
  local q = {}
  for i, a in ipairs(args) do q[i] = sh_quote(a) end
  local out, code, err = run("LTORCH_PROGRESS=never bin/ltorch " .. sh_quote(script) .. " " .. cmd .. " " .. table.concat(q, " "))
  assert(code == 0, "child failed: " .. err)
  local rc, base, peak = out:match("(%d+) (%d+) (%d+)\n$")
  assert(rc, "unexpected child output: " .. out .. err)
  return tonumber(rc), (tonumber(peak) - tonumber(base)) * 1024, err
end

local function convert_peak(args) return command_peak("convert", args) end

describe("ltorch convert --dtype", function()
  -- 16 float32 tensors of 4 MiB (64 MiB): one written by ltorch, the same
  -- values written by PyTorch, plus an int64 tensor that is not cast
  local NT, SIZE = 16, 64 * MiB
  setup(function()
    torch.manual_seed(7)
    local sd = odict.new()
    for i = 1, NT do sd["blocks." .. i .. ".weight"] = torch.randn(1024, 1024) end
    sd["steps"] = torch.arange(0, 100):to("int64")
    torch.save(sd, P("in.pt"))
    torch.save(sd, P("in.safetensors"))
    python([[
import sys, torch
sd = torch.load(sys.argv[1] + "/in.pt")
torch.save(sd, sys.argv[1] + "/torch_in.pt")
]], dir)
  end)

  -- PyTorch checks each OUT against in.pt (every input holds its values)
  -- cast to bfloat16 (floating tensors only); a .pt keeps the key order of a
  -- .pt input (safetensors files are sorted). safetensors is parsed by hand
  -- (no safetensors package on the machine). One python run checks them all.
  local CHECK = [==[
import sys, json, struct, torch
a = torch.load(sys.argv[1])
for out, kind, ordered in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    if kind == "pt":
        b = torch.load(out)
    else:
        raw = open(out, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        names = {"BF16": torch.bfloat16, "I64": torch.int64}
        b = {}
        for k, e in h.items():
            if k == "__metadata__": continue
            s, t = e["data_offsets"]
            b[k] = torch.frombuffer(bytearray(raw[8 + n + s:8 + n + t]), dtype=names[e["dtype"]]).reshape(e["shape"])
    assert sorted(a) == sorted(b), (out, sorted(a), sorted(b))
    if ordered == "1": assert list(a) == list(b), out
    for k, v in a.items():
        want = v.to(torch.bfloat16) if v.is_floating_point() else v
        assert b[k].dtype == want.dtype, (out, k, b[k].dtype)
        assert torch.equal(b[k], want), (out, k)
    print("ok", len(b))
]==]

  local CASES = {
    {"in.pt", "out.pt", "pt"}, {"in.pt", "out.safetensors", "safetensors"},
    {"in.safetensors", "out2.pt", "pt"}, {"torch_in.pt", "out3.safetensors", "safetensors"},
  }
  for _, case in ipairs(CASES) do
    it(string.format("%s -> %s to bfloat16 peaks well below the model size", case[1], case[2]), function()
      local rc, growth = convert_peak({P(case[1]), P(case[2]), "--dtype", "bfloat16"})
      if os.getenv("STREAM_VERBOSE") then io.stderr:write(string.format("\n%s -> %s: +%.1f MiB\n", case[1], case[2], growth / MiB)) end
      assert.are.equal(0, rc)
      -- before streaming this was about 100 MiB: the mapped input (64 MiB)
      -- and every cast tensor (32 MiB) alive at once
      assert.is_true(growth < 24 * MiB, string.format("peak grew by %.1f MiB (model %d MiB)", growth / MiB, SIZE // MiB))
    end)
  end

  it("writes the cast values: PyTorch reads each output as in.pt cast to bfloat16", function()
    local args = {}
    for _, case in ipairs(CASES) do
      args[#args + 1] = P(case[2])
      args[#args + 1] = case[3]
      args[#args + 1] = (case[3] == "pt" and case[1]:match("%.pt$")) and "1" or "0"
    end
    local out = python(CHECK, P("in.pt"), table.unpack(args))
    assert.are.equal(string.rep("ok " .. (NT + 1) .. "\n", #CASES), out)
  end)

  it("streams npz and TorchSharp too (float16: .npz has no bfloat16)", function()
    for _, o in ipairs({"out.npz", "out.dat"}) do
      local rc, growth = convert_peak({P("in.pt"), P(o), "--dtype", "float16"})
      assert.are.equal(0, rc)
      assert.is_true(growth < 24 * MiB, string.format("%s: peak grew by %.1f MiB", o, growth / MiB))
      local back, src = torch.load(P(o)), torch.load(P("in.pt"))
      for k, v in pairs(src) do
        local want = v:dtype() == "float32" and v:to("float16") or v
        assert.are.equal(want:dtype(), back[k]:dtype())
        assert.is_true(back[k]:equal(want), o .. ": " .. k)
      end
    end
  end)

  it("streams without --dtype too (pages of the mapped input are dropped behind the writer)", function()
    for _, c in ipairs({{"in.safetensors", "plain.pt"}, {"in.pt", "plain.safetensors"}}) do
      local rc, growth = convert_peak({P(c[1]), P(c[2])})
      assert.are.equal(0, rc)
      assert.is_true(growth < 24 * MiB, string.format("%s: peak grew by %.1f MiB", c[2], growth / MiB))
      local back, src = torch.load(P(c[2])), torch.load(P(c[1]))
      for k, v in pairs(src) do
        assert.are.equal(v:dtype(), back[k]:dtype())
        assert.is_true(back[k]:equal(v), c[2] .. ": " .. k)
      end
    end
  end)

  it("a whole ltorch module streams too, and stays a module", function()
    local nn = torch.nn
    torch.manual_seed(9)
    local m = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048),
      nn.Linear(2048, 2048), nn.Linear(2048, 2048))   -- 64 MiB of float32
    torch.save(m, P("mod.pt"))
    local rc, growth = convert_peak({P("mod.pt"), P("mod16.safetensors"), "--dtype", "bfloat16"})
    assert.are.equal(0, rc)
    assert.is_true(growth < 24 * MiB, string.format("peak grew by %.1f MiB", growth / MiB))
    local back = torch.load(P("mod16.safetensors"))
    assert.are.equal("Sequential", back:class_name())
    assert.are.equal("bfloat16", back[3].weight:dtype())
    assert.is_true(back[3].weight:equal(m[3].weight:to("bfloat16")))
  end)

  it("--rename streams as well and leaves the input untouched", function()
    local rc, growth = convert_peak({P("in.pt"), P("ren.pt"), "--dtype", "bfloat16", "-r", "^blocks%.=b."})
    assert.are.equal(0, rc)
    assert.is_true(growth < 24 * MiB, string.format("peak grew by %.1f MiB", growth / MiB))
    local back, src = torch.load(P("ren.pt")), torch.load(P("in.pt"))
    assert.is_true(back["b.3.weight"]:equal(src["blocks.3.weight"]:to("bfloat16")))
    assert.is_nil(back["blocks.3.weight"])
  end)
end)

describe("ltorch convert from inputs that cannot be mapped", function()
  -- 64 MiB each, written by the peers: NumPy's stored .npz (member data at
  -- no particular alignment) and deflated .npz (patterned values, which
  -- deflate quickly), and a legacy (pre-1.6) torch.save file. Their records
  -- are read when the writer reaches them and freed once written.
  local NT = 16
  setup(function()
    python([[
import sys, numpy as np, torch
d, n = sys.argv[1], int(sys.argv[2])
g = np.random.default_rng(11)
rnd = {'layer%d.weight' % i: g.standard_normal((1024, 1024)).astype('f4') for i in range(n)}
np.savez(d + '/np_stored.npz', **rnd)
torch.save({k: torch.from_numpy(v) for k, v in rnd.items()}, d + '/legacy.pt', _use_new_zipfile_serialization=False)
pat = np.tile(np.arange(1024, dtype='f4') / 7, (1024, 1))
np.savez_compressed(d + '/np_deflated.npz', **{'layer%d.weight' % i: pat + i for i in range(n)})
]], dir, tostring(NT))
  end)

  for _, case in ipairs({{"np_stored.npz", "a.safetensors", "bfloat16"}, {"np_deflated.npz", "b.pt", "bfloat16"},
                         {"legacy.pt", "c.safetensors", "bfloat16"}, {"np_deflated.npz", "d.npz", "float16"}}) do
    it(string.format("%s -> %s to %s peaks well below the model size", case[1], case[2], case[3]), function()
      local rc, growth = convert_peak({P(case[1]), P(case[2]), "--dtype", case[3]})
      if os.getenv("STREAM_VERBOSE") then io.stderr:write(string.format("\n%s -> %s: +%.1f MiB\n", case[1], case[2], growth / MiB)) end
      assert.are.equal(0, rc)
      assert.is_true(growth < 24 * MiB, string.format("peak grew by %.1f MiB (model 64 MiB)", growth / MiB))
      local src, back = torch.load(P(case[1])), torch.load(P(case[2]))
      local n = 0
      for k, v in pairs(src) do
        assert.is_true(back[k]:equal(v:to(case[3])), k)
        n = n + 1
      end
      assert.are.equal(NT, n)
    end)
  end

  it("inspect --stats and diff hold one tensor (or one pair) at a time", function()
    local rc, growth = command_peak("inspect", {"--stats", P("np_deflated.npz")})
    assert.are.equal(0, rc)
    assert.is_true(growth < 24 * MiB, string.format("inspect --stats: peak grew by %.1f MiB", growth / MiB))
    rc, growth = command_peak("diff", {P("np_stored.npz"), P("legacy.pt")})
    assert.are.equal(0, rc)   -- the same values
    assert.is_true(growth < 24 * MiB, string.format("diff: peak grew by %.1f MiB", growth / MiB))
    rc, growth = command_peak("diff", {P("np_stored.npz"), P("np_deflated.npz")})
    assert.are.equal(1, rc)
    assert.is_true(growth < 24 * MiB, string.format("diff: peak grew by %.1f MiB", growth / MiB))
  end)
end)

-- a small state dict with what streaming must get right: two views of one
-- storage, a strided view, integers (never cast), float16 and float32
local function sample()
  torch.manual_seed(3)
  local base = torch.randn(6, 5)
  local sd = odict.new()
  sd.a = base
  sd.b = base:narrow(1, 2, 3)
  sd.t = torch.randn(4, 3):t()
  sd.i = torch.arange(0, 10):to("int64")
  sd.h = torch.randn(3):to("float16")
  return sd
end

describe("torch.save option dtype", function()
  for _, c in ipairs({{"pt", "bfloat16"}, {"safetensors", "bfloat16"}, {"npz", "float16"}, {"dat", "float64"}}) do
    it("casts the floating tensors while writing ." .. c[1], function()
      local sd = sample()
      local p = P("cast." .. c[1])
      torch.save(sd, p, {dtype = c[2]})
      local back = torch.load(p)
      for k, v in pairs(sd) do
        local want = v:dtype():match("^float") and v:to(c[2]) or v
        assert.are.equal(want:dtype(), back[k]:dtype())
        assert.is_true(back[k]:equal(want), k)
        assert.are.same(v:size(), back[k]:size())
      end
    end)
  end

  it("keeps views of one storage shared in .pt (PyTorch sees one storage)", function()
    local p = P("shared.pt")
    torch.save(sample(), p, {dtype = "bfloat16"})
    local out = python([[
import sys, torch
d = torch.load(sys.argv[1])
print(d["a"].dtype, d["a"].storage().data_ptr() == d["b"].storage().data_ptr(), torch.equal(d["b"], d["a"][1:4]))
]], p)
    assert.are.equal("torch.bfloat16 True True\n", out)
  end)

  it("casts to a float8 type in .pt", function()
    local sd = sample()
    torch.save(sd, P("f8.pt"), {dtype = "float8_e4m3fn"})
    local back = torch.load(P("f8.pt"))
    assert.are.equal("float8_e4m3fn", back.a:dtype())
    assert.is_true(back.a:equal(sd.a:to("float8_e4m3fn")))
    assert.is_true(back.b:equal(sd.b:to("float8_e4m3fn")))
    assert.are.equal("int64", back.i:dtype())
  end)

  it("writes one .npy tensor cast", function()
    local t = torch.randn(5, 4):t()
    torch.save(t, P("one.npy"), {dtype = "float16"})
    assert.is_true(torch.load(P("one.npy")):equal(t:to("float16")))
  end)

  it("rejects an unknown dtype", function()
    local ok, err = pcall(torch.save, sample(), P("bad.safetensors"), {dtype = "nope"})
    assert.is_false(ok)
    assert.are.equal(P("bad.safetensors") .. ": bad option 'dtype' (unknown dtype 'nope')", err)
    ok, err = pcall(torch.save, sample(), P("bad.pt"), {dtype = "nope"})
    assert.is_false(ok)
    assert.are.equal(P("bad.pt") .. ": bad option 'dtype' (unknown dtype 'nope')", err)
    ok, err = pcall(torch.save, sample(), P("bad.npz"), {dtype = 3})
    assert.is_false(ok)
    assert.are.equal(P("bad.npz") .. ": bad option 'dtype' (string expected, got number)", err)
  end)

  it("refuses a cast the format cannot store", function()
    local ok, err = pcall(torch.save, sample(), P("bf.npz"), {dtype = "bfloat16"})
    assert.is_false(ok)
    assert.are.equal(P("bf.npz") .. ": tensor 'a': dtype bfloat16 cannot be stored in .npz (.pt or safetensors can)", err)
  end)
end)

describe("save progress", function()
  -- a 3 MiB tensor is written in several chunks
  local function dict()
    torch.manual_seed(4)
    local sd = odict.new()
    sd.big = torch.randn(768, 1024)
    sd.small = torch.randn(10)
    sd.idx = torch.arange(0, 7):to("int32")
    return sd
  end
  local BYTES = 768 * 1024 * 4 + 10 * 4 + 7 * 4

  local function check(calls, total)
    assert.is_true(#calls >= 3, "only " .. #calls .. " progress calls")
    local last = 0
    for _, c in ipairs(calls) do
      assert.are.equal(total, c[2])
      assert.is_true(c[1] >= last and c[1] <= total)
      last = c[1]
    end
    assert.are.equal(total, calls[#calls][1])
  end

  for _, ext in ipairs({"safetensors", "pt", "npz", "dat"}) do
    it("reports bytes written to ." .. ext .. ", monotonic, ending at done == total", function()
      local calls = {}
      torch.save(dict(), P("prog." .. ext), {progress = function(d, t) calls[#calls + 1] = {d, t} end})
      check(calls, BYTES)
    end)
  end

  it("counts the cast bytes when casting", function()
    local calls = {}
    torch.save(dict(), P("progc.safetensors"), {dtype = "bfloat16", progress = function(d, t) calls[#calls + 1] = {d, t} end})
    check(calls, 768 * 1024 * 2 + 10 * 2 + 7 * 4)
  end)

  it("an error in progress fails the save and leaves no file", function()
    local p = P("perr.safetensors")
    local ok, err = pcall(torch.save, dict(), p, {progress = function() error("stop", 0) end})
    assert.is_false(ok)
    assert.are.equal(p .. ": stop", err)
    assert.is_nil(io.open(p))
    ok = pcall(torch.save, dict(), P("perr.npz"), {progress = function() error("stop", 0) end})
    assert.is_false(ok)
    assert.is_nil(io.open(P("perr.npz")))
  end)

  it("rejects a progress that is not a function", function()
    local ok, err = pcall(torch.save, dict(), P("pbad.safetensors"), {progress = 1})
    assert.is_false(ok)
    assert.are.equal(P("pbad.safetensors") .. ": bad option 'progress' (function expected, got number)", err)
  end)
end)
