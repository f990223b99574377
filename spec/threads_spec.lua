-- threads_spec: the threads host (examples/host/threads.c, built as
-- build/threads) runs ltorch in 8 threads with their own lua_States, saving
-- and loading every format at once, all 8 saving to one path, and checks
-- every result itself; `make tsan` runs the same program under
-- ThreadSanitizer. Here: the normal build, from a temporary folder.
local sh = require("sh_helper")

local q = sh.quote

local EXTS = {"pt", "safetensors", "npy", "npz", "gguf", "t7", "dat"}

describe("the threads host", function()
  local build = os.getenv("LTORCH_BUILD") or "build"
  local root = io.popen("pwd"):read("l")
  if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local function names(d)
    local out = sh.run("ls -A " .. q(d))
    local t = {}
    for n in out:gmatch("[^\n]+") do t[#t + 1] = n end
    table.sort(t)
    return t
  end

  -- run it with TMPDIR=tmp; returns its thread lines (sorted), its summary
  -- line, exit status, stderr and the other lines
  local function run(tmp, args)
    assert(os.execute("mkdir -p " .. q(tmp)))
    local out, code, err = sh.run("cd " .. q(dir) .. " && TMPDIR=" .. q(tmp) .. " " .. q(build .. "/threads") ..
      (args and " " .. args or ""))
    local threads, summary, other = {}, nil, {}
    for line in out:gmatch("[^\n]+") do
      if line:match("^thread %d") then threads[#threads + 1] = line
      elseif line:match("^threads: %d+ threads") then summary = line
      else other[#other + 1] = line end
    end
    table.sort(threads)
    return threads, summary, code, err, other
  end

  it("runs 8 threads through every format, each result checked, and leaves nothing behind", function()
    local tmp = dir .. "/tmp1"
    local threads, summary, code, err = run(tmp)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal(8, #threads)
    local each
    for i, line in ipairs(threads) do
      local id, n = line:match("^thread (%d): ok, (%d+) results checked$")
      assert.are.equal(i - 1, tonumber(id), line)
      each = each or n
      assert.are.equal(each, n, line)   -- every thread the same work
    end
    local total = summary and summary:match("^threads: 8 threads x 10 iterations x 7 formats: (%d+) results checked, all equal$")
    assert.truthy(total, summary)
    assert.are.equal(8 * tonumber(each), tonumber(total))
    assert.are.same({}, names(tmp))      -- its work folder removed
  end)

  it("keeps its files with -k: one per thread and format, the shared ones, no temporary files", function()
    local tmp = dir .. "/tmp2"
    local threads, summary, code, err, other = run(tmp, "-n 3 -k")
    assert.are.equal(0, code, err)
    assert.are.equal(8, #threads)
    assert.truthy(summary:match("^threads: 8 threads x 3 iterations x 7 formats: %d+ results checked, all equal$"), summary)
    local kept = other[1] and other[1]:match("^threads: files kept in (.+)$")
    assert.truthy(kept, other[1])
    local sub = names(tmp)
    assert.are.equal(1, #sub)
    assert.are.equal(tmp .. "/" .. sub[1], kept)
    local want = {"big.pt", "many.pt"}
    for _, ext in ipairs(EXTS) do
      for _, name in ipairs({"common", "race", "seed"}) do want[#want + 1] = name .. "." .. ext end
      for i = 0, 7 do want[#want + 1] = "own" .. i .. "." .. ext end
      if ext == "npz" then for i = 0, 7 do want[#want + 1] = "zip" .. i .. ".npz" end end
    end
    table.sort(want)
    assert.are.same(want, names(kept))   -- 8 saves at once to race.*: no .tmp- files left
  end)

  it("refuses bad arguments with its usage", function()
    local _, _, code, err = run(dir .. "/tmp3", "-n 0")
    assert.are.equal(2, code)
    assert.truthy(err:find("usage: threads", 1, true), err)
  end)
end)
