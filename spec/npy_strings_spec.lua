-- npy_strings_spec.lua: NumPy string (U, S) and object (O) arrays in .npy
-- and .npz, and .npz member selection before parsing, with NumPy as the peer
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local dir
setup(function()
  dir = H.tmpdir()
  H.py([==[
import sys, zipfile, numpy as np
d = sys.argv[1]
np.save(d + '/u2d.npy', np.array([['ab', '\u00e9\U0001F600'], ['', 'xyz']]))
np.save(d + '/u0.npy', np.array('hello'))
np.save(d + '/ube.npy', np.array(['ab', 'cd'], dtype='>U3'))
np.save(d + '/s.npy', np.array([b'ab', b'c\x00d', b'']))
np.save(d + '/s0.npy', np.array(b'xy\x00'))
np.save(d + '/ufortran.npy', np.asfortranarray(np.array([['a', 'b', 'c'], ['d', 'e', 'f']])))
np.save(d + '/o.npy', np.array([None, 'ab', b'cd', 3, -2.5, [1, [2, None]], (3, 4), True], dtype=object))
np.save(d + '/o0.npy', np.array('x', dtype=object))
a = np.empty((2, 2), dtype=object); a[:] = [[1, 'a'], [None, 2.5]]
np.save(d + '/o2d.npy', a)
np.save(d + '/ofortran.npy', np.asfortranarray(a))
np.save(d + '/oscalar.npy', np.array([np.float64(2)], dtype=object))
np.savez(d + '/mixed.npz', x=np.arange(3), s=np.array(['a', 'bc']), b=np.array([b'q']), o=a)
np.savez_compressed(d + '/mixedz.npz', s=np.array(['a', 'bc']), o=a)
# members ltorch cannot read beside one it can
with zipfile.ZipFile(d + '/unreadable.npz', 'w') as z:
    z.writestr('x.npy', open(d + '/u0.npy', 'rb').read())
import io
def npy(arr):
    b = io.BytesIO(); np.save(b, arr); return b.getvalue()
with zipfile.ZipFile(d + '/partial.npz', 'w') as z:
    z.writestr('x.npy', npy(np.arange(3, dtype='<i4')))
    z.writestr('u16.npy', npy(np.arange(3, dtype='<u2')))
    z.writestr('rec.npy', npy(np.zeros(2, dtype=[('a', '<i4')])))
    z.writestr('broken.npy', b'\x93NUMPY\x01\x00\x10\x00{"descr": 1}    \n')
    z.writestr('names.npy', npy(np.array(['abc', 'd'])))
# a code unit that is no code point, in a .npy and an .npz member
bad = bytearray(npy(np.array(['ab'])))
bad[-4:] = (0x110000).to_bytes(4, 'little')
open(d + '/badcp.npy', 'wb').write(bytes(bad))
with zipfile.ZipFile(d + '/badcp.npz', 'w') as z:
    z.writestr('t.npy', bytes(bad))
# a U header claiming more data than the member holds
short = npy(np.array(['abc', 'def']))
with zipfile.ZipFile(d + '/short.npz', 'w') as z:
    z.writestr('t.npy', short[:-12])
open(d + '/short.npy', 'wb').write(short[:-12])
# an object header over a pickle that is no ndarray
import pickle
hdr = npy(np.array([None], dtype=object))
hlen = 10 + int.from_bytes(hdr[8:10], 'little')
open(d + '/notarray.npy', 'wb').write(hdr[:hlen] + pickle.dumps([1, 2], protocol=3))
]==], dir)
end)
teardown(function() H.rmdir(dir) end)

