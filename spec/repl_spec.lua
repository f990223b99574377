-- repl_spec.lua: the ltorch prompt. Unit specs of how values print and how
-- chunks compile, then the real REPL driven through a tmux pseudo-terminal.
local torch = require("ltorch")
local odict = require("ltorch.odict")
local repl = require("ltorch.repl")

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1", "r")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("repl.show", function()
  it("prints tensors as PyTorch does", function()
    assert.are.equal("tensor([[1., 1., 1.],\n        [1., 1., 1.]])", repl.show(torch.ones(2, 3)))
  end)

  it("prints a table of tensors as key, dtype and shape", function()
    local sd = odict.new()
    sd["layer.weight"] = torch.zeros(3, 4)
    sd["layer.bias"] = torch.zeros(3, {dtype = "float16"})
    sd["step"] = 5
    local s = repl.show(sd)
    assert.are.equal(table.concat({
      "key           dtype      shape",
      "layer.weight  float32    [3, 4]",
      "layer.bias    float16    [3]",
      "step          5",
      "(2 tensors, 15 params, 54 B)",
    }, "\n"), s)
  end)

  it("prints plain values and tables on one line", function()
    assert.are.equal("hi", repl.show("hi"))
    assert.are.equal("3", repl.show(3))
    assert.are.equal("torch.null", repl.show(torch.null))
    assert.are.equal('{1, 2, x = "y"}', repl.show({1, 2, x = "y"}))
  end)
end)

describe("repl.compile", function()
  it("takes expressions first, then statements", function()
    assert.are.equal(4, repl.compile("2 + 2")())
    local env = {}
    repl.compile("x = 1", env)()
    assert.are.equal(1, env.x)
  end)

  it("tells incomplete chunks from wrong ones", function()
    local fn, _, inc = repl.compile("for i = 1, 2 do")
    assert.is_nil(fn)
    assert.is_true(inc)
    fn, _, inc = repl.compile("x = = 1")
    assert.is_nil(fn)
    assert.is_false(inc)
  end)
end)

describe("repl.complete", function()
  it("completes globals, fields and tensor methods", function()
    local env = {torch = torch, ckpt = {["enc.w"] = 1, encoder = 2}, x = torch.ones(2)}
    assert.are.same({"torch.zeros"}, repl.complete("torch.zer", env))
    assert.are.same({"ckpt.encoder"}, repl.complete("ckpt.enc", env))
    assert.are.same({"x:view"}, repl.complete("x:vie", env))
    assert.are.same({}, repl.complete("nothing.here", env))
  end)
end)

