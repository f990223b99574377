-- fuzz_regress_spec.lua: the inputs `make fuzz` found (fuzz/README.md),
-- kept in spec/fixtures/fuzz/<target>/, each loaded through the public API
-- as its target reads it; and every prefix of a small file of each format
-- loaded the same way. A load must return a value or raise a string error:
-- never crash (under `make asan`, never a sanitizer report). A fixture
-- with a NAME.err beside it must raise, in its target's first load, an
-- error holding that text.
local torch = require("ltorch")
local json = require("ltorch.json")
local core = require("ltorch.core")
local H = require("fmt_helper")

local FIX = "spec/fixtures/fuzz/"
local TARGETS = {"pickle", "zip", "pt", "safetensors", "npy", "npz", "torchsharp", "json", "t7", "gguf"}

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmdir(dir) end)

-- a stored zip archive of the records {name, bytes} (what torch.save makes,
-- without the alignment padding): for pickles found by the pickle target
local function zip(records)
  local out, central, pos = {}, {}, 0
  for _, r in ipairs(records) do
    local name, data = r[1], r[2]
    local crc = core._pt_crc32(data)
    local head = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0, crc, #data, #data, #name, 0)
    central[#central + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, 20, 20, 0, 0, 0, 0,
      crc, #data, #data, #name, 0, 0, 0, 0, 0, pos) .. name
    out[#out + 1] = head .. name .. data
    pos = pos + #head + #name + #data
  end
  local cd = table.concat(central)
  out[#out + 1] = cd .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, #records, #records, #cd, pos, 0)
  return table.concat(out)
end

-- the public load each target's inputs go through: a list of
-- function(bytes) -> ok, value-or-error
local function file_load(ext, opts)
  return function(bytes)
    local p = dir .. "/input" .. ext
    H.write(p, bytes)
    return pcall(torch.load, p, opts)
  end
end
local LOADS = {
  pickle = {function(bytes)
    local p = dir .. "/pickle.pt"
    H.write(p, zip({{"archive/data.pkl", bytes}, {"archive/version", "3\n"}}))
    return pcall(torch.load, p, {unknown = "inert"})
  end},
  zip = {file_load(".pt"), file_load(".npz")},
  pt = {file_load(".pt", {unknown = "inert"}), file_load(".pt", {mmap = true})},
  safetensors = {file_load(".safetensors"), file_load(".safetensors", {mmap = true})},
  npy = {file_load(".npy"), file_load(".npy", {mmap = true})},
  npz = {file_load(".npz", {unknown = "inert"}), file_load(".npz", {mmap = true})},
  torchsharp = {file_load(".dat"), file_load(".dat", {mmap = true})},
  json = {function(bytes) return pcall(json.decode, bytes) end},
  t7 = {file_load(".t7"), file_load(".t7", {long_size = 4}), file_load(".t7", {mmap = true})},
  gguf = {file_load(".gguf"), file_load(".gguf", {mmap = true})},
}

-- run every load of target on bytes; each must give a value or a string
-- error. Returns the errors, keyed by the load's index, and their count.
local function check(target, bytes, what)
  local errs, n = {}, 0
  for i, load in ipairs(LOADS[target]) do
    local ok, v = load(bytes)
    if not ok then
      assert(type(v) == "string", string.format("%s: load %d raised a %s, not a message", what, i, type(v)))
      assert(#v > 0, what .. ": an empty error message")
      errs[i] = v
      n = n + 1
    end
  end
  return errs, n
end

local function list(folder)
  local names = {}
  local p = io.popen("ls -1 '" .. folder .. "' 2>/dev/null")
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  return names
end

describe("fuzz findings (spec/fixtures/fuzz)", function()
  it("has its README, and a folder only for a target fuzz/ has", function()
    assert.truthy(io.open(FIX .. "README.md"), "spec/fixtures/fuzz/README.md is missing")
    local known = {}
    for _, t in ipairs(TARGETS) do known[t] = true end
    for _, name in ipairs(list(FIX)) do
      if name ~= "README.md" then assert.truthy(known[name], "no fuzz target '" .. name .. "'") end
    end
  end)

  for _, target in ipairs(TARGETS) do
    for _, name in ipairs(list(FIX .. target)) do
      if not name:match("%.err$") then
        it(target .. "/" .. name .. " loads or raises a clear error", function()
          local path = FIX .. target .. "/" .. name
          local errs = check(target, H.read(path), path)
          local ef = io.open(path .. ".err")
          if ef then
            local want = ef:read("a"):gsub("%s+$", "")
            ef:close()
            assert.truthy(errs[1], path .. ": expected an error")
            assert.truthy(errs[1]:find(want, 1, true), errs[1])
          end
        end)
      end
    end
  end
end)

-- every prefix of a small file of each format: the truncations the seed
-- corpora start from, through the loads of the targets
describe("truncated files", function()
  local m = torch.arange(12):to("float32"):view(3, 4)
  local sd = {w = m, b = torch.zeros(4), i = torch.arange(3)}
  local cases = {
    {"pt", ".pt", sd},
    {"safetensors", ".safetensors", sd},
    {"npy", ".npy", m},
    {"npz", ".npz", sd},
    {"npz", ".npz", sd, {compress = true}},
    {"torchsharp", ".dat", sd},
    {"t7", ".t7", {weight = m, n = 3, name = "x", shared = {m, m:t()}}},
    {"gguf", ".gguf", {w = torch.randn(2, 32)}, {quantize = "q8_0"}},
  }
  for _, c in ipairs(cases) do
    local target, ext, value, opts = c[1], c[2], c[3], c[4]
    it(string.format("every prefix of a %s file%s", ext, opts and " (" .. next(opts) .. ")" or ""), function()
      local p = dir .. "/whole" .. ext
      torch.save(value, p, opts)
      local bytes = H.read(p)
      local errs = check(target, bytes, "the whole file")
      assert.is_nil(errs[1], errs[1])   -- the whole file loads (t7's 4-byte longs need not)
      local failed = 0
      local step = #bytes > 1500 and 3 or 1
      for n = 0, #bytes - 1, step do
        if select(2, check(target, bytes:sub(1, n), string.format("%d of %d bytes", n, #bytes))) > 0 then
          failed = failed + 1
        end
      end
      assert.is_true(failed > 0, "no truncation was refused")
    end)
  end

  it("every prefix of a JSON text", function()
    local text = json.encode({a = {1, 2.5, "x\0y", torch.null, true}, b = {c = {}}})
    assert.equal(0, select(2, check("json", text, "the whole text")))
    for n = 0, #text - 1 do
      assert.equal(1, select(2, check("json", text:sub(1, n), n .. " bytes")), text:sub(1, n))
    end
  end)
end)
