-- gguf_quant_spec.lua: ggml's block types (src/gguf_quant.c through
-- core._gguf_types, core._gguf_dequantize, core._gguf_quantize). The
-- expected values are spec/fixtures/gguf/quant_vectors.lua, written by
-- spec/fixtures/gguf/make_quant_vectors.py from its own NumPy port of
-- ggml's dequantize_row_* and quantize_row_*_ref (ggml d99724f2), every
-- vector also checked there against ggml's ggml-quants.c built and called
-- through ctypes; the IQ grid sweeps are ggml's own output. A few blocks
-- are built here too, their values computed from the block definitions.
-- Then round trips within each type's step, edge cases and the errors.
local torch = require("ltorch")
local core = require("ltorch.core")
local V = dofile("spec/fixtures/gguf/quant_vectors.lua")

-- busted calls through core's fields: luaL_argerror names the field
local DQ = "bad argument #%d to '_gguf_dequantize' (%s)"
local Q = "bad argument #%d to '_gguf_quantize' (%s)"

local function unhex(s) return (s:gsub("..", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

-- FNV-1a 64 of a byte string, as the generator computes it
local function fnv(s)
  local h = -3750763034362895579           -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return string.format("%016x", h)
end

local function f32(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = string.pack("<f", v) end
  return torch.frombytes(table.concat(parts), "float32")
end

-- the generator's inputs (make_quant_vectors.py lcg_input, pat_input):
-- integers times powers of two, the same float32 values in both
local function lcg(seed)
  local s = seed & 0xffffffff
  return function()
    s = (s * 1664525 + 1013904223) & 0xffffffff
    return s >> 8
  end
end

local function input(spec)
  local out = {}
  if spec[1] == "lcg" then
    local draw, n, dist, scale = lcg(spec[2]), spec[3], spec[4], 2.0 ^ (spec[5] - 23)
    for i = 1, n do
      local v
      if dist == "sum4" then
        v = (draw() >> 2) + (draw() >> 2) + (draw() >> 2) + (draw() >> 2) - (1 << 23)
      elseif dist == "sparse" then
        if draw() % 4 == 0 then v = draw() - (1 << 23) else v = 0 end
      else
        v = draw() - (1 << 23)
        if dist == "outlier" and draw() % 16 == 0 then v = v * 64 end
      end
      out[i] = v * scale
    end
  else
    local n, mul, add, mod, off, e = spec[2], spec[3], spec[4], spec[5], spec[6], spec[7]
    for i = 0, n - 1 do out[i + 1] = ((i * mul + add) % mod - off) * 2.0 ^ e end
  end
  return f32(out)
end

-- ggml's type table (include/ggml.h enum ggml_type, src/ggml.c type_traits)
local TYPES = {
  {0, "F32", 1, 4}, {1, "F16", 1, 2}, {2, "Q4_0", 32, 18}, {3, "Q4_1", 32, 20},
  {4, "Q4_2", 0, 0}, {5, "Q4_3", 0, 0}, {6, "Q5_0", 32, 22}, {7, "Q5_1", 32, 24},
  {8, "Q8_0", 32, 34}, {9, "Q8_1", 32, 36}, {10, "Q2_K", 256, 84}, {11, "Q3_K", 256, 110},
  {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},
  {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
  {20, "IQ4_NL", 32, 18}, {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82}, {23, "IQ4_XS", 256, 136},
  {24, "I8", 1, 1}, {25, "I16", 1, 2}, {26, "I32", 1, 4}, {27, "I64", 1, 8}, {28, "F64", 1, 8},
  {29, "IQ1_M", 256, 56}, {30, "BF16", 1, 2}, {31, "Q4_0_4_4", 0, 0}, {32, "Q4_0_4_8", 0, 0},
  {33, "Q4_0_8_8", 0, 0}, {34, "TQ1_0", 256, 54}, {35, "TQ2_0", 256, 66}, {36, "IQ4_NL_4_4", 0, 0},
  {37, "IQ4_NL_4_8", 0, 0}, {38, "IQ4_NL_8_8", 0, 0}, {39, "MXFP4", 32, 17}, {40, "NVFP4", 64, 36},
  {41, "Q1_0", 128, 18}, {42, "Q2_0", 64, 18},
}
local REMOVED = {[4] = true, [5] = true, [31] = true, [32] = true, [33] = true, [36] = true, [37] = true, [38] = true}
local PLAIN = {[24] = true, [25] = true, [26] = true, [27] = true, [28] = true}
local NO_QUANT = {IQ2_XXS = true, IQ2_XS = true, IQ2_S = true, IQ3_XXS = true, IQ3_S = true, IQ1_S = true, IQ1_M = true}

describe("core._gguf_types", function()
  it("lists every ggml type id with ggml's name, block size and bytes", function()
    local got = core._gguf_types()
    assert.are.equal(#TYPES, #got)
    for i, t in ipairs(TYPES) do
      assert.are.same({t[1], t[2], t[3], t[4]}, {got[i].id, got[i].name, got[i].block, got[i].bytes})
    end
  end)

  it("marks the removed ids and what converts", function()
    for _, t in ipairs(core._gguf_types()) do
      assert.are.equal(REMOVED[t.id] or false, t.removed, t.name)
      local usable = not REMOVED[t.id] and not PLAIN[t.id]
      assert.are.equal(usable, t.dequant, t.name)
      assert.are.equal(usable and not NO_QUANT[t.name], t.quant, t.name)
    end
  end)
end)

describe("core._gguf_dequantize", function()
  it("gives the generator's values for hand-built blocks of every type, bit for bit", function()
    local seen = {}
    for _, v in ipairs(V.dequant) do
      if v.values then
        local y = core._gguf_dequantize(v.type, unhex(v.blocks))
        assert.are.equal("float32", y:dtype())
        assert.are.equal(v.values, hex(y:tobytes()), v.type .. ": " .. v.what)
        seen[v.type] = true
      end
    end
    for _, t in ipairs(core._gguf_types()) do
      if t.dequant and t.block > 1 then assert.is_true(seen[t.name], t.name) end
    end
  end)

  it("gives ggml's values for blocks of random bytes", function()
    local n = 0
    for _, v in ipairs(V.dequant) do
      if v.fnv then
        assert.are.equal(v.fnv, fnv(core._gguf_dequantize(v.type, unhex(v.blocks)):tobytes()), v.type)
        n = n + 1
      end
    end
    assert.is_true(n >= 27)
  end)

  it("reads every entry of every IQ grid as ggml does", function()
    assert.are.equal(7, #V.sweeps)
    for _, v in ipairs(V.sweeps) do
      assert.are.equal(v.fnv, fnv(core._gguf_dequantize(v.type, unhex(v.blocks)):tobytes()), v.type)
    end
  end)

  it("follows the block definitions of Q8_0, Q4_0, Q4_1 and Q5_0", function()
    -- Q8_0: f16 d = 0.75 (0x3a00), qs = int8; x = d * q
    local qs, want = {}, {}
    for j = 1, 32 do qs[j] = (j * 37) % 256 - 128; want[j] = 0.75 * qs[j] end
    local b = string.pack("<I2" .. string.rep("b", 32), 0x3a00, table.unpack(qs))
    assert.are.same(want, core._gguf_dequantize("Q8_0", b):tolist())
    -- Q4_0: d = -2 (0xc000); byte j holds x[j] (low) and x[j + 16] (high); x = d (q - 8)
    local bytes = {}
    want = {}
    for j = 1, 16 do
      local lo, hi = (j * 5) % 16, (j * 11 + 3) % 16
      bytes[j] = lo | hi << 4
      want[j], want[j + 16] = -2 * (lo - 8), -2 * (hi - 8)
    end
    b = string.pack("<I2" .. string.rep("B", 16), 0xc000, table.unpack(bytes))
    assert.are.same(want, core._gguf_dequantize("Q4_0", b):tolist())
    -- Q4_1: d = 0.5 (0x3800), m = -3.25 (0xc280); x = d q + m
    want = {}
    for j = 1, 16 do
      local lo, hi = bytes[j] & 15, bytes[j] >> 4
      want[j], want[j + 16] = 0.5 * lo - 3.25, 0.5 * hi - 3.25
    end
    b = string.pack("<I2I2" .. string.rep("B", 16), 0x3800, 0xc280, table.unpack(bytes))
    assert.are.same(want, core._gguf_dequantize("Q4_1", b):tolist())
    -- Q5_0: d = 0.25, qh bit j is the fifth bit of x[j]; x = d (q - 16)
    local qh = 0xa5c3f00f
    want = {}
    for j = 1, 16 do
      local lo, hi = bytes[j] & 15, bytes[j] >> 4
      want[j] = 0.25 * ((lo | ((qh >> (j - 1)) & 1) << 4) - 16)
      want[j + 16] = 0.25 * ((hi | ((qh >> (j + 15)) & 1) << 4) - 16)
    end
    b = string.pack("<I2I4" .. string.rep("B", 16), 0x3400, qh, table.unpack(bytes))
    assert.are.same(want, core._gguf_dequantize("Q5_0", b):tolist())
  end)

  it("takes the type as an id or a name in any case, and the bytes as a uint8 tensor", function()
    local v = V.dequant[1]
    local s = unhex(v.blocks)
    local want = hex(core._gguf_dequantize(v.type, s):tobytes())
    local id = core._gguf_types()[1].id
    for _, t in ipairs(core._gguf_types()) do if t.name == v.type then id = t.id end end
    assert.are.equal(want, hex(core._gguf_dequantize(id, s):tobytes()))
    assert.are.equal(want, hex(core._gguf_dequantize(v.type:lower(), s):tobytes()))
    local u8 = torch.frombytes(s, "uint8")
    assert.are.equal(want, hex(core._gguf_dequantize(v.type, u8):tobytes()))
    -- a strided view: its elements in order, not the storage behind it
    local wide = torch.zeros(#s, 2, {dtype = "uint8"})
    local col = wide:select(2, 1)
    col:copy(u8)
    assert.is_false(col:is_contiguous())
    assert.are.equal(want, hex(core._gguf_dequantize(v.type, col):tobytes()))
  end)

  it("dequantizes the first n elements and reads no further", function()
    local s = unhex(V.dequant[1].blocks)                 -- one Q4_0 block of 18 bytes
    local all = core._gguf_dequantize("Q4_0", s .. s)
    assert.are.equal(64, all:numel())
    local first = core._gguf_dequantize("Q4_0", s .. "junk", 32)
    assert.are.same(all:narrow(1, 1, 32):tolist(), first:tolist())
    assert.are.equal(0, core._gguf_dequantize("Q4_0", "", 0):numel())
    assert.are.equal(0, core._gguf_dequantize("Q4_0", ""):numel())
  end)

  it("converts F32, F16 and BF16", function()
    local s = string.pack("<I2I2I2I2", 0x3c00, 0xc000, 0x7c00, 0x0001)
    assert.are.same({1, -2, math.huge, 2.0 ^ -24}, core._gguf_dequantize("F16", s):tolist())
    s = string.pack("<I2I2I2", 0x3f80, 0xc0a0, 0x0000)
    assert.are.same({1, -5, 0}, core._gguf_dequantize("BF16", s):tolist())
    s = string.pack("<ff", 1.5, -0.25)
    assert.are.same({1.5, -0.25}, core._gguf_dequantize(0, s):tolist())
  end)

  it("refuses counts that are not whole blocks, and bytes too few for n", function()
    local s = unhex(V.dequant[1].blocks)
    assert.has_error(function() core._gguf_dequantize("Q4_0", s, 40) end,
      DQ:format(3, "Q4_0: 40 elements are not a whole number of 32-element blocks"))
    assert.has_error(function() core._gguf_dequantize("Q4_0", s, -32) end,
      DQ:format(3, "Q4_0: negative element count -32"))
    assert.has_error(function() core._gguf_dequantize("Q4_0", s, 96) end,
      DQ:format(2, "Q4_0: 96 elements need 54 bytes, got 18"))
    assert.has_error(function() core._gguf_dequantize("Q4_0", s:sub(1, 17)) end,
      DQ:format(2, "Q4_0: 17 bytes are not a whole number of 18-byte blocks"))
    -- a view of a larger storage gives only its own bytes
    local big = torch.zeros(340, {dtype = "uint8"})
    assert.has_error(function() core._gguf_dequantize("Q8_0", big:narrow(1, 1, 34), 64) end,
      DQ:format(2, "Q8_0: 64 elements need 68 bytes, got 34"))
  end)

  it("refuses unknown, removed and plain types", function()
    assert.has_error(function() core._gguf_dequantize("Q9_0", "") end,
      DQ:format(1, "unknown ggml type 'Q9_0'"))
    assert.has_error(function() core._gguf_dequantize(43, "") end,
      DQ:format(1, "unknown ggml type id 43 (ids are 0 to 42)"))
    assert.has_error(function() core._gguf_dequantize(-1, "") end,
      DQ:format(1, "unknown ggml type id -1 (ids are 0 to 42)"))
    for id in pairs(REMOVED) do
      local name = TYPES[id + 1][2]
      assert.has_error(function() core._gguf_dequantize(id, "") end,
        DQ:format(1, ("ggml type %s (id %d) has been removed from ggml"):format(name, id)))
      assert.has_error(function() core._gguf_dequantize(name, "") end,
        DQ:format(1, ("ggml type %s (id %d) has been removed from ggml"):format(name, id)))
    end
    assert.has_error(function() core._gguf_dequantize("I32", "") end,
      DQ:format(1, "ggml type I32 cannot be dequantized"))
    assert.has_error(function() core._gguf_dequantize(2.5, "") end,
      DQ:format(1, "ggml type id or name expected, got a non-integer number"))
    assert.has_error(function() core._gguf_dequantize("Q4_0", 7) end,
      DQ:format(2, "string or uint8 tensor expected, got number"))
    assert.has_error(function() core._gguf_dequantize("Q4_0", torch.zeros(18)) end,
      DQ:format(2, "expected a uint8 tensor, got float32"))
  end)
end)

-- the largest |error| of a round trip, per block of the type's scale
-- (its super-block for the K and IQ4_XS types), over that block's max |x|
local STEP = {
  Q4_0 = 0.13, Q4_1 = 0.08, Q5_0 = 0.07, Q5_1 = 0.04, Q8_0 = 0.005, Q8_1 = 0.005,
  Q2_K = 0.4, Q3_K = 0.25, Q4_K = 0.1, Q5_K = 0.06, Q6_K = 0.025, Q8_K = 0.005,
  IQ4_NL = 0.12, IQ4_XS = 0.13, MXFP4 = 0.26, NVFP4 = 0.2,
}

describe("core._gguf_quantize", function()
  it("writes the reference quantizer's bytes for every quantized type, bit for bit", function()
    local seen = {}
    for _, v in ipairs(V.quant) do
      local b = core._gguf_quantize(v.type, input(v.input))
      assert.are.equal("uint8", b:dtype())
      assert.are.equal(v.blocks, hex(b:tobytes()), v.type .. ": " .. v.what)
      seen[v.type] = true
    end
    for _, t in ipairs(core._gguf_types()) do
      if t.quant and t.block > 1 then assert.is_true(seen[t.name], t.name) end
    end
  end)

  it("round-trips within each type's step", function()
    torch.manual_seed(7)
    for name, step in pairs(STEP) do
      local x = torch.randn(4, 512)
      local y = core._gguf_dequantize(name, core._gguf_quantize(name, x)):view(4, 512)
      local blk = 256
      for r = 1, 4 do
        for c = 0, 512 - blk, blk do
          local xs, ys = x[r]:narrow(1, c + 1, blk), y[r]:narrow(1, c + 1, blk)
          local worst = (xs - ys):abs():max():item() / xs:abs():max():item()
          assert.is_true(worst <= step, ("%s: error %.4f of the block max, above %.4f"):format(name, worst, step))
        end
      end
    end
  end)

  it("round-trips exactly what the grid holds", function()
    -- integers with the block max on the negative side: d = 1 exactly
    local ints = {}
    for i = 1, 32 do ints[i] = (i * 7) % 16 - 8 end
    ints[5] = -8
    local x = f32(ints)
    assert.are.same(ints, core._gguf_dequantize("Q4_0", core._gguf_quantize("Q4_0", x)):tolist())
    for i = 1, 32 do ints[i] = (i * 13) % 255 - 127 end
    ints[9] = 127
    x = f32(ints)
    assert.are.same(ints, core._gguf_dequantize("Q8_0", core._gguf_quantize("Q8_0", x)):tolist())
    for i = 1, 32 do ints[i] = (i * 11) % 32 - 16 end
    ints[1] = -16
    x = f32(ints)
    assert.are.same(ints, core._gguf_dequantize("Q5_0", core._gguf_quantize("Q5_0", x)):tolist())
    -- ternary values with an f16-exact scale
    local tern = {}
    for i = 1, 256 do tern[i] = ((i * 5) % 3 - 1) * 0.375 end
    x = f32(tern)
    for _, name in ipairs({"TQ1_0", "TQ2_0", "Q2_0"}) do
      assert.are.same(tern, core._gguf_dequantize(name, core._gguf_quantize(name, x)):tolist(), name)
    end
    local signs = {}
    for i = 1, 128 do signs[i] = i % 3 == 0 and -0.5 or 0.5 end
    x = f32(signs)
    assert.are.same(signs, core._gguf_dequantize("Q1_0", core._gguf_quantize("Q1_0", x)):tolist())
  end)

  it("gives zeros for zeros, and keeps negative blocks negative", function()
    for _, t in ipairs(core._gguf_types()) do
      if t.quant then
        local n = t.block * 2
        local y = core._gguf_dequantize(t.name, core._gguf_quantize(t.name, torch.zeros(n)))
        assert.are.equal(0, y:abs():max():item(), t.name)
        local neg = -(torch.rand(n) + 0.5)
        y = core._gguf_dequantize(t.name, core._gguf_quantize(t.name, neg))
        if t.name ~= "Q1_0" and not t.name:match("^TQ") and t.name ~= "Q2_0" then
          assert.is_true(y:max():item() < 0, t.name)
        end
      end
    end
  end)

  it("quantizes the elements in row-major order, whatever the strides", function()
    local x = torch.randn(64, 32)
    local t = x:t()
    assert.is_false(t:is_contiguous())
    assert.are.equal(hex(core._gguf_quantize("Q4_K", t:contiguous()):tobytes()),
      hex(core._gguf_quantize("Q4_K", t):tobytes()))
    -- float64 is converted to float32 first
    assert.are.equal(hex(core._gguf_quantize("Q8_0", x):tobytes()),
      hex(core._gguf_quantize("Q8_0", x:to("float64")):tobytes()))
  end)

  it("converts to F16 and BF16 rounding to nearest even, as ggml does", function()
    local x = f32({1 + 2.0 ^ -11, 1 + 3 * 2.0 ^ -11, 65520, 2.0 ^ -25, -0.0})
    assert.are.equal("003c023c007c0000" .. "0080", hex(core._gguf_quantize("F16", x):tobytes()))
    x = f32({1 + 2.0 ^ -8, 1 + 3 * 2.0 ^ -8, 0 / 0})
    local b = core._gguf_quantize("BF16", x):tobytes()
    assert.are.equal("803f823f", hex(b:sub(1, 4)))
    assert.are.equal(0x7fc0, string.unpack("<I2", b, 5) & 0x7fc0)
    assert.are.equal(hex(string.pack("<ff", 1.5, -2)), hex(core._gguf_quantize("F32", f32({1.5, -2})):tobytes()))
  end)

  it("refuses counts that are not whole blocks, values that are not finite and types it cannot write", function()
    assert.has_error(function() core._gguf_quantize("Q4_K", torch.zeros(300)) end,
      Q:format(2, "Q4_K: 300 elements are not a whole number of 256-element blocks"))
    local x = torch.zeros(64)
    x[40] = 0 / 0
    assert.has_error(function() core._gguf_quantize("Q8_0", x) end,
      Q:format(2, "Q8_0: element 39 is nan; only finite values can be quantized"))
    x[40] = -math.huge
    assert.has_error(function() core._gguf_quantize("q5_1", x) end,
      Q:format(2, "Q5_1: element 39 is -inf; only finite values can be quantized"))
    assert.has_error(function() core._gguf_quantize("IQ2_XXS", torch.zeros(256)) end,
      Q:format(1, "ggml type IQ2_XXS has no reference quantizer here"))
    assert.has_error(function() core._gguf_quantize(31, torch.zeros(32)) end,
      Q:format(1, "ggml type Q4_0_4_4 (id 31) has been removed from ggml"))
    assert.has_error(function() core._gguf_quantize("Q8_0", torch.zeros(32, {dtype = "int32"})) end,
      Q:format(2, "expected a floating point tensor, got int32"))
    assert.has_error(function() core._gguf_quantize("Q8_0", "x") end,
      Q:format(2, "ltorch.Tensor expected, got string"))
  end)
end)
