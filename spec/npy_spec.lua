-- npy_spec.lua: NumPy .npy and .npz (FORMATS.md 8), with NumPy as the peer
local torch = require("ltorch")
local odict = require("ltorch.odict")
local npy = require("ltorch.formats.npy")
local H = require("fmt_helper")

-- numpy descr -> ltorch dtype
local DESCR = {
  ["<f2"] = "float16", ["<f4"] = "float32", ["<f8"] = "float64", ["|i1"] = "int8",
  ["<i2"] = "int16", ["<i4"] = "int32", ["<i8"] = "int64", ["|u1"] = "uint8", ["|b1"] = "bool",
  ["<c8"] = "complex64", ["<c16"] = "complex128",
  ["<u2"] = "uint16", ["<u4"] = "uint32", ["<u8"] = "uint64",
  [">u2"] = "uint16", [">u4"] = "uint32", [">u8"] = "uint64",
  [">f2"] = "float16", [">f4"] = "float32", [">f8"] = "float64", [">i2"] = "int16",
  [">i4"] = "int32", [">i8"] = "int64", [">c8"] = "complex64", [">c16"] = "complex128",
}

local function expected(dt, shape)
  local t = torch.arange(6)
  if dt == "bool" then
    t = torch.tensor({false, true, false, true, false, true})
  else
    t = t:to(dt)
  end
  return t:view(table.unpack(shape or {2, 3}))
end

local dir
setup(function()
  dir = H.tmpdir()
  -- NumPy writes every variant into dir
  H.py([[
import sys, numpy as np
from numpy.lib import format as fmt
d = sys.argv[1]
for descr in ]] .. "['<f2','<f4','<f8','|i1','<i2','<i4','<i8','|u1','|b1','<c8','<c16','<u2','<u4','<u8','>f2','>f4','>f8','>i2','>i4','>i8','>c8','>c16','>u2','>u4','>u8']" .. [[:
    a = (np.arange(6) % 2).astype(descr) if descr == '|b1' else np.arange(6).astype(descr)
    np.save('%s/%s.npy' % (d, descr[1:] + ('be' if descr[0] == '>' else '')), a.reshape(2, 3))
np.save(d + '/fortran.npy', np.asfortranarray(np.arange(24, dtype='<f4').reshape(2, 3, 4)))
np.save(d + '/fortran_be.npy', np.asfortranarray(np.arange(6, dtype='>i4').reshape(2, 3)))
for v in [(2, 0), (3, 0)]:
    with open(d + '/v%d.npy' % v[0], 'wb') as f:
        fmt.write_array(f, np.arange(6, dtype='<i8').reshape(2, 3), version=v)
np.save(d + '/scalar.npy', np.float64(2.5))
np.save(d + '/empty.npy', np.zeros((0, 3), dtype='<f4'))
np.savez(d + '/stored.npz', w=np.arange(6, dtype='<f4').reshape(2, 3), b=np.array([True, False]))
np.savez_compressed(d + '/deflated.npz', np.arange(4, dtype='>i2'), np.asfortranarray(np.arange(6.0).reshape(2, 3)))
]], dir)
end)
teardown(function() H.rmdir(dir) end)

describe("npy load", function()
  for descr, dt in pairs(DESCR) do
    it("reads NumPy's " .. descr, function()
      local name = descr:sub(2) .. (descr:sub(1, 1) == ">" and "be" or "")
      local t = torch.load(dir .. "/" .. name .. ".npy")
      assert.is_true(H.same(expected(dt), t))
    end)
  end

  it("reads Fortran order as a transposed view", function()
    local t = torch.load(dir .. "/fortran.npy")
    assert.same({2, 3, 4}, t:size())
    assert.is_false(t:is_contiguous())
    assert.is_true(H.same(torch.arange(24):to("float32"):view(2, 3, 4), t))
    assert.is_true(H.same(torch.arange(6):to("int32"):view(2, 3), torch.load(dir .. "/fortran_be.npy")))
  end)

  it("reads versions 2.0 and 3.0, scalars and empty arrays", function()
    for _, v in ipairs({"v2", "v3"}) do
      assert.is_true(H.same(expected("int64"), torch.load(dir .. "/" .. v .. ".npy")))
    end
    local s = torch.load(dir .. "/scalar.npy")
    assert.equal(0, s:dim())
    assert.equal(2.5, s:item())
    assert.same({0, 3}, torch.load(dir .. "/empty.npy"):size())
  end)

  it("maps little-endian files with mmap = true, copies big-endian ones", function()
    local m = torch.load(dir .. "/f4.npy", {mmap = true})
    local _, _, mapped = m:_storage_info()
    assert.is_true(mapped)
    assert.is_true(H.same(torch.load(dir .. "/f4.npy"), m))   -- equal to an eager load
    assert.equal(1, H.maps_of(dir .. "/f4.npy"))
    m = nil
    collectgarbage(); collectgarbage()
    assert.equal(0, H.maps_of(dir .. "/f4.npy"))
    local t = torch.load(dir .. "/f4be.npy", {mmap = true})
    _, _, mapped = t:_storage_info()
    assert.is_false(mapped)
    assert.is_true(H.same(expected("float32"), t))
  end)

  local damaged = {
    npy_truncated = "truncated: expected 16 bytes at byte 128, the file has 136",
    npy_bad_dict = "header dict is malformed at byte 128",
    npy_missing_key = "header lacks 'fortran_order'",
    npy_extra_key = "header has an unexpected or repeated key 'x'",
    npy_structured = "'descr' is not a simple type string (structured dtypes are not supported)",
    npy_version = "unsupported format version 4.0",
    npy_huge_header = "header length 2147483647 exceeds the limit of 1048576",
    npy_negative = "'shape' holds a non-integer (or negative) dimension",
  }
  for name, msg in pairs(damaged) do
    it("rejects " .. name, function()
      local p = H.FIX .. name .. ".npy"
      assert.has_error(function() torch.load(p) end, p .. ": " .. msg)
    end)
  end
end)

