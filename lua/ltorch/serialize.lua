-- serialize.lua: torch.save / torch.load / torch.load_state_dict.
-- Chooses the format (by extension or opts.format on save, by the file's
-- first bytes on load), checks every option, makes saves atomic (temporary
-- file beside the target, then rename), and hands values holding modules
-- and the extra records of loaded files to ltorch.modsave, which alone
-- knows what a module file is.
--
-- A format module (lua/ltorch/formats/NAME.lua) returns a table with:
--   name          "pt", "safetensors", ...
--   extensions    {".pt", ".pth"}            used on save
--   load_options  {"mmap", "keys", ...}      what its load takes
--   save_options  {"metadata", ...}          what its save takes beyond the common ones
--   nested        true when it stores nested tables and plain values (.pt);
--                 otherwise it stores named tensors only
--   extras        true when it stores extra records (load returns them,
--                 save writes them); the others have nowhere to put them
--   streams       true when save writes its file front to back, never going
--                 back (an S3 save sends each part as soon as it is written)
--   modules       false when it cannot hold ltorch modules at all (t7:
--                 its objects are Torch7's classes)
--   state_dict(value, path) -> dict or nil   optional: the state dict of a
--                 loaded value the generic rules do not see (t7's nn models)
--   detect(head, path) -> boolean            head: the first 64 bytes (or fewer)
--   load(path, opts) -> value [, extras]     extras: {name = string} of the
--                 ltorch records stored beside the tensors (or nil);
--                 raises "path: what is wrong"
--   save(value, tmp_path, opts, final_path, extras)  writes tmp_path with
--                 the extra records; raises on error
--   can_hold(value) -> true | false, why     optional: checked before writing

local M = {}

local FORMATS = {"pt", "safetensors", "npy", "npz", "gguf", "t7", "torchsharp", "index"}

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

-- remote.lua for a URL, nil for a local path (whose load or save then
-- does not load remote.lua: every URL it takes has a "://")
local function remote_for(path)
  if type(path) ~= "string" or not path:find("://", 1, true) then return nil end
  local remote = require("ltorch.remote")
  return remote.is_url(path) and remote or nil
end

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
  -- each format's code loads only when the formats before it in FORMATS
  -- do not take the name: a save to .pt loads no other format
  for _, n in ipairs(FORMATS) do
    local f = format(n)
    for _, e in ipairs(f and f.extensions or {}) do
      if base:sub(-#e) == e then return f end
    end
  end
  return format("pt")
end

-- the format whose detect accepts head (path: the file, for formats that
-- read more of it; nil for a remote object)
local function detect_head(head, path)
  -- modules load on demand: the usual file needs only its own format's code
  for _, n in ipairs(FORMATS) do
    local f = format(n)
    if f and f.detect and f.detect(head, path) then return f end
  end
  return nil, head
end

-- the format of an existing file, from its bytes; raises the file errors
-- of a file that cannot be read ("path: no such file", "path: is a
-- directory"), made by core._head as every binding makes them
function M.detect(path)
  local remote = remote_for(path)
  if remote then
    -- the first bytes of the object (the open's one request); formats that
    -- need the whole file to tell (a sharded index) are found by read
    local h = remote.open(path)
    local head = h:read(0, 64)
    h:close()
    return detect_head(head, nil)
  end
  return detect_head(require("ltorch.core")._head(path, 64), path)
end

---------------------------------------------------------------------------
-- options

-- options every load takes, whatever the format (device: where tensors go;
-- map_location: PyTorch's name for it; trust_code: module files)
local LOAD_COMMON = {"device", "map_location", "trust_code", "remote"}
-- options every save takes: the format, fsync, module files' upvalue
-- reports, and the streaming writer options (common.write_opts)
local SAVE_COMMON = {"format", "sync", "upvalues", "progress", "dtype", "release_mapped", "remote"}

local function option_set(f, what)
  local set, list = {}, {}
  for _, k in ipairs(what == "save" and SAVE_COMMON or LOAD_COMMON) do set[k] = true end
  for _, k in ipairs(f[what == "save" and "save_options" or "load_options"] or {}) do set[k] = true end
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return set, list
end

-- opts as a table; raises for anything that is not one
local function opts_table(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table of options expected, got %s)",
      fname == "save" and 3 or 2, fname, type(opts)), 3)
  end
  return opts or {}
end

-- the path argument of torch.fname (#2 of save, else #1) must be a string
local function check_path(path, fname)
  if type(path) ~= "string" then
    error(string.format("bad argument #%d to '%s' (string expected, got %s)",
      fname == "save" and 2 or 1, fname, type(path)), 3)
  end
end

-- every key of opts must be an option of format f for fname ("load", "save",
-- "load_state_dict"); the error names it and lists the valid ones
local function check_options(opts, f, fname, level)
  local set, list = option_set(f, fname == "save" and "save" or "load")
  local bad = {}
  for k in pairs(opts) do
    if not set[k] then bad[#bad + 1] = tostring(k) end
  end
  if #bad > 0 then
    table.sort(bad)
    error(string.format("bad option '%s' to '%s' (valid options for %s files: %s)",
      bad[1], fname, f.name, table.concat(list, ", ")), level + 1)
  end
end

-- the values of the load options the formats share (formats/common.lua,
-- the loaders): keys, rename, unknown, progress. The formats check them
-- too, deep in a load; checked here first, a bad value is a usage error at
-- the caller's line, as a bad option name is. (A save's option values are
-- checked by the writer and named with the file: "x.pt: bad option ...")
local function check_load_values(opts, level)
  if opts.keys ~= nil or opts.rename ~= nil then
    local ok, err = pcall(require("ltorch.formats.common").selector, opts)
    if not ok then error(err, level + 1) end
  end
  local u = opts.unknown
  if u ~= nil and u ~= "error" and u ~= "inert" then
    error(string.format("bad option 'unknown' (\"error\" or \"inert\" expected, got %s)",
      type(u) == "string" and '"' .. u .. '"' or type(u)), level + 1)
  end
  if opts.progress ~= nil and type(opts.progress) ~= "function" then
    error("bad option 'progress' (function expected, got " .. type(opts.progress) .. ")", level + 1)
  end
end

-- device and map_location: "cpu" (or nil) loads to memory, "cuda" or
-- "cuda:N" to that GPU; returns nil for the CPU, else the device index
local function check_device(opts, level)
  local dev = opts.device
  local ml = opts.map_location
  if ml ~= nil then
    if type(ml) ~= "string" then
      error("bad option 'map_location' (a device name expected, got " .. type(ml) .. ")", level + 1)
    end
    if dev ~= nil and dev ~= ml then
      error("bad option 'map_location' ('" .. ml .. "' differs from device '" .. tostring(dev) .. "')", level + 1)
    end
    dev = ml
  end
  if dev == nil or dev == "cpu" then return nil end
  if type(dev) ~= "string" then
    error("bad option 'device' (a device name expected, got " .. type(dev) .. ")", level + 1)
  end
  local n = dev == "cuda" and "0" or dev:match("^cuda:(%d+)$")
  if not n then error("bad option 'device' (unknown device '" .. dev .. "')", level + 1) end
  local count, why = require("ltorch.core")._cuda_count()
  if not count then error("device '" .. dev .. "': " .. why, level + 1) end
  n = tonumber(n)
  if n >= count then
    error(string.format("device '%s' does not exist (%d CUDA device%s)", dev, count, count == 1 and "" or "s"), level + 1)
  end
  return n
end

-- every tensor in a value (tables and ordered dicts, each table once):
-- visit(container, key, tensor)
local function each_tensor(v, visit, seen)
  local core = require("ltorch.core")
  if type(v) ~= "table" or core.is_tensor(v) or seen[v] then return end
  seen[v] = true
  for k, x in pairs(v) do
    if core.is_tensor(x) then visit(v, k, x) else each_tensor(x, visit, seen) end
  end
end

-- the loaded value's tensors moved to cuda:dev, in place (the value is new)
local function to_device(value, dev)
  local core = require("ltorch.core")
  if core.is_tensor(value) then return core._cuda_upload_all({value}, dev)[1] end
  local where, list = {}, {}
  each_tensor(value, function(c, k, t) where[#where + 1] = {c, k}; list[#list + 1] = t end, {})
  local moved = core._cuda_upload_all(list, dev)
  for i, w in ipairs(where) do w[1][w[2]] = moved[i] end
  return value
end
M.to_device = to_device

-- what a save writes for a value holding CUDA tensors: a copy of the
-- tables on the way to each one, the tensor replaced by a CPU tensor that
-- reads its bytes back from the device when the writer reaches it (and
-- drops them once written). The value itself, and the model, stay where
-- they are. nil when the value holds no CUDA tensor.
local function host_view(value)
  local core, odict = require("ltorch.core"), require("ltorch.odict")
  -- no device storage alive: nothing to copy, and a loaded dict's lazy
  -- tensors are not made by a walk
  if core._cuda_live_storages() == 0 then return nil end
  -- the device tensors, each once; shadows of one device storage share one
  -- host storage, so they are made in one call
  local list, where = {}, {}
  each_tensor(type(value) == "table" and value or {value}, function(_, _, t)
    if not t:is_freed() and t:device() ~= "cpu" and not where[t] then list[#list + 1] = t; where[t] = #list end
  end, {})
  if #list == 0 then return nil end
  local shadows = core._cuda_shadow(list)
  local done = {}
  local function copy(v)
    if core.is_tensor(v) then return where[v] and shadows[where[v]] or v end
    if type(v) ~= "table" then return v end
    if done[v] then return done[v] end
    local c = odict.is(v) and odict.new() or {}
    done[v] = c
    for k, x in pairs(v) do c[k] = copy(x) end
    if not odict.is(v) then setmetatable(c, getmetatable(v)) end
    return c
  end
  return copy(value)
end
M.host_view = host_view

---------------------------------------------------------------------------
-- loading and saving values and extra records

-- the format options for f: the user's options minus serialize's own, plus
-- internal ones (as_dict: the safetensors loader gives a dict even for an
-- R torch single-tensor file)
local OWN = {device = true, map_location = true, trust_code = true, remote = true}

-- a copy of option table t (nil: empty) without the key drop, plus the
-- entries of add
local function copy_opts(t, drop, add)
  local o = {}
  for k, v in pairs(t or {}) do if k ~= drop then o[k] = v end end
  for k, v in pairs(add or {}) do o[k] = v end
  return o
end

local function format_opts(opts, internal)
  local o = {}
  for k, v in pairs(opts) do
    if not OWN[k] then o[k] = v end
  end
  for k, v in pairs(internal or {}) do o[k] = v end
  return o
end

-- read(path, opts [, internal, fname, level]) -> value, extras, format:
-- the file as the format stores it (modules not rebuilt); opts are checked
-- first. Errors about the file are raised as the layer that knows the file
-- made them, "path: what is wrong", with no position (level 0); bad options
-- are usage errors, raised at level (default 1: read's caller) as seen from
-- read's caller
function M.read(path, opts, internal, fname, level)
  level = (level or 1) + 1
  local remote = remote_for(path)
  if remote then
    -- the object's local mirror is read as a file (remote.lua): lazily for
    -- mmap = true and GPU loads, whole first otherwise
    local ropts = remote.check_opts(opts.remote, level)
    local lazy = opts.mmap or check_device(opts, level) ~= nil
    -- eager: the whole object is fetched first (into memory for the
    -- ranged layouts, remote.lua) and the tensors point into it
    local inner = copy_opts(internal, nil, {origin = path, mmap = not lazy or nil})
    local o = copy_opts(opts, "remote")
    -- an eager load's progress is the download's (mapping what was fetched
    -- afterwards takes no time)
    if o.progress ~= nil and type(o.progress) ~= "function" then
      error("bad option 'progress' (function expected, got " .. type(o.progress) .. ")", level)
    end
    local progress = not lazy and o.progress or nil
    if progress then o.progress = nil end
    return remote.with_mirror(path, ropts, not lazy, function(local_path)
      return M.read(local_path, o, inner, fname, level)
    end, progress)
  end
  local f, head = M.detect(path)
  if not f then
    if #head == 0 then error(path .. ": empty file", 0) end
    local tried = {}
    for _, g in ipairs(all_formats()) do tried[#tried + 1] = g.title or g.name end
    error(path .. ": unknown format (tried " .. table.concat(tried, ", ") .. ")", 0)
  end
  check_options(opts, f, fname or "load", level)
  check_load_values(opts, level)
  local dev = check_device(opts, level)
  if dev then
    -- to a GPU: mapped (no copy in host memory), then each storage up
    -- through the staging buffers, its pages dropped as they go
    internal = copy_opts(internal)
    for _, name in ipairs(f.load_options or {}) do
      if name == "mmap" and opts.mmap == nil then internal.mmap = true end
    end
  end
  local value, extras = f.load(path, format_opts(opts, internal))
  if dev then value = to_device(value, dev) end
  return value, extras, f
end

-- write(value, path, opts [, extras, f, level]): atomic save of value (and
-- extra records) in the format for path; opts are checked first. Usage
-- errors (bad options, a value the format cannot hold) are raised at level
-- (default 1: write's caller) as seen from write's caller; file errors as
-- the format made them, with no position. on_temp(tmp), when given, is
-- told the temporary file's name before the format writes it (an S3 save
-- follows it)
function M.write(value, path, opts, extras, f, level, on_temp)
  level = (level or 1) + 1
  local remote = remote_for(path)
  if remote then
    -- written to a local file and uploaded (remote.lua), as it is written
    -- where the format writes front to back: atomic on S3
    f = f or M.format_for_save(path, opts)
    local ropts = remote.check_opts(opts.remote, level)
    local o = copy_opts(opts, "remote")
    o.format = o.format or f.name
    local ext = path:match("(%.[%w]+)$")
    return remote.save(path, ropts, ext, f.streams, function(local_path, follow)
      M.write(value, local_path, o, extras, f, level, follow)
    end)
  end
  f = f or M.format_for_save(path, opts)
  check_options(opts, f, "save", level)
  if f.can_hold then
    local ok, why = f.can_hold(value)
    if not ok then error(path .. ": " .. why, level) end
  end
  M.clean_temps(path)
  local tmp = M.temp_path(path)
  if on_temp then on_temp(tmp) end
  local fo = format_opts(opts)
  local hv = host_view(value)
  if hv then value, fo.release_mapped = hv, true end
  local ok, err = pcall(f.save, value, tmp, fo, path, extras)
  if not ok then
    os.remove(tmp)
    error(err, 0)
  end
  local rok, rerr = require("ltorch.core")._replace(tmp, path, opts.sync)
  if not rok then
    os.remove(tmp)
    error(path .. ": cannot replace the file: " .. tostring(rerr), 0)
  end
  return path
end

-- temp_path(path) -> ".NAME.tmp-<32 hex digits from getrandom>-<counter>"
-- beside path: a name no other process can predict, which the writers
-- create with O_EXCL|O_NOFOLLOW (lt_create_temp), so a name taken or a
-- symbolic link planted there fails the save instead of being written through
local counter = 0
local function split(path)
  local dir, base = path:match("^(.*/)([^/]*)$")
  return dir or "", base or path
end
function M.temp_path(path)
  counter = counter + 1
  local dir, base = split(path)
  return string.format("%s.%s.tmp-%s-%d", dir, base, require("ltorch.core")._random_hex(16), counter)
end

-- clean_temps(path) -> count: removes what killed saves to path left, the
-- regular files ".NAME.tmp-*" beside it last modified before this process
-- started (a save still running writes on, so its file is newer); nothing
-- else. Never fails a save. Once per target and process: a later look
-- could only find files made since, which are newer than the process (a
-- save to a folder of 10,000 files read the folder each time)
local cleaned, ncleaned = {}, 0
function M.clean_temps(path)
  local dir, base = split(path)
  if base == "" or cleaned[path] then return 0 end
  if ncleaned >= 4096 then cleaned, ncleaned = {}, 0 end   -- bounded: looking again is only slower
  cleaned[path], ncleaned = true, ncleaned + 1
  local ok, n = pcall(require("ltorch.core")._clean_temps, dir, "." .. base .. ".tmp-")
  return ok and n or 0
end

---------------------------------------------------------------------------
-- state dicts

local function is_flat(t)
  if type(t) ~= "table" or require("ltorch.core").is_tensor(t) then return false end
  if getmetatable(t) ~= nil and not require("ltorch.odict").is(t) then return false end
  local n = 0
  for k, v in pairs(t) do
    if type(k) ~= "string" or not require("ltorch.core").is_tensor(v) then return false end
    n = n + 1
  end
  return n > 0
end

-- the state dict in a loaded value: a flat name -> tensor dict itself; a
-- pickled torch.nn.Module's (ltorch.pymodule); a TorchScript archive's
-- (ltorch.torchscript); in a training checkpoint the entry under one of
-- PyTorch's usual names; else the value unchanged
function M.state_dict_of(v)
  if is_flat(v) then return v end
  if type(v) == "table" and rawget(v, "__torchscript") ~= nil then
    local sd = require("ltorch.torchscript").state_dict(v)
    if sd then return sd end
  end
  -- a pickled module: an inert table (only those need ltorch.pymodule)
  local function module_sd(x)
    if type(x) ~= "table" or type(rawget(x, "__global")) ~= "string" then return nil end
    local pym = require("ltorch.pymodule")
    return pym.is_module(x) and pym.state_dict(x) or nil
  end
  local sd = module_sd(v)
  if sd then return sd end
  if type(v) == "table" and rawget(v, "__global") == nil then
    for _, k in ipairs({"state_dict", "model_state_dict", "model", "module", "net", "network"}) do
      local c = v[k]
      if is_flat(c) then return c end
      sd = module_sd(c)
      if sd then return sd end
    end
  end
  return v
end

---------------------------------------------------------------------------

function M.install(torch)
  format("pt")   -- the default format, ready as torch.load's code is after `import torch`
  local modsave
  local function ms()
    modsave = modsave or require("ltorch.modsave")
    return modsave
  end
  -- modules are tables nn/module.lua made: none exist before it loads, and
  -- a save of tensors then loads neither it nor modsave.lua
  local function holds_modules(obj)
    return type(obj) == "table" and package.loaded["ltorch.nn.module"] ~= nil and ms().holds_modules(obj)
  end

  function torch.save(obj, path, opts)
    check_path(path, "save")
    opts = opts_table(opts, "save")
    local f = M.format_for_save(path, opts)
    check_options(opts, f, "save", 2)
    local extras
    local modules = holds_modules(obj)
    if modules and f.modules == false then
      error(string.format("%s: a %s file cannot hold ltorch modules: save model:state_dict(), or use .pt",
        path, f.title or f.name), 2)
    end
    if modules then
      obj, extras = ms().pack(obj, f, opts)
      -- a format without extra records keeps the state dict only
      if not f.extras then extras = nil end
    end
    M.write(obj, path, opts, extras, f, 2)
    return path
  end

  function torch.load(path, opts)
    check_path(path, "load")
    opts = opts_table(opts, "load")
    local val, extras = M.read(path, opts, nil, "load", 2)
    if extras ~= nil and ms().is_module_file(extras) then
      if opts.keys ~= nil or opts.rename ~= nil then
        error(path .. ": a whole-module file loads whole: 'keys' and 'rename' select from " ..
          "state dicts (use torch.load_state_dict)", 2)
      end
      val = ms().unpack(val, extras, opts, path)
    end
    return val
  end

  -- R torch's name: the flat, ordered state dict of a checkpoint. Foreign
  -- pickle globals load inert (nothing is run), so a pickled PyTorch
  -- module gives its state dict.
  function torch.load_state_dict(path, opts)
    check_path(path, "load_state_dict")
    opts = opts_table(opts, "load_state_dict")
    local internal = {as_dict = true}
    if opts.unknown == nil then internal.unknown = "inert" end
    local val, extras, f = M.read(path, opts, internal, "load_state_dict", 2)
    if extras ~= nil and ms().is_module_file(extras) and opts.keys == nil and opts.rename == nil then
      val = ms().view(val, extras, path)
    end
    local sd = f.state_dict and f.state_dict(val, path)
    return sd or M.state_dict_of(val)
  end
end

return M
