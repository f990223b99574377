-- gguf_spec.lua: GGUF files (src/gguf.c, lua/ltorch/formats/gguf.lua,
-- lua/ltorch/gguf.lua). The real peer is the npm package @huggingface/gguf
-- (`make deps` installs it into build/npm; spec/fixtures/gguf/peer.mjs):
-- it builds the headers of the fixture files ltorch reads and parses every
-- file ltorch writes. Hostile files are built here byte by byte from the
-- layout (src/gguf.c's header). Quantized blocks are checked against the
-- block definitions in spec/gguf_quant_spec.lua; here Q8_0 and Q4_0 blocks
-- with chosen scales and quants stand for them.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local json = require("ltorch.json")
local G = require("ltorch.gguf")
local H = require("fmt_helper")

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmdir(dir) end)

local PEER = "spec/fixtures/gguf/peer.mjs"
local function node(args)
  local p = io.popen("env -u LD_PRELOAD node " .. PEER .. " " .. args .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local body, rc = out:match("^(.-)rc=(%d+)\n?$")
  return body, tonumber(rc)
end
local function peer_parse(path)
  local out, rc = node("parse '" .. path .. "'")
  assert.are.equal(0, rc, out)
  return json.decode(out)
end
local function peer_build(path, spec)
  local sp = path .. ".json"
  H.write(sp, json.encode(spec))
  local out, rc = node("build '" .. path .. "' '" .. sp .. "'")
  assert.are.equal(0, rc, out)
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function f32s(t) local o = {} for i, v in ipairs(t) do o[i] = string.pack("<f", v) end return table.concat(o) end

-- a Q8_0 block: f16 scale 0.5, quants -16 .. 15 (values q * 0.5)
local Q8_BLOCK = string.pack("<I2", 0x3800) .. (function()
  local o = {} for q = -16, 15 do o[#o + 1] = string.pack("<i1", q) end return table.concat(o) end)()
local Q8_VALUES = {} for q = -16, 15 do Q8_VALUES[#Q8_VALUES + 1] = q * 0.5 end
-- a Q4_0 block: f16 scale 1.0; byte j holds element j (low nibble, j & 15)
-- and element j + 16 (high nibble, 15 - j); value = (nibble - 8) * scale
local Q4_BLOCK = string.pack("<I2", 0x3C00) .. (function()
  local o = {} for j = 0, 15 do o[#o + 1] = string.char((j & 15) | ((15 - j) << 4)) end return table.concat(o) end)()
local Q4_VALUES = {}
for j = 0, 15 do Q4_VALUES[j + 1] = (j & 15) - 8; Q4_VALUES[j + 17] = (15 - j) - 8 end

-- the fixture: every metadata type, a string and a u32 array, one tensor
-- of each plain type, a Q8_0 and a Q4_0 tensor (2 rows of 32)
local function spec_of(version, be)
  local md = odict.new()
  md["general.architecture"] = {type = "STRING", value = "llama"}
  md["general.alignment"] = {type = "UINT32", value = 64}
  md["t.u8"] = {type = "UINT8", value = 200}
  md["t.i8"] = {type = "INT8", value = -100}
  md["t.u16"] = {type = "UINT16", value = 60000}
  md["t.i16"] = {type = "INT16", value = -30000}
  md["t.u32"] = {type = "UINT32", value = 4000000000}
  md["t.i32"] = {type = "INT32", value = -2000000000}
  md["t.f32"] = {type = "FLOAT32", value = 0.5}
  md["t.bool"] = {type = "BOOL", value = true}
  md["t.u64"] = {type = "UINT64", value = "9007199254740993"}
  md["t.i64"] = {type = "INT64", value = "-9007199254740993"}
  md["t.f64"] = {type = "FLOAT64", value = 0.1}
  md["tokenizer.ggml.tokens"] = {type = "ARRAY", subType = "STRING", value = {"<unk>", "<s>", "h\xc3\xa9", ""}}
  md["t.u32s"] = {type = "ARRAY", subType = "UINT32", value = {1, 2, 3}}
  local tensors = {
    {name = "w.f32", shape = {3, 2}, dtype = 0, data = hex(f32s({1, 2, 3, 4, 5, 6}))},
    {name = "w.f16", shape = {2}, dtype = 1, data = hex(string.pack("<I2I2", 0x3C00, 0xC000))},
    {name = "w.bf16", shape = {2}, dtype = 30, data = hex(string.pack("<I2I2", 0x3F80, 0x4040))},
    {name = "w.f64", shape = {1}, dtype = 28, data = hex(string.pack("<d", 0.1))},
    {name = "w.i8", shape = {2}, dtype = 24, data = hex(string.pack("<i1i1", -5, 7))},
    {name = "w.i16", shape = {1}, dtype = 25, data = hex(string.pack("<i2", -300))},
    {name = "w.i32", shape = {1}, dtype = 26, data = hex(string.pack("<i4", 70000))},
    {name = "w.i64", shape = {1}, dtype = 27, data = hex(string.pack("<i8", 1 << 40))},
    {name = "w.q8", shape = {32, 2}, dtype = 8, data = hex(Q8_BLOCK .. Q8_BLOCK)},
    {name = "w.q4", shape = {32, 1}, dtype = 2, data = hex(Q4_BLOCK)},
  }
  if be then
    -- big-endian: plain tensors only (the peer writes the header big-endian; data as given)
    tensors = {
      {name = "w.f32", shape = {3, 2}, dtype = 0, data = hex((f32s({1, 2, 3, 4, 5, 6}):gsub("....", string.reverse)))},
      {name = "w.i16", shape = {1}, dtype = 25, data = hex(string.pack(">i2", -300))},
    }
  end
  return {version = version or 3, big_endian = be or false, alignment = 64, metadata = md,
    tensor_infos = json.array(tensors)}
end

local function check_fixture(v, plain_only)
  local md = v.metadata
  assert.are.equal("llama", md["general.architecture"])
  assert.are.equal(200, md["t.u8"]); assert.are.equal(-100, md["t.i8"])
  assert.are.equal(60000, md["t.u16"]); assert.are.equal(-30000, md["t.i16"])
  assert.are.equal(4000000000, md["t.u32"]); assert.are.equal(-2000000000, md["t.i32"])
  assert.are.equal("integer", math.type(md["t.u32"]))
  assert.are.equal(0.5, md["t.f32"]); assert.is_true(md["t.bool"])
  assert.are.equal(9007199254740993, md["t.u64"]); assert.are.equal(-9007199254740993, md["t.i64"])
  assert.are.equal(0.1, md["t.f64"])
  assert.are.same({"<unk>", "<s>", "h\xc3\xa9", ""}, md["tokenizer.ggml.tokens"])
  assert.are.same({1, 2, 3}, md["t.u32s"])
  local types = G.types(md)
  assert.are.equal("uint8", types["t.u8"]); assert.are.equal("int64", types["t.i64"])
  assert.are.equal("array:string", types["tokenizer.ggml.tokens"])
  assert.are.equal("array:uint32", types["t.u32s"])
  local keys = odict.ordered_keys(md)
  assert.are.equal("general.architecture", keys[1]); assert.are.equal("t.u32s", keys[#keys])
  local T = v.tensors
  assert.are.same({{1, 2, 3}, {4, 5, 6}}, T["w.f32"]:tolist())   -- ne {3, 2}: shape {2, 3}
  assert.are.equal("float32", T["w.f32"]:dtype())
  assert.are.same({-300}, T["w.i16"]:tolist()); assert.are.equal("int16", T["w.i16"]:dtype())
  if plain_only then return end
  assert.are.same({1, -2}, T["w.f16"]:to("float32"):tolist()); assert.are.equal("float16", T["w.f16"]:dtype())
  assert.are.same({1, 3}, T["w.bf16"]:to("float32"):tolist()); assert.are.equal("bfloat16", T["w.bf16"]:dtype())
  assert.are.same({0.1}, T["w.f64"]:tolist())
  assert.are.same({-5, 7}, T["w.i8"]:tolist()); assert.are.same({70000}, T["w.i32"]:tolist())
  assert.are.same({1 << 40}, T["w.i64"]:tolist())
  assert.are.same({2, 32}, T["w.q8"]:size()); assert.are.equal("float32", T["w.q8"]:dtype())
  assert.are.same({Q8_VALUES, Q8_VALUES}, T["w.q8"]:tolist())
  assert.are.same({Q4_VALUES}, T["w.q4"]:tolist())
  local names = odict.ordered_keys(T)
  assert.are.same({"w.f32", "w.f16", "w.bf16", "w.f64", "w.i8", "w.i16", "w.i32", "w.i64", "w.q8", "w.q4"}, names)
end

describe("GGUF load", function()
  it("reads what the peer writes: every metadata type, plain and quantized tensors (eager and mmap)", function()
    local p = dir .. "/peer.gguf"
    peer_build(p, spec_of(3))
    check_fixture(torch.load(p))
    local m = torch.load(p, {mmap = true})
    check_fixture(m)
    local _, _, mapped = m.tensors["w.f32"]:_storage_info()
    assert.is_true(mapped)
  end)

  it("reads GGUF v1 and v2, and big-endian v3", function()
    for _, v in ipairs({1, 2}) do
      local p = dir .. "/v" .. v .. ".gguf"
      peer_build(p, spec_of(v))
      check_fixture(torch.load(p))
    end
    local p = dir .. "/be.gguf"
    peer_build(p, spec_of(3, true))
    check_fixture(torch.load(p), true)
    check_fixture(torch.load(p, {mmap = true}), true)
  end)

  it("keeps quantized tensors as their blocks with raw", function()
    local p = dir .. "/raw.gguf"
    peer_build(p, spec_of(3))
    local v = torch.load(p, {raw = true})
    local q = v.tensors["w.q8"]
    assert.are.equal("uint8", q:dtype())
    assert.are.same({2, 34}, q:size())
    assert.are.same({type = "Q8_0", shape = {2, 32}}, G.raw_info(q))
    assert.are.equal(Q8_BLOCK .. Q8_BLOCK, q:contiguous():tobytes())
    assert.is_nil(G.raw_info(v.tensors["w.f32"]))
  end)

  it("gives the tensors to load_state_dict and selects with keys", function()
    local p = dir .. "/sd.gguf"
    peer_build(p, spec_of(3))
    local sd = torch.load_state_dict(p)
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, sd["w.f32"]:tolist())
    local only = torch.load(p, {keys = {"w.i8"}})
    assert.are.same({"w.i8"}, odict.ordered_keys(only.tensors))
  end)

  it("opens lazily with safe_open", function()
    local p = dir .. "/lazy.gguf"
    peer_build(p, spec_of(3))
    local f = torch.safe_open(p)
    assert.are.same({"w.f32", "w.f16", "w.bf16", "w.f64", "w.i8", "w.i16", "w.i32", "w.i64", "w.q8", "w.q4"}, f:keys())
    assert.are.equal("llama", f:metadata()["general.architecture"])
    assert.are.same({Q4_VALUES}, f:get_tensor("w.q4"):tolist())
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, f:get_tensor("w.f32"):tolist())
    f:close()
  end)
end)

describe("GGUF save", function()
  local function sample()
    local md = odict.new()
    md["general.architecture"] = "llama"
    md["llama.context_length"] = 4096
    md["llama.rope.freq_base"] = 10000.5
    md["tokenizer.ggml.tokens"] = {"a", "b"}
    md["t.neg"] = -3
    md["t.flag"] = false
    md["t.u64"] = G.typed("uint64", 5)
    md["t.f64"] = G.typed("float64", 0.1)
    local T = odict.new()
    T["tok_embd.weight"] = torch.arange(64):to("float32"):view(2, 32)
    T["norm.weight"] = torch.ones(32)
    T["ids"] = torch.tensor({1, -2}, {dtype = "int32"})
    return {metadata = md, tensors = T}
  end

  it("writes GGUF v3 that the peer parses: typed metadata, tensor infos, aligned data", function()
    local p = dir .. "/w.gguf"
    torch.save(sample(), p)
    local g = peer_parse(p)
    assert.are.equal(3, g.version)
    local m = g.metadata
    assert.are.same({type = 8, value = "llama"}, m["general.architecture"])
    assert.are.same({type = 4, value = 4096}, m["llama.context_length"])
    assert.are.same({type = 6, value = 10000.5}, m["llama.rope.freq_base"])
    assert.are.same({type = 9, subType = 8, value = {"a", "b"}}, m["tokenizer.ggml.tokens"])
    assert.are.same({type = 5, value = -3}, m["t.neg"])
    assert.are.same({type = 7, value = false}, m["t.flag"])
    assert.are.same({type = 10, value = 5}, m["t.u64"])
    assert.are.same({type = 12, value = 0.1}, m["t.f64"])
    local ti = g.tensor_infos
    assert.are.same({name = "tok_embd.weight", n_dims = 2, shape = {32, 2}, dtype = 0, offset = 0}, ti[1])
    assert.are.same({name = "norm.weight", n_dims = 1, shape = {32}, dtype = 0, offset = 256}, ti[2])
    assert.are.same({name = "ids", n_dims = 1, shape = {2}, dtype = 26, offset = 384}, ti[3])
    assert.are.equal(0, g.tensor_data_offset % 32)
    assert.are.equal(g.tensor_data_offset + 384 + 32, g.file_size)
    local back = torch.load(p)
    assert.is_true(torch.equal(back.tensors["tok_embd.weight"], sample().tensors["tok_embd.weight"]))
    assert.are.equal("uint64", G.types(back.metadata)["t.u64"])
  end)

  it("quantizes 2-D floating tensors whose rows fit the block, the others kept", function()
    local p = dir .. "/q.gguf"
    local s = sample()
    torch.save(s.tensors, p, {metadata = s.metadata, quantize = "q8_0"})
    local g = peer_parse(p)
    assert.are.equal(8, g.tensor_infos[1].dtype)
    assert.are.equal(0, g.tensor_infos[2].dtype)
    assert.are.equal(26, g.tensor_infos[3].dtype)
    assert.are.same({type = 4, value = 2}, g.metadata["general.quantization_version"])
    local back = torch.load(p)
    local a, b = back.tensors["tok_embd.weight"], s.tensors["tok_embd.weight"]
    assert.is_true((a - b):abs():max():item() <= 63 / 127 / 2 + 1e-3)
    local e = H.err(torch.save, s.tensors, p, {quantize = "q9_9"})
    assert.is_truthy(e:find("bad option 'quantize' (one of ", 1, true), e)
  end)

  it("writes a file it read back byte for byte (convert a.gguf b.gguf), raw blocks included", function()
    local a, b = dir .. "/a.gguf", dir .. "/b.gguf"
    peer_build(a, spec_of(3))
    local p = io.popen("lua5.4 bin/ltorch convert " .. a .. " " .. b .. " 2>&1")
    local msg = p:read("a")
    assert.is_true(p:close(), msg)
    assert.are.equal(H.read(a), H.read(b))
    torch.save(torch.load(a, {raw = true}), b)
    assert.are.equal(H.read(a), H.read(b))
  end)

  it("refuses what GGUF cannot hold", function()
    local p = dir .. "/bad.gguf"
    local cases = {
      {{x = torch.zeros(2, 0)}, "tensor 'x' has no elements: ggml needs every dim at least 1"},
      {{x = torch.tensor({true})}, "tensor 'x': a bool tensor has no ggml type"},
      {{x = torch.zeros(1, 1, 1, 1, 1)}, "tensor 'x': 5 dims, GGUF holds at most 4"},
      {{metadata = {k = {1, "a"}}, tensors = {}}, "key 'k': a metadata list mixes"},
      {{metadata = {k = G.typed("uint8", 300)}, tensors = {}}, "key 'k': 300 is out of the range of uint8"},
    }
    for _, c in ipairs(cases) do
      local e = H.err(torch.save, c[1], p)
      assert.is_truthy(e:find(c[2], 1, true), e)
      assert.is_nil(io.open(p, "rb"))
    end
  end)
end)

-- hostile files, byte by byte: "GGUF", version, counts, kvs, tensor infos
local function str(s) return string.pack("<I8", #s) .. s end
local function header(nt, nkv, body, version)
  return "GGUF" .. string.pack("<I4I8I8", version or 3, nt, nkv) .. body
end
local function tinfo(name, ne, ty, off)
  local s = str(name) .. string.pack("<I4", #ne)
  for _, n in ipairs(ne) do s = s .. string.pack("<I8", n) end
  return s .. string.pack("<I4I8", ty, off)
end
local function kv(key, ty, bytes) return str(key) .. string.pack("<I4", ty) .. bytes end
local function pad(s, a) return s .. string.rep("\0", (-#s) % (a or 32)) end

describe("GGUF hostile files", function()
  local CASES = {
    {"prototype", "tjgg" .. string.rep("\0", 60), "a ggml file from before GGUF (magic tjgg): only GGUF files are read"},
    {"version0", "GGUF" .. string.pack("<I4", 0) .. string.rep("\0", 16), "GGUF version 0 (versions 1 to 3 are read)"},
    {"version4", "GGUF" .. string.pack("<I4", 4) .. string.rep("\0", 16), "GGUF version 4 (versions 1 to 3 are read)"},
    {"truncated_header", "GGUF" .. string.pack("<I4", 3) .. "\1\0", "header: truncated: tensor count needs 8 bytes at byte 8, the file has 10"},
    {"kv_count", header(0, 1 << 62, ""), "header: 4611686018427387904 metadata entries, the file has 0 bytes left"},
    {"tensor_count", header(1 << 40, 0, string.rep("\0", 40)), "header: 1099511627776 tensors, the file has 40 bytes left"},
    {"string_len", header(0, 1, string.pack("<I8", 1 << 60) .. "abc" .. string.rep("\0", 20)),
      "metadata entry 1: truncated: key of 1152921504606846976 bytes at byte 32, the file has 55"},
    {"value_type", header(0, 1, kv("a", 13, "")), "key 'a': unknown value type 13"},
    {"array_type", header(0, 1, kv("a", 9, string.pack("<I4I8", 99, 1))), "key 'a': array of unknown element type 99"},
    {"array_count", header(0, 1, kv("a", 9, string.pack("<I4I8", 5, 1 << 61))), "key 'a': array of 2305843009213693952 int32 elements"},
    {"string_array_count", header(0, 1, kv("a", 9, string.pack("<I4I8", 8, 1 << 40))), "key 'a': array of 1099511627776 string elements"},
    {"nested_deep", header(0, 1, kv("a", 9, string.rep(string.pack("<I4I8", 9, 1), 40) .. string.pack("<I4I8", 4, 0))),
      "key 'a': arrays nested deeper than 16"},
    {"bool", header(0, 1, kv("a", 7, "\2")), "key 'a': bool of value 2 (0 or 1 expected)"},
    {"dup_key", header(0, 2, kv("a", 4, "\1\0\0\0") .. kv("a", 4, "\2\0\0\0")), "key 'a': given twice"},
    {"alignment_type", header(0, 1, kv("general.alignment", 10, string.pack("<I8", 32))),
      "key 'general.alignment': must be a uint32, got a uint64"},
    {"alignment_pow2", header(0, 1, kv("general.alignment", 4, string.pack("<I4", 48))),
      "key 'general.alignment': 48 is not a power of two"},
    {"ndims", pad(header(1, 0, tinfo("w", {1, 1, 1, 1, 1}, 0, 0))), "tensor 'w': 5 dims (1 to 4)"},
    {"zero_dim", pad(header(1, 0, tinfo("w", {4, 0}, 0, 0))), "tensor 'w': dim 2 is 0 (at least 1)"},
    {"ne_overflow", pad(header(1, 0, tinfo("w", {math.maxinteger, 2}, 0, 0))), "tensor 'w': 2 dims of more than 9223372036854775807 elements"},
    {"exabyte", pad(header(1, 0, tinfo("w", {1 << 30, 1 << 30}, 0, 0))), "tensor 'w': 1152921504606846976 elements of F32 need more bytes than the file has"},
    {"ggml_type", pad(header(1, 0, tinfo("w", {4}, 77, 0))), "tensor 'w': unknown ggml type 77"},
    {"removed_type", pad(header(1, 0, tinfo("w", {32}, 4, 0))), "tensor 'w': unknown ggml type 4"},
    {"block", pad(header(1, 0, tinfo("w", {33}, 8, 0))), "tensor 'w': Q8_0 rows of 33 elements, not a multiple of its block of 32"},
    {"unaligned", pad(header(1, 0, tinfo("w", {4}, 0, 4))) .. string.rep("\0", 32), "tensor 'w': offset 4 is not a multiple of the alignment 32"},
    {"past_end", pad(header(1, 0, tinfo("w", {16}, 0, 32))) .. string.rep("\0", 64), "tensor 'w': 64 bytes at byte 32 of the data"},
    {"dup_name", pad(header(2, 0, tinfo("w", {4}, 0, 0) .. tinfo("w", {4}, 0, 32))) .. string.rep("\0", 64), "tensor 'w': given twice"},
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " is refused with a clear error", function()
      local p = dir .. "/" .. c[1] .. ".gguf"
      H.write(p, c[2])
      for _, opts in ipairs({{}, {mmap = true}}) do
        local e = H.err(torch.load, p, opts)
        assert.is_truthy(e:find(p .. ": " .. c[3], 1, true), e)
      end
    end)
  end

  it("accepts a vocab-only file that ends before the padded data start", function()
    local p = dir .. "/vocab.gguf"
    H.write(p, header(0, 1, kv("tokenizer.ggml.tokens", 9, string.pack("<I4I8", 8, 2) .. str("a") .. str("bc"))))
    local v = torch.load(p)
    assert.are.same({"a", "bc"}, v.metadata["tokenizer.ggml.tokens"])
    assert.are.same({}, odict.ordered_keys(v.tensors))
    -- saved again as it was: unpadded; a padded one stays padded
    local q = dir .. "/vocab2.gguf"
    torch.save(v, q)
    assert.are.equal(H.read(p), H.read(q))
    H.write(p, pad(H.read(p)))
    torch.save(torch.load(p), q)
    assert.are.equal(H.read(p), H.read(q))
  end)

  it("never crashes on cut or flipped bytes", function()
    local p0 = dir .. "/fz0.gguf"
    peer_build(p0, spec_of(3))
    local whole = H.read(p0)
    local p = dir .. "/fz.gguf"
    for n = 0, #whole - 1, 13 do
      H.write(p, whole:sub(1, n))
      local ok, e = pcall(torch.load, p)
      assert.is_true(ok or e:sub(1, #p) == p, tostring(e))
    end
    math.randomseed(3)
    for _ = 1, 300 do
      local i = math.random(1, 900)
      H.write(p, whole:sub(1, i - 1) .. string.char(math.random(0, 255)) .. whole:sub(i + 1))
      local ok, e = pcall(torch.load, p)
      assert.is_true(ok or e:sub(1, #p) == p, tostring(e))
    end
  end)
end)

describe("GGUF split models", function()
  it("load whole from their first file", function()
    local stem = dir .. "/m"
    for i = 1, 2 do
      local md = odict.new()
      md["general.architecture"] = "llama"
      md["split.no"] = G.typed("uint16", i - 1)
      md["split.count"] = G.typed("uint16", 2)
      md["split.tensors.count"] = G.typed("int32", 2)
      local T = odict.new()
      T["t" .. i] = torch.full({4}, i)
      torch.save({metadata = md, tensors = T}, string.format("%s-%05d-of-%05d.gguf", stem, i, 2))
    end
    local v = torch.load(stem .. "-00001-of-00002.gguf")
    assert.are.same({"t1", "t2"}, odict.ordered_keys(v.tensors))
    assert.are.same({2, 2, 2, 2}, v.tensors.t2:tolist())
    assert.is_nil(v.metadata["split.count"])
    assert.are.equal("llama", v.metadata["general.architecture"])
  end)
end)

describe("ltorch inspect and convert on GGUF", function()
  local run = H.ltorch

  it("inspect shows metadata (long arrays summarised), ggml types and bits per weight", function()
    local p = dir .. "/i.gguf"
    peer_build(p, spec_of(3))
    local out, code = run("inspect " .. p)
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("GGUF", 1, true))
    assert.is_truthy(out:find('tokenizer.ggml.tokens: [4 strings] "<unk>", "<s>", "h\xc3\xa9", ... (array:string)', 1, true), out)
    assert.is_truthy(out:find("Q8_0%s+%[2, 32%]"), out)
    assert.is_truthy(out:find("Q8_0%s+1 tensors%s+64 params.- 8.50 bits/weight"), out)
    assert.is_truthy(out:find("Q4_0%s+1 tensors%s+32 params.- 4.50 bits/weight"), out)
    local js = json.decode((run("inspect --json " .. p)))
    local g = js.files[1].gguf
    assert.are.equal(3, g.version)
    assert.are.equal("Q4_0", g.tensors[10].ggml_type)
  end)

  it("convert GGUF to safetensors dequantized, and safetensors to GGUF quantized", function()
    local p, st, back = dir .. "/c.gguf", dir .. "/c.safetensors", dir .. "/c2.gguf"
    peer_build(p, spec_of(3))
    local out, code = run("convert " .. p .. " " .. st)
    assert.are.equal(0, code, out)
    local sd = torch.load(st)
    assert.are.same({Q8_VALUES, Q8_VALUES}, sd["w.q8"]:tolist())
    out, code = run("convert " .. st .. " " .. back .. " --quantize q8_0")
    assert.are.equal(0, code, out)
    local g = peer_parse(back)
    local types = {}
    for _, t in ipairs(g.tensor_infos) do types[t.name] = t.dtype end
    assert.are.equal(8, types["w.q8"])
    assert.are.equal(8, types["w.q4"])
    assert.are.equal(0, types["w.f32"])   -- rows of 3 do not fit a block
  end)
end)
