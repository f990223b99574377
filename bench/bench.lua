-- bench.lua: `make bench`. Times ltorch and real PyTorch (/usr/bin/python3,
-- torch 1.13) on the same files in the same run. Every measurement is a fresh
-- process with the file in the page cache (as a second run of a program meets
-- it) and no writeback pending (`sync` before each run, untimed); the median
-- of REPS runs is reported, with peak resident memory above the process's
-- baseline. The commands a row compares take turns, run after run, so the
-- VM's slow spells fall on each alike; and each side touches and frees the
-- memory its case needs before its timer (bench/torch_side.py, warm: this
-- VM hands freed pages back to its host after ~2 s, and memory the host
-- must back again costs several times the kernel's zeroing, so a process
-- right after another met warmer memory than one after a pause or after
-- PyTorch's second of imports). `cp` of the same file, taking turns with
-- the saves, is the physical reference. Then forward
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

-- run each of cmds ({cmd, pre} pairs) once per turn, REPS turns, so the
-- machine's slow moments (this VM's host backing freed memory again) fall on
-- all of them alike; the median seconds and peak memory of each, in order
local function measure_turns(cmds)
  local ts, ms = {}, {}
  for k = 1, #cmds do ts[k], ms[k] = {}, {} end
  for _ = 1, REPS do
    for k, c in ipairs(cmds) do
      if c[2] then os.execute(c[2]) end   -- untimed: e.g. removing a save's target
      -- the file system's writeback of earlier saves would otherwise run
      -- during this measurement; flush it first, outside the timing
      os.execute("sync")
      local t, m
      if type(c[1]) == "function" then t, m = c[1](), 0
      else t, m = sh(c[1]):match("([%d%.e%-]+)%s+([%d%.e%-]+)") end
      ts[k][#ts[k] + 1], ms[k][#ms[k] + 1] = tonumber(t), tonumber(m)
    end
  end
  local out = {}
  for k = 1, #cmds do out[2 * k - 1], out[2 * k] = median(ts[k]), median(ms[k]) end
  return table.unpack(out)
end

local function measure(cmd, pre)
  return measure_turns({{cmd, pre}})
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

-- one timed cp of path to dir/copy.bin (over it when it is there)
local function cp_once(path)
  return function()
    local t0 = clock()
    os.execute("cp " .. path .. " " .. dir .. "/copy.bin")
    return clock() - t0
  end
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
  local tl, ml, el, eml, mm, mml = measure_turns({
    {py .. " bench/torch_side.py load " .. path},
    {lua .. " bench/ltorch_side.lua load " .. path},
    {lua .. " bench/ltorch_side.lua load " .. path .. " mmap"}})
  row(name, "load (eager)", tl, el, ml, eml)
  row(name, "open (mmap)", tl, mm, ml, mml)
  -- saves to a new path (the target removed before each run) and over the
  -- file the run before saved, taking turns with cp of the same file to a
  -- new path and over the copy before (cp truncates it and writes in place)
  -- and with the floor: the file's bytes written from memory (torch_side.py write)
  local out_t, out_l, copy = dir .. "/out_torch.pt", dir .. "/out_ltorch.pt", dir .. "/copy.bin"
  local out_w = dir .. "/out_write.bin"
  local tn, mtn, ln, mln, cn, _, wn = measure_turns({
    {py .. " bench/torch_side.py save " .. path .. " " .. out_t, "rm -f " .. out_t},
    {lua .. " bench/ltorch_side.lua save " .. path .. " " .. out_l, "rm -f " .. out_l},
    {cp_once(path), "rm -f " .. copy},
    {py .. " bench/torch_side.py write " .. path .. " " .. out_w, "rm -f " .. out_w}})
  os.remove(out_w)
  row(name, "save (new)", tn, ln, mtn, mln)
  local ts, ms, ls, lms, co = measure_turns({
    {py .. " bench/torch_side.py save " .. path .. " " .. out_t},
    {lua .. " bench/ltorch_side.lua save " .. path .. " " .. out_l},
    {cp_once(path)}})
  row(name, "save (over)", ts, ls, ms, lms)
  rows[#rows + 1] = {name, string.format("cp: new %.1f ms, over %.1f ms (%.0f MB/s new); ltorch save new %.2fx, " ..
    "over %.2fx the time of cp", cn * 1000, co * 1000, size(path) / cn / 1e6, ln / cn, ls / co)}
  rows[#rows + 1] = {name, string.format("write floor: %.1f ms (%.0f MB/s: the bytes written from memory, " ..
    "a write per 9 MiB): ltorch save new %.2fx its time, torch.save %.2fx (the best ratio any save could reach)",
    wn * 1000, size(path) / wn / 1e6, ln / wn, tn / wn)}
end

-- math on what was loaded: load + sum of every tensor (eager; ltorch mmap
-- too), and one sum and one cast over a 256 MiB float32 tensor
do
  local path = dir .. "/big.pt"
  local name = "256 MiB state dict, 64 tensors"
  local tl, ml, el, eml, mm, mml = measure_turns({
    {py .. " bench/torch_side.py loadsum " .. path},
    {lua .. " bench/ltorch_side.lua loadsum " .. path},
    {lua .. " bench/ltorch_side.lua loadsum " .. path .. " mmap"}})
  row(name, "load+sum", tl, el, ml, eml)
  row(name, "mmap+sum", tl, mm, ml, mml)
  local ts, _, ls = measure_turns({{py .. " bench/torch_side.py sum"}, {lua .. " bench/ltorch_side.lua sum"}})
  row("256 MiB float32 tensor", "sum", ts, ls)
  local tc, _, lc = measure_turns({{py .. " bench/torch_side.py cast"}, {lua .. " bench/ltorch_side.lua cast"}})
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
  local out_bytes = g[1] == "f16.gguf" and size(path) or 8 * 4096 * 4096 * 4   -- float32 out
  -- the load taking turns with cp of the file to a new path
  local el, eml, cn = measure_turns({
    {"BENCH_WARM=" .. string.format("%d", 2 * out_bytes + 64 * 2^20) .. " " .. lua .. " bench/ltorch_side.lua load " .. path},
    {cp_once(path), "rm -f " .. dir .. "/copy.bin"}})
  rows[#rows + 1] = {g[2], string.format("load (eager)  ltorch %.1f ms, %.0f MB/s of tensors out, %.1f MiB peak; " ..
    "cp %.0f MB/s", el * 1000, out_bytes / el / 1e6, eml / 1048576, size(path) / cn / 1e6)}
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
