-- bench.lua: `make bench`. Times ltorch and real PyTorch (/usr/bin/python3,
-- torch 1.13) on the same files in the same run. Every measurement is a fresh
-- process with the file in the page cache (as a second run of a program meets
-- it) and no writeback pending (`sync` before each run, untimed); the median
-- of REPS runs is reported, with peak resident memory above the process's
-- baseline. `cp` of the same file is the physical reference. Then forward
-- passes of four models, PyTorch and ltorch on the same weights and input.

local REPS = tonumber(os.getenv("BENCH_REPS") or "5")
local dir = os.getenv("BENCH_DIR") or "bench/out"
local py = "/usr/bin/python3"
local lua = "lua5.4 -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path; package.cpath=\"build/?.so;\"..package.cpath'"

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local clock = require("ltorch.core")._clock

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("command failed: " .. cmd .. "\n" .. out) end
  return out
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function measure(cmd, pre)
  local ts, ms = {}, {}
  for _ = 1, REPS do
    if pre then os.execute(pre) end   -- untimed: e.g. removing a save's target
    -- the file system's writeback of earlier saves would otherwise run
    -- during this measurement; flush it first, outside the timing
    os.execute("sync")
    local t, m = sh(cmd):match("([%d%.e%-]+)%s+([%d%.e%-]+)")
    ts[#ts + 1], ms[#ms + 1] = tonumber(t), tonumber(m)
  end
  return median(ts), median(ms)
end

local function size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

os.execute("mkdir -p " .. dir)
if not io.open(dir .. "/resnet18.pt") then
  io.stderr:write("making benchmark files in " .. dir .. " ...\n")
  sh(py .. " bench/torch_side.py make " .. dir)
end

-- bytes per second of `cp` on path (the median of REPS copies)
local function cp_rate(path)
  local ct = {}
  for _ = 1, REPS do
    os.remove(dir .. "/copy.bin")
    local t0 = clock()
    os.execute("cp " .. path .. " " .. dir .. "/copy.bin")
    ct[#ct + 1] = clock() - t0
  end
  return size(path) / median(ct)
end

local files = {
  {"256 MiB state dict, 64 tensors", "big.pt"},
  {"20,000 small tensors", "small.pt"},
  {"ResNet-18 state dict", "resnet18.pt"},
}

local rows = {}
local function row(case, op, t_torch, t_lt, m_torch, m_lt)
  rows[#rows + 1] = {case, op, t_torch, t_lt, m_torch, m_lt}
end

for _, f in ipairs(files) do
  local name, path = f[1], dir .. "/" .. f[2]
  -- warm the page cache
  sh("cat " .. path .. " > /dev/null")
  local tl, ml = measure(py .. " bench/torch_side.py load " .. path)
  local el, eml = measure(lua .. " bench/ltorch_side.lua load " .. path)
  local mm, mml = measure(lua .. " bench/ltorch_side.lua load " .. path .. " mmap")
  row(name, "load (eager)", tl, el, ml, eml)
  row(name, "open (mmap)", tl, mm, ml, mml)
  -- saves to a new path (the target removed before each run) and over the
  -- file the run before saved; cp to a new path is the write-bandwidth reference
  local out_t, out_l = dir .. "/out_torch.pt", dir .. "/out_ltorch.pt"
  local tn, mtn = measure(py .. " bench/torch_side.py save " .. path .. " " .. out_t, "rm -f " .. out_t)
  local ln, mln = measure(lua .. " bench/ltorch_side.lua save " .. path .. " " .. out_l, "rm -f " .. out_l)
  row(name, "save (new)", tn, ln, mtn, mln)
  local ts, ms = measure(py .. " bench/torch_side.py save " .. path .. " " .. out_t)
  local ls, lms = measure(lua .. " bench/ltorch_side.lua save " .. path .. " " .. out_l)
  row(name, "save (over)", ts, ls, ms, lms)
  local rate = cp_rate(path)
  local cpt = size(path) / rate
  rows[#rows + 1] = {name, string.format("cp: %.0f MB/s (%.1f MB, %.1f ms); ltorch save new %.2fx, over %.2fx the time of cp",
    rate / 1e6, size(path) / 1e6, cpt * 1000, ln / cpt, ls / cpt)}
end

-- math on what was loaded: load + sum of every tensor (eager; ltorch mmap
-- too), and one sum and one cast over a 256 MiB float32 tensor
do
  local path = dir .. "/big.pt"
  local name = "256 MiB state dict, 64 tensors"
  local tl, ml = measure(py .. " bench/torch_side.py loadsum " .. path)
  local el, eml = measure(lua .. " bench/ltorch_side.lua loadsum " .. path)
  local mm, mml = measure(lua .. " bench/ltorch_side.lua loadsum " .. path .. " mmap")
  row(name, "load+sum", tl, el, ml, eml)
  row(name, "mmap+sum", tl, mm, ml, mml)
  local ts = measure(py .. " bench/torch_side.py sum")
  local ls = measure(lua .. " bench/ltorch_side.lua sum")
  row("256 MiB float32 tensor", "sum", ts, ls)
  local tc = measure(py .. " bench/torch_side.py cast")
  local lc = measure(lua .. " bench/ltorch_side.lua cast")
  row("256 MiB float32 tensor", "to bfloat16", tc, lc)
end

-- forward passes: the same model, weights and input in both, each timed in
-- one process (median of REPS after two warm-up runs), both on all cores
local FORWARD = {
  {"ResNet-18, 1x3x224x224", "resnet18"},
  {"MobileNetV2, 1x3x224x224", "mobilenet_v2"},
  {"Transformer enc. 2x256, 4x128", "transformer"},
  {"LSTM 2x256, 8x64 steps", "lstm"},
}
for _, c in ipairs(FORWARD) do
  local fixture = dir .. "/fwd_" .. c[2] .. ".pt"
  local reps = tostring(math.max(REPS, 5))
  local tt = tonumber(sh(py .. " bench/forward_torch.py " .. c[2] .. " " .. fixture .. " " .. reps))
  local ok, out = pcall(sh, lua .. " bench/forward_ltorch.lua " .. c[2] .. " " .. fixture .. " " .. reps .. " 2>&1")
  if ok then
    rows[#rows + 1] = {c[1], "forward", tt, tonumber(out)}
  else
    rows[#rows + 1] = {c[1], "forward: ltorch failed: " .. tostring(out):match("[^\n]*\n([^\n]*)")}
  end
end

-- GGUF: a 256 MiB F16 file loaded eagerly and mapped, and Q8_0 / Q4_0
-- files of the same 128 Mi weights dequantized to float32 while loading;
-- PyTorch has no GGUF reader, so the reference is cp's bandwidth on the file
if not io.open(dir .. "/f16.gguf") then
  io.stderr:write("making GGUF benchmark files in " .. dir .. " ...\n")
  sh(lua .. " bench/gguf_side.lua make " .. dir)
end
for _, g in ipairs({{"f16.gguf", "GGUF F16, 256 MiB"}, {"q8_0.gguf", "GGUF Q8_0, 128 Mi weights"},
                    {"q4_0.gguf", "GGUF Q4_0, 128 Mi weights"}}) do
  local path = dir .. "/" .. g[1]
  sh("cat " .. path .. " > /dev/null")
  local el, eml = measure(lua .. " bench/ltorch_side.lua load " .. path)
  local out_bytes = g[1] == "f16.gguf" and size(path) or 8 * 4096 * 4096 * 4   -- float32 out
  rows[#rows + 1] = {g[2], string.format("load (eager)  ltorch %.1f ms, %.0f MB/s of tensors out, %.1f MiB peak; " ..
    "cp %.0f MB/s", el * 1000, out_bytes / el / 1e6, eml / 1048576, cp_rate(path) / 1e6)}
  if g[1] == "f16.gguf" then
    local mm = measure(lua .. " bench/ltorch_side.lua load " .. path .. " mmap")
    rows[#rows + 1] = {g[2], string.format("open (mmap)   ltorch %.2f ms", mm * 1000)}
  end
end

-- remote: the 256 MiB state dict loaded eagerly from nginx on loopback,
-- with 1, 4 and 8 connections, against `curl -o /dev/null` of the same URL
do
  package.path = "spec/?.lua;" .. package.path
  local ok, H = pcall(require, "http_helper")
  local server = ok and select(2, pcall(H.nginx, (io.popen("readlink -f " .. dir):read("l"))))
  if type(server) == "table" then
    local url = server.url .. "/big.pt"
    sh("cat " .. dir .. "/big.pt > /dev/null")
    -- curl and the three loads take turns, so the machine's slow moments
    -- (this VM's host reclaiming memory) fall on all of them alike
    local ct, lts, conns = {}, {{}, {}, {}}, {1, 4, 8}
    for i = 1, math.max(REPS, 7) do
      local t0 = clock()
      sh("curl -s -o /dev/null " .. url)
      ct[i] = clock() - t0
      for k, n in ipairs(conns) do
        lts[k][i] = tonumber(sh(lua .. " bench/ltorch_side.lua urlload " .. url .. " " .. n):match("^(%S+)"))
      end
    end
    local curl_t = median(ct)
    local parts = {}
    for k, n in ipairs(conns) do
      local lt = median(lts[k])
      parts[#parts + 1] = string.format("%d conn %.0f ms (%.2fx curl)", n, lt * 1000, lt / curl_t)
    end
    rows[#rows + 1] = {"256 MiB .pt over HTTP", string.format("load (eager)  curl %.0f ms; ltorch %s",
      curl_t * 1000, table.concat(parts, ", "))}
    server.stop()
  else
    rows[#rows + 1] = {"256 MiB .pt over HTTP", "not run: nginx did not start: " .. tostring(server)}
  end
end

-- CUDA: a 1 GiB state dict in the page cache loaded to the GPU, against
-- the host-to-device bandwidth of synchronous copies from pinned memory on
-- the same machine (the most a load through staging buffers can reach)
do
  local torch = require("ltorch")
  local core = require("ltorch.core")
  if torch.cuda.is_available() then
    local path = dir .. "/gpu1g.safetensors"
    if not io.open(path) then
      sh(lua .. " -e 'local torch = require(\"ltorch\"); local sd = {}; " ..
        "for i = 1, 16 do sd[\"w\" .. i] = torch.randn(4096, 4096) end; torch.save(sd, \"" .. path .. "\")'")
    end
    sh("cat " .. path .. " > /dev/null")
    local n = size(path)
    local pinned = {}
    for i = 1, REPS do pinned[i] = core._cuda_pinned_h2d(0, n) end
    local pt = median(pinned)
    local gl = measure(lua .. " bench/ltorch_side.lua gpuload " .. path)
    rows[#rows + 1] = {"1 GiB state dict to cuda:0", string.format("load (device) %.1f ms, %.1f GB/s; pinned " ..
      "host-to-device %.1f GB/s: %.0f%% of it", gl * 1000, n / gl / 1e9, n / pt / 1e9, 100 * pt / gl)}
  else
    rows[#rows + 1] = {"CUDA", "not run: " .. select(2, core._cuda_count())}
  end
end

local function ms(t) return string.format("%8.1f", t * 1000) end
local function mib(b) return string.format("%7.1f", b / 1048576) end
print(string.format("%-31s %-13s %8s %8s %7s %8s %8s", "case", "operation", "torch ms", "ltorch ms", "ratio", "torch MiB", "ltorch MiB"))
print(string.rep("-", 98))
for _, r in ipairs(rows) do
  if #r == 2 then
    print(string.format("%-31s %s", r[1], r[2]))
  else
    print(string.format("%-31s %-13s %s %s %6.1fx %s %s", r[1], r[2], ms(r[3]), ms(r[4]), r[3] / r[4],
      r[5] and mib(r[5]) or "      -", r[6] and mib(r[6]) or "      -"))
  end
end
print("ratio = torch time / ltorch time (higher is better for ltorch); MiB = peak RSS above the process baseline")
