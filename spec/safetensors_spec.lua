-- safetensors_spec.lua: the safetensors format (FORMATS.md 4), R torch files
-- (FORMATS.md 10), torch.safe_open
local torch = require("ltorch")
local odict = require("ltorch.odict")
local st = require("ltorch.formats.safetensors")
local H = require("fmt_helper")

local DTYPES = {"bool", "uint8", "int8", "int16", "float16", "bfloat16", "int32", "float32",
  "complex64", "float64", "int64", "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"}
local STNAME = {bool = "BOOL", uint8 = "U8", int8 = "I8", int16 = "I16", float16 = "F16",
  bfloat16 = "BF16", int32 = "I32", float32 = "F32", complex64 = "C64", float64 = "F64",
  int64 = "I64", float8_e4m3fn = "F8_E4M3", float8_e5m2 = "F8_E5M2", uint16 = "U16",
  uint32 = "U32", uint64 = "U64"}

-- the same dict st_ref.py's build_dict makes
local function standard_dict()
  local d = odict.new()
  for _, dt in ipairs(DTYPES) do
    local t
    if dt == "bool" then t = torch.tensor({{false, true, false}, {true, false, true}})
    else t = torch.arange(6):to(dt):view(2, 3) end
    d["t_" .. STNAME[dt]] = t
  end
  d.scalar = torch.tensor(2.5)
  d.empty = torch.zeros(0, 4)
  return d
end

local dir, REF
setup(function()
  dir = H.tmpdir()
  REF = dir .. "/ref.safetensors"     -- the reference writer's file (torch is slow to start)
  H.py(H.FIX .. "st_ref.py", "write", REF)
end)
teardown(function() H.rmdir(dir) end)

