-- resnet.lua: torchvision 0.14's ResNet (torchvision/models/resnet.py):
-- conv1 bn1 relu maxpool layer1..layer4 avgpool fc. A BasicBlock is conv1
-- bn1 relu conv2 bn2 [downsample]; a Bottleneck (ResNet v1.5: the stride on
-- the 3x3 conv2) is conv1 bn1 conv2 bn2 conv3 bn3 relu [downsample]; a
-- downsample is Sequential(conv1x1, norm). Init as torchvision: convs
-- kaiming-normal (fan_out, relu), norms weight 1 / bias 0, fc PyTorch's
-- Linear default; zero_init_residual zeroes each block's last norm weight.
local torch = require("ltorch")
local base = require("ltorch.nn.module")
local misc = require("ltorch.models.misc")
local nn = torch.nn
local init = misc.init

local M = {}

local function conv3x3(cin, cout, stride, groups, dilation)
  dilation = dilation or 1
  return nn.Conv2d(cin, cout, 3, {stride = stride or 1, padding = dilation, groups = groups or 1,
    bias = false, dilation = dilation})
end

local function conv1x1(cin, cout, stride)
  return nn.Conv2d(cin, cout, 1, {stride = stride or 1, bias = false})
end

-- the norm_layer argument of a block or ResNet: nil/None gives BatchNorm2d
local function norm_of(v, class)
  if v == nil or misc.is_none(v) then return nn.BatchNorm2d end
  return misc.factory(v, "norm_layer", class)
end

-- a block's last fields: the downsample child (when given) and its stride
local function set_downsample(self, a, stride)
  if a.downsample ~= nil and not misc.is_none(a.downsample) then self.downsample = a.downsample end
  self.stride = stride
end

-- a block's output: relu(out + identity), identity being x through the
-- downsample child when the block has one
local function residual(self, x, out)
  local identity = x
  if self.downsample then identity = self.downsample(x) end
  return self.relu(out + identity)
end

local BLOCK_ARGS = {"inplanes", "planes", "stride", "downsample", "groups", "base_width", "dilation", "norm_layer"}

M.BasicBlock = base.module("BasicBlock", {
  expansion = 1,
  -- BasicBlock(inplanes, planes [, stride = 1, downsample, groups = 1,
  -- base_width = 64, dilation = 1, norm_layer = nn.BatchNorm2d])
  initialize = function(self, ...)
    local a = base.args("BasicBlock", BLOCK_ARGS, ...)
    local norm_layer = norm_of(a.norm_layer, "BasicBlock")
    if (a.groups or 1) ~= 1 or (a.base_width or 64) ~= 64 then
      base.fail("BasicBlock", "only groups=1 and base_width=64 are supported")
    end
    if (a.dilation or 1) > 1 then base.fail("BasicBlock", "dilation > 1 is not supported") end
    local stride = a.stride or 1
    self.conv1 = conv3x3(a.inplanes, a.planes, stride)
    self.bn1 = norm_layer(a.planes)
    self.relu = nn.ReLU(true)
    self.conv2 = conv3x3(a.planes, a.planes)
    self.bn2 = norm_layer(a.planes)
    set_downsample(self, a, stride)
  end,
  forward = function(self, x)
    local out = self.relu(self.bn1(self.conv1(x)))
    return residual(self, x, self.bn2(self.conv2(out)))
  end,
}, misc.LIB)

M.Bottleneck = base.module("Bottleneck", {
  expansion = 4,
  -- Bottleneck(inplanes, planes [, stride = 1, downsample, groups = 1,
  -- base_width = 64, dilation = 1, norm_layer = nn.BatchNorm2d]); the
  -- inner width is planes * base_width / 64 * groups, the output planes * 4
  initialize = function(self, ...)
    local a = base.args("Bottleneck", BLOCK_ARGS, ...)
    local norm_layer = norm_of(a.norm_layer, "Bottleneck")
    local groups = a.groups or 1
    local width = math.floor(a.planes * ((a.base_width or 64) / 64.0)) * groups
    local stride = a.stride or 1
    self.conv1 = conv1x1(a.inplanes, width)
    self.bn1 = norm_layer(width)
    self.conv2 = conv3x3(width, width, stride, groups, a.dilation or 1)
    self.bn2 = norm_layer(width)
    self.conv3 = conv1x1(width, a.planes * 4)
    self.bn3 = norm_layer(a.planes * 4)
    self.relu = nn.ReLU(true)
    set_downsample(self, a, stride)
  end,
  forward = function(self, x)
    local out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return residual(self, x, self.bn3(self.conv3(out)))
  end,
}, misc.LIB)