describe("npy save", function()
  it("writes every NumPy dtype that NumPy reads back", function()
    local checks = {}
    for _, dt in ipairs({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                         "bool", "complex64", "complex128", "uint16", "uint32", "uint64"}) do
      torch.save(expected(dt), dir .. "/out_" .. dt .. ".npy")
      checks[#checks + 1] = dt
    end
    -- a strided view is written in C order
    torch.save(torch.arange(6):to("float32"):view(2, 3):t(), dir .. "/out_view.npy")
    local out = H.py([[
import sys, numpy as np
d = sys.argv[1]
for dt in sys.argv[2].split(','):
    a = np.load('%s/out_%s.npy' % (d, dt))
    want = (np.arange(6) % 2).astype(bool) if dt == 'bool' else np.arange(6).astype(dt)
    assert a.dtype == want.dtype and a.shape == (2, 3) and (a == want.reshape(2, 3)).all(), dt
    with open('%s/out_%s.npy' % (d, dt), 'rb') as f:
        f.seek(8); hl = int.from_bytes(f.read(2), 'little')
    assert (10 + hl) % 64 == 0, dt
v = np.load(d + '/out_view.npy')
assert (v == np.arange(6, dtype='f4').reshape(2, 3).T).all() and v.flags.c_contiguous
print('ok')
]], dir, table.concat(checks, ","))
    assert.equal("ok\n", out)
  end)

  it("rejects dtypes NumPy lacks and non-tensors", function()
    local p = dir .. "/bad.npy"
    assert.equal(p .. ": dtype bfloat16 cannot be stored in .npy (.pt or safetensors can)",
      H.err(torch.save, torch.zeros(2, {dtype = "bfloat16"}), p))
    assert.equal(p .. ": .npy stores one tensor or an array of strings, got a table (.npz stores a table of tensors)",
      H.err(torch.save, {torch.zeros(2)}, p))
  end)

  it("detects .npy by its magic whatever the name", function()
    local p = dir .. "/arr.bin"
    torch.save(torch.ones(3), p, {format = "npy"})
    assert.is_true(H.same(torch.ones(3), torch.load(p)))
  end)
end)

describe("npz", function()
  it("reads NumPy's stored and deflated archives", function()
    local s = torch.load(dir .. "/stored.npz")
    assert.same({"w", "b"}, odict.keys(s))
    assert.is_true(H.same(torch.arange(6):to("float32"):view(2, 3), s.w))
    assert.same({true, false}, s.b:tolist())
    local d = torch.load(dir .. "/deflated.npz")
    assert.same({"arr_0", "arr_1"}, odict.keys(d))
    assert.is_true(H.same(torch.arange(4):to("int16"), d.arr_0))
    assert.is_true(H.same(torch.arange(6):to("float64"):view(2, 3), d.arr_1))
  end)

  it("writes archives NumPy reads, stored or compressed", function()
    local d = odict.new()
    d.weight = torch.arange(6):to("float32"):view(2, 3)
    d["layer.bias"] = torch.tensor({1, 2}, {dtype = "int64"})
    d.mask = torch.tensor({true, false})
    torch.save(d, dir .. "/o1.npz")
    torch.save(d, dir .. "/o2.npz", {compress = true})
    torch.save({torch.ones(2), torch.zeros(1)}, dir .. "/o3.npz")
    local out = H.py([[
import sys, zipfile, numpy as np
d = sys.argv[1]
for n, comp in (('o1', zipfile.ZIP_STORED), ('o2', zipfile.ZIP_DEFLATED)):
    z = np.load('%s/%s.npz' % (d, n))
    assert sorted(z.files) == ['layer.bias', 'mask', 'weight'], z.files
    assert (z['weight'] == np.arange(6, dtype='f4').reshape(2, 3)).all()
    assert z['layer.bias'].dtype == np.int64 and list(z['layer.bias']) == [1, 2]
    assert list(z['mask']) == [True, False]
    assert all(i.compress_type == comp for i in zipfile.ZipFile('%s/%s.npz' % (d, n)).infolist())
z = np.load(d + '/o3.npz')
assert sorted(z.files) == ['arr_0', 'arr_1']
print('ok')
]], dir)
    assert.equal("ok\n", out)
    local back = torch.load(dir .. "/o2.npz", {keys = {"weight"}})
    assert.same({"weight"}, odict.keys(back))
  end)

  it("reports damaged archives with the entry", function()
    local p = dir .. "/bad.npz"
    H.py([[
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('x.npy', b'\x93NUMPY\x01\x00\x10\x00{"descr": 1}    \n')
]], p)
    assert.equal(p .. ": entry 'x.npy': 'descr' is not a simple type string (structured dtypes are not supported)",
      H.err(torch.load, p))
  end)
end)
