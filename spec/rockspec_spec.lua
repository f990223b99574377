-- rockspec_spec.lua: `make install` (luarocks) installs what the checkout
-- has: every C source is in ltorch.core's sources and every Lua module is
-- listed under its module name.
local function read(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function files(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

describe("rockspec/ltorch-scm-1.rockspec", function()
  local spec = read("rockspec/ltorch-scm-1.rockspec")
  it("lists every C source of the core", function()
    for _, f in ipairs(files("ls src/*.c")) do
      assert.is_truthy(spec:find('"' .. f .. '"', 1, true), f .. " is not in the rockspec")
    end
  end)
  it("lists every Lua module under its name", function()
    for _, f in ipairs(files("find lua/ltorch -name '*.lua' | sort")) do
      local mod = f:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.is_truthy(spec:find('["' .. mod .. '"] = "' .. f .. '"', 1, true), f .. " is not in the rockspec")
    end
  end)
end)