M.ResNet = base.module("ResNet", {
  -- ResNet(block, layers [, num_classes = 1000, zero_init_residual = false,
  -- groups = 1, width_per_group = 64, replace_stride_with_dilation =
  -- {false, false, false}, norm_layer = nn.BatchNorm2d]): block is
  -- models.BasicBlock or models.Bottleneck, layers the blocks per stage
  initialize = function(self, ...)
    local C = "ResNet"
    local a = base.args(C, {"block", "layers", "num_classes", "zero_init_residual", "groups",
      "width_per_group", "replace_stride_with_dilation", "norm_layer"}, ...)
    local block = a.block
    base.check(block == M.BasicBlock or block == M.Bottleneck, C,
      "block must be models.BasicBlock or models.Bottleneck, got %s", tostring(block))
    local layers = a.layers
    base.check(type(layers) == "table" and #layers == 4, C, "layers must be a list of 4 block counts")
    local norm_layer = norm_of(a.norm_layer, C)
    local dilate = a.replace_stride_with_dilation
    if dilate == nil or misc.is_none(dilate) then dilate = {false, false, false} end
    base.check(type(dilate) == "table" and #dilate == 3, C,
      "replace_stride_with_dilation should be nil or a 3-element list")
    local expansion = block.expansion
    local groups, base_width = a.groups or 1, a.width_per_group or 64
    self.inplanes = 64
    self.dilation = 1
    self.groups = groups
    self.base_width = base_width
    self.conv1 = nn.Conv2d(3, 64, 7, {stride = 2, padding = 3, bias = false})
    self.bn1 = norm_layer(64)
    self.relu = nn.ReLU(true)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    local planes = {64, 128, 256, 512}
    for i = 1, 4 do
      local stride = i == 1 and 1 or 2
      local previous_dilation = self.dilation
      if i > 1 and dilate[i - 1] then
        self.dilation = self.dilation * stride
        stride = 1
      end
      local downsample
      if stride ~= 1 or self.inplanes ~= planes[i] * expansion then
        downsample = nn.Sequential(conv1x1(self.inplanes, planes[i] * expansion, stride),
          norm_layer(planes[i] * expansion))
      end
      local blocks = {block(self.inplanes, planes[i], stride, downsample, groups, base_width,
        previous_dilation, norm_layer)}
      self.inplanes = planes[i] * expansion
      for _ = 2, layers[i] do
        blocks[#blocks + 1] = block(self.inplanes, planes[i], {groups = groups, base_width = base_width,
          dilation = self.dilation, norm_layer = norm_layer})
      end
      self["layer" .. i] = nn.Sequential(table.unpack(blocks))
    end
    self.avgpool = nn.AdaptiveAvgPool2d({1, 1})
    self.fc = nn.Linear(512 * expansion, a.num_classes or 1000)
    for _, m in ipairs(self:modules()) do
      local name = m:class_name()
      if name == "Conv2d" then
        init.kaiming_normal_(m.weight, "fan_out")
      elseif (name == "BatchNorm2d" or name == "GroupNorm") and m.weight then
        init.ones_(m.weight)
        init.zeros_(m.bias)
      end
    end
    if a.zero_init_residual then
      for _, m in ipairs(self:modules()) do
        local last = m:class_name() == "Bottleneck" and m.bn3 or m:class_name() == "BasicBlock" and m.bn2
        if last and last.weight then init.zeros_(last.weight) end
      end
    end
  end,
  forward = function(self, x)
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    x = self.avgpool(x):flatten(2)
    return self.fc(x)
  end,
}, misc.LIB)

return M
