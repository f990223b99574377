-- json.lua: JSON encoding and decoding (cJSON underneath).
--   json.decode(s) -> value: objects become ordered dicts (ltorch.odict, key
--     order kept), arrays plain lists, null torch.null. A number written
--     without '.', 'e' or 'E' is an integer (exact in int64 range, a float
--     beyond it); any other number is a float ("1.0" and "1e3" included).
--     Strings may hold any byte, NUL included. Duplicate keys and trailing
--     text are errors ("json: ... at byte N", N counted from 0).
--   json.encode(v) -> compact string: odicts are objects in insertion order,
--     plain tables with keys 1..n arrays, other plain tables objects with
--     sorted keys (so an empty plain table is {}); torch.null and nil are
--     null; floats always have a '.' or an exponent. json.array(t) marks a
--     table (possibly empty) as an array; json.is_array(t) tells.
local core = require("ltorch.core")
local odict = require("ltorch.odict")

local M = {}

local function null()
  local torch = package.loaded["ltorch"]
  return torch and torch.null or nil
end

function M.decode(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(s) .. ")", 2)
  end
  local ok, v = pcall(core._json_decode, s, odict.from, null() or M.null)
  if not ok then error(v, 2) end
  return v
end

function M.encode(v)
  local ok, s = pcall(core._json_encode, v, null() or M.null)
  if not ok then error(s, 2) end
  return s
end

local array_mt = {__jsonarray = true}
function M.array(t) return setmetatable(t or {}, array_mt) end
-- is t a table marked by json.array?
function M.is_array(t) return getmetatable(t) == array_mt end

-- the null used when ltorch itself is not loaded
M.null = setmetatable({}, {__tostring = function() return "json.null" end})

return M
