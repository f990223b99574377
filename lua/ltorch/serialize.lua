-- serialize.lua: torch.save / torch.load / torch.load_state_dict.
-- Chooses the format (by extension or opts.format on save, by the file's
-- first bytes on load), makes saves atomic (temporary file beside the target,
-- then rename), and hands whole modules to ltorch.modsave.
--
-- A format module (lua/ltorch/formats/NAME.lua) returns a table with:
--   name        "pt", "safetensors", ...
--   extensions  {".pt", ".pth"}            used on save
--   detect(head, path) -> boolean          head: the first 64 bytes (or fewer)
--   load(path, opts) -> value              raises "path: what is wrong"
--   save(obj, tmp_path, opts, final_path)  writes tmp_path; raises on error
--   can_hold(obj) -> true | false, why     optional: checked before writing

local M = {}

local FORMATS = {"pt", "safetensors", "npy", "npz", "torchsharp", "index"}

local loaded = {}
local function format(name)
  if loaded[name] == nil then
    local ok, mod = pcall(require, "ltorch.formats." .. name)
    if not ok then
      if tostring(mod):find("module 'ltorch.formats." .. name .. "' not found", 1, true) then mod = false
      else error(mod, 0) end
    end
    loaded[name] = mod
  end
  return loaded[name] or nil
end

local function all_formats()
  local list = {}
  for _, n in ipairs(FORMATS) do
    local f = format(n)
    if f then list[#list + 1] = f end
  end
  return list
end
M.all_formats = all_formats
M.format = format

local function lower_ext(path)
  local base = path:match("[^/]*$")
  return base:lower()
end

-- the format for saving to path: opts.format wins, then the extension
function M.format_for_save(path, opts)
  if opts and opts.format then
    local f = format(opts.format)
    if not f then error(string.format("unknown format '%s'", tostring(opts.format)), 3) end
    return f
  end
  local base = lower_ext(path)
  for _, f in ipairs(all_formats()) do
    for _, e in ipairs(f.extensions or {}) do
      if base:sub(-#e) == e then return f end
    end
  end
  return format("pt")
end

-- the format of an existing file, from its bytes
function M.detect(path)
  local fh, err = io.open(path, "rb")
  if not fh then error(err, 3) end
  local head = fh:read(64) or ""
  fh:close()
  -- modules load on demand: the usual file needs only its own format's code
  for _, n in ipairs(FORMATS) do
    local f = format(n)
    if f and f.detect and f.detect(head, path) then return f end
  end
  return nil, head
end

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table of options expected, got %s)",
      fname == "save" and 3 or 2, fname, type(opts)), 3)
  end
  return opts or {}
end

local counter = 0
local function temp_path(path)
  counter = counter + 1
  local dir, base = path:match("^(.*/)([^/]*)$")
  dir, base = dir or "", base or path
  return string.format("%s.%s.tmp-%d-%d", dir, base, math.random(1, 1 << 30), counter)
end

function M.install(torch)
  format("pt")   -- the default format, ready as torch.load's code is after `import torch`
  local modsave
  local function is_module(obj)
    local mt = type(obj) == "table" and getmetatable(obj)
    return mt and rawget(mt, "__ltorch_module") ~= nil
  end
  local function has_module(obj, seen)
    if type(obj) ~= "table" then return false end
    if is_module(obj) then return true end
    seen = seen or {}
    if seen[obj] then return false end
    seen[obj] = true
    for _, v in pairs(obj) do if has_module(v, seen) then return true end end
    return false
  end

  function torch.save(obj, path, opts)
    if type(path) ~= "string" then
      error("bad argument #2 to 'save' (string expected, got " .. type(path) .. ")", 2)
    end
    opts = check_opts(opts, "save")
    local f = M.format_for_save(path, opts)
    if has_module(obj) then
      modsave = modsave or require("ltorch.modsave")
      obj = modsave.pack(obj, f, opts)
    end
    if f.can_hold then
      local ok, why = f.can_hold(obj)
      if not ok then error(path .. ": " .. why, 2) end
    end
    local tmp = temp_path(path)
    local ok, err = pcall(f.save, obj, tmp, opts, path)
    if not ok then
      os.remove(tmp)
      error(err, 2)
    end
    local rok, rerr = require("ltorch.core")._replace(tmp, path, opts.sync)
    if not rok then
      os.remove(tmp)
      error(path .. ": cannot replace the file: " .. tostring(rerr), 2)
    end
    return path
  end

  function torch.load(path, opts)
    if type(path) ~= "string" then
      error("bad argument #1 to 'load' (string expected, got " .. type(path) .. ")", 2)
    end
    opts = check_opts(opts, "load")
    local ok, f, head = pcall(M.detect, path)
    if not ok then error(path .. ": " .. tostring(f):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", ""), 2) end
    if not f then
      if #head == 0 then error(path .. ": empty file", 2) end
      error(path .. ": unknown format (not a PyTorch, safetensors, NumPy or TorchSharp file)", 2)
    end
    local lok, val = pcall(f.load, path, opts)
    if not lok then error(val, 2) end
    if type(val) == "table" and rawget(val, "__ltorch_module_file") then
      modsave = modsave or require("ltorch.modsave")
      val = modsave.unpack(val, opts, path)
    end
    return val
  end

  -- R torch's name: the flat, ordered state dict of a checkpoint
  function torch.load_state_dict(path, opts)
    opts = check_opts(opts, "load_state_dict")
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.state_dict = true
    return torch.load(path, o)
  end
end

return M