describe("npy string arrays", function()
  it("load U arrays as UTF-8 strings, nested as the shape", function()
    assert.same({{"ab", "\u{e9}\u{1F600}"}, {"", "xyz"}}, torch.load(dir .. "/u2d.npy"))
    assert.equal("hello", torch.load(dir .. "/u0.npy"))
    assert.same({"ab", "cd"}, torch.load(dir .. "/ube.npy"))
  end)

  it("load S arrays as bytes without trailing NULs", function()
    assert.same({"ab", "c\0d", ""}, torch.load(dir .. "/s.npy"))
    assert.equal("xy", torch.load(dir .. "/s0.npy"))
  end)

  it("load Fortran-order string data in C order", function()
    assert.same({{"a", "b", "c"}, {"d", "e", "f"}}, torch.load(dir .. "/ufortran.npy"))
  end)

  it("reject a code unit that is no code point, naming the element", function()
    local p = dir .. "/badcp.npy"
    assert.equal(p .. ": element (0,): character 2 is not a Unicode code point (0x110000)", H.err(torch.load, p))
  end)

  it("reject data shorter than the header says", function()
    local p = dir .. "/short.npy"
    assert.equal(p .. ": truncated: expected 24 bytes at byte 128, the file has 140", H.err(torch.load, p))
  end)

  it("save lists of strings as <U that NumPy reads", function()
    torch.save({"ab", "c"}, dir .. "/w1.npy")
    torch.save("h\u{e9}llo", dir .. "/w0.npy")
    torch.save({{"a", "bb"}, {"\u{1F600}", ""}}, dir .. "/w2.npy")
    torch.save({}, dir .. "/wempty.npy")
    local out = H.py([==[
import sys, numpy as np
d = sys.argv[1]
def chk(name, dtype, shape, value):
    a = np.load('%s/%s.npy' % (d, name))
    assert a.dtype == np.dtype(dtype) and a.shape == shape and a.tolist() == value, (name, a.dtype, a.shape, a.tolist())
chk('w1', '<U2', (2,), ['ab', 'c'])
chk('w0', '<U5', (), 'h\u00e9llo')
chk('w2', '<U2', (2, 2), [['a', 'bb'], ['\U0001F600', '']])
chk('wempty', '<U1', (0,), [])
print('ok')
]==], dir)
    assert.equal("ok\n", out)
    assert.same({{"a", "bb"}, {"\u{1F600}", ""}}, torch.load(dir .. "/w2.npy"))
  end)

  it("refuse what is no string array, naming the item", function()
    local p = dir .. "/bad.npy"
    assert.equal(p .. ": item [2] is a number: a string array holds strings only", H.err(torch.save, {"a", 3}, p))
    assert.equal(p .. ": list [2] has 2 items, expected 1 (the lists of a string array have equal lengths)",
      H.err(torch.save, {{"a"}, {"b", "c"}}, p))
    assert.equal(p .. ": item [2] is a string, expected a list of 1 (the lists of a string array have equal lengths)",
      H.err(torch.save, {{"a"}, "b"}, p))
    assert.equal(p .. ": string [1] is not valid UTF-8 (NumPy's '<U' holds text)", H.err(torch.save, {"\xff"}, p))
    assert.equal(p .. ": .npy stores one tensor or an array of strings, got a table (.npz stores a table of tensors)",
      H.err(torch.save, {a = {"x"}}, p))
  end)
end)

describe("npy object arrays", function()
  it("load plain values as np.load(allow_pickle=True) shows them", function()
    assert.same({torch.null, "ab", "cd", 3, -2.5, {1, {2, torch.null}}, {3, 4}, true}, torch.load(dir .. "/o.npy"))
    local o = torch.load(dir .. "/o.npy")
    assert.equal(torch.null, o[1])
    assert.equal("integer", math.type(o[4]))
    assert.equal("x", torch.load(dir .. "/o0.npy"))
    assert.same({{1, "a"}, {torch.null, 2.5}}, torch.load(dir .. "/o2d.npy"))
    assert.same({{1, "a"}, {torch.null, 2.5}}, torch.load(dir .. "/ofortran.npy"))
  end)

  it("refuse other globals unless unknown = 'inert', as .pt does", function()
    local p = dir .. "/oscalar.npy"
    assert.equal(p .. ": unsupported globals: numpy.core.multiarray.scalar, numpy.dtype " ..
      "(pass {unknown = \"inert\"} to load them as inert tables)", H.err(torch.load, p))
    local v = torch.load(p, {unknown = "inert"})
    assert.equal("numpy.core.multiarray.scalar", v[1].__global)
  end)

  it("refuse a pickle that is no NumPy array", function()
    local p = dir .. "/notarray.npy"
    assert.equal(p .. ": the pickle is not a NumPy object array " ..
      "(numpy.core.multiarray._reconstruct expected, got table)", H.err(torch.load, p))
  end)
end)

