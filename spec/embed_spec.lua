-- embed_spec: the C host application (examples/host) builds against
-- src/ltorch.h and runs ltorch in several lua_States on several threads,
-- from any folder: each run here has a temporary folder as its current one.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local sh = require("sh_helper")

local q = sh.quote

describe("embedding", function()
  local build = os.getenv("LTORCH_BUILD") or "build"
  local root = io.popen("pwd"):read("l")
  local dir
  if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end

  -- the listing the host prints after its four "thread N: ok" lines
  local function listing(out)
    local lines, threads = {}, {}
    for line in out:gmatch("[^\n]+") do
      if #threads < 4 then threads[#threads + 1] = line else lines[#lines + 1] = line end
    end
    table.sort(threads)
    assert.are.same({"thread 0: ok", "thread 1: ok", "thread 2: ok", "thread 3: ok"}, threads)
    return lines
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    local sd = odict.new()
    sd["fc.weight"] = torch.zeros(10, 4)
    sd["fc.bias"] = torch.zeros(10, {dtype = "float64"})
    local opt = odict.new()
    opt["m"] = torch.ones(2, 3, {dtype = "int32"})
    opt["step"] = 7
    sd["opt"] = opt
    sd["scale"] = torch.tensor(1.5)
    torch.save(sd, dir .. "/sd.pt")
    local st = odict.new()
    st["z"] = torch.zeros(3)
    st["a"] = torch.ones(1, 2, {dtype = "bfloat16"})
    torch.save(st, dir .. "/sd.safetensors")
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("runs the host application: wrapped host memory, accessors, four threads", function()
    local out, code, err = sh.run("cd " .. q(dir) .. " && " .. q(build .. "/host"))
    assert.are.same({}, listing(out))
    assert.are.equal(0, code, err)
  end)

  it("lists a state dict's tensors in the file's order, dicts inside it included", function()
    local out, code, err = sh.run("cd " .. q(dir) .. " && " .. q(build .. "/host") .. " sd.pt")
    assert.are.equal(0, code, err)
    assert.are.same({
      "fc.weight float32 [10, 4]",
      "fc.bias float64 [10]",
      "opt.m int32 [2, 3]",
      "scale float32 []",
    }, listing(out))
  end)

  it("finds core.so beside it through its rpath when the build folder is copied", function()
    assert(os.execute("mkdir -p " .. q(dir .. "/b/ltorch")))
    assert(os.execute("cp " .. q(build .. "/host") .. " " .. q(dir .. "/b/host") .. " && cp " ..
      q(build .. "/ltorch/core.so") .. " " .. q(dir .. "/b/ltorch/core.so")))
    local out, code, err = sh.run("cd " .. q(dir) .. " && LTORCH_ROOT=" .. q(root) .. " b/host sd.safetensors")
    assert.are.equal(0, code, err)
    assert.are.same({"z float32 [3]", "a bfloat16 [1, 2]"}, listing(out))
  end)
end)
