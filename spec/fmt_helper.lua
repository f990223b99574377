-- fmt_helper.lua: shared by the format specs (safetensors, npy, torchsharp,
-- index): temp dirs, running the Python peers, reading files.
local H = {}

H.FIX = "spec/fixtures/fmt/"
H.PY = "/usr/bin/python3"

function H.tmpdir()
  local base = os.tmpname()
  os.remove(base)
  assert(os.execute("mkdir -p " .. base))
  return base
end

-- how many mappings of path this process holds
function H.maps_of(path)
  local n = 0
  for line in io.lines("/proc/self/maps") do if line:find(path, 1, true) then n = n + 1 end end
  return n
end

function H.rmdir(d) os.execute("rm -rf '" .. d .. "'") end

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- run a python snippet (or script + args); returns stdout, raises on failure
function H.py(code_or_script, ...)
  local cmd
  if code_or_script:match("%.py$") then
    cmd = H.PY .. " " .. code_or_script
    for _, a in ipairs({...}) do cmd = cmd .. " '" .. a .. "'" end
  else
    local tmp = os.tmpname()
    H.write(tmp, code_or_script)
    cmd = H.PY .. " " .. tmp
    for _, a in ipairs({...}) do cmd = cmd .. " '" .. a .. "'" end
  end
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local body, rc = out:match("^(.-)rc=(%d+)\n?$")
  if rc ~= "0" then error("python failed (" .. tostring(rc) .. "): " .. tostring(body), 2) end
  return body
end

-- run the ltorch command (bin/ltorch) with cmd; returns its output
-- (stdout and stderr) and exit status
function H.ltorch(cmd)
  local p = io.popen("lua5.4 bin/ltorch " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- the message of the error f raises
function H.err(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(e)
end

-- same dtype, shape and bytes (views compared by their C-order bytes)
function H.same(a, b)
  return a:dtype() == b:dtype() and table.concat(a:size(), ",") == table.concat(b:size(), ",")
    and a:contiguous():tobytes() == b:contiguous():tobytes()
end

return H
