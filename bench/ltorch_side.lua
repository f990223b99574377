-- The ltorch side of `make bench`: times one operation in this (fresh)
-- process and prints "seconds peak_rss_bytes_above_baseline".
--   ltorch_side.lua load FILE [mmap] | urlload URL CONNS | gpuload FILE | save FILE OUT | loadsum FILE [mmap]
--   | sum | cast (a 256 MiB float32 tensor made untimed, the op run once
--   untimed first)
local torch = require("ltorch")

local function status(field)
  local f = io.open("/proc/self/status")
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) * 1024
end

local function now()
  return require("ltorch.core")._clock()
end

local cmd, file, extra = ...

-- Before its timer each case touches and frees memory (twice the file and
-- 64 MiB, or 512 MiB), then resets the peak: this VM gives freed pages back
-- to its host after ~2 s, and pages the host must back again cost several
-- times what the kernel's zeroing does, so a fresh process after a pause
-- met colder memory than one right after another. The memory is a tensor
-- (huge pages, unmapped when freed: it is bigger than the allocator's cache
-- holds), so that what it frees serves huge-page and 4 KiB allocations
-- alike. The same in bench/torch_side.py.
local function warm(nbytes)
  do local t <close> = torch.empty({nbytes}, {dtype = "uint8"}):fill(1) end
  collectgarbage()
  local f = io.open("/proc/self/clear_refs", "w")
  f:write("5")
  f:close()
end

-- BENCH_WARM (bytes) where the case makes more than it reads (GGUF
-- dequantized to float32: bench.lua sets it)
local function warm_for(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  warm(tonumber(os.getenv("BENCH_WARM") or "") or 2 * n + (64 << 20))
end

-- time torch.load(file, opts), printing seconds and peak memory above the start
local function timed_load(opts)
  if file:match("^%a+://") then warm(512 << 20) else warm_for(file) end
  local base = status("VmRSS")
  local t0 = now()
  local sd = torch.load(file, opts)
  local t1 = now()
  print(t1 - t0, status("VmHWM") - base)
  assert(sd)
end

if cmd == "load" then
  timed_load({mmap = extra == "mmap"})
elseif cmd == "urlload" then
  -- an eager load from a URL with extra connections
  timed_load({remote = {connections = tonumber(extra)}})
elseif cmd == "gpuload" then
  -- to the GPU, done when every tensor is there (the transfer's end syncs)
  timed_load({device = "cuda"})
elseif cmd == "save" then
  local sd = torch.load(file)
  warm_for(file)
  local base = status("VmRSS")
  local t0 = now()
  torch.save(sd, extra)
  local t1 = now()
  print(t1 - t0, math.max(0, status("VmHWM") - base))
elseif cmd == "loadsum" then
  -- the realistic script: load, then touch every tensor
  warm_for(file)
  local base = status("VmRSS")
  local t0 = now()
  local sd = torch.load(file, {mmap = extra == "mmap"})
  local total = 0
  for _, t in pairs(sd) do total = total + t:sum():item() end
  local t1 = now()
  print(t1 - t0, status("VmHWM") - base)
  assert(total == total)
elseif cmd == "sum" or cmd == "cast" then
  local x = torch.randn({64 * 1024 * 1024})
  local op = cmd == "sum" and function() return x:sum() end or function() return x:to("bfloat16") end
  -- the untimed run's result released at once, as CPython's refcount does
  do local first <close> = op() end
  warm(512 << 20)
  local base = status("VmRSS")
  local t0 = now()
  local r = op()
  local t1 = now()
  print(t1 - t0, math.max(0, status("VmHWM") - base))
  assert(r)
end
