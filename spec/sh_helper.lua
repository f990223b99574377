-- sh_helper.lua: running programs from specs.
local M = {}

-- s quoted for sh
function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run a shell command; returns stdout, exit status, stderr
function M.run(cmd)
  local errf = os.tmpname()
  local p = io.popen(cmd .. " 2>" .. errf, "r")
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errf, "rb")
  local err = f:read("a")
  f:close()
  os.remove(errf)
  return out, code, err
end

-- a new empty folder under the system's temporary one
function M.mkdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. M.quote(d)))
  return d
end

-- write s to path p, and read path p whole (nil when it cannot be opened)
function M.spit(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

function M.slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

return M
