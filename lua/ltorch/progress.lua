-- progress.lua: progress bars on stderr for loads, saves and conversions.
--
--   local progress = require("ltorch.progress")
--   local cb = progress.bar("loading model.pt")   -- nil when stderr is not a terminal
--   torch.load(path, {progress = cb})               -- cb(done_bytes, total_bytes)
--   progress.finish(cb)                             -- clears the line
--
-- A bar appears only after DELAY seconds, so small files print nothing. It
-- shows bytes done, total, rate and time left, and fits the terminal width.
-- LTORCH_PROGRESS=always|never overrides the terminal test (for tests and for
-- scripts that capture stderr); LTORCH_PROGRESS_DELAY=SECONDS replaces DELAY.

local M = {}

local DELAY = 0.25       -- seconds before a bar first appears
local INTERVAL = 0.1     -- seconds between redraws

-- wall-clock seconds: the core's monotonic clock, luasystem or lua-term, else os.time
local clock
do
  local cok, core = pcall(require, "ltorch.core")
  if cok and type(core) == "table" and core._clock then clock = core._clock end
end
if not clock then
  local ok, sys = pcall(require, "system")
  if ok and type(sys) == "table" and sys.gettime then clock = sys.gettime end
  if not clock then
    local tok, term = pcall(require, "term.core")
    if tok and type(term) == "table" and term.gettime then clock = term.gettime end
  end
  clock = clock or os.time
end
M.clock = clock

-- Whether stderr (fd 2) is a terminal: the core's isatty(2); lua-term's
-- isatty when that is missing; otherwise the shell's `test -t 2`: os.execute's child inherits our fd 2
-- (only stdout is redirected), so it tests our stderr.
local tty_cache
M._states = setmetatable({}, {__mode = "k"})   -- callback -> {out, shown}
function M.stderr_is_tty()
  local force = os.getenv("LTORCH_PROGRESS")
  if force == "always" then return true end
  if force == "never" then return false end
  if tty_cache == nil then
    local cok, core = pcall(require, "ltorch.core")
    local ok, term = pcall(require, "term")
    if cok and type(core) == "table" and core._isatty then
      tty_cache = core._isatty(2)
    elseif ok and type(term) == "table" and term.isatty then
      tty_cache = term.isatty(io.stderr) and true or false
    else
      tty_cache = os.execute("test -t 2") == true
    end
  end
  return tty_cache
end

-- "12.3 MiB" style sizes (binary units, as PyTorch users expect)
function M.human_bytes(n)
  local units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
  local i = 1
  n = n or 0
  while n >= 1024 and i < #units do n = n / 1024; i = i + 1 end
  if i == 1 then return string.format("%.0f B", n) end   -- n may be a float (a rate)
  return string.format(n >= 100 and "%.0f %s" or n >= 10 and "%.1f %s" or "%.2f %s", n, units[i])
end

-- "1:05" or "1:02:03"
function M.human_time(s)
  if s == nil or s ~= s or s == math.huge or s < 0 then return "--:--" end
  s = math.floor(s + 0.5)
  local h, m = s // 3600, (s % 3600) // 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s % 60) end
  return string.format("%d:%02d", m, s % 60)
end

local function term_width()
  local w = tonumber(os.getenv("COLUMNS"))
  return (w and w >= 40) and w or 80
end

-- One line of bar text for done/total bytes after elapsed seconds, at most
-- width - 1 columns: "label [#####.....]  45% 1.2 GiB/2.5 GiB 300 MiB/s ETA 0:04".
-- The label keeps its room first; the bar gets what is left (6 at least).
function M.line(label, done, total, elapsed, width)
  width = width or 80
  local rate = elapsed > 0 and done / elapsed or 0
  -- no estimate from the first instants: it would be noise
  local settled = elapsed >= 0.5 or (total and total > 0 and done >= total)
  local left = (settled and rate > 0 and total and total >= done) and (total - done) / rate or nil
  local pct = (total and total > 0) and math.min(done / total, 1) or 0
  -- fixed widths, so the bar does not jump as the numbers change
  local tail = string.format(" %3d%% %8s/%-8s %8s/s ETA %-7s", math.floor(pct * 100),
    M.human_bytes(done), M.human_bytes(total or 0), M.human_bytes(rate), M.human_time(left))
  tail = tail:gsub("%s+$", "")
  local avail = width - 1 - 46 - 3             -- 46: the widest tail; 3: brackets, space
  local lab = label or ""
  local maxlab = math.max(avail - 6, 0)
  if #lab > maxlab then lab = maxlab > 3 and ("..." .. lab:sub(-(maxlab - 3))) or "" end
  local barw = avail - #lab
  if #lab == 0 then barw = barw + 1 end
  if barw < 5 then return (lab .. tail):sub(1, width - 1) end
  local fill = math.floor(pct * barw + 0.5)
  return string.format("%s%s[%s%s]%s", lab, #lab > 0 and " " or "",
    string.rep("#", fill), string.rep(".", barw - fill), tail)
end

-- A progress callback for one load, save or conversion, or nil when stderr is
-- not a terminal. opts.out replaces io.stderr and opts.force draws regardless
-- of the terminal test (both for tests).
function M.bar(label, opts)
  opts = opts or {}
  if not opts.force and not M.stderr_is_tty() then return nil end
  local out = opts.out or io.stderr
  local start = clock()
  local last, shown = -math.huge, false
  local delay = opts.delay or tonumber(os.getenv("LTORCH_PROGRESS_DELAY") or "") or DELAY
  local cb = function(done, total)
    local now = clock()
    if now - start < delay then return end
    if now - last < INTERVAL and not (total and done >= total) then return end
    last, shown = now, true
    out:write("\r", M.line(label, done, total, now - start, term_width()), "\27[K")
    out:flush()
  end
  M._states[cb] = {out = out, shown = function() return shown end}
  return cb
end

-- End a bar: clear its line if it was drawn. Safe on nil.
function M.finish(cb)
  if not cb then return end
  local s = M._states[cb]
  if s and s.shown() then s.out:write("\r\27[K"); s.out:flush() end
  if s then M._states[cb] = nil end
end

return M
