-- errors_spec.lua: the messages people read, pinned whole. A file error is
-- raised once, by the layer that knows the file: "path: what is wrong", the
-- path once and no "file.lua:12:" position, whoever loads (torch.load, the
-- ltorch command, a C host through ltorch_load). A usage error is raised at
-- the caller's line, with the argument numbers Lua gives (a method call's
-- self is not counted: t:narrow(1, 9, 1) blames #2 for the 9).
local torch = require("ltorch")
local nn = require("ltorch.nn")
local sh = require("sh_helper")

local BUILD = os.getenv("LTORCH_BUILD") or "build"

local dir
local function P(name) return dir .. "/" .. name end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. sh.quote(dir)))
  io.open(P("empty.pt"), "wb"):close()
  torch.save({w = torch.zeros(2)}, P("ok.pt"))
end)

teardown(function()
  os.execute("rm -rf " .. sh.quote(dir))
end)

-- the error of code run as a chunk named user.lua (one line: the message
-- says "user.lua:1:" where the error is the caller's), given torch, nn and
-- the value x
local function err_of(code, x)
  local f = assert(load("local torch, nn, x = ...; " .. code, "=user.lua"))
  local ok, e = pcall(f, torch, nn, x)
  assert.is_false(ok, "no error from: " .. code)
  return e
end

-- the first line of a text
local function first_line(s) return (s:match("^[^\n]*")) end

describe("file errors", function()
  it("name the path once, with no position, through torch.load", function()
    assert.are.equal(P("missing.pt") .. ": no such file", err_of("torch.load(x)", P("missing.pt")))
    assert.are.equal(dir .. ": is a directory", err_of("torch.load(x)", dir))
    assert.are.equal(P("empty.pt") .. ": empty file", err_of("torch.load(x)", P("empty.pt")))
  end)

  it("are the same through load_state_dict and with mmap", function()
    assert.are.equal(P("missing.pt") .. ": no such file", err_of("torch.load_state_dict(x)", P("missing.pt")))
    assert.are.equal(dir .. ": is a directory", err_of("torch.load(x, {mmap = true})", dir))
    assert.are.equal(P("empty.pt") .. ": empty file", err_of("torch.load_state_dict(x)", P("empty.pt")))
  end)

  it("say '.' as given", function()
    assert.are.equal(".: is a directory", err_of("torch.load('.')"))
  end)

  it("leave usage errors at the caller's line", function()
    assert.are.equal("user.lua:1: bad argument #1 to 'load' (string expected, got nil)",
      err_of("torch.load()"))
    assert.are.equal("user.lua:1: bad option 'bogus' to 'load' (valid options for pt files: device, " ..
      "keys, map_location, mmap, progress, remote, rename, trust_code, unknown, verify)",
      err_of("torch.load(x, {bogus = 1})", P("ok.pt")))
  end)
end)

describe("tensor errors", function()
  it("say the index as the user wrote it, 1-based", function()
    local t = torch.zeros(3)
    assert.are.equal("user.lua:1: index 0 is out of range for dim 1 of size 3 (indices are 1-based)",
      err_of("local t = x; return t[0]", t))
    -- t[4] (one past the last row) is nil, so that ipairs(t) stops there
    assert.are.equal("user.lua:1: index 5 is out of range for dim 1 of size 3 (indices are 1-based)",
      err_of("local t = x; return t[5]", t))
    assert.are.equal("user.lua:1: index -4 is out of range for dim 1 of size 3 (indices are 1-based)",
      err_of("local t = x; t[-4] = 1", t))
    assert.are.equal("user.lua:1: bad argument #2 to 'select' (index 0 is out of range for dim 1 of size 3 " ..
      "(indices are 1-based))", err_of("local t = x; return t:select(1, 0)", t))
  end)

  it("number a method's arguments as Lua does, self not counted", function()
    local t = torch.zeros(2, 3)
    assert.are.equal("user.lua:1: bad argument #2 to 'permute' (repeated dim 1)",
      err_of("local t = x; return t:permute(1, 1)", t))
    assert.are.equal("user.lua:1: bad argument #2 to 'narrow' (start 9 out of range for dim 1 of size 2)",
      err_of("local t = x; return t:narrow(1, 9, 1)", t))
    assert.are.equal("user.lua:1: bad argument #1 to 'expand' (size 2 of dim 1 cannot expand to 3)",
      err_of("local t = x; return t:expand(3, 3)", t))
    assert.are.equal("user.lua:1: calling 'item' on bad self (a tensor with 6 elements cannot be converted " ..
      "to a number)", err_of("local t = x; return t:item()", t))
  end)

  it("number the arguments of the math, reductions, shape and nn ops by the same rule", function()
    local t = torch.zeros(2, 3)
    -- lops.c (and lmath.c's checks): self is not counted; a metamethod's operands are #1 and #2
    assert.are.equal("user.lua:1: bad argument #1 to 'add' (tensor or number expected, got string)",
      err_of("local t = x; return t:add('x')", t))
    assert.are.equal("user.lua:1: bad argument #2 to 'add' (tensor or number expected, got string)",
      err_of("local t = x; return torch.add(t, 'x')", t))
    assert.are.equal("user.lua:1: bad argument #2 to 'add' (tensor or number expected, got string)",
      err_of("local t = x; return t + 'x'", t))
    assert.are.equal("user.lua:1: bad argument #1 to 'matmul' (size mismatch: {2, 3} @ {4})",
      err_of("local t = x; return t:matmul(torch.zeros(4))", t))
    -- t:where(cond, other) is torch.where(cond, t, other): cond is still the first argument written
    assert.are.equal("user.lua:1: bad argument #1 to 'where' (expected a bool condition tensor, got int64)",
      err_of("local t = x; return t:where(torch.tensor({1, 0, 1}), 0)", t))
    assert.are.equal("user.lua:1: calling 'neg' on bad self (negation of a bool tensor is not supported: " ..
      "use logical ops)", err_of("return torch.tensor({true}):neg()"))
    -- lreduce.c: positional arguments and options; t:max(u) is maximum's error under max's name
    assert.are.equal("user.lua:1: bad argument #1 to 'sum' (integer or list of integers expected, got string)",
      err_of("local t = x; return t:sum('a')", t))
    assert.are.equal("user.lua:1: bad argument #2 to 'sum' (integer or list of integers expected, got string)",
      err_of("local t = x; return torch.sum(t, 'a')", t))
    assert.are.equal("user.lua:1: bad option 'dim' to 'sum' (given twice: as argument #1 and as an option)",
      err_of("local t = x; return t:sum(1, {dim = 2})", t))
    assert.are.equal("user.lua:1: bad argument #4 to 'std' (at most 3 arguments expected: dim, unbiased, keepdim)",
      err_of("local t = x; return t:std(1, true, false, true)", t))
    assert.are.equal("user.lua:1: bad argument #1 to 'max' (shapes {2, 3} and {4} cannot be broadcast)",
      err_of("local t = x; return t:max(torch.zeros(4))", t))
    assert.are.equal("user.lua:1: calling 'mean' on bad self (expected a floating point or complex tensor, " ..
      "got int64)", err_of("return torch.tensor({1, 2}):mean()"))
    -- lshape.c
    assert.are.equal("user.lua:1: bad argument #2 to 'gather' (index tensor expected, got nil)",
      err_of("local t = x; return t:gather(1, nil)", t))
    assert.are.equal("user.lua:1: bad argument #3 to 'gather' (index tensor expected, got nil)",
      err_of("local t = x; return torch.gather(t, 1, nil)", t))
    -- lnn.c, reached through functional.lua: raised at the wrapper's line, under F's name (pad is
    -- called as C.pad; the class loss and max_pool_indices are told the F function they serve)
    local function tail(code) return (err_of(code, t):gsub("^.-functional%.lua:%d+: ", "")) end
    assert.are.equal("bad argument #2 to 'pad' (table of paddings expected, got string)",
      tail("local t = x; return torch.nn.functional.pad(t, 'x')"))
    assert.are.equal("bad argument #2 to 'cross_entropy' (target 4 is out of range for 3 classes)",
      tail("local t = x; return torch.nn.functional.cross_entropy(t, torch.tensor({1, 4}))"))
    assert.are.equal("bad argument #4 to 'max_pool2d' (padding must be at most half of the kernel size)",
      tail("return torch.nn.functional.max_pool2d(torch.zeros(1, 4, 4), {kernel_size = 2, padding = 2, " ..
        "return_indices = true})"))
  end)
end)

describe("nn constructor errors", function()
  it("say the class and are raised at the caller's line", function()
    assert.are.equal("user.lua:1: Linear: in_features must be an integer", err_of("nn.Linear('a', 2)"))
    assert.are.equal("user.lua:1: Linear: out_features must be an integer", err_of("nn.Linear(2, {})"))
    assert.are.equal("user.lua:1: Conv2d: kernel_size must be a number or a {h, w} pair, got string",
      err_of("nn.Conv2d(1, 1, 'x')"))
    assert.are.equal("user.lua:1: BatchNorm2d: num_features must be an integer", err_of("nn.BatchNorm2d(1.5)"))
    assert.are.equal("user.lua:1: Embedding: padding_idx must be within num_embeddings",
      err_of("nn.Embedding(3, 2, {padding_idx = 4})"))
    assert.are.equal("user.lua:1: LayerNorm: normalized_shape must be a number or a list",
      err_of("nn.LayerNorm({})"))
    assert.are.equal("user.lua:1: bad argument #2 to 'Sequential' (module expected, got number)",
      err_of("nn.Sequential(nn.ReLU(), 3)"))
  end)

  it("have no position under pcall", function()
    local ok, e = pcall(nn.Linear, "a", 2)
    assert.is_false(ok)
    assert.are.equal("Linear: in_features must be an integer", e)
  end)

  it("point past the models files at their caller", function()
    assert.are.equal("user.lua:1: Linear: out_features must be an integer",
      err_of("torch.models.alexnet({num_classes = 'x'})"))
  end)
end)

describe("the ltorch command", function()
  local function ltorch(args)
    return sh.run("LTORCH_PROGRESS=never bin/ltorch " .. args)
  end

  it("prints the library's file errors as they are", function()
    local _, code, err = ltorch("inspect " .. sh.quote(P("missing.pt")))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("missing.pt") .. ": no such file\n", err)
    _, code, err = ltorch("inspect " .. sh.quote(dir))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. dir .. ": is a directory\n", err)
    _, code, err = ltorch("inspect " .. sh.quote(P("empty.pt")))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("empty.pt") .. ": empty file\n", err)
    _, code, err = ltorch("-e " .. sh.quote("require('ltorch').load(" .. string.format("%q", P("missing.pt")) .. ")"))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("missing.pt") .. ": no such file", first_line(err))
  end)

  it("prints usage errors of a chunk at its line", function()
    local _, code, err = ltorch("-e " .. sh.quote('local t = require("ltorch").zeros(3); print(t[0])'))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: (command line):1: index 0 is out of range for dim 1 of size 3 (indices are 1-based)",
      first_line(err))
    _, code, err = ltorch("-e " .. sh.quote('local t = require("ltorch").zeros(2, 3); print(t:permute(1, 1))'))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: (command line):1: bad argument #2 to 'permute' (repeated dim 1)", first_line(err))
    _, code, err = ltorch("-e " .. sh.quote('require("ltorch").nn.Linear("a", 2)'))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: (command line):1: Linear: in_features must be an integer", first_line(err))
  end)
