-- resnet.lua: torchvision 0.14's ResNet with BasicBlock
-- (torchvision/models/resnet.py): conv1 bn1 relu maxpool layer1..layer4
-- avgpool fc; a block is conv1 bn1 relu conv2 bn2 [downsample = Sequential(
-- conv1x1, bn)]. Init as torchvision: convs kaiming-normal (fan_out, relu),
-- batch norms weight 1 / bias 0, fc PyTorch's Linear default.
local torch = require("ltorch")
local nn = torch.nn

local M = {}

-- kaiming_normal_(w, mode = "fan_out", nonlinearity = "relu")
local function kaiming_normal_fan_out(conv)
  local s = conv.weight:size()
  local fan_out = s[1] * s[3] * s[4]
  conv.weight = torch.randn(s) * math.sqrt(2 / fan_out)
  return conv
end

local function conv3x3(cin, cout, stride)
  return kaiming_normal_fan_out(nn.Conv2d(cin, cout, 3, {stride = stride or 1, padding = 1, bias = false}))
end

local function conv1x1(cin, cout, stride)
  return kaiming_normal_fan_out(nn.Conv2d(cin, cout, 1, {stride = stride or 1, bias = false}))
end

M.BasicBlock = nn.module("BasicBlock", {
  expansion = 1,
  -- BasicBlock(inplanes, planes [, stride = 1, downsample])
  initialize = function(self, inplanes, planes, stride, downsample)
    stride = stride or 1
    self.conv1 = conv3x3(inplanes, planes, stride)
    self.bn1 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU(true)
    self.conv2 = conv3x3(planes, planes)
    self.bn2 = nn.BatchNorm2d(planes)
    if downsample then self.downsample = downsample end
    self.stride = stride
  end,
  forward = function(self, x)
    local identity = x
    local out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.downsample then identity = self.downsample(x) end
    return self.relu(out + identity)
  end,
}, {builtin = true, lib = "ltorch.models"})

M.ResNet = nn.module("ResNet", {
  -- ResNet(layers [, {num_classes = 1000}]): layers = blocks per stage
  initialize = function(self, layers, opts)
    opts = opts or {}
    self.inplanes = 64
    self.conv1 = kaiming_normal_fan_out(nn.Conv2d(3, 64, 7, {stride = 2, padding = 3, bias = false}))
    self.bn1 = nn.BatchNorm2d(64)
    self.relu = nn.ReLU(true)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    local planes = {64, 128, 256, 512}
    for i = 1, 4 do
      local stride = i == 1 and 1 or 2
      local downsample
      if stride ~= 1 or self.inplanes ~= planes[i] then
        downsample = nn.Sequential(conv1x1(self.inplanes, planes[i], stride), nn.BatchNorm2d(planes[i]))
      end
      local blocks = {M.BasicBlock(self.inplanes, planes[i], stride, downsample)}
      self.inplanes = planes[i]
      for _ = 2, layers[i] do blocks[#blocks + 1] = M.BasicBlock(self.inplanes, planes[i]) end
      self["layer" .. i] = nn.Sequential(table.unpack(blocks))
    end
    self.avgpool = nn.AdaptiveAvgPool2d({1, 1})
    self.fc = nn.Linear(512, opts.num_classes or 1000)
  end,
  forward = function(self, x)
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    x = self.avgpool(x):flatten(2)
    return self.fc(x)
  end,
}, {builtin = true, lib = "ltorch.models"})

return M
