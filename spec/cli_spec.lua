-- cli_spec.lua: the ltorch command (inspect, convert, diff, help, errors,
-- progress) run as a program on files written by PyTorch and by ltorch.
local torch = require("ltorch")
local json = require("ltorch.json")

local PY = os.getenv("PYTHON") or "/usr/bin/python3"
local LTORCH = "bin/ltorch"

local sh = require("sh_helper")
local sh_quote, run = sh.quote, sh.run

local function ltorch(args, env)
  return run((env or "LTORCH_PROGRESS=never ") .. LTORCH .. " " .. args)
end

local function lines_of(s)
  local t = {}
  for l in (s .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function has_line(out, pattern)
  for _, l in ipairs(lines_of(out)) do
    if l:find(pattern) then return true end
  end
  return false
end

local dir
local function P(name) return dir .. "/" .. name end

-- PyTorch writes the inputs: a resnet-like state dict with nested prefixes
-- and a tied weight, a checkpoint with an argparse.Namespace, a whole pickled
-- module; expected.json holds what PyTorch computes about them.
local GEN = [[
import sys, json, argparse, collections, torch, torch.nn as nn
d = sys.argv[1]
torch.manual_seed(0)
sd = collections.OrderedDict()
sd["conv1.weight"] = torch.randn(8, 3, 3, 3)
sd["bn1.weight"] = torch.ones(8)
sd["bn1.bias"] = torch.zeros(8)
sd["bn1.num_batches_tracked"] = torch.tensor(7)
for l in (1, 2):
    for b in (0, 1):
        p = "layer%d.%d." % (l, b)
        sd[p + "conv1.weight"] = torch.randn(8, 8, 3, 3)
        sd[p + "bn1.weight"] = torch.rand(8)
        sd[p + "bn1.running_mean"] = torch.randn(8).half()
emb = torch.randn(10, 8)
sd["fc.weight"] = emb
sd["fc.bias"] = torch.arange(10, dtype=torch.float32)
sd["tied.weight"] = emb[2:5]
torch.save(sd, d + "/sd.pt")
sd2 = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
sd2["fc.bias"][3] += 0.25
del sd2["bn1.bias"]
sd2["extra"] = torch.zeros(2)
torch.save(sd2, d + "/sd2.pt")
ck = {"model": sd, "args": argparse.Namespace(lr=0.1, name="run1"), "epoch": 3}
torch.save(ck, d + "/ckpt.pt")
torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), d + "/module.pt")
exp = {"params": sum(v.numel() for v in sd.values()), "tensors": len(sd),
       "stats": {k: [v.float().min().item(), v.float().max().item(), v.float().mean().item(),
                     v.float().std().item()] for k, v in sd.items() if v.is_floating_point()}}
json.dump(exp, open(d + "/expected.json", "w"))
]]

local expected

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. sh_quote(dir)))
  local f = assert(io.open(P("gen.py"), "w"))
  f:write(GEN)
  f:close()
  local out, code, err = run(PY .. " " .. sh_quote(P("gen.py")) .. " " .. sh_quote(dir))
  assert(code == 0, "python failed: " .. out .. err)
  local ef = assert(io.open(P("expected.json")))
  expected = json.decode(ef:read("a"))
  ef:close()
end)

teardown(function()
  if dir then os.execute("rm -rf " .. sh_quote(dir)) end
end)

-- check a file ltorch wrote with PyTorch: prints "key dtype shape" lines
local function py_describe(path)
  local code = "import torch,sys\n" ..
    "sd = torch.load(sys.argv[1], weights_only=True) if sys.argv[1].endswith('.pt') else None\n" ..
    "for k, v in sd.items(): print(k, str(v.dtype)[6:], list(v.shape))\n"
  local out, rc, err = run(PY .. " -c " .. sh_quote(code) .. " " .. sh_quote(path))
  assert(rc == 0, err)
  return out
end

