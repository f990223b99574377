-- nn: modules in Lua (require("ltorch").nn). nn.module defines a class;
-- the built-in layers have PyTorch's names, parameters and defaults.
local base = require("ltorch.nn.module")

local nn = {
  module = base.module,
  Parameter = base.Parameter,
  buffer = base.buffer,
  is_module = base.is_module,
  is_class = base.is_class,
  Module = base.Module,       -- the methods every module has
  classes = base.registry,    -- class name -> class (read only by convention)
  contents = base.contents,   -- what an instance holds (for whole-module files)
  restore = base.restore,     -- fill an instance made by cls.raw() (ditto)
  functional = require("ltorch.nn.functional"),  -- torch.nn.functional: PyTorch's F
  utils = {rnn = require("ltorch.nn.rnn_utils")},  -- torch.nn.utils.rnn: packed sequences
}

local BUILTINS = {
  -- containers
  "Sequential", "ModuleList", "ModuleDict",
  -- linear, convolution, embedding
  "Linear", "Conv2d", "Embedding",
  "Conv1d", "ConvTranspose2d",
  -- normalisation
  "BatchNorm2d", "LayerNorm",
  "BatchNorm1d", "GroupNorm",
  -- activations
  "ReLU", "GELU", "Sigmoid", "Tanh", "Softmax",
  "LeakyReLU", "SiLU", "ELU", "Softplus", "Hardswish", "Hardsigmoid", "Mish", "ReLU6", "LogSoftmax",
  -- pooling, shape, regularisation
  "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Identity", "Dropout",
  "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "Upsample",
  -- attention and recurrent layers
  "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
  "TransformerDecoder", "Transformer", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell",
}
nn.BUILTINS = BUILTINS

package.loaded["ltorch.nn"] = nn
for _, name in ipairs(BUILTINS) do nn[name] = require("ltorch.nn." .. name) end

return nn
