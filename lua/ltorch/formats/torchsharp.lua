-- formats/torchsharp.lua: TorchSharp .dat state dicts (layout in src/torchsharp.c;
-- TorchSharp's C# reader is the reference). Names are written with their
-- UTF-8 byte length, as C#'s BinaryReader.ReadString expects.
-- load(path, opts) -> ordered dict; opts: mmap, keys, rename, progress.
-- save(obj, tmp): obj a flat table of named tensors, in odict.ordered_keys'
-- order (an odict's own; a plain table's names sorted), never next()'s, so
-- that one value always gives the same bytes (docs/formats.md).
local core = require("ltorch.core")
local odict = require("ltorch.odict")
local common = require("ltorch.formats.common")

local M = {name = "torchsharp", extensions = {".dat"},
  load_options = {"mmap", "keys", "rename", "progress"}, save_options = {}}

local VALID = {[0] = true, true, true, true, true, true, true, true, [9] = true, [10] = true,
  [11] = true, [15] = true}

-- LEB128 at byte i of s: value and next position, or nil
local function leb(s, i)
  local v, shift = 0, 0
  while i <= #s and shift < 63 do
    local b = s:byte(i)
    v = v | ((b & 0x7f) << shift)
    i = i + 1
    if b < 0x80 then return v, i end
    shift = shift + 7
  end
  return nil
end

-- no magic: check that the first entry parses, as far as 64 bytes go
function M.detect(head)
  -- JSON (an index) can look like a count and a name: leave it alone
  if head:match('^%s*{%s*"') or head:match("^%s*{%s*}") then return false end
  local count, i = leb(head, 1)
  if not count or count == 0 then return #head == 1 and head:byte(1) == 0 end
  local len
  len, i = leb(head, i)
  if not len or len == 0 or len > 4096 then return false end
  local name = head:sub(i, i + len - 1)
  if name:find("[%z\1-\31]") or not utf8.len(name) and #name == len then return false end
  if i + len - 1 > #head then return true end   -- the name runs past the head
  i = i + len
  local code
  code, i = leb(head, i)
  if code == nil then return i == nil and #head < 64 end
  -- a JSON text could pass the checks above: be strict when it starts so
  if head:match("^%s*{") and not VALID[code] then return false end
  return true
end

function M.can_hold(obj)
  return common.flat_dict(obj, "TorchSharp .dat")
end

function M.load(path, opts)
  opts = opts or {}
  return common.with_file(path, function(h)
    local select = common.selector(opts)
    local progress = common.progress(opts)
    local entries = core._ts_scan(h)
    local total = h:size()
    local d = odict.new()
    for _, e in ipairs(entries) do
      local name = select(e.name)
      if name then
        local ok2, t = pcall(h.tensor, h, e.offset, e.dtype, e.shape, opts.mmap, nil, false, e.name)
        if not ok2 then error("entry '" .. e.name .. "': " .. tostring(t), 0) end
        common.put(d, name, t, path)
      end
      progress(e.offset, total)
    end
    progress(total, total)
    return d
  end)
end

function M.save(obj, tmp, opts, final)
  local names, ts = common.items(obj)
  common.write(core._ts_save, tmp, final, opts, names, ts)
end

return M