describe("ltorch inspect", function()
  it("prints the module tree with counts, dtypes, shapes and sizes", function()
    local out, code = ltorch("inspect " .. P("sd.pt"))
    assert.are.equal(0, code)
    assert.is_true(has_line(out, "^.*sd%.pt: PyTorch"))
    -- layer1 > 0 > conv1 > weight, with the subtree's params
    assert.is_true(has_line(out, "^├─ layer1%s+1,184%s+4%.59 KiB$"), out)
    assert.is_true(has_line(out, "^│  ├─ 0%s+592%s+2%.30 KiB$"), out)
    assert.is_true(has_line(out, "^│  │  ├─ conv1%s+576%s+2%.25 KiB$"), out)
    assert.is_true(has_line(out, "^│  │  │  └─ weight%s+float32 %[8, 8, 3, 3%]%s+576%s+2%.25 KiB$"), out)
    assert.is_true(has_line(out, "^│  │     └─ running_mean%s+float16 %[8%]%s+8%s+16 B$"), out)
    assert.is_true(has_line(out, "^│  └─ num_batches_tracked%s+int64 %[%]%s+1%s+8 B$"), out)
  end)

  it("prints the dtype histogram and the totals", function()
    local out = ltorch("inspect " .. P("sd.pt"))
    assert.is_true(has_line(out, "^  float16%s+4 tensors%s+32 params"), out)
    assert.is_true(has_line(out, "^  int64%s+1 tensors%s+1 params"), out)
    local total = string.format("^total: %d tensors, ", expected.tensors)
    assert.is_true(has_line(out, total), out)
    local n = out:match("total: %d+ tensors, ([%d,]+) params")
    assert.are.equal(expected.params, tonumber((n:gsub(",", ""))))
  end)

  it("fits 80 columns", function()
    local out = ltorch("inspect --stats " .. P("sd.pt") .. " " .. P("ckpt.pt") .. " " .. P("module.pt"))
    for _, l in ipairs(lines_of(out)) do
      assert.is_true(utf8.len(l) <= 79, "too long: " .. l)
    end
  end)

  it("lists tensors that share storage", function()
    local out = ltorch("inspect " .. P("sd.pt"))
    assert.is_true(has_line(out, "^shared storage %(1 groups%)$"), out)
    assert.is_true(has_line(out, "^  1%. 2 tensors in 320 B:$"), out)
    assert.is_true(has_line(out, "^     fc%.weight, tied%.weight$"), out)
  end)

  it("lists foreign globals and non-tensor values without running them", function()
    local out, code = ltorch("inspect " .. P("ckpt.pt"))
    assert.are.equal(0, code)
    assert.is_true(has_line(out, "^  argparse%.Namespace$"), out)
    assert.is_true(has_line(out, "^  epoch = 3$"), out)
    assert.is_true(has_line(out, "^└─ model%s+2,715%s+10%.5 KiB$"), out)
    assert.is_true(has_line(out, "^  args%.name = \"run1\"$"), out)
    out, code = ltorch("inspect " .. P("module.pt"))
    assert.are.equal(0, code)
    assert.is_true(has_line(out, "^  torch%.nn%.modules%.container%.Sequential$"), out)
    assert.is_true(has_line(out, "^  torch%.nn%.modules%.linear%.Linear$"), out)
    -- the module's parameters under their state_dict names
    assert.is_true(has_line(out, "^└─ 0%s+15%s+60 B$"), out)
    assert.is_true(has_line(out, "^   └─ bias%s+float32 %[3%]%s+3%s+12 B$"), out)
    assert.is_true(has_line(out, "^total: 2 tensors, 15 params"), out)
  end)

  it("limits listings with --filter (Lua pattern or plain text)", function()
    local out = ltorch("inspect --filter 'layer2%.1%.' " .. P("sd.pt"))
    assert.is_true(has_line(out, "^filter 'layer2%%%.1%%%.': 3 of 19 tensors$"), out)
    assert.is_false(has_line(out, "layer1"))
    out = ltorch("inspect -f 'bn1.running_mean[' " .. P("sd.pt"))   -- not a valid pattern
    assert.is_true(has_line(out, ": 0 of 19 tensors$"), out)
  end)

  it("limits the tree with --depth", function()
    local out = ltorch("inspect --depth 1 " .. P("sd.pt"))
    assert.is_true(has_line(out, "^├─ layer1 "), out)
    assert.is_true(has_line(out, "^├─ conv1 "), out)
    assert.is_false(has_line(out, "─ weight"))
  end)

  it("adds min, max, mean, std, nan and inf with --stats", function()
    local out = ltorch("inspect --stats " .. P("sd.pt"))
    local function num(s) return tonumber(s) end
    for key, st in pairs(expected.stats) do
      if #key <= 26 then
        local line
        for _, l in ipairs(lines_of(out)) do
          if l:sub(1, #key + 1) == key .. " " then line = l end
        end
        assert.is_truthy(line, key)
        local mn, mx, mean, std, nan, inf = line:sub(28):match("(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%d+)%s+(%d+)")
        assert.is_near(st[1], num(mn), math.abs(st[1]) * 1e-3 + 1e-6)
        assert.is_near(st[2], num(mx), math.abs(st[2]) * 1e-3 + 1e-6)
        assert.is_near(st[3], num(mean), math.abs(st[3]) * 1e-3 + 1e-6)
        if st[4] == st[4] then assert.is_near(st[4], num(std), math.abs(st[4]) * 1e-3 + 1e-6) end
        assert.are.equal("0", nan)
        assert.are.equal("0", inf)
      end
    end
  end)

  it("counts nan and inf apart from the finite statistics", function()
    local sd = require("ltorch.odict").new()
    sd["c"] = torch.tensor({0 / 0, 1, 1 / 0, -2, -1 / 0})
    sd["one"] = torch.tensor({5})
    torch.save(sd, P("odd.safetensors"))
    local out = ltorch("inspect --stats " .. P("odd.safetensors"))
    assert.is_true(has_line(out, "^c%s+%-2%s+1%s+%-0%.5%s+2%.121%s+1%s+2$"), out)
    assert.is_true(has_line(out, "^one%s+5%s+5%s+5%s+%-%s+0%s+0$"), out)
  end)

  it("prints the same report as JSON", function()
    local out, code = ltorch("inspect --json --stats " .. P("sd.pt"))
    assert.are.equal(0, code)
    local doc = json.decode(out)
    local r = doc.files[1]
    assert.are.equal("pt", r.format)
    assert.are.equal(expected.params, r.total_params)
    assert.are.equal(expected.tensors, #r.tensors)
    assert.are.equal("layer1.0.conv1.weight", r.tensors[5].key)
    assert.are.same({8, 8, 3, 3}, {table.unpack(r.tensors[5].shape)})
    assert.are.equal(4, r.dtypes.float16.tensors)
    assert.are.same({"fc.weight", "tied.weight"}, {table.unpack(r.shared[1].keys)})
    assert.is_near(expected.stats["fc.bias"][4], r.tensors[#r.tensors - 1].stats.std, 1e-6)
    assert.are.equal("layer1", r.tree.children[3].name)
    assert.are.equal(1184, r.tree.children[3].params)
    -- Python's json module reads it too
    local f = io.open(P("r.json"), "w"); f:write(out); f:close()
    local pyout, rc = run("python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"files\"][0][\"total_params\"])' " .. P("r.json"))
    assert.are.equal(0, rc)
    assert.are.equal(tostring(expected.params), pyout:match("%d+"))
  end)

  it("reports foreign globals in JSON", function()
    local doc = json.decode((ltorch("inspect --json " .. P("ckpt.pt"))))
    assert.are.equal("argparse.Namespace", doc.files[1].globals[1].name)
    assert.are.equal("3", doc.files[1].values.epoch)
  end)

  it("inspects files ltorch wrote, with safetensors metadata", function()
    local sd = require("ltorch.odict").new()
    sd["a.b.w"] = torch.ones(2, 3)
    sd["a.c"] = torch.zeros(4, {dtype = "int32"})
    torch.save(sd, P("l.safetensors"), {metadata = {format = "pt", note = "hello"}})
    local out, code = ltorch("inspect " .. P("l.safetensors"))
    assert.are.equal(0, code, out)
    assert.is_true(has_line(out, ": safetensors, "), out)
    assert.is_true(has_line(out, "^   │  └─ w%s+float32 %[2, 3%]%s+6%s+24 B$"), out)
    assert.is_true(has_line(out, "^  note = hello$"), out)
    torch.save(sd, P("l.pt"))
    out, code = ltorch("inspect " .. P("l.pt"))
    assert.are.equal(0, code)
    assert.is_true(has_line(out, "^total: 2 tensors, 10 params, 40 B$"), out)
  end)
end)

describe("ltorch inspect, every format", function()
  local odict = require("ltorch.odict")
  local function small()
    local sd = odict.new()
    sd["enc.w"] = torch.ones(2, 3)
    sd["enc.b"] = torch.zeros(4, {dtype = "int32"})
    return sd
  end

  for _, ext in ipairs({"pt", "safetensors", "npz", "dat"}) do
    it("reads ." .. ext, function()
      torch.save(small(), P("every." .. ext))
      local out, code, err = ltorch("inspect " .. P("every." .. ext))
      assert.are.equal(0, code, err)
      assert.is_true(has_line(out, "^total: 2 tensors, 10 params, 40 B$"), out)
      assert.is_true(has_line(out, "^   ├─ w%s+float32 %[2, 3%]%s+6%s+24 B$"), out)
    end)
  end

  it("reads .npy (one tensor)", function()
    torch.save(torch.ones(3, 2), P("one.npy"))
    local out, code = ltorch("inspect " .. P("one.npy"))
    assert.are.equal(0, code)
    assert.is_true(has_line(out, "^└─ %(tensor%)%s+float32 %[3, 2%]%s+6%s+24 B$"), out)
  end)

  it("reads a sharded index across its shards", function()
    local a, b = odict.new(), odict.new()
    a["x.w"] = torch.ones(2, 2)
    b["y.w"] = torch.ones(3)
    torch.save(a, P("m-1.safetensors"))
    torch.save(b, P("m-2.safetensors"))
    local f = io.open(P("m.safetensors.index.json"), "w")
    f:write('{"metadata": {"total_size": 28}, "weight_map": {"x.w": "m-1.safetensors", "y.w": "m-2.safetensors"}}')
    f:close()
    local out, code, err = ltorch("inspect " .. P("m.safetensors.index.json"))
    assert.are.equal(0, code, err)
    assert.is_true(has_line(out, ": sharded index, "), out)
    assert.is_true(has_line(out, "^total: 2 tensors, 7 params, 28 B$"), out)
  end)
end)

describe("ltorch convert", function()
  it("round-trips pt -> safetensors -> pt", function()
    local _, code, err = ltorch("convert " .. P("sd.pt") .. " " .. P("rt.safetensors"))
    assert.are.equal(0, code, err)
    _, code, err = ltorch("convert " .. P("rt.safetensors") .. " " .. P("rt.pt"))
    assert.are.equal(0, code, err)
    local out
    out, code = ltorch("diff " .. P("sd.pt") .. " " .. P("rt.pt"))
    assert.are.equal(0, code, out)
    -- both ways key by key, values and dtypes (diff compares them all)
    out, code = ltorch("diff " .. P("rt.pt") .. " " .. P("sd.pt"))
    assert.are.equal(0, code, out)
    assert.are.equal("equal: 19 keys\n", out)
  end)

  it("casts floating tensors only with --dtype", function()
    local _, code, err = ltorch("convert --dtype bfloat16 " .. P("sd.pt") .. " " .. P("bf.pt"))
    assert.are.equal(0, code, err)
    local out = py_describe(P("bf.pt"))
    assert.is_true(has_line(out, "^conv1%.weight bfloat16 %[8, 3, 3, 3%]$"), out)
    assert.is_true(has_line(out, "^layer1%.0%.bn1%.running_mean bfloat16 %[8%]$"), out)
    assert.is_true(has_line(out, "^bn1%.num_batches_tracked int64 %[%]$"), out)
  end)

  it("renames keys with --rename", function()
    local _, code, err = ltorch("convert --rename '^layer=block' --rename '%.conv1%.=.c.' " ..
      P("sd.pt") .. " " .. P("rn.safetensors"))
    assert.are.equal(0, code, err)
    local sd = torch.load(P("rn.safetensors"))
    assert.is_truthy(sd["block1.0.c.weight"])
    assert.is_nil(sd["layer1.0.conv1.weight"])
    assert.is_truthy(sd["conv1.weight"])
  end)

  it("keeps an ltorch module a module, cast with --dtype", function()
    local nn = torch.nn
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), P("m.safetensors"))
    local _, code, err = ltorch("convert --dtype float16 " .. P("m.safetensors") .. " " .. P("m16.pt"))
    assert.are.equal(0, code, err)
    local m = torch.load(P("m16.pt"))
    assert.are.equal("float16", m[1].weight:dtype())
    assert.are.equal("Sequential", m:class_name())
    local out = ltorch("inspect " .. P("m16.pt"))
    assert.is_true(has_line(out, "^   └─ bias%s+float16 %[3%]%s+3%s+6 B$"), out)
  end)

  it("flattens a checkpoint the target cannot hold and names what it drops", function()
    local _, code, err = ltorch("convert " .. P("ckpt.pt") .. " " .. P("ck.safetensors"))
    assert.are.equal(0, code, err)
    assert.is_truthy(err:find("argparse.Namespace", 1, true))
    local sd = torch.load(P("ck.safetensors"))
    assert.is_truthy(sd["model.layer2.1.conv1.weight"])
  end)

  it("rejects an unknown dtype, a bad rule and two keys renamed to one", function()
    local _, code, err = ltorch("convert --dtype float7 " .. P("sd.pt") .. " " .. P("x.pt"))
    assert.are.equal(2, code)
    assert.are.equal("ltorch: convert: unknown dtype 'float7'\n", err)
    _, code, err = ltorch("convert --rename nothing " .. P("sd.pt") .. " " .. P("x.pt"))
    assert.are.equal(2, code)
    assert.are.equal("ltorch: convert: --rename expects 'PATTERN=REPLACEMENT', got 'nothing'\n", err)
    _, code, err = ltorch("convert --rename '^.*=x' " .. P("sd.pt") .. " " .. P("x.pt"))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("sd.pt") .. ": --rename maps both 'conv1.weight' and 'bn1.weight' to 'x'\n", err)
    assert.is_nil(io.open(P("x.pt")))
    _, code, err = ltorch("convert " .. P("sd.pt") .. " " .. P("no/x.pt"))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("no/x.pt") .. ": no such folder '" .. P("no") .. "'\n", err)
  end)
end)

