-- make_seeds.lua OUT: the ltorch-written seeds of the fuzz targets
-- (fuzz/make_seeds.sh runs it): small tensors and state dicts saved in
-- each format, OUT/<target>/<name>. Uses the build in $LTORCH_BUILD
-- (default build).
local out = assert(arg[1], "usage: make_seeds.lua OUT")
local build = os.getenv("LTORCH_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local torch = require("ltorch")
local json = require("ltorch.json")
torch.manual_seed(18)

local count = 0
local function save(target, name, value, opts)
  local path = out .. "/" .. target .. "/" .. name
  local ok, err = pcall(torch.save, value, path, opts)
  if ok then count = count + 1
  else io.stderr:write("make_seeds: ", name, ": ", tostring(err), "\n") end
end
local function write(target, name, s)
  local f = assert(io.open(out .. "/" .. target .. "/" .. name, "wb"))
  f:write(s)
  f:close()
  count = count + 1
end

local m = torch.arange(12):to("float32"):view(3, 4)
local function dict(dtypes)
  local d = torch.odict and torch.odict() or {}
  for i, dt in ipairs(dtypes) do d["layer" .. i .. ".weight"] = m:to(dt) end
  return d
end
local floats = {"float32", "float64", "float16", "bfloat16"}
local ints = {"int64", "int32", "int16", "int8", "uint8", "bool"}
local sd = dict({"float32", "float16", "int64"})
local small = {w = torch.randn(2, 3), b = torch.zeros(3)}

-- .pt: state dicts, nested values, views sharing a storage, one tensor
save("pt", "sd.pt", sd)
save("pt", "floats.pt", dict(floats))
save("pt", "ints.pt", dict(ints))
save("pt", "tensor.pt", m)
save("pt", "scalar.pt", torch.tensor(3.5))
save("pt", "empty_tensor.pt", torch.zeros(0, 4))
save("pt", "views.pt", {a = m, t = m:t(), row = m[2], col = m:select(2, 3)})
save("pt", "nested.pt", {epoch = 3, lr = 0.1, name = "run", flags = {true, false}, model = small,
  list = {1, 2.5, "x", {m[1]}}})
save("pt", "empty.pt", {})

-- safetensors
save("safetensors", "sd.safetensors", sd)
save("safetensors", "floats.safetensors", dict(floats))
save("safetensors", "ints.safetensors", dict(ints))
save("safetensors", "meta.safetensors", small, {metadata = {format = "pt", note = "seed"}})
save("safetensors", "empty.safetensors", {})

-- .npy: one tensor each
for _, dt in ipairs({"float32", "float64", "float16"}) do save("npy", dt .. ".npy", m:to(dt)) end
for _, dt in ipairs(ints) do save("npy", dt .. ".npy", m:to(dt)) end
save("npy", "scalar.npy", torch.tensor(2.0))
save("npy", "rank4.npy", torch.zeros(1, 2, 1, 3))

-- .npz, stored and deflated
save("npz", "sd.npz", sd)
save("npz", "sd_deflated.npz", sd, {compress = true})
save("npz", "small.npz", small, {compress = true})

-- TorchSharp
save("torchsharp", "sd.dat", sd)
save("torchsharp", "ints.dat", dict(ints))
save("torchsharp", "small.dat", small)

-- Torch7: tensors, tables of them, shared storages
save("t7", "tensor.t7", m)
save("t7", "table.t7", {weight = m, bias = torch.zeros(4), n = 3, name = "linear", on = true})
save("t7", "shared.t7", {m, m:t(), m[2]})
save("t7", "ints.t7", dict({"int64", "int32", "int16", "int8", "uint8"}))

-- GGUF: plain and quantized
local rows = torch.randn(4, 256)
save("gguf", "sd.gguf", dict({"float32", "float16"}))
save("gguf", "meta.gguf", {metadata = {["general.name"] = "seed", ["general.alignment"] = 64},
  tensors = {w = rows}})
for _, q in ipairs({"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
                    "q8_k", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4", "bf16"}) do
  save("gguf", q .. ".gguf", {w = rows}, {quantize = q})
end

-- JSON: values the encoder writes, and the headers of the safetensors seeds
local values = {
  {1, 2.5, -3, 1e300, "text", torch.null, true, false},
  {nested = {deep = {deeper = {1, {2, {3}}}}}, empty = {}, s = "tab\t nul\0 é ✓"},
  {big = math.maxinteger, small = math.mininteger, frac = 0.1},
  json.array({}),
}
for i, v in ipairs(values) do write("json", "value" .. i .. ".json", json.encode(v)) end
for _, name in ipairs({"sd", "floats", "meta"}) do
  local f = io.open(out .. "/safetensors/" .. name .. ".safetensors", "rb")
  if f then
    local head = f:read(8)
    local n = string.unpack("<I8", head)
    write("json", "header_" .. name .. ".json", f:read(n))
    f:close()
  end
end

print(string.format("make_seeds: %d ltorch-written seeds", count))
