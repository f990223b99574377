-- deferred_spec.lua: records that mmap cannot map as they are (deflated
-- .npz members, legacy .pt storages, big-endian and misaligned data) load
-- as deferred storages: nothing is read until a tensor's data is used, a
-- use reads it (and reports a damaged record with file and entry), and a
-- streaming writer frees it again once written. The peers are NumPy and
-- PyTorch.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local dir
local function P(name) return dir .. "/" .. name end

-- is t's storage still in its file (deferred, not read)? mapped?
local function pending(t) return select(4, t:_storage_info()) end
local function mapped(t) return select(3, t:_storage_info()) end

setup(function()
  dir = H.tmpdir()
  H.py([[
import sys, struct, zipfile, io
import numpy as np, torch
d = sys.argv[1]
g = np.random.default_rng(5)
w = g.standard_normal((64, 48)).astype('<f4')
b = g.integers(-9, 9, 100).astype('<i8')
np.savez(d + '/stored.npz', w=w, b=b)
np.savez_compressed(d + '/deflated.npz', w=w, b=b, f=np.asfortranarray(w[:6, :5]), big=w.astype('>f8'))
np.save(d + '/be.npy', w.astype('>f4'))
# legacy torch.save: storages follow the pickle at offsets of no alignment;
# v is a view into w's storage
sd = {'w': torch.from_numpy(w), 'b': torch.from_numpy(b)}
sd['v'] = sd['w'][3:5]
torch.save(sd, d + '/legacy.pt', _use_new_zipfile_serialization=False)
# the same state dict in a zip archive whose records are all deflated
torch.save(sd, d + '/plain.pt')
with zipfile.ZipFile(d + '/plain.pt') as src, zipfile.ZipFile(d + '/deflated.pt', 'w', zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        dst.writestr(i.filename, src.read(i.filename))
# a deflated archive whose member 'bad' has a wrong crc in the central
# directory: its header reads, its data does not
with zipfile.ZipFile(d + '/badcrc.npz', 'w', zipfile.ZIP_DEFLATED) as z:
    for n, a in (('good', b), ('bad', w)):
        f = io.BytesIO(); np.save(f, a); z.writestr(n + '.npy', f.getvalue())
raw = bytearray(open(d + '/badcrc.npz', 'rb').read())
i = raw.rfind(b'PK\x01\x02')            # the central entry of bad.npy (written last)
assert raw[i + 46:i + 53] == b'bad.npy'
crc = struct.unpack_from('<I', raw, i + 16)[0]
struct.pack_into('<I', raw, i + 16, crc ^ 0xFFFF)
open(d + '/badcrc.npz', 'wb').write(raw)
]], dir)
end)

teardown(function() H.rmdir(dir) end)

describe("deferred storages", function()
  it("keep deflated .npz members in the file until used, then equal an eager load", function()
    local lazy = torch.load(P("deflated.npz"), {mmap = true})
    local eager = torch.load(P("deflated.npz"))
    assert.same({"w", "b", "f", "big"}, odict.keys(lazy))
    for _, k in ipairs({"w", "b", "f", "big"}) do
      assert.is_true(pending(lazy[k]), k)
      assert.is_false(mapped(lazy[k]), k)
      assert.is_false(pending(eager[k]), k)
    end
    -- metadata needs no data
    assert.same({64, 48}, lazy.w:size())
    assert.equal("float64", lazy.big:dtype())
    assert.same({6, 5}, lazy.f:size())
    assert.is_true(pending(lazy.w) and pending(lazy.f))
    for _, k in ipairs({"w", "b", "f", "big"}) do
      assert.is_true(H.same(eager[k], lazy[k]), k)
      assert.is_false(pending(lazy[k]), k)
    end
    assert.is_true(H.same(eager.w:to("float64"), lazy.big))
  end)

  it("map aligned stored members and defer the rest, equal to NumPy's values", function()
    local lazy = torch.load(P("stored.npz"), {mmap = true})
    local out = H.py([[
import sys, numpy as np
z = np.load(sys.argv[1])
print(repr(float(z['w'].astype('f8').sum())), int(z['b'].sum()))
]], P("stored.npz"))
    local ws, bs = out:match("^(%S+) (%S+)")
    assert.equal(tonumber(bs), lazy.b:sum():item())
    assert.is_true(math.abs(tonumber(ws) - lazy.w:to("float64"):sum():item()) < 1e-9)
    for _, k in ipairs({"w", "b"}) do
      assert.is_true(mapped(lazy[k]) or not pending(lazy[k]), k)
    end
  end)

  it("read legacy .pt storages on first use, views sharing one storage", function()
    local lazy = torch.load(P("legacy.pt"), {mmap = true})
    local eager = torch.load(P("legacy.pt"))
    assert.is_true(pending(lazy.w))
    assert.equal(lazy.w:_storage_info(), lazy.v:_storage_info())
    assert.is_true(H.same(eager.v, lazy.v))        -- reading v reads w's storage
    assert.is_false(pending(lazy.w))
    assert.is_true(H.same(eager.w, lazy.w))
    assert.is_true(H.same(eager.b, lazy.b))
  end)

  it("read deflated .pt records when used", function()
    local lazy = torch.load(P("deflated.pt"), {mmap = true})
    local eager = torch.load(P("plain.pt"))
    assert.is_true(pending(lazy.w) and pending(lazy.b))
    for _, k in ipairs({"w", "b", "v"}) do assert.is_true(H.same(eager[k], lazy[k]), k) end
    assert.equal(lazy.w:_storage_info(), lazy.v:_storage_info())
  end)

  it("byte-swap big-endian .npy data when it is read", function()
    local lazy = torch.load(P("be.npy"), {mmap = true})
    assert.is_true(pending(lazy))
    assert.is_true(H.same(torch.load(P("be.npy")), lazy))
    assert.is_false(pending(lazy))
  end)

  it("report a damaged record when it is used, naming the file and the entry", function()
    local p = P("badcrc.npz")
    local d = torch.load(p, {mmap = true})       -- headers are fine: the load succeeds
    assert.equal(100, d.good:numel())
    assert.is_true(H.same(torch.load(p, {keys = {"good"}}).good, d.good))
    local ok, err = pcall(function() return d.bad:sum() end)
    assert.is_false(ok)
    assert.truthy(err:find(p .. ": entry 'bad.npy': crc32 mismatch", 1, true), err)
    assert.is_true(pending(d.bad))                -- nothing half-read is kept
    -- an eager load reads what it keeps only (above); all of it fails
    ok, err = pcall(torch.load, p)
    assert.is_false(ok)
    assert.truthy(err:find(p .. ": entry 'bad.npy': crc32 mismatch", 1, true), err)
  end)

  it("raise an error, not a crash, when the file shrank after the load", function()
    local p = P("shrink.npz")
    assert(os.execute(string.format("cp '%s' '%s'", P("deflated.npz"), p)))
    local d = torch.load(p, {mmap = true})
    local fh = io.open(p, "r+b")
    fh:write(string.rep("\0", 16))
    fh:close()
    assert(os.execute(string.format("truncate -s 100 '%s'", p)))
    local ok, err = pcall(function() return d.w:sum() end)
    assert.is_false(ok)
    assert.truthy(err:find(p .. ": entry 'w.npy': ", 1, true), err)
  end)

  it("are freed by a streaming save and read again when used after it", function()
    local lazy = torch.load(P("deflated.npz"), {mmap = true})
    local eager = torch.load(P("deflated.npz"))
    torch.save(lazy, P("copy.safetensors"), {release_mapped = true})
    torch.save(lazy, P("copy.pt"), {release_mapped = true})
    torch.save(lazy, P("copy.npz"), {release_mapped = true})
    for _, k in ipairs({"w", "b", "big"}) do
      assert.is_true(pending(lazy[k]), k)
      assert.is_true(H.same(eager[k], lazy[k]), k)
    end
    for _, f in ipairs({"copy.safetensors", "copy.pt", "copy.npz"}) do
      local back = torch.load(P(f))
      for _, k in ipairs({"w", "b", "f", "big"}) do
        assert.is_true(H.same(eager[k], back[k]), f .. ": " .. k)
      end
    end
    -- a save without release_mapped keeps what it read
    torch.save(lazy, P("copy2.safetensors"))
    assert.is_false(pending(lazy.w))
  end)

  it("are read for inspect's statistics and freed after them", function()
    local inspect = require("ltorch.inspect")
    local lazy = torch.load(P("deflated.npz"), {mmap = true})
    local st = inspect.stats(lazy.w)
    assert.is_true(pending(lazy.w))
    local e = inspect.stats(torch.load(P("deflated.npz")).w)
    assert.same(e, st)
    assert.equal(64 * 48, st.numel)
    -- a tensor already read stays read
    lazy.b:sum()
    inspect.stats(lazy.b)
    assert.is_false(pending(lazy.b))
  end)

  it("are read by PyTorch-bound writers the same as eager tensors", function()
    local lazy = torch.load(P("legacy.pt"), {mmap = true})
    torch.save(lazy, P("from_legacy.pt"), {release_mapped = true})
    local out = H.py([[
import sys, torch
a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])
print(all(torch.equal(a[k], b[k]) for k in a), b['v'].storage().data_ptr() == b['w'].storage().data_ptr())
]], P("legacy.pt"), P("from_legacy.pt"))
    assert.equal("True True\n", out)
  end)
end)
