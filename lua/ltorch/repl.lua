-- repl.lua: the ltorch prompt (`ltorch`, `ltorch repl [FILE]`).
--
-- A Lua 5.4 read-eval-print loop like lua.c's: a line is first tried as an
-- expression ("return " .. line), then as a statement; a chunk that ends in
-- '<eof>' errors is incomplete and reads more lines; errors print and the
-- loop goes on. Line editing and history come from lua-readline (Debian
-- package lua-readline) when installed, else plain io.read. Globals: torch,
-- nn, and ckpt (the FILE, memory-mapped).

local M = {}

local PROMPT, PROMPT2 = "> ", ">> "
local SUMMARY_ROWS = 40

-- how a value prints at the prompt
function M.show(v)
  local torch = require("ltorch")
  local inspect = require("ltorch.inspect")
  if torch.is_tensor(v) then return tostring(v) end
  if v == torch.null then return "torch.null" end
  local tv = type(v)
  if tv == "string" then return v end
  if tv ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  local flat = inspect.flatten(v)
  if #flat.entries == 0 then
    -- a plain table: {k = v, ...} on one line when short
    local parts = {}
    for _, k in ipairs(inspect.ordered_keys(v)) do
      local x = v[k]
      local ks = (math.type(k) == "integer") and "" or (tostring(k) .. " = ")
      parts[#parts + 1] = ks .. inspect.short(x)
      if #parts > 30 then parts[#parts + 1] = "..."; break end
    end
    local s = "{" .. table.concat(parts, ", ") .. "}"
    if rawget(v, "__global") then s = "<" .. v.__global .. "> " .. s end
    return s
  end
  -- a table holding tensors: key, dtype, shape
  local rows = {}
  local keyw = 3
  for i, e in ipairs(flat.entries) do
    if i > SUMMARY_ROWS then break end
    if #e.key > keyw then keyw = #e.key end
  end
  keyw = math.min(keyw, 44)
  local function fit(s)
    if #s > keyw then return s:sub(1, keyw - 1) .. "~" end
    return s .. string.rep(" ", keyw - #s)
  end
  rows[#rows + 1] = fit("key") .. "  " .. string.format("%-10s %s", "dtype", "shape")
  local params, bytes = 0, 0
  for i, e in ipairs(flat.entries) do
    local t = e.tensor
    params = params + t:numel()
    bytes = bytes + t:numel() * t:element_size()
    if i <= SUMMARY_ROWS then
      rows[#rows + 1] = fit(e.key) .. "  " .. string.format("%-10s %s", t:dtype(), inspect.shape_str(t:size()))
    end
  end
  if #flat.entries > SUMMARY_ROWS then
    rows[#rows + 1] = string.format("... %d more", #flat.entries - SUMMARY_ROWS)
  end
  for i, e in ipairs(flat.values) do
    if i > 10 then rows[#rows + 1] = string.format("... %d more values", #flat.values - 10) break end
    rows[#rows + 1] = fit(e.key) .. "  " .. inspect.short(e.value)
  end
  rows[#rows + 1] = string.format("(%d tensors, %s params, %s)", #flat.entries,
    inspect.commas(params), require("ltorch.progress").human_bytes(bytes))
  return table.concat(rows, "\n")
end

-- Line input from lua-readline (editing, history in opts.histfile or
-- ~/.ltorch_history), or nil when it is not installed.
local function readline_reader(opts, env)
  local ok, RL = pcall(require, "readline")
  if not (ok and type(RL) == "table" and RL.readline) then return nil end
  pcall(RL.set_options, {histfile = opts.histfile or "~/.ltorch_history", keeplines = 1000,
    completion = true, auto_add = true})
  if RL.set_complete_function then
    pcall(RL.set_readline_name, "ltorch")
    pcall(RL.set_complete_function, function(text, from, to)
      local word = text:sub(from, to)
      if not word:match("^[%w_%.:]*$") then return {} end
      -- no space after a name: "torch.zeros" is followed by "(" or "."
      if RL.set_completion_append_character then pcall(RL.set_completion_append_character, "") end
      return M.complete(word, env)
    end)
  end
  return function(prompt) return RL.readline(prompt) end, function() pcall(RL.save_history) end
end

local function plain_reader(interactive)
  return function(prompt)
    if interactive then io.stdout:write(prompt); io.stdout:flush() end
    return io.read("l")
  end
end

local function incomplete(err)
  return err and err:sub(-5) == "<eof>"
end

-- Tab completion: the names that can follow word ("torch.ze" ->
-- "torch.zeros", "t:vi" -> "t:view"): globals, table fields (ordered dicts
-- included) and tensor methods, sorted.
function M.complete(word, env)
  local torch = require("ltorch")
  local path, sep, last = word:match("^(.*)([%.:])([%w_]*)$")
  local obj
  if path then
    obj = env
    for part in path:gmatch("[^%.:]+") do
      if type(obj) ~= "table" and not torch.is_tensor(obj) then return {} end
      local ok, v = pcall(function() return obj[part] end)
      if not ok then return {} end
      obj = v
    end
  else
    obj, last, path, sep = env, word, "", ""
  end
  local names, seen = {}, {}
  local function add(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #last) == last and not seen[k] then
      seen[k] = true
      names[#names + 1] = path .. sep .. k
    end
  end
  if torch.is_tensor(obj) then
    for k in pairs(torch._methods or {}) do if k:sub(1, 1) ~= "_" then add(k) end end
  elseif type(obj) == "table" then
    for k in pairs(obj) do add(k) end
    local mt = getmetatable(obj)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if obj == torch then for k in pairs({nn = 1, models = 1, load = 1, save = 1, safe_open = 1}) do add(k) end end
    if type(idx) == "table" then for k in pairs(idx) do add(k) end end
    if obj == env and env ~= _G then for k in pairs(_G) do add(k) end end
  end
  table.sort(names)
  return names
end

-- Compile a chunk the way lua.c does: as an expression first, then as
-- statements. Returns fn, or nil, err, is_incomplete.
function M.compile(src, env)
  local fn = load("return " .. src, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(src, "=stdin", "t", env)
  if fn then return fn end
  return nil, err, incomplete(err)
end

local function print_results(out, n, ...)
  for i = 1, n do
    local v = select(i, ...)
    local ok, s = pcall(M.show, v)
    out:write(ok and s or ("<" .. tostring(v) .. ": " .. tostring(s) .. ">"), "\n")
  end
end

-- Evaluate one complete chunk and print what it returns or raises.
function M.eval(src, env, out)
  out = out or io.stdout
  local fn, err = M.compile(src, env)
  if not fn then out:write(err, "\n") return false end
  local res = table.pack(xpcall(fn, function(e)
    if type(e) ~= "string" then return e end
    return debug.traceback(e, 2)
  end))
  if not res[1] then
    local e = res[2]
    if type(e) == "string" then
      -- drop the frames of the REPL itself
      e = e:gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
      e = e:gsub("\n[^\n]*ltorch/repl%.lua.*$", "")
    else
      e = "(error object is a " .. type(e) .. " value)"
    end
    out:write(e, "\n")
    return false
  end
  print_results(out, res.n - 1, table.unpack(res, 2, res.n))
  return true
end

-- Run the prompt. opts: file (loaded as ckpt), inert (unknown = "inert").
function M.run(opts)
  opts = opts or {}
  local torch = require("ltorch")
  local env = _G
  env.torch = torch
  local nok, nn = pcall(function() return torch.nn end)
  if nok then env.nn = nn end
  local banner = string.format("ltorch %s (%s): torch%s loaded", torch.version or "", _VERSION,
    nok and ", nn" or "")
  if opts.file then
    local progress = require("ltorch.progress")
    local cb = progress.bar("loading " .. opts.file)
    local ok, v = pcall(torch.load, opts.file, {mmap = true, progress = cb,
      unknown = opts.inert and "inert" or nil})
    if not ok and not opts.inert and tostring(v):find("unsupported globals", 1, true) then
      -- a pickle that refers to classes ltorch does not rebuild: load them
      -- as inert tables (nothing is imported or run) and say so
      local ok2, v2 = pcall(torch.load, opts.file, {mmap = true, unknown = "inert"})
      if ok2 then
        io.stdout:write("note: ", tostring(v):gsub(" %(.*%)$", ""),
          "; loaded as inert tables {__global = ..., args = ..., state = ...}\n")
        ok, v = ok2, v2
      end
    end
    progress.finish(cb)
    if not ok then
      io.stderr:write("ltorch: ", tostring(v), "\n")
      return 1
    end
    env.ckpt = v
    banner = banner .. "; ckpt = " .. opts.file
  end
  local interactive
  do
    local core = require("ltorch.core")
    local ok, term = pcall(require, "term")
    if core._isatty then interactive = core._isatty(0)
    elseif ok and type(term) == "table" and term.isatty then interactive = term.isatty(io.stdin)
    else interactive = os.execute("test -t 0") == true end
  end
  -- on a pipe only results print (docs/cli.md): no banner, no prompts
  if interactive then io.stdout:write(banner, "\n") end
  local read, close = plain_reader(interactive), function() end
  if interactive and not opts.plain then
    local r, c = readline_reader(opts, env)
    if r then read, close = r, c end
  end
  while true do
    local line = read(PROMPT)
    if line == nil then break end
    if line:match("%S") then
      local src = line
      while true do
        local fn, _, inc = M.compile(src, env)
        if fn or not inc then break end
        local more = read(PROMPT2)
        if more == nil then break end
        src = src .. "\n" .. more
      end
      M.eval(src, env, io.stdout)
      io.stdout:flush()
    end
  end
  if interactive then io.stdout:write("\n") end
  close()
  return 0
end

return M
