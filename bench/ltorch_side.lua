-- The ltorch side of `make bench`: times one operation in this (fresh)
-- process and prints "seconds peak_rss_bytes_above_baseline".
--   ltorch_side.lua load FILE [mmap] | save FILE OUT
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
if cmd == "load" then
  local base = status("VmRSS")
  local t0 = now()
  local sd = torch.load(file, {mmap = extra == "mmap"})
  local t1 = now()
  print(t1 - t0, status("VmHWM") - base)
  assert(sd)
elseif cmd == "save" then
  local sd = torch.load(file)
  local base = status("VmRSS")
  local t0 = now()
  torch.save(sd, extra)
  local t1 = now()
  print(t1 - t0, math.max(0, status("VmHWM") - base))
end
