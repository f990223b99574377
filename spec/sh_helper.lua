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

return M
