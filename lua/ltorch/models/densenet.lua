-- densenet.lua: torchvision 0.14's DenseNet-BC (torchvision/models/
-- densenet.py): features = Sequential(conv0 norm0 relu0 pool0, denseblock1
-- transition1 ... denseblock4, norm5), then relu, global average pooling
-- and classifier (Linear). A _DenseBlock (a ModuleDict) holds denselayer1..N;
-- each _DenseLayer (norm1 relu1 conv1 1x1, norm2 relu2 conv2 3x3) reads the
-- concatenation of the block input and every earlier layer's output, and
-- the block returns the concatenation of all. A _Transition (a Sequential)
-- is norm relu conv 1x1 pool (2x2 average). Init as torchvision: convs
-- kaiming-normal (fan_in), norms 1/0, Linear bias 0.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local odict = require("ltorch.odict")
local nn = torch.nn
local init = misc.init

local M = {}

M._DenseLayer = base.module("_DenseLayer", {
  -- _DenseLayer(num_input_features, growth_rate, bn_size, drop_rate [,
  -- memory_efficient = false]); memory_efficient (checkpointing) changes
  -- nothing here (no autograd)
  initialize = function(self, ...)
    local a = base.args("_DenseLayer", {"num_input_features", "growth_rate", "bn_size", "drop_rate",
      "memory_efficient"}, ...)
    local nin, k, bn = a.num_input_features, a.growth_rate, a.bn_size
    self.norm1 = nn.BatchNorm2d(nin)
    self.relu1 = nn.ReLU(true)
    self.conv1 = nn.Conv2d(nin, bn * k, 1, {stride = 1, bias = false})
    self.norm2 = nn.BatchNorm2d(bn * k)
    self.relu2 = nn.ReLU(true)
    self.conv2 = nn.Conv2d(bn * k, k, 3, {stride = 1, padding = 1, bias = false})
    self.drop_rate = (a.drop_rate or 0) + 0.0
    self.memory_efficient = a.memory_efficient == true
  end,
  -- the 1x1 bottleneck of the concatenated inputs (a list of tensors)
  bn_function = function(self, inputs)
    return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 2))))
  end,
  -- forward(x): x a tensor or a list of tensors (concatenated on dim 2)
  forward = function(self, x)
    local prev = torch.is_tensor(x) and {x} or x
    local out = self.conv2(self.relu2(self.norm2(self:bn_function(prev))))
    if self.drop_rate > 0 then out = torch.dropout(out, self.drop_rate, self.training) end
    return out
  end,
}, misc.LIB)

M._DenseBlock = base.module("_DenseBlock", {
  inherit = nn.ModuleDict,
  -- _DenseBlock(num_layers, num_input_features, bn_size, growth_rate,
  -- drop_rate [, memory_efficient = false])
  initialize = function(self, ...)
    local a = base.args("_DenseBlock", {"num_layers", "num_input_features", "bn_size", "growth_rate",
      "drop_rate", "memory_efficient"}, ...)
    for i = 1, a.num_layers do
      self:add_module("denselayer" .. i, M._DenseLayer(a.num_input_features + (i - 1) * a.growth_rate,
        a.growth_rate, a.bn_size, a.drop_rate, a.memory_efficient))
    end
  end,
  forward = function(self, x)
    local features = {x}
    for _, layer in ipairs(self:children()) do features[#features + 1] = layer(features) end
    return torch.cat(features, 2)
  end,
}, misc.LIB)

M._Transition = base.module("_Transition", {
  inherit = nn.Sequential,
  -- _Transition(num_input_features, num_output_features)
  initialize = function(self, ...)
    local a = base.args("_Transition", {"num_input_features", "num_output_features"}, ...)
    self.norm = nn.BatchNorm2d(a.num_input_features)
    self.relu = nn.ReLU(true)
    self.conv = nn.Conv2d(a.num_input_features, a.num_output_features, 1, {stride = 1, bias = false})
    self.pool = nn.AvgPool2d(2, 2)
  end,
}, misc.LIB)

M.DenseNet = base.module("DenseNet", {
  -- DenseNet([growth_rate = 32, block_config = {6, 12, 24, 16},
  -- num_init_features = 64, bn_size = 4, drop_rate = 0, num_classes = 1000,
  -- memory_efficient = false]), usually as a table of those
  initialize = function(self, ...)
    local C = "DenseNet"
    local a = base.args(C, {"growth_rate", "block_config", "num_init_features", "bn_size", "drop_rate",
      "num_classes", "memory_efficient"}, ...)
    local k = a.growth_rate or 32
    local config = a.block_config or {6, 12, 24, 16}
    base.check(type(config) == "table" and #config > 0, C, "block_config must be a list of layer counts")
    local nf = a.num_init_features or 64
    local bn_size, drop_rate = a.bn_size or 4, a.drop_rate or 0
    local stem = odict.new()
    stem.conv0 = nn.Conv2d(3, nf, 7, {stride = 2, padding = 3, bias = false})
    stem.norm0 = nn.BatchNorm2d(nf)
    stem.relu0 = nn.ReLU(true)
    stem.pool0 = nn.MaxPool2d(3, 2, 1)
    self.features = nn.Sequential(stem)
    for i, n in ipairs(config) do
      self.features:add_module("denseblock" .. i, M._DenseBlock(n, nf, bn_size, k, drop_rate,
        a.memory_efficient == true))
      nf = nf + n * k
      if i ~= #config then
        self.features:add_module("transition" .. i, M._Transition(nf, nf // 2))
        nf = nf // 2
      end
    end
    self.features:add_module("norm5", nn.BatchNorm2d(nf))
    self.classifier = nn.Linear(nf, a.num_classes or 1000)
    for _, m in ipairs(self:modules()) do
      local name = m:class_name()
      if name == "Conv2d" then
        init.kaiming_normal_(m.weight)
      elseif name == "BatchNorm2d" then
        init.ones_(m.weight)
        init.zeros_(m.bias)
      elseif name == "Linear" then
        init.zeros_(m.bias)
      end
    end
  end,
  forward = function(self, x)
    local out = torch.relu(self.features(x))
    out = torch.adaptive_avg_pool2d(out, {1, 1}):flatten(2)
    return self.classifier(out)
  end,
}, misc.LIB)

-- the state dict of an old torchvision DenseNet checkpoint with its keys
-- renamed as torchvision's _load_state_dict does ("denselayer1.norm.1.weight"
-- -> "denselayer1.norm1.weight"); other keys are kept, in order
function M.convert_state_dict(sd)
  local out = odict.new()
  for key, t in pairs(sd) do
    local head, num, tail = key:match("^(.*denselayer%d+%.[nrc][a-z]+)%.([12])(%.[a-z_]+)$")
    local ok = head and (head:match("%.norm$") or head:match("%.relu$") or head:match("%.conv$"))
      and (tail == ".weight" or tail == ".bias" or tail == ".running_mean" or tail == ".running_var")
    out[ok and head .. num .. tail or key] = t
  end
  return out
end

return M
