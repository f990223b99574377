-- formats/index.lua: Hugging Face sharded checkpoints (docs/formats.md):
-- model.safetensors.index.json, pytorch_model.bin.index.json. Loading reads
-- the shards named in "weight_map" (relative to the index's folder) with
-- serialize.read and merges them into one ordered state dict: shard by shard
-- in order of first mention, each shard's tensors in file order. Every
-- listed tensor must be in the shard the index names. Shard names may not
-- leave the folder. opts.keys/rename/mmap/progress apply across shards.
local odict = require("ltorch.odict")
local json = require("ltorch.json")
local common = require("ltorch.formats.common")

local M = {name = "index", extensions = {".index.json"},
  load_options = {"mmap", "keys", "rename", "progress", "unknown"}, save_options = {}}

local MAX_INDEX = 64 * 1024 * 1024

local function read_all(path)
  local fh, err = io.open(path, "rb")
  if not fh then common.fail(path, err) end
  local size = fh:seek("end")
  if size > MAX_INDEX then fh:close(); common.fail(path, "index larger than 64 MiB") end
  fh:seek("set", 0)
  local s = fh:read("a")
  fh:close()
  return s
end

function M.detect(head, path)
  if not head:match("^%s*{") then return false end
  if head:find('"weight_map"', 1, true) then return true end
  if not path then return false end
  local ok, v = pcall(function() return json.decode(read_all(path)) end)
  return ok and odict.is(v) and odict.is(v.weight_map)
end

function M.can_hold()
  return false, "an index is written with its shards; save each shard as .safetensors or .pt"
end

function M.save()
  error("cannot save an index: save each shard as .safetensors or .pt", 0)
end

local function check_shard_name(path, tensor, shard)
  if type(shard) ~= "string" or shard == "" then
    common.fail(path, "weight_map entry '" .. tensor .. "': shard name is not a string")
  end
  if shard:sub(1, 1) == "/" or shard:find("\\", 1, true) then
    common.fail(path, "weight_map entry '" .. tensor .. "': shard '" .. shard .. "' is an absolute path")
  end
  for part in shard:gmatch("[^/]+") do
    if part == ".." then
      common.fail(path, "weight_map entry '" .. tensor .. "': shard '" .. shard .. "' leaves the index's folder")
    end
  end
end

function M.load(path, opts)
  opts = opts or {}
  local torch = require("ltorch")
  local ok, idx = pcall(json.decode, read_all(path))
  if not ok then common.fail(path, idx) end
  if not odict.is(idx) or not odict.is(idx.weight_map) then
    common.fail(path, "not a sharded checkpoint index (no \"weight_map\" object)")
  end
  -- a remote index (serialize gives its URL as origin) has remote shards
  local remote = opts.origin and require("ltorch.remote").is_url(opts.origin)
  local dir = (opts.origin or path):match("^(.*/)") or ""
  local keep = common.selector({keys = opts.keys})
  local rename = common.selector({rename = opts.rename})
  local progress = common.progress(opts)
  -- shards in order of first mention, with the tensors each must hold
  local shards, wanted = {}, {}
  for tensor, shard in pairs(idx.weight_map) do
    check_shard_name(path, tensor, shard)
    if not wanted[shard] then shards[#shards + 1] = shard; wanted[shard] = {} end
    if keep(tensor) then wanted[shard][tensor] = true end
  end
  -- shards holding none of the wanted tensors are not opened
  local needed = {}
  for _, shard in ipairs(shards) do
    if next(wanted[shard]) then needed[#needed + 1] = shard end
  end
  shards = needed
  local sizes, total = {}, 0
  for i, shard in ipairs(shards) do
    if remote then
      sizes[i] = 1   -- opened when loaded; progress counts shards
    else
      local fh = io.open(dir .. shard, "rb")
      if not fh then common.fail(path, "shard '" .. shard .. "' is missing") end
      sizes[i] = fh:seek("end")
      fh:close()
    end
    total = total + sizes[i]
  end
  local out, done = odict.new(), 0
  for i, shard in ipairs(shards) do
    local want = wanted[shard]
    local sopts = {mmap = opts.mmap, keys = function(n) return want[n] == true end}
    local sp = dir .. shard
    local sd = require("ltorch.serialize").read(sp, sopts, {unknown = opts.unknown, as_dict = true})
    if type(sd) ~= "table" then common.fail(path, "shard '" .. shard .. "' is not a state dict") end
    for _, name in ipairs(common.ordered_keys(sd)) do
      if want[name] then
        local t = sd[name]
        if not common.is_tensor(t) then
          common.fail(path, "tensor '" .. name .. "' in shard '" .. shard .. "' is not a tensor")
        end
        local new = rename(name)
        common.put(out, new, t, path)
      end
    end
    for name in pairs(want) do
      if sd[name] == nil then
        common.fail(path, "tensor '" .. name .. "' is not in shard '" .. shard .. "'")
      end
    end
    done = done + sizes[i]
    progress(done, total)
  end
  return out
end

return M
