-- odict.lua: ordered dictionaries. pairs() follows insertion order, which is
-- how loaded state dicts keep the file's key order. Values live behind a
-- proxy, so every assignment passes through __newindex. C code walks an
-- odict with the __next metafield, next() in insertion order (ltorch_next in
-- src/ltorch.h: lua_next sees nothing in the proxy).

local M = {}

local KEYS, DATA, PARTS = {}, {}, {}   -- private fields of the metatable
local meta_of = setmetatable({}, {__mode = "k"})

-- keys: the list, or a function that makes it when first needed (a lazy
-- dict of a load, src/lpt.c: an open of 20,000 tensors makes no key
-- strings until the keys are walked)
local function make(keys, data)
  local function K()
    if type(keys) == "function" then keys = keys() end
    return keys
  end
  local mt
  mt = {
    [KEYS] = K, [DATA] = data,
    [PARTS] = function() return keys, data end,
    __name = "ltorch.odict",
    __index = data,
    __newindex = function(_, k, v)
      if data[k] == nil then
        if v == nil then return end
        local ks = K()
        ks[#ks + 1] = k
      elseif v == nil then
        local ks = K()
        for i = 1, #ks do   -- removal is rare: a scan, not an index kept up to date
          if ks[i] == k then table.remove(ks, i) break end
        end
      end
      data[k] = v
    end,
    __pairs = function(t)
      local i, keys = 0, K()
      return function()
        i = i + 1
        local k = keys[i]
        if k ~= nil then return k, data[k] end
      end, t, nil
    end,
    __len = function() return #data end,
  }
  -- __next(t, k): the entry after key k (the first after nil), or nil; a
  -- walk in order takes one step a call (at is where the last call stood)
  local at = 0
  mt.__next = function(_, k)
    local keys = K()
    local i = 1
    if k ~= nil then
      if keys[at] ~= k then
        at = nil
        for j = 1, #keys do if keys[j] == k then at = j break end end
        if not at then at = 0 error("invalid key to 'next'", 2) end
      end
      i = at + 1
    end
    local nk = keys[i]
    if nk == nil then return nil end
    at = i
    return nk, data[nk]
  end
  local t = setmetatable({}, mt)
  meta_of[t] = mt
  return t
end

-- a new empty ordered dict
function M.new() return make({}, {}) end

-- wrap a list of keys (or a function that returns it, called once when
-- first needed) and a table of values (taken over, not copied)
function M.from(keys, data) return make(keys, data) end

function M.is(t) return meta_of[t] ~= nil end

-- for a writer that walks an odict (the .pt writer, src/lpt.c): its key
-- list, or the function that makes it while it is not made yet, and its
-- data table; nothing for any other value. The writer changes neither.
function M.parts(t)
  local mt = meta_of[t]
  if mt then return mt[PARTS]() end
end

-- the keys in order (a fresh list)
function M.keys(t)
  local mt = meta_of[t]
  if mt then
    local ks = mt[KEYS]()
    return table.move(ks, 1, #ks, 1, {})
  end
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  return ks
end

-- the keys of any table in a stable order: an odict's own order; otherwise
-- the array part, then the other keys by type, then by value (numbers and
-- strings) or string form
function M.ordered_keys(t)
  if meta_of[t] then return M.keys(t) end
  local keys, n = {}, #t
  for i = 1, n do keys[i] = i end
  local rest = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  table.move(rest, 1, #rest, n + 1, keys)
  return keys
end

-- number of entries
function M.count(t)
  local mt = meta_of[t]
  if mt then return #mt[KEYS]() end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

return M
