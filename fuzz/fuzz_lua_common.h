/*
** fuzz_lua_common.h: Lua text shared by the torch.load targets: touch(v)
** walks a loaded value (tables and their keys, at most 40 deep, each once)
** and makes every tensor of at most 65536 elements contiguous, which reads
** its data (a deferred or mapped storage too). Errors are caught.
*/
#ifndef FUZZ_LUA_COMMON_H
#define FUZZ_LUA_COMMON_H

#define FZ_LUA_TOUCH \
  "local torch = require('ltorch')\n" \
  "local function touch(v, depth, seen)\n" \
  "  if depth > 40 then return end\n" \
  "  if torch.is_tensor(v) then\n" \
  "    if v:numel() <= 65536 then pcall(function() return v:contiguous() end) end\n" \
  "  elseif type(v) == 'table' and not seen[v] then\n" \
  "    seen[v] = true\n" \
  "    pcall(function()\n" \
  "      for k, x in pairs(v) do touch(k, depth + 1, seen); touch(x, depth + 1, seen) end\n" \
  "    end)\n" \
  "  end\n" \
  "end\n"

/* the target body of the whole-load targets (fuzz_pt.c, fuzz_npz.c): the
   input loaded in memory with unknown globals inert, then mapped; what
   loads is touched */
#define FZ_LUA_LOAD \
  "return function(path)\n" \
  "  for _, o in ipairs({{unknown = 'inert'}, {mmap = true}}) do\n" \
  "    local ok, v = pcall(torch.load, path, o)\n" \
  "    if ok then touch(v, 0, {}) end\n" \
  "  end\n" \
  "end\n"

#endif
