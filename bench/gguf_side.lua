-- The GGUF rows of `make bench`: makes the files (ltorch writes them; there
-- is no other GGUF writer here) and prints their sizes.
--   gguf_side.lua make DIR -> writes DIR/f16.gguf (256 MiB of F16 in 8
--   tensors of 4096 x 4096), DIR/q8_0.gguf and DIR/q4_0.gguf (the same 128 Mi
--   weights quantized; they load dequantized to float32, 512 MiB)
local torch = require("ltorch")
local odict = require("ltorch.odict")

local cmd, dir = ...
assert(cmd == "make" and dir, "usage: gguf_side.lua make DIR")
torch.manual_seed(0)
local md = odict.new()
md["general.architecture"] = "bench"
local f16, f32 = odict.new(), odict.new()
for i = 1, 8 do
  local w = torch.randn(4096, 4096)
  f32["blk." .. i .. ".weight"] = w
  f16["blk." .. i .. ".weight"] = w:to("float16")
end
torch.save({metadata = md, tensors = f16}, dir .. "/f16.gguf")
for _, q in ipairs({"q8_0", "q4_0"}) do
  torch.save(f32, dir .. "/" .. q .. ".gguf", {metadata = md, quantize = q})
end