describe("repl.eval", function()
  local function capture()
    local buf = {}
    return {write = function(self, ...) for _, s in ipairs({...}) do buf[#buf + 1] = s end return self end},
      function() return table.concat(buf) end
  end

  it("prints every value an expression returns", function()
    local out, text = capture()
    assert.is_true(repl.eval("1, 'a'", {}, out))
    assert.are.equal("1\na\n", text())
  end)

  it("prints an error and returns false instead of raising", function()
    local out, text = capture()
    assert.is_false(repl.eval("error('boom')", {error = error}, out))
    assert.is_truthy(text():find("^stdin:1: boom\n"))
    out, text = capture()
    assert.is_false(repl.eval("x = = 1", {}, out))
    assert.is_truthy(text():find("^stdin:1: unexpected symbol near '='"))
  end)
end)

describe("ltorch repl in a terminal", function()
  local dir, sock
  local has_tmux = os.execute("command -v tmux >/dev/null 2>&1") == true

  local function tmux(args) return run("tmux -L " .. sock .. " " .. args) end

  local function screen() return (tmux("capture-pane -p -t s -S -200")) end

  local function wait_for(text, timeout)
    local t0 = require("ltorch.core")._clock()
    while require("ltorch.core")._clock() - t0 < (timeout or 10) do
      local s = screen()
      if s:find(text, 1, true) then return s end
      os.execute("sleep 0.05")
    end
    error("timed out waiting for " .. text .. " in:\n" .. screen())
  end

  local function send(line)
    tmux("send-keys -t s -l " .. sh_quote(line))
    tmux("send-keys -t s Enter")
  end

  setup(function()
    assert(has_tmux, "tmux is needed for the REPL spec (make deps installs it)")
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. sh_quote(dir)))
    sock = "ltorch-spec-" .. dir:match("[^/]*$"):gsub("%W", "")
    local sd = odict.new()
    sd["enc.weight"] = torch.ones(2, 3)
    sd["enc.bias"] = torch.zeros(2)
    torch.save(sd, dir .. "/m.safetensors")
    local cwd = os.getenv("PWD") or "."
    local cmd = string.format("cd %s && HOME=%s LTORCH_PROGRESS=never bin/ltorch repl %s; echo REPL-EXITED-$?; sleep 30",
      sh_quote(cwd), sh_quote(dir), sh_quote(dir .. "/m.safetensors"))
    local _, code = tmux("new-session -d -s s -x 100 -y 30 " .. sh_quote(cmd))
    assert(code == 0, "tmux new-session failed")
    wait_for("ckpt = ")
  end)

  teardown(function()
    if sock then tmux("kill-server") end
    if dir then os.execute("rm -rf " .. sh_quote(dir)) end
  end)

  it("prints expressions and tensors", function()
    send("6 * 7")
    wait_for("\n42\n")
    send("torch.arange(4)")
    wait_for("tensor([0, 1, 2, 3])")
  end)

  it("loads the file as ckpt and prints it as a summary", function()
    send("ckpt")
    local s = wait_for("(2 tensors, 8 params, 32 B)")
    assert.is_truthy(s:find("enc.weight  float32    [2, 3]", 1, true), s)
  end)

  it("continues incomplete chunks and runs statements", function()
    send("function sq(x)")
    wait_for("> function sq(x)\n>>")   -- capture-pane drops trailing blanks
    send("return x * x end")
    send("sq(9)")
    wait_for("\n81\n")
  end)

  it("completes names with tab", function()
    tmux("send-keys -t s -l " .. sh_quote("torch.zero"))
    tmux("send-keys -t s Tab")
    tmux("send-keys -t s -l " .. sh_quote("(2):size(1) + 40"))
    tmux("send-keys -t s Enter")
    wait_for("torch.zeros(2):size(1) + 40\n42\n")
  end)

  it("survives errors", function()
    send("error('boom')")
    wait_for("stdin:1: boom")
    send("1 +")
    send("+")
    wait_for("unexpected symbol near '+'")
    send("'still' .. ' here'")
    wait_for("still here")
    assert.is_nil(screen():find("REPL-EXITED", 1, true))
  end)

  it("exits on ctrl-d and keeps the history in ~/.ltorch_history", function()
    tmux("send-keys -t s C-d")
    wait_for("REPL-EXITED-0")
    local f = io.open(dir .. "/.ltorch_history")
    if pcall(require, "readline") then
      assert.is_truthy(f, "no history file")
      local h = f:read("a")
      f:close()
      assert.is_truthy(h:find("6 * 7\n", 1, true), h)
    else
      assert.is_nil(f)   -- no lua-readline: plain io.read, no history
    end
  end)
end)

describe("ltorch repl on a pipe", function()
  it("reads chunks from stdin without prompts", function()
    local out, code = run("printf 'x = 2\\nx + 1\\nfor i=1,2 do\\nprint(i)\\nend\\n' | LTORCH_PROGRESS=never bin/ltorch")
    assert.are.equal(0, code)
    assert.are.equal("3\n1\n2\n", out)
  end)

  it("prints only results: no banner, with or without FILE", function()
    local out, code = run("printf '1+1\\n' | bin/ltorch")
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
    local base = os.tmpname()
    local path = base .. ".safetensors"
    torch.save(odict.from({"w"}, {w = torch.ones(2)}), path)
    out, code = run("printf 'ckpt.w:size(1)\\n' | LTORCH_PROGRESS=never bin/ltorch repl " .. sh_quote(path))
    os.remove(path)
    os.remove(base)
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
  end)

  it("loads foreign globals as inert tables and says so", function()
    local dir = os.tmpname()
    local code = "import torch, argparse, sys; torch.save({'w': torch.ones(2), 'args': argparse.Namespace(lr=0.5)}, sys.argv[1])"
    local _, rc = run("/usr/bin/python3 -c " .. sh_quote(code) .. " " .. sh_quote(dir))
    assert.are.equal(0, rc)
    local out, rc2 = run("printf 'ckpt.args.__global, ckpt.args.state.lr\\n' | bin/ltorch repl " .. sh_quote(dir))
    os.remove(dir)
    assert.are.equal(0, rc2)
    assert.is_truthy(out:find("^note: .-: unsupported globals: argparse%.Namespace; loaded as inert tables"), out)
    assert.is_truthy(out:find("\nargparse.Namespace\n0.5\n$"), out)
  end)

  it("exits 1 with one line when FILE cannot be loaded", function()
    local out, code = run("bin/ltorch repl /nonexistent/x.pt </dev/null")
    assert.are.equal(1, code)
    assert.are.equal("ltorch: /nonexistent/x.pt: no such file\n", out)
  end)
end)
