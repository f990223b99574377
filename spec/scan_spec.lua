-- scan_spec.lua: `ltorch scan` and torch.scan, the static pickle audit, on
-- files built at test time by PyTorch 1.13 / NumPy (/usr/bin/python3) and
-- by hand: the verdicts, the known scanner bypasses (STACK_GLOBAL through
-- the memo, pkgutil.resolve_name, non-zip wrappers, broken pickles after
-- the payload, a payload in a second pickle, zips in zips), exit codes and
-- JSON. No dangerous fixture is ever unpickled: Python only writes bytes
-- (pickle.dumps of objects whose __reduce__ names the target, or bytes
-- assembled here), and each would create a marker file if it ran.
local H = require("fmt_helper")
local json = require("ltorch.json")
local scan = require("ltorch.scan")

local dir, MARK
local function P(name) return dir .. "/" .. name end

local function ltorch(args)
  return H.ltorch("scan " .. args)
end

local function global(r, name)
  for _, g in ipairs(r.globals) do if g.name == name then return g end end
end

local GEN = [[
import sys, os, io, pickle, zipfile, collections, torch, numpy as np
d, mark = sys.argv[1], sys.argv[2]
cmd = "touch " + mark
class Sys:
    def __reduce__(self): return (os.system, (cmd,))
class Eval:
    def __reduce__(self): return (eval, ("__import__('os').system(%r)" % cmd,))
torch.manual_seed(0)
sd = collections.OrderedDict(w=torch.randn(3, 2), b=torch.zeros(4, dtype=torch.float16))
torch.save(sd, d + "/plain.pt")
torch.save(sd, d + "/legacy.pt", _use_new_zipfile_serialization=False)
open(d + "/sys.pkl", "wb").write(pickle.dumps([1, Sys()], protocol=2))
open(d + "/eval.pkl", "wb").write(pickle.dumps({"a": Eval()}, protocol=4))
np.save(d + "/obj.npy", np.array([1, "a", None, {"k": [2]}], dtype=object), allow_pickle=True)
np.save(d + "/objscalar.npy", np.array([np.float64(1.5)], dtype=object), allow_pickle=True)
np.savez_compressed(d + "/mixed.npz", a=np.arange(4), b=np.array(["x", 1], dtype=object))
np.savez(d + "/numeric.npz", a=np.arange(4.0))
# a torch.save zip whose data.pkl is replaced (same name, same folder)
def pt_with(path, pkl):
    buf = io.BytesIO()
    torch.save(sd, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as zout:
        for i in zin.infolist():
            data = pkl if i.filename.endswith("/data.pkl") else zin.read(i.filename)
            zout.writestr(i, data)
evil = pickle.dumps(Sys(), protocol=2)
# the payload, then garbage instead of STOP: REDUCE runs before the error
pt_with(d + "/broken.pt", evil[:-1] + b"\xff\xfe garbage")
# a zip (stored) holding a zip (deflated) holding a .pt whose data.pkl calls os.system
pt_with(d + "/inner.pt", evil)
b1 = io.BytesIO()
with zipfile.ZipFile(b1, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(d + "/inner.pt", "models/inner.pt")
    z.writestr("readme.txt", "nothing here")
with zipfile.ZipFile(d + "/nested.zip", "w", zipfile.ZIP_STORED) as z:
    z.writestr("level1.zip", b1.getvalue())
# a harmless pickle, then a second one with the payload (pickle.load twice runs it)
open(d + "/second.pkl", "wb").write(pickle.dumps({"ok": 1}, protocol=2) + pickle.dumps(Sys(), protocol=2))
# a zip holding a broken member and a dangerous one
with zipfile.ZipFile(d + "/errdanger.zip", "w") as z:
    z.writestr("a/bad.pkl", b"\x80\x02}q\x00(X\x01\x00")
    z.writestr("b/evil.pkl", evil)
with zipfile.ZipFile(d + "/erronly.zip", "w") as z:
    z.writestr("bad.pkl", b"\x80\x02}q\x00(X\x01\x00")
class M(torch.nn.Module):
    def __init__(self):
        super().__init__(); self.lin = torch.nn.Linear(2, 2)
    def forward(self, x): return self.lin(x)
torch.jit.save(torch.jit.script(M()), d + "/script.pt")
torch.save(torch.nn.Linear(2, 2), d + "/module.pt")
# pickle.dumps of a tensor: its storage is a legacy torch.save file in
# bytes, loaded by torch.storage._load_from_bytes (torch.load again)
open(d + "/tensor.pkl", "wb").write(pickle.dumps({"t": torch.arange(3.)}, protocol=2))
class Emb:
    def __reduce__(self): return (torch.storage._load_from_bytes, (pickle.dumps(Sys(), protocol=2),))
open(d + "/embedded.pkl", "wb").write(pickle.dumps(Emb(), protocol=4))
]]

setup(function()
  dir = H.tmpdir()
  MARK = P("MARKER")
  H.py(GEN, dir, MARK)
  -- hand-assembled pickles (protocol 4 unless said)
  local function s8(s) return "\x8c" .. string.char(#s) .. s end
  -- STACK_GLOBAL whose two strings are memoized, then fetched back
  H.write(P("memo.pkl"), "\x80\x04" .. s8("os") .. "\x94" .. s8("system") .. "\x94" .. "0" .. "0" ..
    "h\x00h\x01\x93" .. s8("touch " .. MARK) .. "\x85R.")
  -- the same through DUP, PUT and GET (the text memo opcodes)
  H.write(P("memo0.pkl"), "\x80\x02" .. "X\x0a\x00\x00\x00subprocess20p7\n0" .. "g7\nX\x04\x00\x00\x00call\x93" ..
    "X\x04\x00\x00\x00true\x85\x85R.")
  -- pkgutil.resolve_name("os:system")(cmd) via STACK_GLOBAL
  H.write(P("resolve.pkl"), "\x80\x04" .. s8("pkgutil") .. s8("resolve_name") .. "\x93" .. s8("os:system") ..
    "\x85R" .. s8("touch " .. MARK) .. "\x85R.")
  -- a STACK_GLOBAL whose module name is computed (the result of a call)
  H.write(P("computed.pkl"), "\x80\x04" .. s8("builtins") .. s8("str") .. "\x93" .. s8("os") .. "\x85R" ..
    s8("system") .. "\x93" .. s8("touch " .. MARK) .. "\x85R.")
  -- copyreg extension codes
  H.write(P("ext.pkl"), "\x80\x02\x82\x07)R\x83\x10\x27)R0.")
  -- protocol 0: INST and GLOBAL forms
  H.write(P("proto0.pkl"), "(S'touch " .. MARK .. "'\nios\nsystem\n.")
  -- a dunder attribute path and a getattr chain past the module
  H.write(P("dotted.pkl"), "\x80\x04" .. s8("torch.serialization") .. s8("os.system") .. "\x93" ..
    s8("touch " .. MARK) .. "\x85R.")
  -- a safe-looking pickle of a class of the user's own
  H.write(P("user.pkl"), "\x80\x02cmymodel\nConfig\n)\x81}b.")
  -- not formats ltorch scans
  H.write(P("archive.7z"), "7z\xBC\xAF\x27\x1C\x00\x04" .. string.rep("\0", 24))
  os.execute("printf 'x' | gzip > '" .. P("file.gz") .. "'")
  H.write(P("random.bin"), "\x13\x37\x00\xff\xee\xdd\xcc\xbb")
end)

teardown(function() if dir then H.rmdir(dir) end end)

describe("torch.scan verdicts", function()
  it("calls a plain torch.save state dict safe (zip and legacy)", function()
    for _, f in ipairs({"plain.pt", "legacy.pt"}) do
      local r = scan.scan(P(f))
      assert.are.equal("safe", r.verdict, f)
      assert.truthy(global(r, "torch._utils._rebuild_tensor_v2"), f)
      assert.truthy(global(r, "collections.OrderedDict"), f)
      assert.are.same({}, r.errors)
    end
    local z = scan.scan(P("plain.pt"))
    assert.are.equal("pt zip", z.format)
    local kinds = {}
    for _, m in ipairs(z.members) do kinds[m.kind] = m end
    assert.truthy(kinds.pickle and kinds.pickle.scanned)
    assert.are.equal(2, kinds.storages.count)
    local l = scan.scan(P("legacy.pt"))
    assert.are.equal("pt legacy", l.format)
    assert.are.equal(5, l.pickles)
    assert.truthy(l.opcodes.persistent_id > 0)
  end)

  it("is torch.scan too", function()
    local torch = require("ltorch")
    assert.are.equal("dangerous", torch.scan(P("sys.pkl")).verdict)
  end)

  it("finds os.system in a __reduce__ pickle, called, and never runs it", function()
    local r = scan.scan(P("sys.pkl"))
    assert.are.equal("dangerous", r.verdict)
    local g = global(r, "posix.system") or global(r, "os.system")
    assert.truthy(g)
    assert.are.equal("dangerous", g.class)
    assert.are.equal(1, g.calls)
    assert.are.equal(1, r.opcodes.call)
    local _, code = ltorch("'" .. P("sys.pkl") .. "'")
    assert.are.equal(1, code)
    assert.is_nil(io.open(MARK), "the pickle ran")
  end)

  it("finds builtins.eval", function()
    local r = scan.scan(P("eval.pkl"))
    assert.are.equal("dangerous", r.verdict)
    assert.are.equal("dangerous", global(r, "builtins.eval").class)
  end)

  it("names STACK_GLOBAL operands that come through the memo (MEMOIZE/BINGET, DUP/PUT/GET)", function()
    local r = scan.scan(P("memo.pkl"))
    assert.are.equal("dangerous", r.verdict)
    local g = global(r, "os.system")
    assert.truthy(g, "os.system not named")
    assert.are.equal(1, g.calls)
    assert.are.equal(4, r.opcodes.memo)  -- two MEMOIZE, two BINGET
    local r0 = scan.scan(P("memo0.pkl"))
    assert.are.equal("dangerous", r0.verdict)
    assert.truthy(global(r0, "subprocess.call"))
  end)

  it("finds pkgutil.resolve_name through STACK_GLOBAL", function()
    local r = scan.scan(P("resolve.pkl"))
    assert.are.equal("dangerous", r.verdict)
    assert.are.equal("dangerous", global(r, "pkgutil.resolve_name").class)
  end)

  it("calls a computed STACK_GLOBAL name '?' and dangerous", function()
    local r = scan.scan(P("computed.pkl"))
    assert.are.equal("dangerous", r.verdict)
    local g = global(r, "?.system")
    assert.truthy(g)
    assert.matches("unresolved", g.why)
    assert.are.equal("suspicious", global(r, "builtins.str").class)
  end)

  it("flags an attribute path through a safe-looking module", function()
    local r = scan.scan(P("dotted.pkl"))
    assert.are.equal("dangerous", r.verdict)
    assert.matches("os%.system", global(r, "torch.serialization.os.system").why)
  end)

  it("reads protocol 0 INST", function()
    local r = scan.scan(P("proto0.pkl"))
    assert.are.equal("dangerous", r.verdict)
    local g = global(r, "os.system")
    assert.are.equal(1, g.calls)
  end)

  it("flags copyreg extension codes (EXT1, EXT2) suspicious", function()
    local r = scan.scan(P("ext.pkl"))
    assert.are.equal("suspicious", r.verdict)
    assert.are.equal(2, r.opcodes.ext)
    assert.truthy(global(r, "<extension 7>"))
    assert.truthy(global(r, "<extension 10000>"))
  end)

  it("calls a user's class suspicious, not safe", function()
    local r = scan.scan(P("user.pkl"))
    assert.are.equal("suspicious", r.verdict)
    local g = global(r, "mymodel.Config")
    assert.are.equal(1, g.calls)
    assert.are.equal(1, g.builds)
    local m = scan.scan(P("module.pt"))
    assert.are.equal("suspicious", m.verdict)
    assert.are.equal("suspicious", global(m, "torch.nn.modules.linear.Linear").class)
  end)

  it("reads NumPy object arrays: numpy's own reconstruction safe, a numpy scalar suspicious", function()
    local r = scan.scan(P("obj.npy"))
    assert.are.equal("safe", r.verdict)
    assert.are.equal("npy (object array)", r.format)
    assert.truthy(global(r, "numpy.core.multiarray._reconstruct"))
    local s = scan.scan(P("objscalar.npy"))
    assert.are.equal("suspicious", s.verdict)
    assert.are.equal("suspicious", global(s, "numpy.core.multiarray.scalar").class)
    local z = scan.scan(P("mixed.npz"))   -- deflated members
    assert.are.equal("safe", z.verdict)
    assert.are.equal(1, z.pickles)
    local n = scan.scan(P("numeric.npz"))
    assert.are.equal("safe", n.verdict)
    assert.are.equal(0, n.pickles)
  end)

  it("keeps a payload before a broken pickle dangerous", function()
    local r = scan.scan(P("broken.pt"))
    assert.are.equal("dangerous", r.verdict)
    assert.truthy(global(r, "posix.system") or global(r, "os.system"))
    assert.are.equal(1, #r.errors)
    assert.matches("invalid opcode", r.errors[1])
    local _, code = ltorch("'" .. P("broken.pt") .. "'")
    assert.are.equal(1, code)
  end)

  it("finds a payload in a second pickle after the first STOP", function()
    local r = scan.scan(P("second.pkl"))
    assert.are.equal("dangerous", r.verdict)
    assert.are.equal(2, r.pickles)
  end)

  it("looks into a zip inside a zip (a deflated one inside a stored one)", function()
    local r = scan.scan(P("nested.zip"))
    assert.are.equal("dangerous", r.verdict)
    local g = global(r, "posix.system") or global(r, "os.system")
    assert.are.equal("level1.zip!models/inner.pt!archive/data.pkl", g.where[1])
    local names = {}
    for _, m in ipairs(r.members) do names[m.name] = m.kind end
    assert.are.equal("zip", names["level1.zip"])
    assert.are.equal("pt zip", names["level1.zip!models/inner.pt"])
    assert.are.equal("data", names["level1.zip!readme.txt"])
  end)

  it("scans the torch files inside bytes (torch.storage._load_from_bytes)", function()
    local t = scan.scan(P("tensor.pkl"))
    assert.are.equal("dangerous", t.verdict)
    assert.are.equal("dangerous", global(t, "torch.storage._load_from_bytes").class)
    assert.truthy(global(t, "torch.FloatStorage"), "the legacy file in the latin-1 str was not scanned")
    assert.matches("^bytes: pickle", t.members[1].kind)
    local e = scan.scan(P("embedded.pkl"))
    local g = global(e, "posix.system") or global(e, "os.system")
    assert.truthy(g, "the pickle in bytes was not scanned")
    assert.matches("^pickle@%d+$", g.where[1])
  end)

  it("refuses zips nested past the depth limit", function()
    local old = scan.MAX_DEPTH
    scan.MAX_DEPTH = 1
    local ok, r = pcall(scan.scan, P("nested.zip"))
    scan.MAX_DEPTH = old
    assert.is_true(ok)
    assert.are.equal("error", r.verdict)
    assert.matches("nested more than 1 deep", table.concat(r.errors, "\n"))
  end)

  it("refuses members over the size limit", function()
    local old = scan.MAX_MEMBER
    scan.MAX_MEMBER = 100
    local r = scan.scan(P("plain.pt"))
    scan.MAX_MEMBER = old
    assert.are.equal("error", r.verdict)
    assert.matches("scan limit", table.concat(r.errors, "\n"))
  end)

  it("never calls a 7z, gzip or unknown file safe", function()
    for _, f in ipairs({"archive.7z", "file.gz", "random.bin"}) do
      local r = scan.scan(P(f))
      assert.are.equal("error", r.verdict, f)
      assert.matches("not a format ltorch scans", r.errors[1])
    end
    assert.matches("7z", scan.scan(P("archive.7z")).errors[1])
    assert.matches("gzip", scan.scan(P("file.gz")).errors[1])
  end)

  it("calls a TorchScript archive suspicious (its classes and code)", function()
    local r = scan.scan(P("script.pt"))
    assert.are.equal("torchscript", r.format)
    assert.are.equal("suspicious", r.verdict)
    local ts
    for _, g in ipairs(r.globals) do
      if g.module:match("^__torch__") then ts = g end
      assert.are_not.equal("dangerous", g.class, g.name)
    end
    assert.truthy(ts)
    assert.matches("TorchScript", ts.why)
    local scanned = 0
    for _, m in ipairs(r.members) do if m.scanned then scanned = scanned + 1 end end
    assert.truthy(scanned >= 2)   -- data.pkl, constants.pkl (and the debug_pkl records)
  end)

  it("makes a broken member alone an error, and a dangerous one beside it dangerous", function()
    local e = scan.scan(P("erronly.zip"))
    assert.are.equal("error", e.verdict)
    assert.matches("bad%.pkl", e.errors[1])
    local d = scan.scan(P("errdanger.zip"))
    assert.are.equal("dangerous", d.verdict)
    assert.are.equal(1, #d.errors)
    local _, code = ltorch("'" .. P("errdanger.zip") .. "'")
    assert.are.equal(1, code)
  end)

  it("says a file without pickles is safe with a note", function()
    local torch = require("ltorch")
    torch.save({w = torch.ones(2)}, P("w.safetensors"))
    local r = scan.scan(P("w.safetensors"))
    assert.are.equal("safe", r.verdict)
    assert.matches("no pickle", r.notes[1])
  end)

  it("reports a missing file as an error", function()
    local r = scan.scan(P("nope.pt"))
    assert.are.equal("error", r.verdict)
    assert.matches("no such file", r.errors[1])
  end)
end)

describe("ltorch scan", function()
  it("exits 0 for safe files and lists globals and opcode classes", function()
    local out, code = ltorch("'" .. P("plain.pt") .. "'")
    assert.are.equal(0, code, out)
    assert.matches("SAFE", out)
    assert.matches("torch%._utils%._rebuild_tensor_v2", out)
    assert.matches("opcodes: global %d+, call %d+", out)
    assert.matches("data%.pkl", out)
  end)

  it("exits 2 for a file it cannot scan, 1 when a dangerous one is among them", function()
    local _, c2 = ltorch("'" .. P("archive.7z") .. "' '" .. P("plain.pt") .. "'")
    assert.are.equal(2, c2)
    local out, c1 = ltorch("'" .. P("archive.7z") .. "' '" .. P("plain.pt") .. "' '" .. P("memo.pkl") .. "'")
    assert.are.equal(1, c1)
    assert.matches("DANGEROUS", out)
    local _, c0 = ltorch("'" .. P("user.pkl") .. "'")
    assert.are.equal(0, c0)
    local _, cs = ltorch("--strict '" .. P("user.pkl") .. "'")
    assert.are.equal(1, cs)
    assert.is_nil(io.open(MARK), "a pickle ran")
  end)

  it("prints JSON with the reports in order", function()
    local p = io.popen("lua5.4 bin/ltorch scan --json '" .. P("plain.pt") .. "' '" .. P("sys.pkl") .. "' '"
      .. P("file.gz") .. "' 2>/dev/null; echo \"rc=$?\"")
    local out = p:read("a")
    p:close()
    local body, rc = out:match("^(.-)rc=(%d+)\n$")
    assert.are.equal("1", rc)
    local doc = json.decode(body)
    local f = doc.files
    assert.are.equal(3, #f)
    assert.are.same({"safe", "dangerous", "error"}, {f[1].verdict, f[2].verdict, f[3].verdict})
    local keys = {}
    for k in pairs(f[1]) do keys[#keys + 1] = k end
    assert.are.same({"path", "verdict", "format", "pickles", "globals", "opcodes", "members", "errors", "notes"},
      require("ltorch.odict").ordered_keys(f[1]))
    local g = f[2].globals[1]
    assert.are.equal("dangerous", g.class)
    assert.is_true(g.called)
    assert.are.equal(1, f[2].opcodes.call)
    assert.are.equal(0, f[2].opcodes.ext)
    assert.matches("gzip", f[3].errors[1])
  end)

  it("is listed in the help", function()
    local out, code = H.ltorch("--help")
    assert.are.equal(0, code)
    assert.matches("scan%s+audit the pickles", out)
    local h = H.ltorch("scan --help")
    assert.matches("exit status", h:lower())
    local _, cu = H.ltorch("scan")
    assert.are.equal(2, cu)
  end)
end)