describe("npz string and object members", function()
  it("load as name -> strings or values beside the tensors", function()
    for _, f in ipairs({"mixed", "mixedz"}) do
      local d = torch.load(dir .. "/" .. f .. ".npz")
      assert.same({"a", "bc"}, d.s)
      assert.same({{1, "a"}, {torch.null, 2.5}}, d.o)
    end
    local d = torch.load(dir .. "/mixed.npz")
    assert.same({"x", "s", "b", "o"}, odict.keys(d))
    assert.same({0, 1, 2}, d.x:tolist())
    assert.same({"q"}, d.b)
  end)

  it("select members by name before reading their headers", function()
    local p = dir .. "/partial.npz"
    local d = torch.load(p, {keys = {"x", "names"}})
    assert.same({"x", "names"}, odict.keys(d))
    assert.same({"abc", "d"}, d.names)
    local asked = {}
    d = torch.load(p, {keys = function(n) asked[#asked + 1] = n; return n == "x" end})
    assert.same({"x"}, odict.keys(d))
    assert.same({"x", "u16", "rec", "broken", "names"}, asked)
    assert.equal(p .. ": entry 'rec.npy': 'descr' is not a simple type string (structured dtypes are not supported)",
                 H.err(torch.load, p))
    assert.same({0, 1, 2}, torch.load(p, {keys = {"u16"}}).u16:tolist())
    assert.equal("uint16", torch.load(p, {keys = {"u16"}}).u16:dtype())
  end)

  it("name the file and member of a bad code point or short data", function()
    local p = dir .. "/badcp.npz"
    assert.equal(p .. ": entry 't.npy': element (0,): character 2 is not a Unicode code point (0x110000)",
      H.err(torch.load, p))
    p = dir .. "/short.npz"
    assert.equal(p .. ": entry 't.npy': expected 24 bytes of data, found 12", H.err(torch.load, p))
  end)

  it("are left out by load_state_dict, which keeps the tensors", function()
    local sd = torch.load_state_dict(dir .. "/mixed.npz")
    assert.same({"x"}, odict.keys(sd))
  end)

  it("save lists of strings (and a string as a 0-d array) that np.load reads", function()
    local d = odict.new()
    d.x = torch.arange(3)
    d.names = {"ab", "c"}
    d.one = "solo"
    d.grid = {{"a"}, {"\u{e9}"}}
    torch.save(d, dir .. "/w.npz")
    torch.save(d, dir .. "/wc.npz", {compress = true})
    local out = H.py([==[
import sys, numpy as np
d = sys.argv[1]
for n in ('w', 'wc'):
    z = np.load('%s/%s.npz' % (d, n))
    assert z.files == ['x', 'names', 'one', 'grid'], z.files
    assert z['x'].tolist() == [0, 1, 2]
    assert z['names'].dtype == np.dtype('<U2') and z['names'].tolist() == ['ab', 'c']
    assert z['one'].shape == () and z['one'].dtype == np.dtype('<U4') and z['one'].tolist() == 'solo'
    assert z['grid'].shape == (2, 1) and z['grid'].tolist() == [['a'], ['\u00e9']]
print('ok')
]==], dir)
    assert.equal("ok\n", out)
    local back = torch.load(dir .. "/wc.npz")
    assert.same({"ab", "c"}, back.names)
    assert.equal("solo", back.one)
    assert.same({{"a"}, {"\u{e9}"}}, back.grid)
  end)

  it("refuse values that are neither tensors nor string arrays", function()
    local p = dir .. "/bad.npz"
    assert.equal(p .. ": value 'v': item [2] is a number: a string array holds strings only",
      H.err(torch.save, {v = {"a", 3}}, p))
    assert.equal(p .. ": value 'v' is a nested table: .npz stores only tensors and arrays of strings (.pt can store it)",
      H.err(torch.save, {v = {a = "x"}}, p))
    assert.equal(p .. ": value 'v' is a number: .npz stores only tensors and arrays of strings (.pt can store it)",
      H.err(torch.save, {v = 1}, p))
  end)

  it("are listed by ltorch inspect as other values", function()
    local out, code = H.ltorch("inspect " .. dir .. "/mixed.npz")
    assert.equal(0, code)
    assert.is_truthy(out:find("other values", 1, true))
    assert.is_truthy(out:find('s.2 = "bc"', 1, true))
  end)
end)
