-- commands.lua: the subcommands of the ltorch command (inspect, convert,
-- diff, repl) and their help. cli.lua hands over argv when the first
-- argument is a command name, --help, or nothing.
--
-- Exit codes: 0 success; 1 a file could not be read or written (or, for
-- diff, the files differ); 2 wrong usage (and, for diff, any error).
-- Errors print one line, "ltorch: model.pt: what is wrong"; --debug (or
-- LTORCH_DEBUG=1) prints the Lua traceback too.

local M = {}

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------

local Usage = {}   -- metatable of usage errors: {msg = "..."}

local function usage_error(fmt, ...)
  error(setmetatable({msg = string.format(fmt, ...)}, Usage), 0)
end

-- The library builds its messages for people ("model.pt: entry 'x': what
-- is wrong", file errors with no "file.lua:12:" position): the command
-- prints them as they are, rewriting nothing. An error that is not a string
-- is shown with tostring.
local function message(e)
  return tostring(e)
end

---------------------------------------------------------------------------
-- options
---------------------------------------------------------------------------

-- Command table: name -> {usage, summary, text, options = {{long, short,
-- arg, help, multi}}, nargs = {min, max}, run = function(args, opts)}.
local COMMANDS = {}
local ORDER = {"inspect", "convert", "diff", "scan", "repl"}

local COMMON_OPTS = {
  {"debug", nil, nil, "print the Lua traceback of an error"},
  {"help", "h", nil, "show this help"},
}

local function find_opt(cmd, name, short)
  for _, list in ipairs({cmd.options, COMMON_OPTS}) do
    for _, o in ipairs(list) do
      if (name and o[1] == name) or (short and o[2] == short) then return o end
    end
  end
end

-- parse argv (from index first) for cmd: positional args and options;
-- "--opt=value", "--opt value", "-x value"; "--" ends options
local function parse(cmd, argv, first)
  local args, opts = {}, {}
  local i = first
  local only_args = false
  while i <= #argv do
    local a = argv[i]
    if only_args or a == "-" or a:sub(1, 1) ~= "-" then
      args[#args + 1] = a
    elseif a == "--" then
      only_args = true
    else
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      if not name then name = a:match("^%-%-(.+)$") end
      local o
      if name then o = find_opt(cmd, name)
      else o = find_opt(cmd, nil, a:sub(2)) end
      if not o then usage_error("%s: unknown option '%s' (see 'ltorch %s --help')", cmd.name, a, cmd.name) end
      if o[3] then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then usage_error("%s: option '--%s' needs %s", cmd.name, o[1], o[3]) end
        end
        if o[5] then
          opts[o[1]] = opts[o[1]] or {}
          table.insert(opts[o[1]], value)
        else
          opts[o[1]] = value
        end
      else
        if value ~= nil then usage_error("%s: option '--%s' takes no value", cmd.name, o[1]) end
        opts[o[1]] = true
      end
    end
    i = i + 1
  end
  return args, opts
end

local function help_text(cmd)
  local out = {"usage: ltorch " .. cmd.usage, "", cmd.text, "", "options:"}
  local all = {}
  for _, o in ipairs(cmd.options) do all[#all + 1] = o end
  for _, o in ipairs(COMMON_OPTS) do all[#all + 1] = o end
  -- each option: flag in 2..25, its help wrapped in 26..79
  local function wrap(text, width)
    local lines, cur = {}, ""
    for word in text:gmatch("%S+") do
      if cur ~= "" and #cur + 1 + #word > width then lines[#lines + 1] = cur; cur = word
      else cur = cur == "" and word or (cur .. " " .. word) end
    end
    if cur ~= "" then lines[#lines + 1] = cur end
    return lines
  end
  local pad = string.rep(" ", 26)
  for _, o in ipairs(all) do
    local flag = (o[2] and ("-" .. o[2] .. ", ") or "    ") .. "--" .. o[1] .. (o[3] and (" " .. o[3]) or "")
    local help = wrap(o[4], 79 - 26)
    if #flag > 23 then
      out[#out + 1] = "  " .. flag
      help[1] = pad .. help[1]
    else
      help[1] = string.format("  %-23s %s", flag, help[1])
    end
    for i = 2, #help do help[i] = pad .. help[i] end
    table.move(help, 1, #help, #out + 1, out)
  end
  if cmd.more then out[#out + 1] = ""; out[#out + 1] = cmd.more end
  return table.concat(out, "\n")
end

local function main_help()
  local torch_ok, torch = pcall(require, "ltorch")
  local out = {
    "ltorch " .. (torch_ok and torch.version or "") .. " - Lua 5.4 model I/O: inspect, convert and",
    "compare PyTorch, safetensors, NumPy and TorchSharp checkpoints",
    "",
    "usage:",
    "  ltorch                       start the Lua prompt (same as 'ltorch repl')",
    "  ltorch SCRIPT.lua [ARGS...]  run a script with ltorch available",
    "  ltorch -e CODE [ARGS...]     run a chunk of Lua",
    "  ltorch COMMAND [OPTIONS] ... run a command:",
    "",
  }
  for _, n in ipairs(ORDER) do
    out[#out + 1] = string.format("    %-10s %s", n, COMMANDS[n].summary)
  end
  out[#out + 1] = ""
  out[#out + 1] = "'ltorch COMMAND --help' describes a command and its options."
  out[#out + 1] = "Global options: --debug (print Lua tracebacks), --help."
  out[#out + 1] = "Environment: LTORCH_PROGRESS=always|never overrides the terminal test"
  out[#out + 1] = "for progress bars; LTORCH_DEBUG=1 is --debug."
  return table.concat(out, "\n")
end

local function check_nargs(cmd, args)
  local lo, hi = cmd.nargs[1], cmd.nargs[2]
  if #args < lo then
    usage_error("%s: expected %s (see 'ltorch %s --help')", cmd.name, cmd.args_desc, cmd.name)
  end
  if hi and #args > hi then
    usage_error("%s: unexpected argument '%s'", cmd.name, args[hi + 1])
  end
end

local function stdout_lines(s)
  io.stdout:write(s, "\n")
end

-- raises "path: no such file", "path: is a directory", ... as every load does
local function check_readable(path)
  if require("ltorch.remote").is_url(path) then return end   -- the load says what is wrong
  require("ltorch.core")._head(path, 0)
end

-- serialize.write(...) under pcall: what it raises at its caller's line (a
-- value the format cannot hold) then has no position in this file, and is
-- raised again as it is
local function save(serialize, ...)
  local ok, err = pcall(serialize.write, ...)
  if not ok then error(err, 0) end
end

-- a progress bar labelled with the verb and the file's base name
local function bar(verb, path)
  return require("ltorch.progress").bar(verb .. " " .. (path:match("[^/]+$") or path))
end

local function finish(cb) require("ltorch.progress").finish(cb) end

---------------------------------------------------------------------------
-- inspect
---------------------------------------------------------------------------

COMMANDS.inspect = {
  usage = "inspect [OPTIONS] FILE...",
  summary = "show the tensors, module tree and metadata of checkpoints",
  args_desc = "at least one FILE",
  nargs = {1, nil},
  text = [[
Shows what a checkpoint holds without running anything: the module tree
from the key prefixes (layer1.0.conv1.weight under layer1 > 0 > conv1) with
parameter counts and bytes per subtree, each tensor's dtype, shape and size,
a dtype histogram, totals, safetensors metadata, tensors sharing storage,
non-tensor values, and for pickles every foreign global (class or function
reference) in the file, listed but never imported or called. Tensor data is
not read (files are memory-mapped) unless --stats asks for it.
Formats: PyTorch (.pt/.pth/.bin zip and legacy), safetensors, sharded
*.index.json, NumPy .npy/.npz, TorchSharp .dat, Torch7 .t7 (the object
tree too; a Torch7 nn model's tensors as its state dict, by PyTorch's
names).]],
  options = {
    {"stats", "s", nil, "add min, max, mean, std, nan and inf counts per tensor (reads the data)"},
    {"json", "j", nil, "print the report as JSON ({\"files\": [...], \"errors\": [...]})"},
    {"filter", "f", "PATTERN", "list only keys matching PATTERN (a Lua pattern or a plain substring)"},
    {"depth", "d", "N", "show the module tree down to N levels"},
  },
  run = function(args, opts)
    local inspect = require("ltorch.inspect")
    local depth
    if opts.depth then
      depth = math.tointeger(tonumber(opts.depth))
      if not depth or depth < 1 then usage_error("inspect: --depth expects a positive integer, got '%s'", opts.depth) end
    end
    local reports, errors = {}, {}
    local status = 0
    for i, path in ipairs(args) do
      local cb = (not opts.json) and bar("loading", path) or nil
      local ok, r = M.protect(function()
        check_readable(path)
        return inspect.report(path, {stats = opts.stats, filter = opts.filter, progress = cb})
      end)
      finish(cb)
      if ok then
        reports[#reports + 1] = r
        if not opts.json then
          if i > 1 then io.stdout:write("\n") end
          stdout_lines(inspect.render(r, {depth = depth, stats = opts.stats}))
        end
      else
        errors[#errors + 1] = {path, r}
        io.stderr:write("ltorch: ", r, "\n")
        status = 1
      end
    end
    if opts.json then
      local errs = {}
      for _, e in ipairs(errors) do errs[#errs + 1] = inspect.json_obj("path", e[1], "error", e[2]) end
      stdout_lines(inspect.to_json(reports, errs))
    end
    io.stdout:flush()
    return status
  end,
}

---------------------------------------------------------------------------
-- convert
---------------------------------------------------------------------------

local function parse_rename(rules)
  local out = {}
  for _, r in ipairs(rules or {}) do
    local pat, rep = r:match("^(.-)=(.*)$")
    if not pat or pat == "" then
      usage_error("convert: --rename expects 'PATTERN=REPLACEMENT', got '%s'", r)
    end
    local ok, err = pcall(string.gsub, "", pat, rep)
    if not ok then usage_error("convert: --rename pattern '%s': %s", pat, message(err)) end
    out[#out + 1] = {pat, rep}
  end
  return out
end

local function rename_key(k, rules)
  if type(k) ~= "string" then return k end
  for _, r in ipairs(rules) do k = k:gsub(r[1], r[2]) end
  return k
end

-- Apply --rename to the string keys of every table in the value (state
-- dicts nested in checkpoints included). Two keys renamed to one is an error.
local function rename_all(v, rules, path)
  local torch = require("ltorch")
  local odict = require("ltorch.odict")
  if #rules == 0 or type(v) ~= "table" or torch.is_tensor(v) or rawget(v, "__global") then return v end
  local mt = getmetatable(v)
  if mt and not odict.is(v) then return v end
  local keys = require("ltorch.inspect").ordered_keys(v)
  local new_keys, data, from = {}, {}, {}
  for _, k in ipairs(keys) do
    local nk = rename_key(k, rules)
    if nk == "" then error(string.format("%s: --rename maps '%s' to an empty key", path, k), 0) end
    if from[nk] ~= nil then
      error(string.format("%s: --rename maps both '%s' and '%s' to '%s'", path, from[nk], k, nk), 0)
    end
    from[nk] = k
    new_keys[#new_keys + 1] = nk
    data[nk] = rename_all(v[k], rules, path)
  end
  if odict.is(v) then return odict.from(new_keys, data) end
  return data
end

local function valid_dtype(dt)
  local torch = require("ltorch")
  local ok = pcall(function() return torch.zeros(1):to(dt) end)
  return ok
end

COMMANDS.convert = {
  usage = "convert [OPTIONS] IN OUT",
  summary = "convert a checkpoint to another format, dtype or key names",
  args_desc = "IN and OUT",
  nargs = {2, 2},
  text = [[
Reads IN (any format ltorch reads) and writes OUT in the format its
extension names (.pt/.pth/.bin/.ckpt PyTorch zip, .safetensors, .npz,
.npy, .dat TorchSharp, .t7 Torch7) or --format. A Torch7 nn model is
written as its state dict, by PyTorch's names (docs/t7.md). It streams
tensor by tensor: IN is opened without reading any tensor (mapped, or for
compressed and misaligned records left in the file), and the writer reads
one tensor, casts it for --dtype while writing it (a .pt storage is cast
into one buffer, written and freed) and frees what it read, so peak memory
is about one tensor, not the model, for every input format. A value the
target cannot hold (a nested checkpoint written to safetensors, a pickle
with foreign globals) is flattened to its tensors under dotted keys; other
values are dropped with a note on stderr. The write is atomic: OUT is
replaced only when complete.]],
  options = {
    {"dtype", "t", "DTYPE", "cast floating-point tensors to DTYPE (float32, float16, bfloat16, float64, ...); integer and bool tensors are kept"},
    {"rename", "r", "PAT=REP", "rename keys with string.gsub(key, PAT, REP) (Lua patterns); repeatable, applied in order, e.g. '^module%.=' or '^_orig_mod%.='", true},
    {"format", "F", "NAME", "output format: pt, safetensors, npz, npy, torchsharp, t7, gguf (default: from OUT's extension)"},
    {"filter", "f", "PATTERN", "write only keys matching PATTERN (Lua pattern or plain substring; before renaming)"},
    {"quantize", "q", "TYPE", "GGUF output: quantize 2-D floating tensors to TYPE (q8_0, q4_0, q4_1, q5_0, q5_1, ...)"},
  },
  more = "example:\n  ltorch convert model.pt model.safetensors --dtype bfloat16 -r '^module%.='",
  run = function(args, opts)
    local torch = require("ltorch")
    local serialize = require("ltorch.serialize")
    local inspect = require("ltorch.inspect")
    local modsave = require("ltorch.modsave")
    local odict = require("ltorch.odict")
    local inp, outp = args[1], args[2]
    local rules = parse_rename(opts.rename)
    if opts.dtype and not valid_dtype(opts.dtype) then
      usage_error("convert: unknown dtype '%s'", opts.dtype)
    end
    if opts.format and not serialize.format(opts.format) then
      usage_error("convert: unknown format '%s'", opts.format)
    end
    check_readable(inp)
    do -- the folder OUT goes into must exist (the save writes a temporary file there)
      local folder = outp:match("^(.*)/[^/]*$")
      if folder and folder ~= "" then
        local f = io.open(folder, "rb")
        if not f then error(string.format("%s: no such folder '%s'", outp, folder), 0) end
        f:close()
      end
    end
    local cb = bar("reading", inp)
    local target = serialize.format_for_save(outp, {format = opts.format})
    -- a URL's format is the one its load finds (telling it first would
    -- open the object once more), unless the load's options depend on it
    local source
    if target.name == "gguf" or not require("ltorch.remote").is_url(inp) then source = serialize.detect(inp) end
    -- GGUF to GGUF keeps quantized tensors as their blocks, byte for byte
    local lopts = {progress = cb}
    if source and source.name == "gguf" and target.name == "gguf" then lopts.raw = true end
    local sd, _, raw, extras, found, model = inspect.load(inp, lopts)
    source = source or found
    local same = source and source.name == target.name
    finish(cb)
    local sopts = {format = opts.format, dtype = opts.dtype or nil, release_mapped = true,
      quantize = opts.quantize}
    if opts.quantize and target.name ~= "gguf" then
      usage_error("convert: --quantize writes GGUF files only, not %s", target.name)
    end
    local value = raw
    if source and source.state_dict and sd ~= raw and not same then
      -- a Torch7 nn model or a GGUF file: its tensors, as a state dict
      value = sd
      if model then
        io.stderr:write(string.format("ltorch: note: %s: %s; writing its state dict, by PyTorch's names\n", inp, model))
      end
    end
    if modsave.is_module_file(extras) then
      if target.extras and #rules == 0 and not opts.filter then
        -- structure and tensors carried over as they are: no class is needed
        local v2, x2 = modsave.convert(raw, extras, target, inp)
        io.stderr:write(string.format("ltorch: note: %s: a whole-module file; %s is one too\n", inp, outp))
        local scb = bar("writing", outp)
        sopts.progress = scb
        save(serialize, v2, outp, sopts, x2, target)
        finish(scb)
        return 0
      end
      value = modsave.view(raw, extras, inp)
      if target.extras then
        io.stderr:write(string.format("ltorch: note: %s: a whole-module file; --rename and --filter write its state dict only\n", inp))
      else
        io.stderr:write(string.format("ltorch: note: %s: a whole-module file; %s holds its state dict, the module structure is dropped (%s stores no modules)\n",
          inp, outp, target.name))
      end
    end
    local flat = inspect.flatten(value)
    local keep = inspect.matcher(opts.filter)
    -- flatten when a filter asks for it, when there are foreign globals, when
    -- the value is not a table, or when the target cannot hold it
    local must_flatten = opts.filter or #flat.global_order > 0 or type(value) ~= "table"
      or torch.is_tensor(value)
    if not must_flatten and target.can_hold then
      local ok = target.can_hold(value)
      if not ok then must_flatten = true end
    end
    if torch.is_tensor(value) and (target.name == "npy" or target.name == "pt") then
      must_flatten = false
    end
    if must_flatten and not torch.is_tensor(value) then
      local keys, data, dropped = {}, {}, 0
      for _, e in ipairs(flat.entries) do
        if keep(e.key) then
          if data[e.key] ~= nil then error(inp .. ": duplicate key '" .. e.key .. "' after flattening", 0) end
          keys[#keys + 1] = e.key
          data[e.key] = e.tensor
        end
      end
      local dropped_keys = {}
      for _, v in ipairs(flat.values) do
        if keep(v.key) then dropped = dropped + 1; dropped_keys[#dropped_keys + 1] = v.key end
      end
      if #flat.global_order > 0 then
        local g = flat.global_order
        local names = table.concat(g, ", ", 1, math.min(#g, 2)) .. (#g > 2 and ", ..." or "")
        io.stderr:write(string.format("ltorch: note: %s: %d foreign globals (%s) not converted; writing its %d tensors\n",
          inp, #g, names, #keys))
      end
      if dropped > 0 then
        local list = table.concat(dropped_keys, ", ", 1, math.min(#dropped_keys, 8))
        if #dropped_keys > 8 then list = list .. ", ..." end
        io.stderr:write(string.format("ltorch: note: %s: %d non-tensor values not written (%s)\n",
          inp, dropped, list))
      end
      value = odict.from(keys, data)
    end
    if torch.is_tensor(value) and must_flatten then
      -- one bare tensor into a format of named tensors: name it after IN
      local stem = inp:match("([^/]*)$"):gsub("%.[^.]*$", "")
      if stem == "" then stem = "tensor" end
      io.stderr:write(string.format("ltorch: note: %s holds one tensor; writing it as '%s'\n", inp, stem))
      value = odict.from({stem}, {[stem] = value})
    end
    value = rename_all(value, rules, inp)
    -- the writers stream: each tensor is read from the input (mapped, or
    -- deferred in its file), cast chunk by chunk (save option dtype) and
    -- written, and its memory is given back behind the writer
    -- (release_mapped: nothing here writes to the input's tensors), so peak
    -- memory is about one tensor
    local scb = bar("writing", outp)
    sopts.progress = scb
    save(serialize, value, outp, sopts, nil, target)
    finish(scb)
    return 0
  end,
}

---------------------------------------------------------------------------
-- diff
---------------------------------------------------------------------------

-- the largest |a - b| over two same-shape tensors, streamed in chunks;
-- 0 when the bytes are equal, nan when a nan meets a number
local CHUNK = 1 << 18
local function max_abs_diff(a, b)
  local core = require("ltorch.core")
  local n = a:numel()
  if n == 0 then return 0 end
  local fa, fb = a:contiguous():reshape(n), b:contiguous():reshape(n)
  local same_dtype = a:dtype() == b:dtype()
  local complex = a:dtype():match("^complex") or b:dtype():match("^complex")
  local best = 0.0
  local function free(t) if t then t:free() end end
  for s = 1, n, CHUNK do
    local len = math.min(CHUNK, n - s + 1)
    local pa, pb = fa:narrow(1, s, len), fb:narrow(1, s, len)
    local equal
    if same_dtype then equal = pa:equal(pb) end
    if not equal then
      if complex then return 0 / 0 end
      pa, pb = pa:to("float64"), pb:to("float64")
      -- the max |a - b| is max(|min d|, |max d|); a nan or inf in d sends
      -- the chunk to the Lua loop below (nan against nan is equal there)
      local ok, st = pcall(function()
        local d = pa:sub(pb)
        local sd = core._stats(d)
        free(d)
        return sd
      end)
      if ok and st and st.nan == 0 and st.inf == 0 then
        local m = math.max(math.abs(st.min or 0), math.abs(st.max or 0))
        if m > best then best = m end
      else
        local la, lb = pa:tolist(), pb:tolist()
        for i = 1, len do
          local x, y = la[i], lb[i]
          if x ~= y then
            if x ~= x and y ~= y then -- both nan: equal
            elseif x ~= x or y ~= y then free(pa); free(pb); return 0 / 0
            else
              local d = math.abs(x - y)
              if d ~= d then d = math.huge end  -- inf against -inf
              if d > best then best = d end
            end
          end
        end
      end
      free(pa); free(pb)
    end
  end
  return best
end
M.max_abs_diff = max_abs_diff

COMMANDS.diff = {
  usage = "diff [OPTIONS] A B",
  summary = "compare two checkpoints key by key (exit 0 equal, 1 different)",
  args_desc = "two files A and B",
  nargs = {2, 2},
  text = [[
Compares the tensors (and other values) of A and B by key, in any formats:
keys only in A, keys only in B, dtype and shape changes, and for tensors of
equal shape the largest absolute difference of their values (streamed
chunk by chunk; equal bytes are equal). Exit status: 0 when A and B hold the
same keys with the same dtypes, shapes and values, 1 when they differ, 2 on
an error.]],
  options = {
    {"atol", "a", "X", "count value differences up to X as equal (default 0)"},
    {"filter", "f", "PATTERN", "compare only keys matching PATTERN (Lua pattern or plain substring)"},
    {"quiet", "q", nil, "print nothing; only the exit status tells"},
  },
  run = function(args, opts)
    local torch = require("ltorch")
    local inspect = require("ltorch.inspect")
    local core = require("ltorch.core")
    local atol = 0
    if opts.atol then
      atol = tonumber(opts.atol)
      if not atol or atol < 0 then usage_error("diff: --atol expects a number >= 0, got '%s'", opts.atol) end
    end
    local keep = inspect.matcher(opts.filter)
    local function load(path)
      check_readable(path)
      local cb = bar("loading", path)
      local v = inspect.load(path, {progress = cb})
      finish(cb)
      local flat = inspect.flatten(v)
      local keys, map = {}, {}
      for _, e in ipairs(flat.entries) do
        if keep(e.key) and map[e.key] == nil then keys[#keys + 1] = e.key; map[e.key] = e.tensor end
      end
      for _, e in ipairs(flat.values) do
        if keep(e.key) and map[e.key] == nil then keys[#keys + 1] = e.key; map[e.key] = {value = e.value} end
      end
      return keys, map
    end
    local A, B = args[1], args[2]
    local ka, ma = load(A)
    local kb, mb = load(B)
    local lines = {}
    local function say(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
    local only_a, only_b, changed, same = 0, 0, 0, 0
    for _, k in ipairs(ka) do
      if mb[k] == nil then only_a = only_a + 1; say("only in %s: %s", A, k) end
    end
    for _, k in ipairs(kb) do
      if ma[k] == nil then only_b = only_b + 1; say("only in %s: %s", B, k) end
    end
    for _, k in ipairs(ka) do
      local a, b = ma[k], mb[k]
      if b ~= nil then
        local ta, tb = torch.is_tensor(a), torch.is_tensor(b)
        if ta and tb then
          local differs = false
          local sa, sb = inspect.shape_str(a:size()), inspect.shape_str(b:size())
          if a:dtype() ~= b:dtype() then
            differs = true
            say("dtype  %s: %s -> %s", k, a:dtype(), b:dtype())
          end
          if sa ~= sb then
            differs = true
            say("shape  %s: %s -> %s", k, sa, sb)
          else
            local d = max_abs_diff(a, b)
            core._release(a)   -- one pair's data in memory at a time
            core._release(b)
            if d ~= d or d > atol then
              differs = true
              say("values %s: max abs diff %s", k, inspect.g4(d))
            end
          end
          if differs then changed = changed + 1 else same = same + 1 end
        elseif ta or tb then
          changed = changed + 1
          say("type   %s: %s -> %s", k, ta and "tensor" or "value", tb and "tensor" or "value")
        else
          local va, vb = a.value, b.value
          local equal = va == vb or (type(va) == "table" and type(vb) == "table"
            and inspect.short(va) == inspect.short(vb) and type(va) == type(vb))
          if type(va) == "number" and type(vb) == "number" and va ~= va and vb ~= vb then equal = true end
          if equal then same = same + 1 else
            changed = changed + 1
            say("value  %s: %s -> %s", k, inspect.short(va), inspect.short(vb))
          end
        end
      end
    end
    local differ = only_a + only_b + changed > 0
    if not opts.quiet then
      for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
      if differ then
        io.stdout:write(string.format("%d only in %s, %d only in %s, %d changed, %d equal\n",
          only_a, A, only_b, B, changed, same))
      else
        io.stdout:write(string.format("equal: %d keys\n", same))
      end
    end
    return differ and 1 or 0
  end,
  error_status = 2,
}

---------------------------------------------------------------------------
-- scan
---------------------------------------------------------------------------

COMMANDS.scan = {
  usage = "scan [OPTIONS] FILE...",
  summary = "audit the pickles in files without running them (exit 1 dangerous)",
  args_desc = "at least one FILE",
  nargs = {1, nil},
  text = [[
Disassembles every pickle in each FILE, opcode by opcode, without importing,
calling or building anything: PyTorch .pt/.pth/.bin (zip and legacy),
TorchScript archives, raw pickles (several back to back too), NumPy .npy
object arrays and .npz, and zips nested in zips (told by their bytes, not
their names). Lists every global (class or function) a pickle imports,
whether it is called, and the opcodes by class; a STACK_GLOBAL whose names
come through the memo is still named, and one whose names cannot be known
is "?", dangerous. Verdict per file: safe (only what ltorch rebuilds
itself), suspicious (other globals), dangerous (code execution, imports by
name, files, processes: os.system, builtins.eval, subprocess.*, ...), or
error (a broken pickle, a format ltorch does not scan such as 7z or gzip).
A broken pickle keeps what came before it: a dangerous global then keeps
the file dangerous. Exit status: 1 if any file is dangerous, else 2 if any
could not be scanned, else 0 (--strict: 1 for suspicious files too).]],
  options = {
    {"json", "j", nil, "print the reports as JSON ({\"files\": [...]})"},
    {"strict", nil, nil, "exit 1 for suspicious files too"},
  },
  run = function(args, opts)
    local scan = require("ltorch.scan")
    local reports = {}
    for i, path in ipairs(args) do
      local r = scan.scan(path)
      reports[#reports + 1] = r
      if not opts.json then
        if i > 1 then io.stdout:write("\n") end
        stdout_lines(scan.render(r))
      end
      for _, e in ipairs(r.errors) do
        -- file errors already name the file ("path: no such file")
        local named = e:sub(1, #path + 2) == path .. ": "
        if not opts.json then io.stderr:write("ltorch: ", named and "" or (path .. ": "), e, "\n") end
      end
    end
    if opts.json then stdout_lines(scan.to_json(reports)) end
    io.stdout:flush()
    local status = scan.status(reports)
    if status == 0 and opts.strict then
      for _, r in ipairs(reports) do if r.verdict == "suspicious" then status = 1 end end
    end
    return status
  end,
  error_status = 2,
}

---------------------------------------------------------------------------
-- repl
---------------------------------------------------------------------------

COMMANDS.repl = {
  usage = "repl [OPTIONS] [FILE]",
  summary = "Lua 5.4 prompt with ltorch loaded (FILE loaded as ckpt)",
  args_desc = "at most one FILE",
  nargs = {0, 1},
  text = [[
A Lua 5.4 prompt with line editing and history (~/.ltorch_history, when
lua-readline is installed), ltorch loaded as 'torch' and torch.nn as 'nn'.
FILE, when given, is loaded (memory-mapped) as 'ckpt'; foreign pickle
globals in it become inert tables, with a note. Expressions print
their value: tensors as PyTorch prints them, tables holding tensors as a
table of key, dtype and shape; statements run; an incomplete chunk reads
more lines; errors are printed and the prompt goes on. Ctrl-D exits.]],
  options = {
    {"inert", nil, nil, "load foreign pickle globals in FILE as inert tables"},
  },
  run = function(args, opts)
    return require("ltorch.repl").run({file = args[1], inert = opts.inert, debug = opts.debug})
  end,
}

for name, c in pairs(COMMANDS) do c.name = name end

---------------------------------------------------------------------------
-- dispatch
---------------------------------------------------------------------------

local debug_mode = false

-- run fn; on error return false and the message (the traceback too, on
-- stderr, in debug mode). Usage errors propagate.
function M.protect(fn)
  local tb
  local ok, res = xpcall(fn, function(e)
    if getmetatable(e) == Usage then return e end
    if debug_mode then tb = debug.traceback(tostring(e), 2) end
    return e
  end)
  if ok then return true, res end
  if getmetatable(res) == Usage then error(res, 0) end
  if tb then io.stderr:write(tb, "\n") end
  return false, message(res)
end

function M.dispatch(argv)
  debug_mode = os.getenv("LTORCH_DEBUG") == "1"
  -- global options before the command
  local i = 1
  while argv[i] == "--debug" do debug_mode = true; i = i + 1 end
  local name = argv[i]
  if name == "--help" or name == "-h" or name == "help" then
    local sub = argv[i + 1] and COMMANDS[argv[i + 1]]
    io.stdout:write((sub and help_text(sub) or main_help()), "\n")
    return 0
  end
  if name == nil then name = "repl" else i = i + 1 end
  local cmd = COMMANDS[name]
  if not cmd then
    if name:sub(1, 1) == "-" then
      io.stderr:write("ltorch: unknown option '", name, "' (see 'ltorch --help')\n")
    else
      io.stderr:write("ltorch: unknown command '", name, "' (see 'ltorch --help')\n")
    end
    return 2
  end
  local status
  local ok, err = pcall(function()
    local args, opts = parse(cmd, argv, i)
    if opts.debug then debug_mode = true end
    if opts.help then io.stdout:write(help_text(cmd), "\n"); status = 0; return end
    check_nargs(cmd, args)
    opts.debug = debug_mode
    local rok, res = M.protect(function() return cmd.run(args, opts) end)
    if rok then status = res or 0
    else
      io.stderr:write("ltorch: ", res, "\n")
      status = cmd.error_status or 1
    end
  end)
  if not ok then
    if getmetatable(err) == Usage then
      io.stderr:write("ltorch: ", err.msg, "\n")
      return 2
    end
    io.stderr:write("ltorch: ", message(err), "\n")
    return 2
  end
  io.stdout:flush()
  return status
end

M.COMMANDS = COMMANDS
M.help_text = help_text

return M
