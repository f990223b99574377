-- formats/pt.lua: PyTorch checkpoints (.pt .pth .bin .ckpt), the zip format
-- torch.save writes since 1.6 and the legacy format before it. The bytes are
-- read and written by the C core (src/lpt.c, pickle.c, ptzip.c); this module
-- is the glue of serialize.lua's format contract and the load options.
-- docs/pt-format.md says what is written and how values map.

local core = require("ltorch.core")
local odict = require("ltorch.odict")

local M = {
  name = "pt",
  extensions = {".pt", ".pth", ".bin", ".ckpt"},
}

local LEGACY = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"

-- a zip archive whose first entry is "<folder>/...", or the legacy magic
function M.detect(head)
  if head:sub(1, 4) == "PK\3\4" then
    if #head < 30 then return true end   -- too short for a zip: the loader says what is wrong
    local nlen = string.unpack("<I2", head, 27)
    local name = head:sub(31, 30 + nlen)
    -- torch.save's first record is <folder>/data.pkl; accept any record in a folder
    return name:find("/", 1, true) ~= nil or #head < 30 + nlen
  end
  return head:sub(1, #LEGACY) == LEGACY
end

local function null()
  return require("ltorch").null
end

-- opts.keys (a list or a predicate) and opts.rename ({{pattern, repl}, ...})
-- combined into one function: original key -> new key, or nil to skip
local function selector(opts)
  local keys, rename = opts.keys, opts.rename
  if keys == nil and rename == nil then return nil end
  local keep
  if type(keys) == "table" then
    local set = {}
    for _, k in ipairs(keys) do set[k] = true end
    keep = function(k) return set[k] end
  elseif type(keys) == "function" then
    keep = keys
  elseif keys ~= nil then
    error("bad option 'keys' (list or function expected, got " .. type(keys) .. ")", 0)
  end
  if rename ~= nil and type(rename) ~= "table" then
    error("bad option 'rename' (list of {pattern, replacement} expected, got " .. type(rename) .. ")", 0)
  end
  return function(k)
    if type(k) == "string" and rename then
      for _, r in ipairs(rename) do k = k:gsub(r[1], r[2]) end
    end
    if keep and not keep(k) then return nil end
    return k
  end
end

local function is_flat(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k, v in pairs(t) do
    if type(k) ~= "string" or not core.is_tensor(v) then return false end
    n = n + 1
  end
  return n > 0
end

function M.load(path, opts)
  opts = opts or {}
  local o = {
    null = null(), odict_from = odict.from, mmap = opts.mmap, unknown = opts.unknown,
    progress = opts.progress, verify = opts.verify, select = selector(opts),
  }
  local val, extras = core._pt_load(path, o)
  if extras then
    if opts.state_dict then return val end
    return {__ltorch_module_file = true, state_dict = val, extra = extras}
  end
  if opts.state_dict and not is_flat(val) and type(val) == "table" then
    -- a training checkpoint: {state_dict = sd, ...} or {model = sd, ...}
    for _, k in ipairs({"state_dict", "model_state_dict", "model", "module"}) do
      if is_flat(val[k]) then return val[k] end
    end
  end
  return val
end

-- the folder name torch.save uses: the file name without its last extension
local function folder_for(path)
  local base = path:match("([^/]*)$")
  local stem = base:match("^(.*)%.[^.]*$") or base
  if stem == "" then stem = "archive" end
  return stem
end
M.folder_for = folder_for

-- opts: progress(done, total) per data record chunk; dtype: floating
-- storages are written cast to it (the pickle names the cast storage types,
-- each record is cast into one reused buffer while the archive is written);
-- release_mapped: pages of file-mapped storages are dropped once written
function M.save(obj, tmp_path, opts, final_path)
  opts = opts or {}
  local o = {
    null = null(), odict_is = odict.is, odict_keys = odict.keys, progress = opts.progress,
    cast = opts.dtype, release = opts.release_mapped,
  }
  if opts.dtype ~= nil and type(opts.dtype) ~= "string" then
    error("bad option 'dtype' (string expected, got " .. type(opts.dtype) .. ")", 0)
  end
  if type(obj) == "table" and rawget(obj, "__ltorch_pack") then
    o.extra = obj.extra
    obj = obj.tensors
  end
  -- errors name the file saved (not the temporary one)
  require("ltorch.formats.common").guard(final_path or tmp_path, core._pt_save, obj, tmp_path,
    folder_for(final_path or tmp_path), o)
end

return M
