-- dtype_spec: dtype names, exact conversions, and bit-exact float16 / bfloat16 /
-- float8 rounding against PyTorch's CPU conversions.
local torch = require("ltorch")

local function f32_from_bits(list)
  return torch.frombytes(string.pack("<" .. string.rep("I4", #list), table.unpack(list)), "float32")
end

local function u16_list(t)
  local s = t:tobytes()
  local out = {}
  for i = 1, #s // 2 do out[i] = string.unpack("<I2", s, 2 * i - 1) end
  return out
end

local ALL = {"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
  "uint8", "bool", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"}

describe("dtypes", function()
  it("knows every dtype by name, with PyTorch's element sizes", function()
    local sizes = {float32 = 4, float64 = 8, float16 = 2, bfloat16 = 2, int8 = 1, int16 = 2,
      int32 = 4, int64 = 8, uint8 = 1, bool = 1, complex64 = 8, complex128 = 16,
      float8_e4m3fn = 1, float8_e5m2 = 1}
    for _, name in ipairs(ALL) do
      local t = torch.zeros(3, {dtype = name})
      assert.are.equal(name, t:dtype())
      assert.are.equal(sizes[name], t:element_size())
      assert.are.equal(3 * sizes[name], #t:tobytes())
    end
  end)

  it("rejects an unknown dtype name, naming it", function()
    assert.has_error(function() torch.zeros(2, {dtype = "float33"}) end,
      "bad argument #2 to 'zeros' (unknown dtype 'float33')")
    assert.has_error(function() torch.ones(2):to("half") end,
      "bad argument #1 to 'to' (unknown dtype or device 'half')")
  end)

  it("keeps int64 values exact as Lua integers", function()
    local big = {math.maxinteger, math.mininteger, 9007199254740993, -9007199254740993}
    local t = torch.tensor(big)
    assert.are.equal("int64", t:dtype())
    local back = t:tolist()
    for i, v in ipairs(big) do
      assert.are.equal(v, back[i])
      assert.is_true(math.type(back[i]) == "integer")
    end
  end)

  it("converts exactly where the target holds the value", function()
    local t = torch.tensor({-128, 0, 127, 255, 1000})
    assert.are.same({-128, 0, 127, -1, -24}, t:to("int8"):tolist())
    assert.are.same({128, 0, 127, 255, 232}, t:to("uint8"):tolist())
    assert.are.same({-128.0, 0.0, 127.0, 255.0, 1000.0}, t:to("float64"):tolist())
    assert.are.same({true, false, true, true, true}, t:to("bool"):tolist())
    assert.are.same({-2, -1, 0, 1, 2}, torch.tensor({-2.7, -1.5, 0.2, 1.9, 2.5}):to("int32"):tolist())
    local c = torch.tensor({1.5, -2}):to("complex128")
    assert.are.same({{1.5, 0}, {-2, 0}}, c:tolist())
  end)

  it("rounds float32 to float16 and bfloat16 bit for bit as PyTorch", function()
    local cases = dofile("spec/fixtures/dtype/expected.lua")
    local src, e16, ebf = {}, {}, {}
    for i, c in ipairs(cases) do src[i], e16[i], ebf[i] = c[1], c[2], c[3] end
    local x = f32_from_bits(src)
    assert.are.same(e16, u16_list(x:to("float16")))
    assert.are.same(ebf, u16_list(x:to("bfloat16")))
  end)

  it("widens every float16 and bfloat16 bit pattern as PyTorch does", function()
    local py = io.popen([[/usr/bin/python3 -c "
import sys, torch
a = torch.arange(65536, dtype=torch.int32).to(torch.int16)
sys.stdout.buffer.write(a.view(torch.float16).float().numpy().tobytes())
sys.stdout.buffer.write(a.view(torch.bfloat16).float().numpy().tobytes())
"]])
    local expected = py:read("a")
    py:close()
    assert.are.equal(65536 * 8, #expected)
    local pats = {}
    for i = 0, 65535 do pats[#pats + 1] = i end
    local raw = string.pack("<" .. string.rep("I2", 65536), table.unpack(pats))
    local h = torch.frombytes(raw, "float16"):to("float32"):tobytes()
    local b = torch.frombytes(raw, "bfloat16"):to("float32"):tobytes()
    -- nan payloads are kept, so the bytes compare exactly
    assert.is_true(h == expected:sub(1, 65536 * 4), "float16 -> float32 differs")
    assert.is_true(b == expected:sub(65536 * 4 + 1), "bfloat16 -> float32 differs")
  end)

  it("rounds to float8_e4m3fn as c10 does: no inf, overflow is nan", function()
    local nan = math.abs(0 / 0)   -- 0/0 is a negative nan on x86
    local x = torch.tensor({0, 1, 448, 464, 479.9, 480, 1e9, -1e9, 1 / 0, nan, 2 ^ -9, 2 ^ -10, 3 * 2 ^ -10, 2 ^ -6, 1.0625, 1.1875},
      {dtype = "float32"})
    local f8 = x:to("float8_e4m3fn")
    local bytes = {f8:tobytes():byte(1, -1)}
    assert.are.same({0x00, 0x38, 0x7e, 0x7e, 0x7f, 0x7f, 0x7f, 0xff, 0x7f, 0x7f, 0x01, 0x00, 0x02, 0x08, 0x38, 0x3a}, bytes)
    local back = f8:to("float32"):tolist()
    assert.are.equal(448, back[3])
    assert.is_true(back[6] ~= back[6])
    assert.are.equal(2 ^ -9, back[11])
  end)

  it("rounds to float8_e5m2 as c10 does: overflow is inf", function()
    local nan = math.abs(0 / 0)
    local x = torch.tensor({0, 1, 57344, 61439, 61440, 1e9, -1 / 0, nan, 2 ^ -16, 2 ^ -17, 1.125, 1.375}, {dtype = "float32"})
    local f8 = x:to("float8_e5m2")
    assert.are.same({0x00, 0x3c, 0x7b, 0x7b, 0x7c, 0x7c, 0xfc, 0x7f, 0x01, 0x00, 0x3c, 0x3e}, {f8:tobytes():byte(1, -1)})
    local back = f8:to("float32"):tolist()
    assert.are.equal(57344, back[3])
    assert.are.equal(math.huge, back[5])
    assert.are.equal(-math.huge, back[7])
  end)

  it("keeps subnormals, infinities and nan through float16 and bfloat16", function()
    local x = torch.tensor({2 ^ -24, -2 ^ -24, 2 ^ -14, 1 / 0, -1 / 0, 0 / 0}, {dtype = "float64"})
    local h = x:to("float16"):to("float64"):tolist()
    assert.are.equal(2 ^ -24, h[1]); assert.are.equal(-2 ^ -24, h[2]); assert.are.equal(2 ^ -14, h[3])
    assert.are.equal(math.huge, h[4]); assert.are.equal(-math.huge, h[5]); assert.is_true(h[6] ~= h[6])
    local b = torch.tensor({2 ^ -130, 1 / 0, 0 / 0}):to("bfloat16"):to("float64"):tolist()
    assert.are.equal(2 ^ -130, b[1]); assert.are.equal(math.huge, b[2]); assert.is_true(b[3] ~= b[3])
  end)
end)