describe("ltorch diff", function()
  it("exits 0 for equal files", function()
    local out, code = ltorch("diff " .. P("sd.pt") .. " " .. P("sd.pt"))
    assert.are.equal(0, code)
    assert.are.equal("equal: 19 keys\n", out)
  end)

  it("lists keys only on one side, shape and dtype changes and value differences", function()
    local out, code = ltorch("diff " .. P("sd.pt") .. " " .. P("sd2.pt"))
    assert.are.equal(1, code)
    assert.is_true(has_line(out, "^only in .-sd%.pt: bn1%.bias$"), out)
    assert.is_true(has_line(out, "^only in .-sd2%.pt: extra$"), out)
    assert.is_true(has_line(out, "^values fc%.bias: max abs diff 0%.25$"), out)
    -- tied.weight was a view of fc.weight: clone() kept it equal
    assert.is_false(has_line(out, "tied"))
    out, code = ltorch("diff " .. P("sd.pt") .. " " .. P("bf.pt"))
    assert.are.equal(1, code)
    assert.is_true(has_line(out, "^dtype  conv1%.weight: float32 %-> bfloat16$"), out)
    out, code = ltorch("diff --atol 0.3 -f fc.bias " .. P("sd.pt") .. " " .. P("sd2.pt"))
    assert.are.equal(0, code, out)
  end)

  it("exits 2 on an error", function()
    local _, code, err = ltorch("diff " .. P("sd.pt") .. " " .. P("missing.pt"))
    assert.are.equal(2, code)
    assert.are.equal("ltorch: " .. P("missing.pt") .. ": no such file\n", err)
  end)
end)

