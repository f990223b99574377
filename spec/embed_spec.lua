-- embed_spec: the C host application (examples/host) builds against
-- src/ltorch.h and runs ltorch in several lua_States on several threads.
describe("embedding", function()
  local build = os.getenv("LTORCH_BUILD") or "build"
  it("runs the host application: wrapped host memory, accessors, four threads", function()
    local p = io.popen("LTORCH_ROOT=. " .. build .. "/host 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    for i = 0, 3 do assert.truthy(out:find("thread " .. i .. ": ok", 1, true), out) end
    assert.truthy(out:find("rc=0", 1, true), out)
  end)
end)
