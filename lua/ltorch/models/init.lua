-- models: torchvision's architectures in Lua (require("ltorch.models") or
-- torch.models), with torchvision 0.14's parameter names so that its state
-- dicts load directly: models.alexnet(), models.resnet18().
local M = {}

local alexnet = require("ltorch.models.alexnet")
local resnet = require("ltorch.models.resnet")

M.AlexNet = alexnet.AlexNet
M.ResNet, M.BasicBlock = resnet.ResNet, resnet.BasicBlock

-- alexnet([{num_classes = 1000, dropout = 0.5}])
function M.alexnet(opts) return alexnet.AlexNet(opts) end

-- resnet18([{num_classes = 1000}])
function M.resnet18(opts) return resnet.ResNet({2, 2, 2, 2}, opts) end

-- resnet34([{num_classes = 1000}])
function M.resnet34(opts) return resnet.ResNet({3, 4, 6, 3}, opts) end

return M