describe("errors", function()
  it("print one line and exit non-zero", function()
    local _, code, err = ltorch("inspect " .. P("nothere.pt"))
    assert.are.equal(1, code)
    assert.are.equal("ltorch: " .. P("nothere.pt") .. ": no such file\n", err)
    _, code, err = ltorch("inspect " .. P("gen.py"))
    assert.are.equal(1, code)
    local tried = {}
    for _, f in ipairs(require("ltorch.serialize").all_formats()) do tried[#tried + 1] = f.title or f.name end
    assert.are.equal("ltorch: " .. P("gen.py") ..
      ": unknown format (tried " .. table.concat(tried, ", ") .. ")\n", err)
  end)

  it("name a damaged file without a traceback, unless --debug", function()
    local f = io.open(P("sd.pt"), "rb")
    local data = f:read("a")
    f:close()
    f = io.open(P("cut.pt"), "wb")
    f:write(data:sub(1, #data // 2))
    f:close()
    local _, code, err = ltorch("inspect " .. P("cut.pt"))
    assert.are.equal(1, code)
    assert.are.equal(1, #lines_of(err), err)
    assert.is_truthy(err:find("^ltorch: " .. P("cut.pt"):gsub("%p", "%%%0") .. ": "), err)
    assert.is_nil(err:find("traceback"))
    _, code, err = ltorch("--debug inspect " .. P("cut.pt"))
    assert.are.equal(1, code)
    assert.is_truthy(err:find("stack traceback"))
  end)

  it("name unknown commands and options", function()
    local _, code, err = ltorch("inspekt x")
    assert.are.equal(1, code)     -- taken as a script name
    assert.is_truthy(err:find("^ltorch: cannot open inspekt"))
    _, code, err = ltorch("inspect --bogus x")
    assert.are.equal(2, code)
    assert.are.equal("ltorch: inspect: unknown option '--bogus' (see 'ltorch inspect --help')\n", err)
    _, code, err = ltorch("diff a")
    assert.are.equal(2, code)
    assert.are.equal("ltorch: diff: expected two files A and B (see 'ltorch diff --help')\n", err)
  end)
end)

describe("--help", function()
  it("lists the commands", function()
    local out, code = ltorch("--help")
    assert.are.equal(0, code)
    for _, c in ipairs({"inspect", "convert", "diff", "repl"}) do
      assert.is_true(has_line(out, "^    " .. c .. " "), c)
    end
  end)

  it("describes every option of every command", function()
    local commands = require("ltorch.commands")
    for name, cmd in pairs(commands.COMMANDS) do
      local out, code = ltorch(name .. " --help")
      assert.are.equal(0, code)
      assert.is_truthy(out:find("^usage: ltorch " .. name))
      for _, o in ipairs(cmd.options) do
        assert.is_truthy(out:find("--" .. o[1], 1, true), name .. " --" .. o[1])
      end
      assert.is_truthy(out:find("--debug", 1, true))
      for _, l in ipairs(lines_of(out)) do assert.is_true(#l <= 80, l) end
    end
  end)
end)

describe("progress", function()
  local progress = require("ltorch.progress")

  it("formats bytes done, rate and time left in the width", function()
    local l = progress.line("loading m.pt", 300 * 2^20, 1000 * 2^20, 2, 80)
    assert.is_truthy(l:find("^loading m%.pt %[#+%.+%]  30%%  300 MiB/1000 MiB  150 MiB/s ETA 0:05$"), l)
    assert.is_true(#l <= 79)
    -- no time estimate in the first instants
    assert.is_truthy(progress.line("x", 8, 1000, 0.01, 80):find("ETA %-%-:%-%-$"))
    assert.is_true(#progress.line(string.rep("x", 200), 1, 10, 1, 80) <= 79)
  end)

  it("draws on the given stream and clears at the end", function()
    local buf = {}
    local out = {write = function(self, ...) for _, s in ipairs({...}) do buf[#buf + 1] = s end return self end,
      flush = function() end}
    local cb = progress.bar("saving", {force = true, out = out, delay = 0})
    cb(50, 100)
    cb(100, 100)
    progress.finish(cb)
    local s = table.concat(buf)
    assert.is_truthy(s:find("\r saving", 1, true) or s:find("\rsaving", 1, true), s)
    assert.is_truthy(s:find("100%", 1, true))
    assert.are.equal("\r\27[K", s:sub(-4))
  end)

  it("draws while a command loads and saves (forced on a pipe)", function()
    local _, code, err = ltorch("convert " .. P("sd.pt") .. " " .. P("pg.safetensors"),
      "LTORCH_PROGRESS=always LTORCH_PROGRESS_DELAY=0 ")
    assert.are.equal(0, code, err)
    assert.is_truthy(err:find("\r[^\r]-sd%.pt %[#+%]%s+100%%"), err)
    assert.is_truthy(err:find("\r\27%[K$"), err)
  end)

  it("finds that stderr is a terminal in a pseudo-terminal", function()
    local sock = "ltorch-cli-spec-" .. dir:match("[^/]*$"):gsub("%W", "")
    local cmd = "cd " .. sh_quote(os.getenv("PWD") or ".") ..
      " && bin/ltorch -e 'print(\"tty=\" .. tostring(require(\"ltorch.progress\").stderr_is_tty()))'; sleep 10"
    local _, code = run("tmux -L " .. sock .. " new-session -d -s p -x 80 -y 10 " .. sh_quote(cmd))
    assert.are.equal(0, code)
    local screen = ""
    for _ = 1, 100 do
      screen = run("tmux -L " .. sock .. " capture-pane -p -t p")
      if screen:find("tty=") then break end
      os.execute("sleep 0.05")
    end
    run("tmux -L " .. sock .. " kill-server")
    assert.is_truthy(screen:find("tty=true", 1, true), screen)
  end)

  it("prints nothing when stderr is not a terminal", function()
    if os.getenv("LTORCH_PROGRESS") == nil then
      assert.are.equal(require("ltorch.core")._isatty(2), progress.bar("x") ~= nil)
    end
    local _, code, err = ltorch("convert " .. P("sd.pt") .. " " .. P("np.safetensors"), "")
    assert.are.equal(0, code)
    assert.are.equal("", err)
  end)
end)
