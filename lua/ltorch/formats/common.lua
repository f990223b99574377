-- formats/common.lua: what the format modules share: checking that a value
-- is a flat state dict, the keys/rename selector of every reader, the
-- progress option, and path-prefixed errors.
local core = require("ltorch.core")
local odict = require("ltorch.odict")

local M = {}

-- raise "path: msg" (msg may already start with the path)
function M.fail(path, msg)
  msg = tostring(msg)
  if msg:sub(1, #path + 2) ~= path .. ": " then msg = path .. ": " .. msg end
  error(msg, 0)
end

-- run f(...) and prefix any error with path
function M.guard(path, f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] then M.fail(path, res[2]) end
  return table.unpack(res, 2, res.n)
end

local function is_tensor(v) return core.is_tensor(v) end
M.is_tensor = is_tensor

-- the keys of a table in a stable order (odicts keep theirs)
M.ordered_keys = odict.ordered_keys

-- can obj be stored as a flat name -> tensor dict? true, or false + why
function M.flat_dict(obj, fmtname)
  if type(obj) ~= "table" or is_tensor(obj) or getmetatable(obj) and not odict.is(obj) then
    if is_tensor(obj) then
      return false, fmtname .. " stores a table of named tensors, not a single tensor (wrap it: {name = t}, or use .pt)"
    end
    return false, fmtname .. " stores a table of named tensors, got a " .. type(obj) .. " (.pt can store it)"
  end
  for _, k in ipairs(M.ordered_keys(obj)) do
    local v = obj[k]
    if type(k) ~= "string" then
      return false, string.format("key %s is not a string: %s stores only tensors under string names (.pt can store it)",
        tostring(k), fmtname)
    end
    if not is_tensor(v) then
      return false, string.format("value '%s' is a %s: %s stores only tensors (.pt can store it)",
        k, type(v) == "table" and "nested table" or type(v), fmtname)
    end
  end
  return true
end

-- names and tensors of a flat dict, in order
function M.items(obj)
  local names, tensors = {}, {}
  for _, k in ipairs(M.ordered_keys(obj)) do
    names[#names + 1] = k
    tensors[#tensors + 1] = obj[k]
  end
  return names, tensors
end

-- The one selector of every reader: a function name -> new name, or nil
-- for a name not wanted. opts.keys (a list of names or a predicate) selects
-- on the names in the file; opts.rename ({{pattern, replacement}, ...},
-- string.gsub in order) applies after, to the names kept.
function M.selector(opts)
  local keys, rename = opts.keys, opts.rename
  local keep
  if keys == nil then keep = function() return true end
  elseif type(keys) == "function" then keep = keys
  elseif type(keys) == "table" then
    local set = {}
    for _, k in ipairs(keys) do set[k] = true end
    keep = function(n) return set[n] == true end
  else
    error("bad option 'keys' (list of names or function expected, got " .. type(keys) .. ")", 0)
  end
  if rename ~= nil then
    if type(rename) ~= "table" then
      error("bad option 'rename' (list of {pattern, replacement} expected, got " .. type(rename) .. ")", 0)
    end
    for i, r in ipairs(rename) do
      if type(r) ~= "table" or type(r[1]) ~= "string" or (type(r[2]) ~= "string" and type(r[2]) ~= "table"
         and type(r[2]) ~= "function") then
        error("bad option 'rename' (rule " .. i .. " must be {pattern, replacement})", 0)
      end
    end
  end
  return function(name)
    if not keep(name) then return nil end
    if rename and type(name) == "string" then
      for _, r in ipairs(rename) do name = name:gsub(r[1], r[2]) end
    end
    return name
  end
end

-- f() with the open file handle h (core._fopen), which is closed whatever
-- happens; an error is raised again prefixed with path
function M.using(h, path, f)
  local res = table.pack(pcall(f))
  h:close()
  if not res[1] then M.fail(path, res[2]) end
  return table.unpack(res, 2, res.n)
end

-- f(h) with path open as the file handle h (core._fopen), as using does
function M.with_file(path, f)
  local h = M.guard(path, core._fopen, path)
  return M.using(h, path, function() return f(h) end)
end

-- run the C writer fn(tmp, ..., write_opts(opts)); errors name the final path
function M.write(fn, tmp, final, opts, ...)
  local where = final or tmp
  local args = table.pack(tmp, ...)
  args.n = args.n + 1
  args[args.n] = M.guard(where, M.write_opts, opts or {})
  return M.guard(where, fn, table.unpack(args, 1, args.n))
end

-- opts.progress as a function(done, total), or a no-op
function M.progress(opts)
  local p = opts.progress
  if p == nil then return function() end end
  if type(p) ~= "function" then error("bad option 'progress' (function expected, got " .. type(p) .. ")", 0) end
  return p
end

-- the streaming write options of the C writers: {dtype = opts.dtype (cast
-- floating tensors while writing), release = opts.release_mapped (drop the
-- pages of file-mapped sources once written), progress = opts.progress}
function M.write_opts(opts)
  if opts.progress ~= nil then M.progress(opts) end
  if opts.dtype ~= nil and type(opts.dtype) ~= "string" then
    error("bad option 'dtype' (string expected, got " .. type(opts.dtype) .. ")", 0)
  end
  return {dtype = opts.dtype, release = opts.release_mapped and true or nil, progress = opts.progress}
end

-- add name -> tensor to the ordered dict d, rejecting clashes made by rename
function M.put(d, name, t, path)
  if d[name] ~= nil then M.fail(path, "two tensors are renamed to '" .. name .. "'") end
  d[name] = t
end

return M
