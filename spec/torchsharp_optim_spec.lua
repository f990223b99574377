-- torchsharp_optim_spec.lua: TorchSharp .dat files that are not state dicts
-- (one tensor, optimizer states) and detection, checked against
-- spec/fixtures/fmt/ts_optim.py (exportsd.py's save_* functions and
-- TorchSharp's C# writers, byte by byte)
local torch = require("ltorch")
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local H = require("fmt_helper")

local SCRIPT = H.FIX .. "ts_optim.py"
local dir
setup(function()
  dir = H.tmpdir()
  H.py(SCRIPT, "write", dir)
end)
teardown(function() H.rmdir(dir) end)

local function fmt_f(x) return string.format("%.17g", x) end

-- a loaded optimizer state in ts_optim.py read's text
local function as_text(o)
  local layout
  for _, l in ipairs(core._ts_layouts()) do if l.name == o.optimizer then layout = l end end
  local lines = {"optimizer " .. o.optimizer}
  local function val(v, kind)
    if kind == "f64" then return fmt_f(v) end
    if kind == "i64" then return string.format("%d", v) end
    if kind == "bool" then return tostring(v) end
    if v == nil then return "nil" end
    local vals = {}
    for _, x in ipairs(v:contiguous():view(-1):tolist()) do vals[#vals + 1] = fmt_f(x) end
    return string.format("%s [%s] [%s]", v:dtype(), table.concat(v:size(), ", "), table.concat(vals, ", "))
  end
  for g, rec in ipairs(o.param_groups) do
    for _, f in ipairs(layout.options) do lines[#lines + 1] = string.format("group %d %s %s", g, f[1], val(rec[f[1]], f[2])) end
  end
  for s, rec in ipairs(o.state) do
    for _, f in ipairs(layout.state) do lines[#lines + 1] = string.format("state %d %s %s", s, f[1], val(rec[f[1]], f[2])) end
  end
  return table.concat(lines, "\n") .. "\n"
end

local function names()
  local list = {}
  for l in H.py(SCRIPT, "names"):gmatch("[^\n]+") do list[#list + 1] = l end
  return list
end

describe("torchsharp single tensor", function()
  it("loads Tensor.Save's layout (dtype, rank, dims, data; no count, no name)", function()
    local t = torch.load(dir .. "/ts_tensor.dat")
    assert.is_true(core.is_tensor(t))
    assert.equal("float32", t:dtype())
    assert.same({{0.5, 1.5, 2.5}, {3.5, 4.5, 5.5}}, t:tolist())
  end)

  it("saves a tensor as one record, byte for byte as TorchSharp does", function()
    local p = dir .. "/t.dat"
    torch.save(torch.tensor({{0.5, 1.5, 2.5}, {3.5, 4.5, 5.5}}), p)
    assert.equal(H.read(dir .. "/ts_tensor.dat"), H.read(p))
    -- any dtype TorchSharp has, a strided view in C order, and 0-d
    local v = torch.arange(6):to("int16"):view(2, 3):t()
    torch.save(v, p, {format = "torchsharp"})
    assert.is_true(H.same(v, torch.load(p)))
    torch.save(torch.tensor(2.5, {dtype = "float64"}), p)
    assert.equal("\7\0" .. string.pack("<d", 2.5), H.read(p))
  end)

  it("refuses keys and rename, which select from state dicts", function()
    local p = dir .. "/ts_tensor.dat"
    assert.equal(p .. ": a TorchSharp tensor has no names: 'keys' and 'rename' select from state dicts",
      H.err(torch.load, p, {keys = {"x"}}))
  end)
end)

describe("torchsharp optimizer state", function()
  it("knows every optimizer TorchSharp saves (LBFGS has no file layout)", function()
    local mine = {}
    for _, l in ipairs(core._ts_layouts()) do mine[#mine + 1] = l.name end
    assert.same(names(), mine)
  end)

  for _, name in ipairs(names()) do
    it("loads " .. name .. " (exportsd.py save_" .. name:lower() .. " / C# save_state_dict)", function()
      local p = dir .. "/ts_opt_" .. name .. ".dat"
      local o = torch.load(p)
      assert.equal(name, o.optimizer)
      assert.equal(2, #o.param_groups)
      assert.equal(3, #o.state)
      assert.equal(H.py(SCRIPT, "read", p), as_text(o))
    end)

    it("writes " .. name .. " back byte for byte", function()
      local p = dir .. "/ts_opt_" .. name .. ".dat"
      local out = dir .. "/back_" .. name .. ".dat"
      torch.save(torch.load(p), out)
      assert.equal(H.read(p), H.read(out))
    end)
  end

  it("loads the values as the layout gives them", function()
    local o = torch.load(dir .. "/ts_opt_Adam.dat")
    local g = o.param_groups[1]
    assert.equal(1.125, g.initial_lr)
    assert.equal(1.25, g.lr)
    assert.equal(1.375, g.beta1)
    assert.equal(false, g.amsgrad)   -- (1 + 7) % 2
    assert.equal(true, g.maximize)
    assert.equal(1 * 2 ^ 40 + 1, o.state[1].step)
    assert.equal("integer", math.type(o.state[1].step))
    assert.same({{12, 13, 14}, {15, 16, 17}}, o.state[1].exp_avg:tolist())
    assert.is_nil(o.state[1].max_exp_avg_sq)                    -- (1 + 4) odd: absent
    assert.same({{24, 25, 26}, {27, 28, 29}}, o.state[2].max_exp_avg_sq:tolist())
  end)

  it("writes a state built in Lua that TorchSharp's layout reads", function()
    local o = {optimizer = "SGD",
      param_groups = {{initial_lr = 1.125, lr = 1.25, momentum = 1.375, dampening = 1.5,
        weight_decay = 1.625, nesterov = false, maximize = true}},
      state = {{momentum_buffer = torch.tensor({{13, 14, 15}, {16, 17, 18}}):to("float32")}, {}}}
    local p = dir .. "/sgd.dat"
    torch.save(o, p)
    assert.equal(table.concat({
      "optimizer SGD",
      "group 1 initial_lr 1.125", "group 1 lr 1.25", "group 1 momentum 1.375", "group 1 dampening 1.5",
      "group 1 weight_decay 1.625", "group 1 nesterov false", "group 1 maximize true",
      "state 1 momentum_buffer float32 [2, 3] [13, 14, 15, 16, 17, 18]",
      "state 2 momentum_buffer nil", ""}, "\n"), H.py(SCRIPT, "read", p))
  end)

  it("checks the value before writing", function()
    local p = dir .. "/bad.dat"
    assert.equal(p .. ": optimizer 'Lion' has no TorchSharp layout (TorchSharp saves SGD, Adam, AdamW, " ..
      "RMSProp, Adagrad, Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop)",
      H.err(torch.save, {optimizer = "Lion", param_groups = {}, state = {}}, p))
    assert.equal(p .. ": Adagrad state: state 1 'step' must be an integer, got float",
      H.err(torch.save, {optimizer = "Adagrad", param_groups = {}, state = {{step = 1.5, sum = torch.zeros(1)}}}, p))
    assert.equal(p .. ": Adagrad state: group 1 'eps' must be a number, got nil",
      H.err(torch.save, {optimizer = "Adagrad", param_groups = {{initial_lr = 1, lr = 1, lr_decay = 0,
        initial_accumulator_value = 0}}, state = {}}, p))
  end)

  local damaged = {
    ts_opt_bad_bool = "group 1 'amsgrad': bool byte 2 at byte 55 is neither 0 nor 1",
    ts_opt_bad_name = "optimizer 'Lion' is not one TorchSharp saves (SGD, Adam, AdamW, RMSProp, Adagrad, " ..
      "Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop)",
    ts_opt_truncated = "state 1 'exp_avg_sq': truncated: expected 24 bytes of data at byte 97, found 22",
    ts_opt_trailing = "1 unexpected bytes after the last state",
    ts_opt_groups = "group count 1000 is more than the file can hold",
  }
  for name, msg in pairs(damaged) do
    it("rejects " .. name .. ", saying which layouts were tried", function()
      local p = dir .. "/" .. name .. ".dat"
      local err = H.err(torch.load, p)
      assert.truthy(err:find("^" .. p:gsub("%p", "%%%0") .. ": fits no TorchSharp layout %(state dict: "), err)
      assert.truthy(err:find("; optimizer state: " .. msg .. "; tensor: ", 1, true), err)
    end)
  end
end)

describe("torchsharp detection", function()
  local function unknown(p)
    local tried = {}
    for _, f in ipairs(require("ltorch.serialize").all_formats()) do tried[#tried + 1] = f.title or f.name end
    return p .. ": unknown format (tried " .. table.concat(tried, ", ") .. ")"
  end

  it("claims no file that is not TorchSharp's", function()
    local p = dir .. "/garbage.bin"
    H.write(p, "abc")
    assert.equal(unknown(p), H.err(torch.load, p))
    H.write(p, "hello, world\n")
    assert.equal(unknown(p), H.err(torch.load, p))
    -- a .dat name alone is not enough
    p = dir .. "/notes.dat"
    H.write(p, "\1\2\3")
    assert.equal(unknown(p), H.err(torch.load, p))
  end)

  it("recognizes each layout whatever the file's name", function()
    local p = dir .. "/tensor.bin"
    H.write(p, H.read(dir .. "/ts_tensor.dat"))
    assert.equal("torchsharp", require("ltorch.serialize").detect(p).name)
    H.write(p, H.read(dir .. "/ts_opt_NAdam.dat"))
    assert.equal("NAdam", torch.load(p).optimizer)
    local d = odict.new()
    d.w = torch.ones(2)
    torch.save(d, dir .. "/sd.dat")
    H.write(p, H.read(dir .. "/sd.dat"))
    assert.same({"w"}, odict.keys(torch.load(p)))
  end)

  it("tells a state dict from an optimizer state and a tensor", function()
    assert.equal("SGD", torch.load(dir .. "/ts_opt_SGD.dat").optimizer)
    assert.is_true(core.is_tensor(torch.load(dir .. "/ts_tensor.dat")))
    assert.is_true(odict.is(torch.load(dir .. "/sd.dat")))
  end)
end)
