-- torchscript_spec.lua: the weights of TorchScript archives (torch.jit.save),
-- read without running them (ltorch.torchscript): torch.load_state_dict
-- against PyTorch's own state_dict() of the saved module (torch.jit.load,
-- then torch.save of its state dict) for a scripted CNN, a scripted module
-- with every kind of attribute, a traced module with tensor constants and a
-- frozen one; torch.load's inert tree; the code/ parser; inspect's note;
-- the errors.
local torch = require("ltorch")
local H = require("nn_helpers")
local odict = require("ltorch.odict")
local ts = require("ltorch.torchscript")
local inspect = require("ltorch.inspect")

-- one Python process writes every file: each archive and, beside it,
-- PyTorch's state dict of the module torch.jit.load gives back
local GEN = [==[
import os, zipfile, torch, torch.nn as nn
from typing import Tuple
os.chdir(os.path.dirname(os.path.abspath(__file__)))

def write(name, m):
    torch.jit.save(m, name + ".pt")
    back = torch.jit.load(name + ".pt")
    assert list(back.state_dict().keys()) == list(m.state_dict().keys())
    torch.save(back.state_dict(), name + "_ref.pt")

torch.manual_seed(0)
cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
cnn(torch.randn(2, 3, 4, 4))     # training mode: the running stats and num_batches_tracked move
write("cnn", torch.jit.script(cnn))

@torch.jit.script
class Pair:                      # a scripted class that is not a module
    def __init__(self, a: torch.Tensor):
        self.a = a

class Child(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3, bias=False)                      # a None parameter
        self.register_buffer("nonpers", torch.ones(2), persistent=False)
        self.register_buffer("pers", torch.arange(3))
        self.scale = nn.Parameter(torch.tensor(2.0))                # registered after a child
        self.register_buffer("nothing", None)                       # a None buffer
        self.register_buffer("mask", torch.tensor([True, False]))
    def forward(self, x):
        return self.lin(x) * self.scale + self.pers + self.nonpers.sum() + self.mask.sum()

class Top(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("zbuf", torch.zeros(2, dtype=torch.float64))
        self.a = Child()
        self.w = nn.Parameter(torch.randn(3))
        self.h16 = nn.Parameter(torch.randn(2).half())
        self.b = nn.ModuleList([Child(), Child()])
        self.d = nn.ModuleDict({"x-y": nn.Linear(3, 1), "id": nn.Identity()})
        self.head = nn.Linear(3, 3)
        self.shared = self.head                                     # one module, two names
        self.plain = torch.tensor([1.0, 2.0])                       # a tensor attribute
        self.pair = Pair(torch.ones(3))
    def forward(self, x):
        y = self.a(x) + self.w + self.plain[0] + self.pair.a + self.h16.float().sum()
        for m in self.b:
            y = y + m(x)
        return self.shared(self.head(y)) + self.d["x-y"](y) + self.zbuf.sum()

torch.manual_seed(1)
top = Top()
write("top", torch.jit.script(top))
torch.save(top.state_dict(), "top_eager.pt")                        # without the non-persistent buffers

class Traced(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
    def forward(self, x):
        return self.lin(x) + torch.ones(2) * 3                      # a constant in constants.pkl
torch.manual_seed(2)
write("traced", torch.jit.trace(Traced(), torch.randn(2)))
assert "traced/constants/0" in zipfile.ZipFile("traced.pt").namelist()

torch.manual_seed(3)
write("frozen", torch.jit.freeze(torch.jit.script(nn.Sequential(nn.Linear(2, 2)).eval())))

class GS(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.w, self.training)
    @torch.jit.export
    def __setstate__(self, s: Tuple[torch.Tensor, bool]) -> None:
        self.w = s[0]
        self.training = s[1]
    def forward(self, x):
        return x * self.w
torch.jit.save(torch.jit.script(nn.Sequential(GS())), "gs.pt")

# top.pt without the class definitions of __main__
with zipfile.ZipFile("top.pt") as src, zipfile.ZipFile("nocode.pt", "w") as dst:
    for i in src.infolist():
        if i.filename != "top/code/__torch__.py":
            dst.writestr(i, src.read(i))
print("ok")
]==]

local TOP_KEYS = {
  "w", "h16", "zbuf",
  "a.scale", "a.nonpers", "a.pers", "a.mask", "a.lin.weight",
  "b.0.scale", "b.0.nonpers", "b.0.pers", "b.0.mask", "b.0.lin.weight",
  "b.1.scale", "b.1.nonpers", "b.1.pers", "b.1.mask", "b.1.lin.weight",
  "d.x-y.weight", "d.x-y.bias",
  "head.weight", "head.bias", "shared.weight", "shared.bias",
}

local CNN_KEYS = {
  "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
  "1.num_batches_tracked", "4.weight", "4.bias",
}

local assert_same_state_dict = H.assert_same_state_dict

describe("TorchScript archives", function()
  local dir
  local function P(name) return dir .. "/" .. name end
  setup(function()
    dir = H.tmpdir()
    assert.are.equal("ok\n", H.python(GEN, dir))
  end)
  teardown(function() H.rmdir(dir) end)

  describe("torch.load_state_dict", function()
    for _, name in ipairs({"cnn", "top", "traced", "frozen"}) do
      it("gives " .. name .. ".pt's state_dict(): same keys, order, dtypes, shapes and values", function()
        local ref = torch.load(P(name .. "_ref.pt"))
        assert_same_state_dict(ref, torch.load_state_dict(P(name .. ".pt")))
        assert_same_state_dict(ref, torch.load_state_dict(P(name .. ".pt"), {mmap = true}))
      end)
    end

    it("the fixtures cover what they should: PyTorch's keys", function()
      assert.are.same(CNN_KEYS, odict.keys(torch.load(P("cnn_ref.pt"))))
      assert.are.same(TOP_KEYS, odict.keys(torch.load(P("top_ref.pt"))))
      assert.are.same({"lin.weight", "lin.bias"}, odict.keys(torch.load(P("traced_ref.pt"))))
      assert.are.same({}, odict.keys(torch.load(P("frozen_ref.pt"))))
      -- the eager module leaves its non-persistent buffers out; the scripted one cannot
      local eager = odict.keys(torch.load(P("top_eager.pt")))
      local want = {}
      for _, k in ipairs(TOP_KEYS) do if not k:find("nonpers", 1, true) then want[#want + 1] = k end end
      assert.are.same(want, eager)
      -- the batch norm's statistics moved
      local cnn = torch.load(P("cnn_ref.pt"))
      assert.are.equal(1, cnn["1.num_batches_tracked"]:item())
    end)

    it("keeps parameters' requires_grad and one module's tensors under both names", function()
      local sd = torch.load_state_dict(P("top.pt"))
      assert.is_true(sd["w"]:requires_grad())
      assert.is_true(sd["a.lin.weight"]:requires_grad())
      assert.is_false(sd["zbuf"]:requires_grad())
      assert.is_true(rawequal(sd["head.weight"], sd["shared.weight"]))
      assert.is_nil(sd["plain"])
      assert.is_nil(sd["a.nothing"])
      assert.is_nil(sd["pair.a"])
    end)

    it("is the state dict torch.load's tree gives (serialize.state_dict_of)", function()
      local serialize = require("ltorch.serialize")
      local ref = torch.load(P("cnn_ref.pt"))
      assert_same_state_dict(ref, serialize.state_dict_of(torch.load(P("cnn.pt"))))
      assert_same_state_dict(ref, ts.state_dict(torch.load(P("cnn.pt"))))
    end)

    it("names a module whose state its own code rebuilds", function()
      assert.has_error(function() torch.load_state_dict(P("gs.pt")) end,
        P("gs.pt") .. ": TorchScript module: '0' (__torch__.GS) pickles its state through " ..
        "__getstate__; its attributes are rebuilt by its code, which ltorch does not run")
    end)
  end)

  describe("torch.load", function()
    it("gives the inert object tree with the class definitions", function()
      local v = torch.load(P("cnn.pt"))
      assert.is_true(ts.is_torchscript(v))
      assert.are.equal("__torch__.torch.nn.modules.container.Sequential", v.__global)
      local conv = v.state["0"]
      assert.are.equal("__torch__.torch.nn.modules.conv.Conv2d", conv.__global)
      local ref = torch.load(P("cnn_ref.pt"))
      assert.is_true(torch.equal(ref["0.weight"], conv.state.weight))
      assert.are.equal(true, v.state.training)
      local c = v.__torchscript.classes
      assert.are.same({name = "__torch__.torch.nn.modules.batchnorm.BatchNorm2d",
        file = "code/__torch__/torch/nn/modules/batchnorm.py", module = true,
        parameters = {"weight", "bias"}, buffers = {"running_mean", "running_var", "num_batches_tracked"},
        setstate = false}, c["__torch__.torch.nn.modules.batchnorm.BatchNorm2d"])
      assert.are.same({}, c["__torch__.torch.nn.modules.container.Sequential"].parameters)
    end)

    it("gives the other attributes too: plain tensors, scripted class objects", function()
      local v = torch.load(P("top.pt"), {unknown = "error"})
      assert.are.same({1, 2}, v.state.plain:tolist())
      assert.are.equal("__torch__.Pair", v.state.pair.__global)
      assert.are.equal(false, v.__torchscript.classes["__torch__.Pair"].module)
      assert.are.equal(true, v.__torchscript.classes["__torch__.Child"].module)
      -- TorchScript writes a module under two names as two objects sharing their tensors
      assert.are_not.equal(v.state.head, v.state.shared)
      assert.is_true(rawequal(v.state.head.state.weight, v.state.shared.state.weight))
      assert.are.equal(torch.null, v.state.a.state.nothing)
    end)

    it("names an object whose class has no definition", function()
      assert.has_error(function() torch.load(P("nocode.pt")) end,
        P("nocode.pt") .. ": TorchScript class __torch__.Top has no definition under code/")
    end)

    it("is refused by the C loader unless asked for", function()
      local core = require("ltorch.core")
      assert.has_error(function() core._pt_load(P("cnn.pt"), {null = torch.null, odict_from = odict.from}) end,
        P("cnn.pt") .. ": a TorchScript archive (constants.pkl), not a torch.save file; " ..
        "ltorch cannot run TorchScript")
    end)
  end)

  describe("ltorch inspect", function()
    it("shows the state dict's module tree and says the file is TorchScript", function()
      local r = inspect.report(P("top.pt"))
      local keys = {}
      for _, t in ipairs(r.tensors) do keys[#keys + 1] = t.key end
      assert.are.same(TOP_KEYS, keys)
      local text = inspect.render(r)
      assert.is_truthy(text:find("\na TorchScript archive (torch.jit.save) of Top, not run; " ..
        "its state dict, by PyTorch's names:\n", 1, true))
      assert.is_truthy(text:find("module tree", 1, true))
      local r2 = inspect.render(inspect.report(P("cnn.pt")))
      assert.is_truthy(r2:find("a TorchScript archive (torch.jit.save) of " ..
        "torch.nn.modules.container.Sequential, not run", 1, true))
    end)
  end)
end)

describe("torchscript.parse_classes", function()
  it("reads class headers and the __parameters__ / __buffers__ lists, nothing else", function()
    local c = ts.parse_classes({
      ["__torch__/m.py"] = table.concat({
        "class A(Module):",
        '  __parameters__ = ["weight", \'b\\"q\', ]',
        "  __buffers__ = [",
        '    "x\\x41\\101\\n",',
        '    "y", ]',
        "  weight : Tensor",
        "  def __setstate__(self: __torch__.m.A,",
        "    s: Tuple[Tensor]) -> NoneType:",
        '    __parameters__ = ["not", "this"]',
        "    return None",
        "class P:",
        "  a : Tensor",
        "def f(x: Tensor) -> Tensor:",
        '  __buffers__ = ["nor", "this"]',
        "  return x",
      }, "\n"),
      ["__torch__.py"] = "class Net(Module):\n  __parameters__ = []\n  __buffers__ = []\n",
    })
    assert.are.same({name = "__torch__.m.A", file = "code/__torch__/m.py", module = true,
      parameters = {"weight", 'b"q'}, buffers = {"xAA\n", "y"}, setstate = true}, c["__torch__.m.A"])
    assert.are.same({name = "__torch__.m.P", file = "code/__torch__/m.py", module = false,
      parameters = {}, buffers = {}, setstate = false}, c["__torch__.m.P"])
    assert.are.same({name = "__torch__.Net", file = "code/__torch__.py", module = true,
      parameters = {}, buffers = {}, setstate = false}, c["__torch__.Net"])
  end)

  it("names a list it cannot read", function()
    assert.has_error(function()
      ts.parse_classes({["__torch__/m.py"] = "class A(Module):\n  x : int\n  __buffers__ = [f(1)]\n"})
    end, "code/__torch__/m.py line 3: cannot read the __buffers__ list of class __torch__.m.A")
  end)
end)
