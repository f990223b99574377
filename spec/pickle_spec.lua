-- pickle_spec.lua: the pickle VM (src/pickle.c) on its own, through
-- core._pickle_loads: every protocol CPython writes, Python 2 opcodes, the
-- allowlist, and hostile pickles.

local torch = require("ltorch")
local odict = require("ltorch.odict")
local core = require("ltorch.core")

local OPTS = {null = torch.null, odict_from = odict.from}
local function loads(s, unknown)
  local o = {null = torch.null, odict_from = odict.from, unknown = unknown}
  return core._pickle_loads(s, o)
end

local function hex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

describe("pickle reader", function()
  local by_proto = {}
  setup(function()
    -- CPython's own pickles of one value at every protocol, and Python 2 forms
    local f = os.tmpname()
    local sf = assert(io.open(f, "w"))
    sf:write([[
import pickle, collections
v = {'int': 5, 'i2': 300, 'i4': -70000, 'big': 2**62, 'neg': -2**63, 'f': 0.1, 's': 'ünï',
     'b': b'\x00\xff', 'ba': bytearray(b'ab'), 't': (1, 2, 3, 4), 'l': [None, True, False],
     'set': {7}, 'fs': frozenset([8]), 'c': complex(1, 2), 'od': collections.OrderedDict([('z', 1), ('a', 2)]),
     'long': list(range(1500))}
v['shared'] = v['l']
for p in range(6):
    print(p, pickle.dumps(v, protocol=p).hex())
]])
    sf:close()
    local p = io.popen("/usr/bin/python3 " .. f)
    for line in p:lines() do
      local proto, h = line:match("^(%d) (%x+)$")
      by_proto[tonumber(proto)] = hex(h)
    end
    p:close()
    os.remove(f)
  end)

  for proto = 0, 5 do
    it("reads CPython's protocol " .. proto, function()
      local v = loads(by_proto[proto])
      assert.equal(5, v.int)
      assert.equal(300, v.i2)
      assert.equal(-70000, v.i4)
      assert.equal(1 << 62, v.big)
      assert.equal(math.mininteger, v.neg)
      assert.equal(0.1, v.f)
      assert.equal("ünï", v.s)
      assert.equal("\0\xff", v.b)
      assert.equal("ab", v.ba)
      assert.same({1, 2, 3, 4}, v.t)
      assert.same({torch.null, true, false}, v.l)
      assert.same({[7] = true}, v.set)
      assert.same({[8] = true}, v.fs)
      assert.same({1.0, 2.0}, v.c)
      assert.same({"z", "a"}, odict.keys(v.od))
      assert.equal(1500, #v.long)
      assert.equal(1499, v.long[1500])
      assert.equal(v.l, v.shared)
      assert.is_true(odict.is(v))
    end)
  end

  it("keeps dict order and lets a repeated key keep its first place", function()
    -- } ( 'b' 1 'a' 2 'b' 3 u .
    local v = loads("\x80\x02}(X\1\0\0\0bK\1X\1\0\0\0aK\2X\1\0\0\0bK\3u.")
    assert.same({"b", "a"}, odict.keys(v))
    assert.equal(3, v.b)
  end)

  it("resolves Python 2 names and text opcodes", function()
    assert.same({[1] = true}, loads("c__builtin__\nset\n((lp0\nI1\natp1\nRp2\n."))
    assert.equal(12, loads("I12\n."))
    assert.equal(true, loads("I01\n."))
    assert.equal(-5, loads("L-5L\n."))
    assert.equal(2.5, loads("F2.5\n."))
    assert.equal("a'b\n", loads("S'a\\'b\\n'\n."))
    assert.equal("é", loads("V\\u00e9\n."))
    assert.same({1, 1}, loads("(I1\np0\ng0\nl."))
  end)

  it("collects every unsupported global, in file order", function()
    local s = "\x80\x02(cos\nsystem\ncposix\nsystem\ncos\nsystem\nt."
    assert.has_error(function() loads(s) end,
      "pickle: unsupported globals: os.system, posix.system (pass {unknown = \"inert\"} to load them as inert tables)")
  end)

  it("builds inert objects from NEWOBJ, REDUCE and BUILD", function()
    -- argparse.Namespace() with state {'lr': 0.1}
    local s = "\x80\x02cargparse\nNamespace\n)\x81}X\2\0\0\0lrG?\xb9\x99\x99\x99\x99\x99\x9asb."
    local v = loads(s, "inert")
    assert.equal("argparse.Namespace", v.__global)
    assert.same({}, v.args)
    assert.equal(0.1, v.state.lr)
  end)

  it("never calls an allowed global with bad arguments", function()
    assert.has_error(function() loads("\x80\x02ctorch._utils\n_rebuild_tensor_v2\nK\1\x85R.") end,
      "pickle: at byte 38: tensor rebuild: bad arguments")
    assert.has_error(function() loads("\x80\x02(X\7\0\0\0storageK\1X\1\0\0\x000X\3\0\0\0cpuK\1tQ.") end,
      "pickle: at byte 34: persistent id: storage type is int, not a storage class")
  end)

  local hostile = {
    {"empty", "", "pickle: at byte 0: pickle ends early (needs 1 more bytes)"},
    {"no STOP", "\x80\x02K\1", "pickle: at byte 4: pickle ends early (needs 1 more bytes)"},
    {"stack underflow", "\x80\x02a.", "pickle: at byte 2: stack underflow"},
    {"no mark", "\x80\x02K\1t.", "pickle: at byte 4: no mark on the stack"},
    {"undefined memo", "\x80\x02h\5.", "pickle: at byte 2: memo key 5 is not defined"},
    {"huge memo index", "\x80\x02K\1r\xff\xff\xff\x7f.", "pickle: at byte 4: memo index 2147483647 exceeds the limit of 10000000"},
    {"integer beyond int64", "\x80\x02\x8a\x09\0\0\0\0\0\0\0\0\1.", "pickle: at byte 2: integer of 9 bytes does not fit in int64"},
    {"unknown opcode", "\x80\x02\xff.", "pickle: at byte 2: unknown opcode 0xff"},
    {"string past the end", "\x80\x02X\xff\0\0\0ab.", "pickle: at byte 2: pickle ends early (string of 255 bytes)"},
    {"append to an int", "\x80\x02K\1K\2a.", "pickle: at byte 6: APPEND to a int"},
    {"setitem on a list", "\x80\x02]K\1K\2s.", "pickle: at byte 7: SETITEM on a list"},
    {"call an int", "\x80\x02K\1)R.", "pickle: at byte 5: REDUCE: cannot call a int"},
    {"out-of-band buffer", "\x80\x05\x97.", "pickle: at byte 2: out-of-band buffers (protocol 5) are not supported"},
    {"protocol 6", "\x80\x06N.", "pickle: at byte 0: unsupported pickle protocol 6"},
  }
  for _, h in ipairs(hostile) do
    it("refuses a hostile pickle: " .. h[1], function()
      assert.has_error(function() loads(h[2]) end, h[3])
    end)
  end

  it("limits nesting", function()
    local s = "\x80\x02" .. string.rep("]", 2000) .. string.rep("a", 1999) .. "."
    assert.has_error(function() loads(s) end, "pickle: nesting exceeds the limit of 1000")
  end)

  it("limits the stack", function()
    local s = "\x80\x02" .. string.rep("N", 100001) .. "."
    assert.has_error(function() loads(s) end, "pickle: at byte 100002: stack depth exceeds the limit of 100000")
  end)

  it("resolves self-referencing lists", function()
    local v = loads("\x80\x02]q\0h\0a.")
    assert.equal(v, v[1])
  end)
end)

describe("pickle writer", function()
  it("writes values CPython reads back equal", function()
    local dir = os.tmpname()
    local f = dir .. ".pt"
    torch.save({a = {1, 2.5, "x", true, torch.null}, b = -(1 << 40), c = "\x80"}, f)
    local p = io.popen("/usr/bin/python3 -c \"import torch; d = torch.load('" .. f .. "'); "
      .. "print(d['a'] == [1, 2.5, 'x', True, None], d['b'] == -2**40, d['c'] == b'\\x80')\"")
    local out = p:read("a")
    p:close()
    os.remove(f); os.remove(dir)
    assert.equal("True True True\n", out)
  end)
  it("tells UTF-8 from other bytes", function()
    assert.is_true(core._pt_utf8("ünï ☃ 😀"))
    assert.is_false(core._pt_utf8("\xff"))
    assert.is_false(core._pt_utf8("\xed\xa0\x80"))   -- a surrogate
    assert.is_false(core._pt_utf8("\xc0\x80"))       -- overlong
  end)
  -- OPTS is shared by the reader helpers above
  assert(OPTS)
end)
