-- formats/pt.lua: PyTorch checkpoints (.pt .pth .bin .ckpt), the zip format
-- torch.save writes since 1.6 and the legacy format before it. The bytes are
-- read and written by the C core (src/lpt.c, pickle.c, ptzip.c); this module
-- is the glue of serialize.lua's format contract and the load options.
-- docs/pt-format.md says what is written and how values map.

local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")

local M = {
  name = "pt",
  extensions = {".pt", ".pth", ".bin", ".ckpt"},
  nested = true,   -- data.pkl holds any nested value
  streams = true,  -- the writer writes the file front to back (an S3 save sends parts as it goes)
  extras = true,   -- stores extra records (".ltorch/NAME")
  load_options = {"mmap", "keys", "rename", "progress", "unknown", "verify"},
  save_options = {},
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

-- opts: mmap, unknown ("inert"), progress, verify, keys/rename (applied to
-- the top-level keys of data.pkl, common.selector). Returns the value and
-- the archive's ".ltorch/" records ({name = bytes}) when it has any. A
-- TorchScript archive (torch.jit.save) gives its inert object tree, the
-- class definitions of its code/ added (ltorch.torchscript.annotate).
function M.load(path, opts)
  opts = opts or {}
  local select = common.selector(opts)
  local o = {
    null = null(), odict_from = odict.from, mmap = opts.mmap, unknown = opts.unknown,
    progress = opts.progress, verify = opts.verify,
    select = (opts.keys ~= nil or opts.rename ~= nil) and select or nil,
    torchscript = true,
  }
  local value, extras, code = core._pt_load(path, o)
  if code then
    value = common.guard(path, require("ltorch.torchscript").annotate, value, code)
  end
  return value, extras
end

-- serialize's state_dict hook: a loaded TorchScript archive's state dict
-- (ltorch.torchscript) and what it is; nil for anything else
function M.state_dict(value, path)
  if type(value) ~= "table" or rawget(value, "__torchscript") == nil then return nil end
  local ts = require("ltorch.torchscript")
  if not ts.is_torchscript(value) then return nil end
  return common.guard(path, ts.state_dict, value), ts.describe(value)
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
-- extras ({name = bytes}) are written as the records "<folder>/.ltorch/NAME"
function M.save(obj, tmp_path, opts, final_path, extras)
  opts = opts or {}
  local o = {
    -- every dict is written in odict.ordered_keys' order (not next()'s), so
    -- that saving one value twice gives the same bytes (docs/pt-format.md)
    null = null(), odict_parts = odict.parts, ordered_keys = odict.ordered_keys, progress = opts.progress,
    cast = opts.dtype, release = opts.release_mapped,
  }
  if opts.dtype ~= nil and type(opts.dtype) ~= "string" then
    -- named with the file saved, as the writers' option errors are
    common.fail(final_path or tmp_path, "bad option 'dtype' (string expected, got " .. type(opts.dtype) .. ")")
  end
  o.extra = extras
  -- errors name the file saved (not the temporary one)
  common.guard(final_path or tmp_path, core._pt_save, obj, tmp_path,
    folder_for(final_path or tmp_path), o)
end

return M