end)

describe("a C host", function()
  -- build/host PATH loads PATH with ltorch_load and prints the error on a
  -- line of its own after a label of its own ("host: ", "thread 0: ")
  local function host(path)
    return sh.run("LTORCH_ROOT=. " .. BUILD .. "/host " .. sh.quote(path))
  end

  -- is msg a line of err, after a label of words and a colon?
  local function said(err, msg)
    for line in err:gmatch("[^\n]+") do
      local label, rest = line:match("^([%w ]+): (.*)$")
      if label and rest == msg then return true end
    end
    return false
  end

  it("gets the same file errors from ltorch_load", function()
    local _, code, err = host(P("missing.pt"))
    assert.are.equal(1, code)
    assert.is_true(said(err, P("missing.pt") .. ": no such file"), err)
    _, code, err = host(dir)
    assert.are.equal(1, code)
    assert.is_true(said(err, dir .. ": is a directory"), err)
    _, code, err = host(P("empty.pt"))
    assert.are.equal(1, code)
    assert.is_true(said(err, P("empty.pt") .. ": empty file"), err)
  end)

  it("gets the same usage errors from the chunks it runs", function()
    local function chunk(code)
      local _, rc, err = sh.run("LTORCH_ROOT=. " .. BUILD .. "/host -e " .. sh.quote(code))
      assert.are.equal(1, rc)
      return err
    end
    assert.is_true(said(chunk("print(torch.zeros(3)[0])"),
      "(host chunk):1: index 0 is out of range for dim 1 of size 3 (indices are 1-based)"))
    assert.is_true(said(chunk("print(torch.zeros(2, 3):permute(1, 1))"),
      "(host chunk):1: bad argument #2 to 'permute' (repeated dim 1)"))
    assert.is_true(said(chunk("torch.nn.Linear('a', 2)"),
      "(host chunk):1: Linear: in_features must be an integer"))
  end)
end)
