-- mutate_spec.lua: damaged files of every format give an error, never a
-- crash. Small files written by ltorch and PyTorch (legacy .pt) are damaged
-- at seeded positions (a byte changed, a run zeroed, the file cut short)
-- and loaded eagerly and with mmap, every tensor then used, so the deferred
-- reads run too. Each load must return or raise a string that names the
-- file. Under `make asan` this is a fuzzer run with ASan and UBSan.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local dir
local function P(name) return dir .. "/" .. name end

-- a small deterministic generator (the same sequence on every Lua)
local function lcg(seed)
  local s = seed
  return function(n)
    s = (s * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (s >> 33) % n + 1
  end
end

local function sample()
  local d = odict.new()
  d["enc.weight"] = torch.arange(0, 24):to("float32"):view(4, 6)
  d["enc.bias"] = torch.arange(0, 4):to("float64")
  d["steps"] = torch.tensor({7}, {dtype = "int64"})
  d["mask"] = torch.tensor({true, false, true})
  d["half"] = torch.arange(0, 5):to("float16")
  return d
end

setup(function()
  dir = H.tmpdir()
  local d = sample()
  torch.save(d, P("s.pt"))
  torch.save(d, P("s.safetensors"))
  torch.save(d, P("s.npz"))
  torch.save(d, P("c.npz"), {compress = true})
  torch.save(d, P("s.dat"))
  torch.save(d["enc.weight"], P("s.npy"))
end)

teardown(function() H.rmdir(dir) end)

-- load p both ways and use every tensor; ok, or an error naming p
local function try(p)
  for _, mmap in ipairs({false, true}) do
    local ok, err = pcall(function()
      local v = torch.load(p, {mmap = mmap})
      local ts = torch.is_tensor(v) and {v} or v
      for _, t in pairs(ts) do
        if torch.is_tensor(t) and t:numel() > 0 then t:to("float64"):sum() end
      end
    end)
    if not ok then
      assert.are.equal("string", type(err))
      assert.truthy(err:find(p, 1, true), "error without the file name: " .. err)
    end
  end
end

local CASES = {"s.pt", "s.safetensors", "s.npz", "c.npz", "s.dat", "s.npy", "legacy"}
local ROUNDS = tonumber(os.getenv("MUTATE_ROUNDS")) or 400

describe("damaged files", function()
  for ci, name in ipairs(CASES) do
    it(name .. ": " .. ROUNDS .. " damaged copies load or fail with a message", function()
      local src = name == "legacy" and H.FIX:gsub("fmt/$", "pt/") .. "legacy.pt" or P(name)
      local good = H.read(src)
      local rnd = lcg(1000 + ci)
      local p = P("m_" .. name:gsub("[^%w]", "_"))
      for _ = 1, ROUNDS do
        local bytes = good
        local kind, at = rnd(3), rnd(#good)
        if kind == 1 then
          bytes = bytes:sub(1, at - 1) .. string.char(rnd(256) - 1) .. bytes:sub(at + 1)
        elseif kind == 2 then
          local n = math.min(rnd(16), #good - at + 1)
          bytes = bytes:sub(1, at - 1) .. string.rep("\0", n) .. bytes:sub(at + n)
        else
          bytes = bytes:sub(1, at - 1)
        end
        H.write(p, bytes)
        try(p)
      end
    end)
  end
end)