describe("safetensors save", function()
  it("writes the FORMATS 4.4 example byte for byte", function()
    local d = odict.new()
    d.b = torch.tensor({1, 2}, {dtype = "float16"})
    d.w = torch.tensor({{1, 2}, {3, 4}}, {dtype = "float32"})
    local p = dir .. "/ex.safetensors"
    torch.save(d, p)
    local header = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
      .. '"b":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}} '
    local expect = string.pack("<I8", 0x90) .. header .. d.w:tobytes() .. d.b:tobytes()
    assert.equal(0x90, #header)
    assert.equal(expect, H.read(p))
  end)

  it("writes every dtype exactly as the reference writer does", function()
    local mine = dir .. "/mine.safetensors"
    torch.save(standard_dict(), mine)
    assert.equal(H.read(REF), H.read(mine))
    -- and the reference reader's validation accepts it
    local out = H.py(H.FIX .. "st_ref.py", "check", mine)
    assert.truthy(out:find('meta [["format", "pt"]]', 1, true))
    assert.truthy(out:find("t_F8_E4M3 F8_E4M3 [2, 3]", 1, true))
  end)

  it("adds opts.metadata after format", function()
    local p = dir .. "/meta.safetensors"
    torch.save({w = torch.ones(2)}, p, {metadata = {author = "me", note = "x\"y"}})
    local f <close> = torch.safe_open(p)
    assert.same({"format", "author", "note"}, odict.keys(f:metadata()))
    assert.equal('x"y', f:metadata().note)
    assert.equal('meta [["format", "pt"], ["author", "me"], ["note", "x\\"y"]]',
      H.py(H.FIX .. "st_ref.py", "check", p):match("^[^\n]*"))
  end)

  it("writes non-contiguous views in C order, and shared storage as copies", function()
    local base = torch.arange(12):to("float32"):view(3, 4)
    local p = dir .. "/views.safetensors"
    torch.save({a = base:t(), b = base:narrow(2, 2, 2), c = base}, p)
    local l = torch.load(p)
    assert.is_true(H.same(l.a, base:t():contiguous()))
    assert.is_true(H.same(l.b, base:narrow(2, 2, 2):contiguous()))
    assert.is_true(H.same(l.c, base))
  end)

  it("streams a large strided view through a bounded buffer", function()
    local big = torch.arange(600000):to("float32"):view(1000, 600):t()
    local p = dir .. "/big.safetensors"
    torch.save({x = big}, p)
    assert.is_true(H.same(torch.load(p).x, big:contiguous()))
  end)

  it("rejects what it cannot hold, naming it and .pt", function()
    local p = dir .. "/bad.safetensors"
    assert.equal(p .. ": value 'n' is a nested table: safetensors stores only tensors (.pt can store it)",
      H.err(torch.save, {n = {x = torch.ones(1)}}, p))
    assert.equal(p .. ": value 'k' is a number: safetensors stores only tensors (.pt can store it)",
      H.err(torch.save, {k = 3}, p))
    assert.equal(p .. ": tensor 'z': dtype complex128 cannot be stored in safetensors (.pt can)",
      H.err(torch.save, {z = torch.zeros(2, {dtype = "complex128"})}, p))
    assert.equal(p .. ": safetensors stores a table of named tensors, not a single tensor (wrap it: {name = t}, or use .pt)",
      H.err(torch.save, torch.ones(2), p))
    assert.is_nil(io.open(p, "rb"))
  end)

  it("honours opts.format over the extension", function()
    local p = dir .. "/model.pt"
    torch.save({w = torch.ones(2)}, p, {format = "safetensors"})
    assert.equal("{", H.read(p):sub(9, 9))
    assert.is_true(H.same(torch.load(p).w, torch.ones(2)))
  end)

  it("stores extra records as ltorch.* metadata and returns them on load", function()
    local p = dir .. "/mod.safetensors"
    local sd = odict.new()
    sd["fc.weight"] = torch.ones(2, 2)
    st.save(sd, p, {}, p, {structure = "{\"class\":\"Linear\"}"})
    local v, extras = st.load(p, {})
    assert.equal('{"class":"Linear"}', extras.structure)
    assert.is_true(H.same(v["fc.weight"], torch.ones(2, 2)))
    assert.equal('{"class":"Linear"}', torch.safe_open(p):metadata()["ltorch.structure"])
  end)
end)

describe("safetensors load", function()
  it("reads every dtype written by the reference writer", function()
    local l = torch.load(REF)
    local want = standard_dict()
    for k, t in pairs(want) do
      assert.equal(t:dtype(), l[k]:dtype(), k)
      assert.same(t:size(), l[k]:size(), k)
      assert.equal(t:tobytes(), l[k]:tobytes(), k)
    end
    -- data order: dtype descending, then name
    assert.same({"t_U64", "t_I64", "t_F64", "t_C64", "empty", "scalar"}, table.move(odict.keys(l), 1, 6, 1, {}))
  end)

  it("loads U16, U32 and U64 as uint16, uint32 and uint64", function()
    for _, mm in ipairs({false, true}) do
      local l = torch.load(H.FIX .. "st_unsigned.safetensors", {mmap = mm})
      assert.equal("uint64", l.a:dtype())
      assert.same({9, math.maxinteger}, l.a:tolist())
      assert.equal("uint32", l.b:dtype())
      assert.same({7, 4294967295}, l.b:tolist())
      assert.equal("uint16", l.c:dtype())
      assert.same({1, 65535}, l.c:tolist())
      -- past 2^63 - 1 a uint64 comes out as a wrapping Lua integer
      l = torch.load(H.FIX .. "st_u64_overflow.safetensors", {mmap = mm})
      assert.equal("uint64", l.a:dtype())
      assert.same({1, -1}, l.a:tolist())
      assert.equal("tensor([                   1, 18446744073709551615], dtype=torch.uint64)", tostring(l.a))
    end
    local f <close> = torch.safe_open(H.FIX .. "st_unsigned.safetensors")
    assert.same({4294967295}, f:get_slice("b"):rows(2, 1):tolist())
    assert.equal("uint32", f:get_slice("b"):rows(2, 1):dtype())
  end)

  it("maps the file with mmap = true", function()
    local p = dir .. "/mm.safetensors"
    torch.save({a = torch.arange(10), b = torch.ones(3)}, p)
    local l = torch.load(p, {mmap = true})
    local _, _, mapped = l.a:_storage_info()
    assert.is_true(mapped)
    assert.is_true(H.same(l.a, torch.arange(10)))
    local e = torch.load(p)
    local _, _, m2 = e.a:_storage_info()
    assert.is_false(m2)
    assert.equal(1, H.maps_of(p))   -- the mapping lives while its tensors do
    l = nil
    collectgarbage(); collectgarbage()
    assert.equal(0, H.maps_of(p))
  end)

  it("filters with keys, renames and reports progress", function()
    local p = dir .. "/sel.safetensors"
    torch.save({["module.a"] = torch.ones(2), ["module.b"] = torch.zeros(3), c = torch.ones(1)}, p)
    local l = torch.load(p, {keys = {"module.a", "c"}, rename = {{"^module%.", ""}}})
    assert.same({"c", "a"}, odict.keys(l))
    l = torch.load(p, {keys = function(n) return n:find("b") ~= nil end})
    assert.same({"module.b"}, odict.keys(l))
    local calls = {}
    torch.load(p, {progress = function(done, total) calls[#calls + 1] = {done, total} end})
    assert.same({24, 24}, calls[#calls])
    assert.equal(3, #calls)
  end)

  it("detects the format from bytes whatever the name", function()
    local p = dir .. "/weights.bin"
    torch.save({w = torch.ones(2)}, p, {format = "safetensors"})
    assert.is_true(H.same(torch.load(p).w, torch.ones(2)))
  end)

  local damaged = {
    st_tiny = "file too small for a safetensors header (3 bytes)",
    st_truncated_header = "truncated: header length 200 but the file has 19 bytes after the length",
    st_huge_header = "header length 200000000 exceeds the limit of 100000000",
    st_bad_json = "header is not valid JSON (at byte 56)",   -- where the closing brace is missing
    st_bad_dtype = "tensor 'w': unknown dtype 'F33'",
    st_e8m0 = "tensor 'w': dtype F8_E8M0 has no ltorch dtype (keys can leave it out)",
    st_size_mismatch = "tensor 'w': data_offsets [0, 16] hold 16 bytes, its shape and dtype F32 need 24",
    st_overflow = "tensor 'w': shape overflows",
    st_hole = "tensor 'b': data_offsets begin at 12, expected 8 (a hole before it)",
    st_overlap = "tensor 'b': data_offsets begin at 8, expected 12 (it overlaps the previous tensor)",
    st_not_zero = "tensor 'a': data_offsets begin at 4, expected 0 (a hole before it)",
    st_trailing = "tensors index 16 bytes of data, the file holds 20 after the header",
    st_short_data = "tensors index 16 bytes of data, the file holds 12 after the header",
    st_duplicate = "duplicate tensor name 'w'",
    st_meta_number = "'__metadata__' value of 'format' is not a string",
    st_missing_shape = "tensor 'w': missing or non-array 'shape'",
    st_negative_dim = "tensor 'w': shape[1] is not a non-negative integer",
    st_bad_utf8 = "header is not valid UTF-8",
    st_rank = "tensor 'w': rank 17 exceeds the limit of 16",
    st_not_brace = "header does not start with '{'",
  }
  for name, msg in pairs(damaged) do
    it("rejects " .. name, function()
      local p = H.FIX .. name .. ".safetensors"
      assert.has_error(function() st.load(p, {}) end, p .. ": " .. msg)
    end)
  end

  it("reads what other writers put in headers: a null __metadata__ (MLX), a tensor ltorch has no dtype for left out by keys", function()
    local function file(header, data)
      local p = dir .. "/other.safetensors"
      H.write(p, string.pack("<I8", #header) .. header .. data)
      return p
    end
    local p = file('{"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', string.pack("<f", 2.5))
    assert.are.same({2.5}, torch.load(p).w:tolist())
    local f = torch.safe_open(p)
    assert.are.same({}, require("ltorch.odict").ordered_keys(f:metadata()))
    f:close()
    p = file('{"a":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"F4","shape":[4],' ..
      '"data_offsets":[2,4]},"w":{"dtype":"I16","shape":[1],"data_offsets":[4,6]}}', "\1\2\3\4" .. string.pack("<i2", -7))
    assert.are.same({-7}, torch.load(p, {keys = {"w"}}).w:tolist())
    assert.are.same({-7}, torch.load_state_dict(p, {keys = {"w"}}).w:tolist())
    assert.has_error(function() torch.load(p) end, p .. ": tensor 'a': dtype F8_E8M0 has no ltorch dtype (keys can leave it out)")
  end)

  it("rejects damaged files through torch.load with the path", function()
    local p = H.FIX .. "st_hole.safetensors"
    assert.has_error(function() torch.load(p) end,
      p .. ": tensor 'b': data_offsets begin at 12, expected 8 (a hole before it)")
  end)
end)

describe("R torch files", function()
  it("loads a module file: state dict, complex special dtype, requires_grad, inert __robj__", function()
    local p = H.FIX .. "r_module.safetensors"
    local l = torch.load(p)
    assert.same({"fc.weight", "fc.bias", "z", "__robj__"}, odict.keys(l))
    assert.is_true(l["fc.weight"]:requires_grad())
    assert.is_false(l["fc.bias"]:requires_grad())
    assert.equal("complex64", l.z:dtype())
    assert.same({{1, 2}, {3, 4}}, l.z:tolist())
    assert.same({present = true, bytes = 20}, l.__robj__)
    local sd = torch.load_state_dict(p)
    assert.same({"fc.weight", "fc.bias", "z"}, odict.keys(sd))
  end)

  it("loads a tensor file as the tensor", function()
    local t = torch.load(H.FIX .. "r_tensor.safetensors")
    assert.same({7, 8, 9}, t:tolist())
  end)
end)

describe("torch.safe_open", function()
  local p
  setup(function()
    p = dir .. "/lazy.safetensors"
    torch.save({emb = torch.arange(20):to("float32"):view(5, 4), s = torch.tensor(1.5)}, p,
      {metadata = {k = "v"}})
  end)

  it("lists keys and metadata without reading tensors", function()
    local f = torch.safe_open(p)
    assert.same({"emb", "s"}, f:keys())
    assert.equal("v", f:metadata().k)
    f:close()
  end)

  it("gets tensors as views of the mapping", function()
    local f <close> = torch.safe_open(p)
    local t = f:get_tensor("emb")
    local _, _, mapped = t:_storage_info()
    assert.is_true(mapped)
    assert.equal(1.5, f:get_tensor("s"):item())
  end)

  it("reads row slices: only the requested bytes", function()
    local f <close> = torch.safe_open(p)
    local s = f:get_slice("emb")
    assert.same({5, 4}, s:shape())
    assert.equal("float32", s:dtype())
    local r = s:rows(2, 2)
    assert.same({{4, 5, 6, 7}, {8, 9, 10, 11}}, r:tolist())
    local _, nbytes = r:_storage_info()
    assert.equal(32, nbytes)
    assert.same({0, 4}, s:rows(6, 0):size())
    assert.has_error(function() s:rows(5, 2) end, "bad argument #2 to 'rows' (2 rows from row 5 exceed 5)")
  end)

  it("keeps tensors valid after close and refuses use after close", function()
    local f = torch.safe_open(p)
    local t = f:get_tensor("emb")
    f:close()
    collectgarbage()
    assert.equal(19, t[5][4]:item())
    assert.has_error(function() f:keys() end, "attempt to use a closed safetensors file")
  end)

  it("opens a 4 GB (sparse) file without reading its data", function()
    local big = dir .. "/big4g.safetensors"
    local n = 1000000 * 1000 * 4
    local header = '{"emb":{"dtype":"F32","shape":[1000000,1000],"data_offsets":[0,' .. n .. ']}}'
    header = header .. string.rep(" ", (8 - #header % 8) % 8)
    H.write(big, string.pack("<I8", #header) .. header)
    assert(os.execute("truncate -s " .. (8 + #header + n) .. " " .. big))
    local t0 = os.clock()
    local f <close> = torch.safe_open(big)
    local rows = f:get_slice("emb"):rows(999999, 2)
    assert.same({2, 1000}, rows:size())
    assert.equal(0, rows[2][1000]:item())
    local whole = torch.load(big, {mmap = true}).emb
    assert.same({1000000, 1000}, whole:size())
    assert.is_true(os.clock() - t0 < 1)
    os.remove(big)
  end)

  it("names missing tensors", function()
    local f <close> = torch.safe_open(p)
    assert.has_error(function() f:get_tensor("nope") end, p .. ": no tensor named 'nope'")
  end)
end)
