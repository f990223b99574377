-- index_spec.lua: Hugging Face sharded checkpoints (FORMATS.md 5)
local torch = require("ltorch")
local odict = require("ltorch.odict")
local json = require("ltorch.json")
local H = require("fmt_helper")

local S = H.FIX .. "sharded/"

describe("sharded index load", function()
  it("merges the shards into one ordered state dict", function()
    local d = torch.load(S .. "model.safetensors.index.json")
    assert.same({"a.weight", "b.bias", "b.weight"}, odict.keys(d))
    assert.same({{1, 2}, {3, 4}}, d["a.weight"]:tolist())
    assert.same({3, 4}, d["b.weight"]:tolist())
  end)

  it("passes keys, rename, mmap and progress through", function()
    local calls = 0
    local d = torch.load(S .. "model.safetensors.index.json", {
      keys = function(n) return n:match("^b%.") ~= nil end,
      rename = {{"^b%.", "layer."}}, mmap = true,
      progress = function(done, total) calls = calls + 1; assert.is_true(done <= total) end})
    assert.same({"layer.bias", "layer.weight"}, odict.keys(d))
    local _, _, mapped = d["layer.bias"]:_storage_info()
    assert.is_true(mapped)
    assert.equal(1, calls)   -- only the second shard was needed
  end)

  it("detects an index from its bytes whatever the name", function()
    local dir = H.tmpdir()
    os.execute("cp " .. S .. "model-0000*.safetensors " .. dir)
    H.write(dir .. "/weights.json", H.read(S .. "model.safetensors.index.json"))
    local d = torch.load(dir .. "/weights.json")
    assert.same({"a.weight", "b.bias", "b.weight"}, odict.keys(d))
    H.rmdir(dir)
  end)

  it("loads pytorch_model.bin.index.json shards that hold safetensors bytes", function()
    -- .bin shards go through torch.load, which detects their format by bytes
    local dir = H.tmpdir()
    local a, b = odict.new(), odict.new()
    a.x = torch.ones(2); b.y = torch.zeros(3)
    torch.save(a, dir .. "/pytorch_model-00001-of-00002.bin", {format = "safetensors"})
    torch.save(b, dir .. "/pytorch_model-00002-of-00002.bin", {format = "safetensors"})
    local wm = odict.new()
    wm.x = "pytorch_model-00001-of-00002.bin"; wm.y = "pytorch_model-00002-of-00002.bin"
    H.write(dir .. "/pytorch_model.bin.index.json", json.encode({metadata = {total_size = 20}, weight_map = wm}))
    local d = torch.load(dir .. "/pytorch_model.bin.index.json")
    assert.same({"x", "y"}, odict.keys(d))
    H.rmdir(dir)
  end)

  local bad = {
    wrong_shard = "tensor 'a.weight' is not in shard 'model-00002-of-00002.safetensors'",
    escape = "weight_map entry 'a.weight': shard '../st_hole.safetensors' leaves the index's folder",
    absolute = "weight_map entry 'a.weight': shard '/etc/passwd' is an absolute path",
    missing = "shard 'model-00003-of-00003.safetensors' is missing",
  }
  for name, msg in pairs(bad) do
    it("rejects " .. name, function()
      local p = S .. name .. ".index.json"
      assert.has_error(function() torch.load(p) end, p .. ": " .. msg)
    end)
  end

  it("rejects JSON without a weight_map", function()
    local dir = H.tmpdir()
    local p = dir .. "/x.index.json"
    H.write(p, '{"weight_map": [1, 2]}')
    assert.has_error(function() torch.load(p) end,
      p .. ": not a sharded checkpoint index (no \"weight_map\" object)")
    H.rmdir(dir)
  end)

  it("cannot be saved", function()
    assert.has_error(function() torch.save({}, "/tmp/x.index.json") end,
      "/tmp/x.index.json: an index is written with its shards; save each shard as .safetensors or .pt")
  end)
end)
