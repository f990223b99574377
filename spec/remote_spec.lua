-- remote_spec.lua: loads from http:// URLs (issue 21), against Debian's
-- nginx on a loopback port (spec/http_helper.lua) and, for faults, the
-- small proxy spec/fault_proxy.py in front of it. What the server sent is
-- counted from nginx's access log.
local torch = require("ltorch")
local sh = require("sh_helper")
local H = require("http_helper")

local function bytes_of(t) return t:contiguous():tobytes() end

-- every tensor of a and b: same keys, dtypes, shapes and bytes
local function same(a, b)
  local n = 0
  for k, t in pairs(a) do
    n = n + 1
    assert.is_not_nil(b[k], k)
    assert.are.equal(t:dtype(), b[k]:dtype(), k)
    assert.are.same(t:size(), b[k]:size(), k)
    assert.is_true(bytes_of(t) == bytes_of(b[k]), k)
  end
  for _ in pairs(b) do n = n - 1 end
  assert.are.equal(0, n)
end

describe("remote loads over HTTP", function()
  local root, server
  setup(function()
    root = sh.mkdir()
    torch.manual_seed(7)
    local sd = {w = torch.randn(300, 200), b = torch.arange(50, {dtype = "int64"}),
                h = torch.randn(17, 3):to("float16"), e = torch.zeros(0), s = torch.tensor(3.5)}
    torch.save(sd, root .. "/m.pt")
    torch.save(sd, root .. "/m.safetensors")
    torch.save({w = sd.w, b = sd.b}, root .. "/m.npz")
    torch.save(sd.w, root .. "/w.npy")
    torch.save({tensors = {w = sd.w, b = sd.b}}, root .. "/m.gguf")
    -- a sharded checkpoint: two safetensors shards and their index
    torch.save({w = sd.w}, root .. "/s-00001-of-00002.safetensors")
    torch.save({b = sd.b, h = sd.h}, root .. "/s-00002-of-00002.safetensors")
    sh.spit(root .. "/s.safetensors.index.json", [[{"metadata": {}, "weight_map": {"w": "s-00001-of-00002.safetensors",
      "b": "s-00002-of-00002.safetensors", "h": "s-00002-of-00002.safetensors"}}]])
    server = H.nginx(root)
  end)
  teardown(function()
    if server then server.stop() end
    os.execute("rm -rf " .. sh.quote(root))
  end)

  it("equal local loads bit for bit, eager and lazy, for every ranged format", function()
    for _, f in ipairs({"m.pt", "m.safetensors", "m.npz", "w.npy", "m.gguf", "s.safetensors.index.json"}) do
      local here = torch.load(root .. "/" .. f)
      for _, opts in ipairs({{}, {mmap = true}, {remote = {connections = 1}}, {mmap = true, remote = {connections = 3}}}) do
        local there = torch.load(server.url .. "/" .. f, opts)
        if f == "m.gguf" then here, there = here.tensors, there.tensors end
        if torch.is_tensor(here) then assert.is_true(bytes_of(here) == bytes_of(there), f)
        else same(here, there) end
        if f == "m.gguf" then here = torch.load(root .. "/" .. f) end
      end
    end
  end)

  it("fetches a lazy tensor's bytes on first use only", function()
    server.clear()
    local sd = torch.load(server.url .. "/m.safetensors", {mmap = true})
    local opened = server.bytes()
    assert.is_true(opened < 70000, "opening sent " .. opened .. " bytes")
    assert.is_true(sd.w:_storage_info() ~= nil and select(4, sd.w:_storage_info()), "w is not fetched yet")
    assert.is_true(sd.w:sum():item() == torch.load(root .. "/m.safetensors").w:sum():item())
    assert.is_true(server.bytes() > opened + 150000, "after the first use: " .. server.bytes() .. " bytes, " .. opened .. " at the open")
    -- a mirror read errors name the URL; bad options are errors
    assert.has_error(function() torch.load(server.url .. "/m.pt", {remote = {conections = 2}}) end,
      "bad option 'remote.conections' (valid: connections, retries, timeout)")
  end)

  it("inspects a remote 256 MiB safetensors and .pt file for under 1 MiB", function()
    local big = {}
    for i = 1, 16 do big["layer" .. i] = torch.ones(1024, 4096) end   -- 16 MiB each
    torch.save(big, root .. "/big.safetensors")
    torch.save(big, root .. "/big.pt")
    big = nil
    collectgarbage()
    for _, f in ipairs({"big.safetensors", "big.pt"}) do
      server.clear()
      local out, code, err = sh.run("bin/ltorch inspect " .. sh.quote(server.url .. "/" .. f))
      assert.are.equal(0, code, err)
      assert.is_truthy(out:find("268,435,456", 1, true) or out:find("layer16", 1, true), out)
      assert.is_true(server.bytes() < 2^20, f .. ": inspect transferred " .. server.bytes() .. " bytes")
    end
    os.remove(root .. "/big.safetensors")
    os.remove(root .. "/big.pt")
  end)

  it("says what is wrong: 404, 403, a file replaced under a lazy load", function()
    local ok, e = pcall(torch.load, server.url .. "/missing.pt")
    assert.is_false(ok)
    assert.are.equal(server.url .. "/missing.pt: not found (HTTP 404)", e)
    ok, e = pcall(torch.load, server.url .. "/forbidden/m.pt")
    assert.are.equal(server.url .. "/forbidden/m.pt: access denied (HTTP 403)", e)
    -- replaced after the open, before the tensor's first use
    os.execute("cp " .. sh.quote(root .. "/m.safetensors") .. " " .. sh.quote(root .. "/r.safetensors"))
    local sd = torch.load(server.url .. "/r.safetensors", {mmap = true})
    os.execute("sleep 1.1")   -- nginx's ETag holds the mtime in seconds
    torch.save({w = torch.zeros(300, 200)}, root .. "/r.safetensors")
    ok, e = pcall(function() return sd.w:sum() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find(server.url .. "/r.safetensors: the object changed on the server since it was opened", 1, true), e)
  end)

  describe("through a faulty proxy", function()
    local proxy, mode
    setup(function()
      mode = os.tmpname()
      sh.spit(mode, "ok")
      proxy = H.proxy(server.port, mode)
    end)
    teardown(function()
      if proxy then proxy.stop() end
      os.remove(mode)
    end)
    local function with(m, f)
      sh.spit(mode, m)
      local ok, e = pcall(f)
      sh.spit(mode, "ok")
      if not ok then error(e, 0) end
    end
    local here = torch.load(root .. "/m.pt")

    it("retries 503s and dropped connections, then loads", function()
      with("503 2", function() same(here, torch.load(proxy.url .. "/m.pt")) end)
      with("drop 2", function() same(here, torch.load(proxy.url .. "/m.pt", {mmap = true})) end)
      with("drop 1", function() same(here, torch.load(proxy.url .. "/m.pt")) end)
    end)

    it("gives up after the retries with an error", function()
      with("503 100", function()
        local ok, e = pcall(torch.load, proxy.url .. "/m.pt", {remote = {retries = 2}})
        assert.is_false(ok)
        assert.are.equal(proxy.url .. "/m.pt: HTTP 503 (after 3 attempts)", e)
      end)
      with("stall 3", function()
        local ok, e = pcall(torch.load, proxy.url .. "/m.pt", {remote = {retries = 0, timeout = 1}})
        assert.is_false(ok)
        assert.is_truthy(tostring(e):find("^" .. proxy.url:gsub("%p", "%%%0") .. "/m.pt: .*[Tt]imeout"), e)
      end)
    end)

    it("detects a server that ignores Range, and answers of the wrong size or range", function()
      with("norange", function()
        local ok, e = pcall(torch.load, proxy.url .. "/m.pt", {mmap = true})
        assert.is_false(ok)
        assert.is_truthy(tostring(e):find("the server ignores Range requests", 1, true), e)
      end)
      with("oversize", function()
        local ok, e = pcall(torch.load, proxy.url .. "/m.safetensors", {mmap = true})
        assert.is_false(ok)
        assert.is_truthy(tostring(e):find("the server sent more than the", 1, true), e)
      end)
      with("badrange", function()
        local ok, e = pcall(torch.load, proxy.url .. "/m.safetensors")
        assert.is_false(ok)
        assert.is_truthy(tostring(e):find("Content-Range", 1, true), e)
      end)
    end)
  end)
end)
