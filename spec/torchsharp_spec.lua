-- torchsharp_spec.lua: TorchSharp .dat (FORMATS.md 6), checked against
-- spec/fixtures/fmt/ts_ref.py (exportsd.py / importsd.py layout)
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local dir, ref
setup(function()
  dir = H.tmpdir()
  ref = dir .. "/ref.dat"
  H.py(H.FIX .. "ts_ref.py", "write", ref)
end)
teardown(function() H.rmdir(dir) end)

local DTYPES = {"uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64",
  "complex64", "complex128", "bool", "bfloat16"}

describe("torchsharp load", function()
  it("reads every dtype code, UTF-8 names and multi-byte LEB128 dims", function()
    local d = torch.load(ref)
    local keys = odict.keys(d)
    assert.equal(#DTYPES + 3, #keys)
    for _, dt in ipairs(DTYPES) do
      local t = d["layer." .. dt]
      assert.equal(dt, t:dtype())
      if dt == "bool" then
        assert.same({{false, true, false}, {true, false, true}}, t:tolist())
      else
        assert.is_true(H.same(torch.arange(6):to(dt):view(2, 3), t), dt)
      end
    end
    assert.same({1.5, -2.0}, d["caf\u{e9}.\u{e9}t\u{e9}"]:tolist())
    assert.equal(3.0, d.scalar:item())
    assert.equal(0, d.scalar:dim())
    assert.is_true(H.same(torch.arange(300):to("int32"), d.big))
  end)

  it("supports mmap, keys and rename", function()
    local d = torch.load(ref, {mmap = true, keys = {"big"}, rename = {{"big", "large"}}})
    assert.same({"large"}, odict.keys(d))
    -- names of any length put data at any offset: int32 data that is not
    -- 4-byte aligned is not mapped but read when first used
    local offset = 0
    for _, e in ipairs(require("ltorch.core")._ts_scan(require("ltorch.core")._fopen(ref))) do
      if e.name == "big" then offset = e.offset end
    end
    local _, _, mapped, pending = d.large:_storage_info()
    assert.are.equal(offset % 4 == 0, mapped)
    assert.are.equal(offset % 4 ~= 0, pending)
    assert.is_true(H.same(torch.arange(300):to("int32"), d.large))
    assert.is_false(select(4, d.large:_storage_info()))
  end)

  local damaged = {
    ts_bad_leb = "entry 1 'w': bad LEB128 dtype at byte 3 (more than 64 bits)",
    ts_truncated = "entry 1 'w': truncated: expected 16 bytes of data at byte 6, found 13",
    ts_bad_dtype = "entry 1 'w': unsupported dtype code 4711 (exportsd's fallback for unknown types)",
    ts_duplicate = "entry 2 'w': duplicate name",
    ts_trailing = "1 unexpected bytes after the last entry",
    ts_count = "entry count 1000000 is more than the file can hold",
    ts_rank = "entry 1 'w': rank 17 exceeds the limit of 16",
  }
  -- a damaged .dat file is still claimed (its start looks like TorchSharp's);
  -- the error says why each layout failed, the state dict's first
  for name, msg in pairs(damaged) do
    it("rejects " .. name, function()
      local p = H.FIX .. name .. ".dat"
      local err = H.err(torch.load, p)
      assert.equal(p .. ": fits no TorchSharp layout (state dict: " .. msg .. "; optimizer state: ",
        err:sub(1, #p + #msg + 60))
      assert.truthy(err:find("; tensor: ", 1, true))
    end)
  end
end)

describe("torchsharp save", function()
  it("writes what the exportsd/importsd layout reads, in order, with UTF-8 byte lengths", function()
    local d = odict.new()
    for _, dt in ipairs(DTYPES) do
      d["layer." .. dt] = dt == "bool" and torch.tensor({{false, true, false}, {true, false, true}})
        or torch.arange(6):to(dt):view(2, 3)
    end
    d["\u{e9}t\u{e9}"] = torch.tensor({1.5, -2.0}):view(2, 1):t()   -- a strided view
    d.big = torch.arange(300):to("int32")
    local p = dir .. "/out.dat"
    torch.save(d, p)
    local out = H.py(H.FIX .. "ts_ref.py", "read", p)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(#DTYPES + 2, #lines)
    assert.equal("layer.uint8 0 [2, 3] [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]", lines[1])
    assert.equal("layer.complex128 10 [2, 3] [[0j, (1+0j), (2+0j)], [(3+0j), (4+0j), (5+0j)]]", lines[10])
    assert.equal("layer.bool 11 [2, 3] [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]", lines[11])
    assert.equal("layer.bfloat16 15 [2, 3] [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]", lines[12])
    assert.equal("\u{e9}t\u{e9} 6 [1, 2] [[1.5, -2.0]]", lines[13])
    assert.truthy(lines[14]:find("^big 3 %[300%]"))
    -- and loads back
    local back = torch.load(p)
    assert.same(odict.keys(d), odict.keys(back))
  end)

  it("accepts only a flat table of tensors", function()
    local p = dir .. "/bad.dat"
    assert.equal(p .. ": value 'x' is a nested table: TorchSharp .dat stores only tensors (.pt can store it)",
      H.err(torch.save, {x = {}}, p))
    assert.equal(p .. ": tensor 'f': dtype float8_e5m2 cannot be stored in TorchSharp .dat (.pt can)",
      H.err(torch.save, {f = torch.zeros(1, {dtype = "float8_e5m2"})}, p))
  end)

  it("saves a module as its state dict (TorchSharp has no metadata)", function()
    local lin = torch.nn.Linear(2, 2)
    local p = dir .. "/mod.dat"
    torch.save(lin, p)
    assert.same({"weight", "bias"}, odict.keys(torch.load(p)))
    assert.is_true(torch.equal(torch.load(p).weight, lin.weight))
  end)

  it("round-trips an empty dict", function()
    local p = dir .. "/empty.dat"
    torch.save(odict.new(), p)
    assert.equal("\0", H.read(p))
    assert.same({}, odict.keys(torch.load(p)))
  end)
end)

describe("torchsharp keys", function()
  it("leaves out an entry of a dtype ltorch lacks (QInt8), and refuses it when asked for", function()
    -- count 2; "q": code 12 (c10 QInt8, 1 byte), rank 1, dim 4; "w": code 6 (float32), rank 1, dim 2
    local bytes = "\2" .. "\1q" .. "\12\1\4" .. "\1\2\3\4" .. "\1w" .. "\6\1\2" .. string.pack("<ff", 1.5, -2)
    local p = dir .. "/q.dat"
    H.write(p, bytes)
    assert.same({1.5, -2}, torch.load(p, {keys = {"w"}}).w:tolist())
    assert.has_error(function() torch.load(p) end,
      p .. ": entry 'q': dtype code 12 has no ltorch dtype (keys can leave it out)")
  end)
end)
