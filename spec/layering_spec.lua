-- layering_spec.lua: the C core is a layering (dtype, storage, tensor,
-- rawio, containers and formats, bindings, linit on top): no object file
-- calls into one that calls back into it, directly or around a loop, and
-- no header includes itself through others. Read from the build's objects
-- with nm and from the sources' #include lines.
local build = os.getenv("LTORCH_BUILD") or "build"

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- the strongly connected components of graph g (name -> set of names) with
-- more than one member: the cycles
local function cycles(g)
  local index, low, stack, on, out, n = {}, {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1] = v
    on[v] = true
    for w in pairs(g[v] or {}) do
      if not index[w] then visit(w); low[v] = math.min(low[v], low[w])
      elseif on[w] then low[v] = math.min(low[v], index[w]) end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        on[w] = nil
        comp[#comp + 1] = w
      until w == v
      if #comp > 1 then table.sort(comp); out[#out + 1] = table.concat(comp, " ") end
    end
  end
  local names = {}
  for v in pairs(g) do names[#names + 1] = v end
  table.sort(names)
  for _, v in ipairs(names) do if not index[v] then visit(v) end end
  return out
end

describe("the C core", function()
  it("has no call cycle between its object files", function()
    local objs = lines("ls " .. build .. "/obj/*.o")
    assert.is_true(#objs > 10, "no objects in " .. build .. "/obj")
    local defs, uses = {}, {}
    for _, o in ipairs(objs) do
      local name = o:match("([^/]+)%.o$")
      uses[name] = {}
      for _, l in ipairs(lines("nm " .. o)) do
        local kind, sym = l:match("^%x+ (%u) (%S+)$")
        if kind and kind:find("[TDRBC]") then defs[sym] = name
        else
          local u = l:match("^%s+U (%S+)$")
          if u then uses[name][u] = true end
        end
      end
    end
    local g = {}
    for name, us in pairs(uses) do
      g[name] = {}
      for u in pairs(us) do
        if defs[u] and defs[u] ~= name then g[name][defs[u]] = true end
      end
    end
    assert.are.same({}, cycles(g))
    -- the bottom: pool.c (the thread pool) calls nothing of ltorch's, and
    -- dtype.c nothing but it
    assert.is_nil(next(g.pool), "pool.c is the bottom layer")
    for callee in pairs(g.dtype) do assert.equals("pool", callee, "dtype.c calls " .. callee .. ".c") end
    for _, low in ipairs({"dtype", "storage", "tensor", "rawio", "ptzip", "pickle", "safetensors"}) do
      for callee in pairs(g[low]) do
        assert.is_nil(callee:match("^l"), low .. ".c calls up into the binding " .. callee .. ".c")
      end
    end
  end)

  it("has no include cycle", function()
    local g = {}
    for _, f in ipairs(lines("ls src/*.c src/*.h")) do
      local name = f:match("([^/]+)$")
      g[name] = g[name] or {}
      local fh = assert(io.open(f))
      for l in fh:lines() do
        local inc = l:match('^#include "([^"]+)"')
        if inc then g[name][inc] = true end
      end
      fh:close()
    end
    assert.are.same({}, cycles(g))
  end)
end)
