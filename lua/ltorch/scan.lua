-- scan.lua: a static audit of the pickles in a file (`ltorch scan`,
-- torch.scan). Nothing is imported, called or built: each pickle is
-- disassembled opcode by opcode, with a symbolic stack and memo kept only
-- as far as they tell which strings reach STACK_GLOBAL, so that a global
-- named through the memo (MEMOIZE/PUT then GET) is still named.
--
--   local scan = require("ltorch.scan")
--   local r = scan.scan(path)     -- the report (never raises for the file)
--   print(scan.render(r))         -- text
--   print(scan.to_json({r}))      -- {"files": [...]}
--   os.exit(scan.status({r}))     -- 0 safe/suspicious, 1 dangerous, 2 error
--
-- report = {path, format, verdict = "safe" | "suspicious" | "dangerous" |
--   "error", globals = {{name, module, attr, class, why, count, calls,
--   builds, where = {locations}}}, opcodes = {class = count}, members =
--   {{name, kind, bytes, scanned, count?}}, errors = {messages}, notes =
--   {texts}, pickles = number of pickles disassembled}
--
-- Containers are told by their bytes, never by the extension: zip (PyTorch
-- archives, TorchScript, .npz, any zip; nested zips up to MAX_DEPTH), the
-- legacy .pt stream (five pickles, then storage bytes), raw pickles (several
-- back to back), .npy object arrays (the pickle after the header). A file of
-- a format without pickles (safetensors, GGUF, Torch7, TorchSharp) is safe
-- with a note; anything else is an error, never safe.
--
-- Limits (each an error when passed, so the file is never called safe):
-- a member or pickle read into memory at most MAX_MEMBER bytes; at most
-- MAX_TOTAL bytes read or inflated per file; zips nested MAX_DEPTH deep.
-- The symbolic stack keeps STACK_CAP entries and the memo MEMO_CAP (past
-- them values are unknown, which only makes a STACK_GLOBAL unresolved, "?").

local core = require("ltorch.core")

local M = {}

M.MAX_MEMBER = 256 << 20
M.MAX_TOTAL = 1 << 30
M.MAX_DEPTH = 4
local STACK_CAP = 1 << 20
local MEMO_CAP = 1 << 21
local KEEP = 4096            -- strings longer than this are not kept
local MAX_WHERE = 8          -- locations listed per global
local MAX_EMBEDDED = 64      -- bytes objects scanned per pickle stream

local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local unpack_ = string.unpack

---------------------------------------------------------------------------
-- the verdict of a global
---------------------------------------------------------------------------

-- what ltorch's own reader rebuilds (src/pickle.c GLOBALS; the torch.cuda.*
-- storages are mapped to them there too)
local NATIVE = {}
for _, n in ipairs({
  "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2",
  "torch.nn.parameter.Parameter", "torch.Tensor", "torch._tensor.Tensor", "torch.Size", "torch.device",
  "torch.serialization._get_layout", "_codecs.encode", "builtins.set", "builtins.frozenset",
  "builtins.bytearray", "builtins.complex", "torch.storage.UntypedStorage", "torch.UntypedStorage",
}) do NATIVE[n] = true end
for _, t in ipairs({"Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"}) do
  NATIVE["torch." .. t .. "Storage"] = true
  NATIVE["torch." .. t .. "Tensor"] = true
end
NATIVE["torch.ComplexDoubleStorage"], NATIVE["torch.ComplexFloatStorage"] = true, true
for _, d in ipairs({"float32", "float", "float64", "double", "float16", "half", "bfloat16", "int8",
  "int16", "short", "int32", "int", "int64", "long", "uint8", "bool", "complex64", "cfloat",
  "complex128", "cdouble", "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"}) do
  NATIVE["torch." .. d] = true
end

-- what ltorch's .npy/.npz reader rebuilds in an object array's pickle
-- (formats/npy.lua): the ndarray itself, nothing inside it
local NATIVE_NPY = {
  ["numpy.core.multiarray._reconstruct"] = true, ["numpy._core.multiarray._reconstruct"] = true,
  ["numpy.ndarray"] = true, ["numpy.dtype"] = true,
}

-- the module renames Python 3's unpickler applies to protocol 0-2 pickles
-- (_compat_pickle), so that a Python 2 name cannot hide a dangerous one
local ALIAS = {
  __builtin__ = "builtins", exceptions = "builtins", copy_reg = "copyreg", cPickle = "pickle",
  commands = "subprocess", urllib2 = "urllib.request", SocketServer = "socketserver",
  ["torch.tensor"] = "torch._tensor",
}

-- Code execution, imports by name, files, processes and the network: a
-- module named here is dangerous whatever the name in it ("os" covers
-- os.system and os.path.join alike).
local DANGER_MODULES = {
  "os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "socket", "_socket", "socketserver",
  "shutil", "sys", "code", "codeop", "importlib", "_imp", "imp", "zipimport", "runpy", "marshal",
  "ctypes", "_ctypes", "cffi", "webbrowser", "multiprocessing", "_multiprocessing", "concurrent",
  "asyncio", "pdb", "bdb", "timeit", "profile", "cProfile", "trace", "doctest", "pydoc", "idlelib",
  "ensurepip", "venv", "pip", "setuptools", "distutils", "pkgutil", "pickle", "_pickle", "dill",
  "cloudpickle", "joblib", "shelve", "jsonpickle", "yaml", "http.server", "ftplib", "telnetlib",
  "smtplib", "urllib.request", "requests", "torch.hub", "torch.package", "torch.utils.cpp_extension",
  "torch.jit._serialization", "numpy.f2py", "numpy.distutils", "numpy.testing",
}
-- single names (a module's other names are judged by the rules after)
local DANGER_NAMES = {
  "builtins.eval", "builtins.exec", "builtins.execfile", "builtins.compile", "builtins.open",
  "builtins.file", "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__",
  "builtins.apply", "builtins.input", "builtins.raw_input", "builtins.breakpoint", "builtins.globals",
  "builtins.locals", "builtins.vars", "builtins.reload", "builtins.help", "builtins.memoryview",
  "operator.attrgetter", "operator.methodcaller", "_operator.attrgetter", "_operator.methodcaller",
  "io.open", "io.open_code", "io.FileIO", "_io.open", "_io.open_code", "_io.FileIO", "codecs.open",
  "types.FunctionType", "types.CodeType", "types.LambdaType", "types.MethodType",
  "torch.load", "torch.serialization.load", "torch.serialization._load", "torch.jit.load",
  "torch.storage._load_from_bytes", "torch.ops.load_library", "torch.classes.load_library",
  "numpy.load", "numpy.lib.npyio.load", "numpy.loadtxt", "numpy.fromfile",
}
-- name prefixes (not whole components): torch._C._jit_* and friends
local DANGER_PREFIXES = {"torch._C._jit", "torch._C._import_ir_module"}
-- the last name of an attribute path (module "pathlib", name
-- "Path.write_text") that writes, deletes or runs
local DANGER_METHODS = {
  write_text = true, write_bytes = true, unlink = true, rmdir = true, touch = true, mkdir = true,
  rename = true, replace = true, chmod = true, symlink_to = true, system = true, popen = true,
  spawn = true, call = true, check_call = true, check_output = true, run = true, load = true,
  loads = true, eval = true, exec = true, open = true, __import__ = true,
}

local danger_set = {}
for _, n in ipairs(DANGER_NAMES) do danger_set[n] = "a known code-execution or file/process global" end

local function split(s)
  local t = {}
  for c in (s .. "."):gmatch("([^.]*)%.") do t[#t + 1] = c end
  return t
end

-- is the dotted name (components t[i..j]) dangerous by the lists; its why
local function listed(t, i, j)
  local s = table.concat(t, ".", i, j)
  if danger_set[s] then return danger_set[s] end
  for _, m in ipairs(DANGER_MODULES) do
    if s == m or s:sub(1, #m + 1) == m .. "." then return "module " .. m .. " (code execution, files, processes or network)" end
  end
  for _, p in ipairs(DANGER_PREFIXES) do
    if s:sub(1, #p) == p then return p .. "* (TorchScript/JIT loading)" end
  end
end

-- class ("safe" | "suspicious" | "dangerous") and why, of module.attr
local function classify(module, attr, ctx)
  if module:find("?", 1, true) or attr:find("?", 1, true) then
    return "dangerous", "unresolved: the name is computed while unpickling (it can be anything)"
  end
  if module == "<extension>" then
    return "suspicious", "a copyreg extension code: the name comes from the unpickling process's registry"
  end
  module = ALIAS[module] or module
  local full = module .. "." .. attr
  if NATIVE[full] or (full:sub(1, 11) == "torch.cuda." and attr:find("Storage", 1, true)) then
    return "safe", "rebuilt by ltorch's reader"
  end
  if ctx.npy and NATIVE_NPY[full] then return "safe", "rebuilt by ltorch's .npy reader" end
  local t = split(full)
  local nm = #split(module)
  local why = listed(t, 1, #t)
  if why then return "dangerous", why end
  -- an attribute path (protocol 4 getattr chain): torch.serialization + os.system
  for k = nm + 1, #t - 1 do
    why = listed(t, k, #t)
    if why then return "dangerous", "reaches " .. table.concat(t, ".", k) .. " through an attribute path: " .. why end
  end
  if nm < #t then
    for k = nm + 1, #t do
      local c = t[k]
      if c:match("^__.*__$") and not (module == "copyreg" and (c == "__newobj__" or c == "__newobj_ex__")) then
        return "dangerous", "attribute path through " .. c
      end
    end
    if #t - nm > 1 and DANGER_METHODS[t[#t]] then
      return "dangerous", "attribute path to the method " .. t[#t]
    end
  end
  if module:sub(1, 9) == "__torch__" then
    return "suspicious", "a TorchScript class (its code runs when the module runs)"
  end
  if #t - nm > 1 then return "suspicious", "an attribute path (getattr chain)" end
  return "suspicious", "not rebuilt by ltorch (unpickling imports and may call it)"
end
M.classify = function(module, attr, ctx) return classify(module, attr, ctx or {}) end

---------------------------------------------------------------------------
-- the pickle disassembler
---------------------------------------------------------------------------

-- opcode -> {name, class, argument}; arguments: "line", "line2" (two
-- lines), "u1" "u2" "u4" "i4" "u8" (fixed), "f8", "n1" "n4" "n8" (length-
-- prefixed data)
local OPS = {}
local function op(c, name, class, arg)
  OPS[type(c) == "string" and byte(c) or c] = {name, class, arg}
end
op("(", "MARK", "stack"); op(".", "STOP", "framing"); op("0", "POP", "stack")
op("1", "POP_MARK", "stack"); op("2", "DUP", "stack")
op("F", "FLOAT", "scalar", "line"); op("I", "INT", "scalar", "line"); op("J", "BININT", "scalar", "i4")
op("K", "BININT1", "scalar", "u1"); op("L", "LONG", "scalar", "line"); op("M", "BININT2", "scalar", "u2")
op("N", "NONE", "scalar"); op("P", "PERSID", "persistent_id", "line"); op("Q", "BINPERSID", "persistent_id")
op("R", "REDUCE", "call"); op("S", "STRING", "string", "line"); op("T", "BINSTRING", "string", "n4")
op("U", "SHORT_BINSTRING", "string", "n1"); op("V", "UNICODE", "string", "line")
op("X", "BINUNICODE", "string", "n4"); op("a", "APPEND", "container"); op("b", "BUILD", "build")
op("c", "GLOBAL", "global", "line2"); op("d", "DICT", "container"); op("}", "EMPTY_DICT", "container")
op("e", "APPENDS", "container"); op("g", "GET", "memo", "line"); op("h", "BINGET", "memo", "u1")
op("i", "INST", "global", "line2"); op("j", "LONG_BINGET", "memo", "u4"); op("l", "LIST", "container")
op("]", "EMPTY_LIST", "container"); op("o", "OBJ", "call"); op("p", "PUT", "memo", "line")
op("q", "BINPUT", "memo", "u1"); op("r", "LONG_BINPUT", "memo", "u4"); op("s", "SETITEM", "container")
op("t", "TUPLE", "container"); op(")", "EMPTY_TUPLE", "container"); op("u", "SETITEMS", "container")
op("G", "BINFLOAT", "scalar", "f8")
op(0x80, "PROTO", "framing", "u1"); op(0x81, "NEWOBJ", "call"); op(0x82, "EXT1", "ext", "u1")
op(0x83, "EXT2", "ext", "u2"); op(0x84, "EXT4", "ext", "i4"); op(0x85, "TUPLE1", "container")
op(0x86, "TUPLE2", "container"); op(0x87, "TUPLE3", "container"); op(0x88, "NEWTRUE", "scalar")
op(0x89, "NEWFALSE", "scalar"); op(0x8a, "LONG1", "scalar", "n1"); op(0x8b, "LONG4", "scalar", "n4")
op("B", "BINBYTES", "string", "n4"); op("C", "SHORT_BINBYTES", "string", "n1")
op(0x8c, "SHORT_BINUNICODE", "string", "n1"); op(0x8d, "BINUNICODE8", "string", "n8")
op(0x8e, "BINBYTES8", "string", "n8"); op(0x8f, "EMPTY_SET", "container"); op(0x90, "ADDITEMS", "container")
op(0x91, "FROZENSET", "container"); op(0x92, "NEWOBJ_EX", "call"); op(0x93, "STACK_GLOBAL", "global")
op(0x94, "MEMOIZE", "memo"); op(0x95, "FRAME", "framing", "u8"); op(0x96, "BYTEARRAY8", "string", "n8")
op(0x97, "NEXT_BUFFER", "buffer"); op(0x98, "READONLY_BUFFER", "buffer")
M.OPCODES = OPS

-- the opcode classes, in the order reports list them
M.CLASSES = {"global", "call", "build", "persistent_id", "ext", "memo", "container", "scalar", "string",
  "stack", "framing", "buffer"}

-- symbolic values: a kept str is a Lua string; these stand for the rest
local ANY = setmetatable({}, {__name = "any"})        -- unknown: may be a str
local OTHER = setmetatable({}, {__name = "other"})    -- known not to be a str
local LONGSTR = setmetatable({}, {__name = "longstr"}) -- a str too long to keep

local ESC = {n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", f = "\f", v = "\v",
  ["\\"] = "\\", ["'"] = "'", ['"'] = '"'}
-- a protocol 0 STRING argument ('...' or "..." with Python escapes)
local function py_string(s)
  local q = s:sub(1, 1)
  if #s < 2 or (q ~= "'" and q ~= '"') or s:sub(-1) ~= q then return nil end
  s = s:sub(2, -2)
  s = s:gsub("\\(x%x%x)", function(h) return char(tonumber(h:sub(2), 16)) end)
  s = s:gsub("\\([0-7][0-7]?[0-7]?)", function(o) return char(tonumber(o, 8) & 255) end)
  s = s:gsub("\\(.)", function(c) return ESC[c] or ("\\" .. c) end)
  return s
end
-- a protocol 0 UNICODE argument (raw-unicode-escape) as UTF-8
local function raw_unicode(s)
  s = s:gsub("[\128-\255]", function(c) return utf8.char(byte(c)) end)
  s = s:gsub("\\u(%x%x%x%x)", function(h) return utf8.char(tonumber(h, 16)) end)
  s = s:gsub("\\U(%x%x%x%x%x%x%x%x)", function(h)
    local n = tonumber(h, 16)
    return n <= 0x10FFFF and utf8.char(n) or ""
  end)
  return s
end

local function starts_pickle(s, p)
  local c = byte(s, p)
  if c == 0x80 then
    local v = byte(s, p + 1)
    return v ~= nil and v >= 2 and v <= 5
  end
  return false
end

-- an accumulator: what the pickles of one location hold
local function new_acc()
  return {globals = {}, order = {}, opcodes = {}, errors = {}, notes = {}, pickles = 0, embedded = {}}
end

local function note_global(acc, module, attr, ctx)
  local full = module == "<extension>" and ("<extension " .. attr .. ">") or (module .. "." .. attr)
  local g = acc.globals[full]
  if not g then
    local class, why = classify(module, attr, ctx)
    g = {name = full, module = module, attr = attr, class = class, why = why, count = 0, calls = 0,
      builds = 0, where = {}, where_set = {}}
    acc.globals[full] = g
    acc.order[#acc.order + 1] = g
    g.ref = {g = g}
    g.inst = {inst = g}
  end
  g.count = g.count + 1
  if ctx.where and not g.where_set[ctx.where] and #g.where < MAX_WHERE then
    g.where_set[ctx.where] = true
    g.where[#g.where + 1] = ctx.where
  end
  return g
end

-- Disassemble the pickle of s starting at byte p (1-based). Returns the
-- position after its STOP, or nil, the error and whether it ran off the end
-- of s (more bytes might complete it).
local function scan_pickle(s, p, acc, ctx)
  local n = #s
  local st, sp, extra = {}, 0, 0
  local marks, nmarks = {}, 0
  local memo, nmemo, memo_lost = {}, 0, false
  local counts = acc.opcodes
  local opos
  local Fail = {}
  local function fail(fmt, ...)
    error(setmetatable({msg = string.format(fmt, ...), trunc = false}, Fail), 0)
  end
  local function trunc(what)
    error(setmetatable({msg = string.format("truncated: %s at byte %d runs past the end (byte %d)",
      what, opos - 1, n), trunc = true}, Fail), 0)
  end
  local function push(v)
    if sp < STACK_CAP then sp = sp + 1; st[sp] = v else extra = extra + 1 end
  end
  local function fence() return nmarks > 0 and marks[nmarks] or 0 end
  local function pop()
    if sp + extra <= fence() then fail("stack underflow at byte %d", opos - 1) end
    if extra > 0 then extra = extra - 1; return ANY end
    local v = st[sp]; st[sp] = nil; sp = sp - 1
    return v
  end
  local function top()
    if sp + extra <= fence() then fail("stack underflow at byte %d", opos - 1) end
    if extra > 0 then return ANY end
    return st[sp]
  end
  -- pop to the mark; the first item above it
  local function pop_mark()
    if nmarks == 0 then fail("no MARK for the opcode at byte %d", opos - 1) end
    local m = marks[nmarks]; marks[nmarks] = nil; nmarks = nmarks - 1
    local first
    while sp + extra > m do
      if sp + extra == m + 1 then first = (extra > 0) and ANY or st[sp] end
      if extra > 0 then extra = extra - 1 else st[sp] = nil; sp = sp - 1 end
    end
    return first
  end
  local function memo_put(k, v)
    if memo[k] == nil then
      if nmemo >= MEMO_CAP then memo_lost = true; return end
      nmemo = nmemo + 1
    end
    memo[k] = v
  end
  local function called(v, how)
    if type(v) == "table" then
      local g = v.g
      if g then g.calls = g.calls + 1; return g.inst end
    end
    return ANY
  end
  local function operand(v)
    if type(v) == "string" then return v end
    if v == LONGSTR then return "<long string>?" end
    if v == ANY or (type(v) == "table" and v.inst) then return "?" end
    fail("STACK_GLOBAL at byte %d: its operands must be str", opos - 1)
  end
  local function line()
    local e = find(s, "\n", p, true)
    if not e then trunc(OPS[byte(s, opos)][1] .. "'s line") end
    local l = sub(s, p, e - 1)
    p = e + 1
    return l
  end
  local function fixed(k)
    if p + k - 1 > n then trunc(OPS[byte(s, opos)][1]) end
    local v = sub(s, p, p + k - 1)
    p = p + k
    return v
  end
  -- a length-prefixed argument: kept when short, else skipped; its place
  local last_at, last_len
  local function data(lenbytes, fmt)
    if p + lenbytes - 1 > n then trunc(OPS[byte(s, opos)][1]) end
    local len = unpack_(fmt, s, p)
    p = p + lenbytes
    if len < 0 or len > n - p + 1 then trunc(OPS[byte(s, opos)][1] .. "'s " .. len .. " bytes") end
    local v
    if len <= KEEP then v = sub(s, p, p + len - 1) end
    last_at, last_len = p, len
    p = p + len
    return v
  end
  local function memo_key(l)
    local k = math.tointeger(tonumber(l))
    if not k or k < 0 then fail("bad memo key %q at byte %d", l:sub(1, 40), opos - 1) end
    return k
  end
  local function get(k)
    local v = memo[k]
    if v == nil then
      if memo_lost then v = ANY else fail("memo key %d is not set (byte %d)", k, opos - 1) end
    end
    push(v)
  end

  local H = {}
  H.MARK = function()
    nmarks = nmarks + 1
    marks[nmarks] = sp + extra
  end
  H.POP = function() pop() end
  H.POP_MARK = function() pop_mark() end
  H.DUP = function() push(top()) end
  local function scalar() push(OTHER) end
  H.FLOAT, H.INT, H.BININT, H.BININT1, H.LONG, H.BININT2, H.NONE = scalar, scalar, scalar, scalar, scalar, scalar, scalar
  H.BINFLOAT, H.NEWTRUE, H.NEWFALSE, H.LONG1, H.LONG4 = scalar, scalar, scalar, scalar, scalar
  H.PERSID = function() push(ANY) end
  H.BINPERSID = function() pop(); push(ANY) end
  H.REDUCE = function() pop(); push(called(pop())) end
  H.STRING = function(a)
    if #a > KEEP then push(LONGSTR) return end
    local v = py_string(a)
    if not v then fail("STRING at byte %d: its argument is not quoted", opos - 1) end
    push(v)
  end
  -- a str that is the latin-1 text of a zip or a pickle (how protocol 2
  -- writes bytes: _codecs.encode(str, "latin1")) is scanned likewise
  local function str(v)
    push(v or LONGSTR)
    if last_len >= 4 and #acc.embedded < MAX_EMBEDDED then
      local h = sub(s, last_at, last_at + 3)
      if h == "PK\3\4" or (h:sub(1, 2) == "\xC2\x80" and h:byte(3) >= 2 and h:byte(3) <= 5) then
        acc.embedded[#acc.embedded + 1] = {last_at, last_len, true}
      end
    end
  end
  H.BINSTRING, H.SHORT_BINSTRING, H.BINUNICODE, H.SHORT_BINUNICODE, H.BINUNICODE8 = str, str, str, str, str
  H.UNICODE = function(a) push(#a > KEEP and LONGSTR or raw_unicode(a)) end
  -- bytes holding a zip or a pickle (torch.storage._load_from_bytes's
  -- argument: a whole legacy torch.save file) are scanned after the pickle
  local function bytes_()
    push(OTHER)
    if last_len >= 4 and #acc.embedded < MAX_EMBEDDED then
      local h = sub(s, last_at, last_at + 3)
      if h == "PK\3\4" or starts_pickle(s, last_at) then
        acc.embedded[#acc.embedded + 1] = {last_at, last_len}
      end
    end
  end
  H.BINBYTES, H.SHORT_BINBYTES, H.BINBYTES8, H.BYTEARRAY8 = bytes_, bytes_, bytes_, bytes_
  H.APPEND = function() pop() end
  H.APPENDS = function() pop_mark() end
  H.BUILD = function()
    pop()
    local v = top()
    if type(v) == "table" then
      local g = v.g or v.inst
      if g then g.builds = g.builds + 1 end
    end
  end
  H.GLOBAL = function(m, a)
    push(note_global(acc, m, a, ctx).ref)
  end
  H.INST = function(m, a)
    local g = note_global(acc, m, a, ctx)
    pop_mark()
    g.calls = g.calls + 1
    push(g.inst)
  end
  H.STACK_GLOBAL = function()
    local a = operand(pop())
    local m = operand(pop())
    push(note_global(acc, m, a, ctx).ref)
  end
  local function container() push(OTHER) end
  H.EMPTY_DICT, H.EMPTY_LIST, H.EMPTY_TUPLE, H.EMPTY_SET = container, container, container, container
  H.DICT = function() pop_mark(); push(OTHER) end
  H.LIST, H.TUPLE, H.FROZENSET = H.DICT, H.DICT, H.DICT
  H.SETITEMS, H.ADDITEMS = H.APPENDS, H.APPENDS
  H.SETITEM = function() pop(); pop() end
  H.TUPLE1 = function() pop(); push(OTHER) end
  H.TUPLE2 = function() pop(); pop(); push(OTHER) end
  H.TUPLE3 = function() pop(); pop(); pop(); push(OTHER) end
  H.OBJ = function()
    local cls = pop_mark()
    if cls == nil then fail("OBJ at byte %d: no class after the mark", opos - 1) end
    push(called(cls))
  end
  H.NEWOBJ = function() pop(); push(called(pop())) end
  H.NEWOBJ_EX = function() pop(); pop(); push(called(pop())) end
  local function ext(code)
    push(note_global(acc, "<extension>", tostring(code), ctx).ref)
  end
  H.EXT1, H.EXT2, H.EXT4 = ext, ext, ext
  H.GET = function(a) get(memo_key(a)) end
  H.BINGET, H.LONG_BINGET = get, get
  H.PUT = function(a) memo_put(memo_key(a), top()) end
  H.BINPUT = function(k) memo_put(k, top()) end
  H.LONG_BINPUT = H.BINPUT
  H.MEMOIZE = function() memo_put(nmemo, top()) end
  H.PROTO = function(v)
    if v > 5 then fail("unsupported pickle protocol %d (byte %d)", v, opos - 1) end
  end
  H.FRAME = function() end
  H.NEXT_BUFFER = function() push(ANY) end
  H.READONLY_BUFFER = function() top() end

  local ok, err = pcall(function()
    while true do
      if p > n then
        opos = p
        error(setmetatable({msg = string.format("truncated: no STOP before the end (byte %d)", n), trunc = true}, Fail), 0)
      end
      opos = p
      local c = byte(s, p)
      local o = OPS[c]
      if not o then fail("invalid opcode 0x%02x at byte %d", c, p - 1) end
      p = p + 1
      local name, class, arg = o[1], o[2], o[3]
      counts[class] = (counts[class] or 0) + 1
      if name == "STOP" then pop(); return end
      if name == "INST" then counts.call = (counts.call or 0) + 1 end
      local a, b
      if arg == "line" then
        a = line()
      elseif arg == "line2" then
        a = line(); b = line()
        if #a > KEEP then a = "<long string>?" end
        if #b > KEEP then b = "<long string>?" end
      elseif arg == "u1" then
        if p > n then trunc(name) end
        a = byte(s, p); p = p + 1
      elseif arg == "u2" then a = unpack_("<I2", fixed(2))
      elseif arg == "u4" then a = unpack_("<I4", fixed(4))
      elseif arg == "i4" then a = unpack_("<i4", fixed(4))
      elseif arg == "u8" then a = unpack_("<i8", fixed(8))
      elseif arg == "f8" then fixed(8)
      elseif arg == "n1" then a = data(1, "<I1")
      elseif arg == "n4" then a = data(4, "<I4")
      elseif arg == "n8" then a = data(8, "<i8")
      end
      H[name](a, b)
    end
  end)
  if ok then return p end
  if getmetatable(err) == Fail then return nil, err.msg, err.trunc end
  error(err, 0)
end
M._scan_pickle = scan_pickle

local LEGACY_MAGIC = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"


local function merge_acc(dst, src)
  for _, g in ipairs(src.order) do
    local d = dst.globals[g.name]
    if not d then
      d = {name = g.name, module = g.module, attr = g.attr, class = g.class, why = g.why, count = 0,
        calls = 0, builds = 0, where = {}, where_set = {}}
      dst.globals[g.name] = d
      dst.order[#dst.order + 1] = d
    end
    d.count, d.calls, d.builds = d.count + g.count, d.calls + g.calls, d.builds + g.builds
    for _, w in ipairs(g.where) do
      if not d.where_set[w] and #d.where < MAX_WHERE then d.where_set[w] = true; d.where[#d.where + 1] = w end
    end
  end
  for k, v in pairs(src.opcodes) do dst.opcodes[k] = (dst.opcodes[k] or 0) + v end
  for _, e in ipairs(src.errors) do dst.errors[#dst.errors + 1] = e end
  for _, e in ipairs(src.notes) do dst.notes[#dst.notes + 1] = e end
  for _, e in ipairs(src.embedded) do dst.embedded[#dst.embedded + 1] = e end
  dst.pickles = dst.pickles + src.pickles
end

-- The pickles of s from byte p on: one after another while the bytes after
-- a STOP start another (PROTO 2..5, or any opcode when the disassembly
-- then reaches a STOP or names a global); a legacy .pt stream ends after
-- its fifth pickle (the storage bytes follow). more: s is a window of a
-- longer blob. Returns "retry" when the window was too short, or true for
-- a stream whose first pickle is not one at all (tentative).
local function scan_stream(s, p, acc, ctx, more, tentative)
  local legacy = sub(s, p, p + #LEGACY_MAGIC - 1) == LEGACY_MAGIC
  local count = 0
  local label = ctx.where and (ctx.where .. ": ") or ""
  while true do
    -- after a STOP (or for a file that may be a protocol 0/1 pickle) the
    -- bytes are disassembled on trial: they count as a pickle when they
    -- reach a STOP or name a global
    local probe = tentative or (count > 0 and not starts_pickle(s, p))
    local scratch = probe and new_acc() or acc
    local start = p
    local np, err, tr = scan_pickle(s, p, scratch, ctx)
    if tr and more then return "retry" end
    local named = #scratch.order > 0
    if probe and not np and not named then
      if count == 0 and tentative then return "not a pickle" end
      scratch = nil
      acc.notes[#acc.notes + 1] = string.format("%s%d bytes after the last pickle are not a pickle (ignored)",
        label, #s - start + 1)
      return
    end
    count = count + 1
    scratch.pickles = scratch.pickles + 1
    if not np then
      scratch.errors[#scratch.errors + 1] = string.format("%spickle %d at byte %d: %s", label, count,
        start - 1 - (ctx.base or 0), err)
      if probe then merge_acc(acc, scratch) end
      return
    end
    if probe then merge_acc(acc, scratch) end
    p = np
    tentative = false
    if legacy and count == 5 then
      acc.notes[#acc.notes + 1] = label .. "legacy .pt: five pickles, then the storage data (not pickles)"
      return
    end
    if p > #s then
      if more then return "retry" end
      return
    end
  end
end

---------------------------------------------------------------------------
-- inflate (RFC 1951), pure Lua: for deflated zip members
---------------------------------------------------------------------------

local LBASE = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
  131, 163, 195, 227, 258}
local LEXT = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
local DBASE = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
  2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
local DEXT = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
local CLORDER = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

local function huffman(lengths, nsym)
  local count, offs, symbol = {}, {}, {}
  for i = 0, 15 do count[i] = 0 end
  for i = 0, nsym - 1 do local l = lengths[i] or 0; count[l] = count[l] + 1 end
  offs[1] = 0
  for i = 1, 14 do offs[i + 1] = offs[i] + count[i] end
  for i = 0, nsym - 1 do
    local l = lengths[i] or 0
    if l ~= 0 then symbol[offs[l]] = i; offs[l] = offs[l] + 1 end
  end
  return {count = count, symbol = symbol}
end

-- the bytes data inflates to: at most limit bytes (more is an error), or
-- the first want bytes when want is given (then a short input is fine)
local function inflate(data, limit, want)
  local pos, n, bitbuf, bitcnt = 1, #data, 0, 0
  local Short = {}
  local function need(k)
    while bitcnt < k do
      if pos > n then error(Short, 0) end
      bitbuf = bitbuf | (byte(data, pos) << bitcnt)
      pos = pos + 1
      bitcnt = bitcnt + 8
    end
  end
  local function bits(k)
    need(k)
    local v = bitbuf & ((1 << k) - 1)
    bitbuf = bitbuf >> k
    bitcnt = bitcnt - k
    return v
  end
  local function decode(h)
    local code, first, index = 0, 0, 0
    local count, symbol = h.count, h.symbol
    for len = 1, 15 do
      if bitcnt == 0 then need(1) end
      code = code | (bitbuf & 1)
      bitbuf = bitbuf >> 1
      bitcnt = bitcnt - 1
      local c = count[len]
      if code - c < first then return symbol[index + code - first] end
      index = index + c
      first = (first + c) << 1
      code = code << 1
    end
    error("bad deflate data: an invalid Huffman code", 0)
  end
  local win, total = {}, 0
  local out, nout, pieces = {}, 0, {}
  local stop = want or limit
  local Done = {}
  local function put(b)
    win[total & 32767] = b
    total = total + 1
    nout = nout + 1
    out[nout] = b
    if nout == 4096 then pieces[#pieces + 1] = char(table.unpack(out, 1, 4096)); nout = 0 end
    if total >= stop then
      if want then error(Done, 0) end
      if total > limit then error("bad deflate data: inflates past the member's size", 0) end
    end
  end
  local fixed_l, fixed_d
  local ok, err = pcall(function()
    local last
    repeat
      last = bits(1)
      local t = bits(2)
      if t == 0 then
        bitbuf, bitcnt = 0, 0
        if pos + 3 > n then error(Short, 0) end
        local len, nlen = unpack_("<I2I2", data, pos)
        if len ~= (~nlen & 0xFFFF) then error("bad deflate data: a stored block's length check", 0) end
        pos = pos + 4
        if pos + len - 1 > n then
          if not want then error(Short, 0) end
          len = n - pos + 1
        end
        for i = pos, pos + len - 1 do put(byte(data, i)) end
        pos = pos + len
      elseif t == 1 or t == 2 then
        local lh, dh
        if t == 1 then
          if not fixed_l then
            local l = {}
            for i = 0, 143 do l[i] = 8 end
            for i = 144, 255 do l[i] = 9 end
            for i = 256, 279 do l[i] = 7 end
            for i = 280, 287 do l[i] = 8 end
            fixed_l = huffman(l, 288)
            local d = {}
            for i = 0, 29 do d[i] = 5 end
            fixed_d = huffman(d, 30)
          end
          lh, dh = fixed_l, fixed_d
        else
          local nlen, ndist, ncode = bits(5) + 257, bits(5) + 1, bits(4) + 4
          if nlen > 286 or ndist > 30 then error("bad deflate data: too many codes", 0) end
          local cl = {}
          for i = 1, 19 do cl[CLORDER[i]] = i <= ncode and bits(3) or 0 end
          local ch = huffman(cl, 19)
          local lens, i = {}, 0
          while i < nlen + ndist do
            local sym = decode(ch)
            if sym < 16 then lens[i] = sym; i = i + 1
            else
              local rep, val = 0, 0
              if sym == 16 then
                if i == 0 then error("bad deflate data: a repeat with no length", 0) end
                val = lens[i - 1]; rep = 3 + bits(2)
              elseif sym == 17 then rep = 3 + bits(3)
              else rep = 11 + bits(7) end
              if i + rep > nlen + ndist then error("bad deflate data: too many lengths", 0) end
              for _ = 1, rep do lens[i] = val; i = i + 1 end
            end
          end
          local ll, dl = {}, {}
          for k = 0, nlen - 1 do ll[k] = lens[k] end
          for k = 0, ndist - 1 do dl[k] = lens[nlen + k] end
          lh, dh = huffman(ll, nlen), huffman(dl, ndist)
        end
        while true do
          local sym = decode(lh)
          if sym < 256 then put(sym)
          elseif sym == 256 then break
          else
            sym = sym - 256
            if sym > 29 then error("bad deflate data: a bad length code", 0) end
            local len = LBASE[sym] + bits(LEXT[sym])
            local ds = decode(dh)
            if ds > 29 then error("bad deflate data: a bad distance code", 0) end
            local dist = DBASE[ds + 1] + bits(DEXT[ds + 1])
            if dist > total then error("bad deflate data: a distance before the start", 0) end
            for _ = 1, len do put(win[(total - dist) & 32767]) end
          end
        end
      else
        error("bad deflate data: block type 3", 0)
      end
    until last == 1
  end)
  if not ok and err ~= Done and not (err == Short and want) then
    if err == Short then error("bad deflate data: truncated", 0) end
    error(err, 0)
  end
  if nout > 0 then pieces[#pieces + 1] = char(table.unpack(out, 1, nout)) end
  local s = table.concat(pieces)
  if want and #s > want then s = s:sub(1, want) end
  return s
end
M._inflate = inflate

---------------------------------------------------------------------------
-- byte sources and the zip reader
---------------------------------------------------------------------------

-- a source: {size, read(off, n) -> string} (offsets from 0)
local function string_source(s)
  return {size = #s, read = function(off, k)
    if off < 0 or off + k > #s then error(string.format("truncated: %d bytes at byte %d of %d", k, off, #s), 0) end
    return sub(s, off + 1, off + k)
  end}
end
local function slice_source(src, base, size)
  return {size = size, read = function(off, k)
    if off < 0 or off + k > size then error(string.format("truncated: %d bytes at byte %d of %d", k, off, size), 0) end
    return src.read(base + off, k)
  end}
end

local function zip_open(src)
  local size = src.size
  local tl = math.min(size, 65557)
  local tail = src.read(size - tl, tl)
  local at, i = nil, 1
  while true do
    local j = find(tail, "PK\5\6", i, true)
    if not j then break end
    at, i = j, j + 1
  end
  if not at or at + 21 > #tail then error("not a valid zip archive: no end of central directory record", 0) end
  local eocd = size - tl + at - 1
  local _, _, _, nent, cdsize, cdoff = unpack_("<I2I2I2I2I4I4", tail, at + 4)
  local cdend = eocd
  local wide = nent == 0xFFFF or cdsize == 0xFFFFFFFF or cdoff == 0xFFFFFFFF
  local loc = eocd >= 20 and src.read(eocd - 20, 20) or ""
  if sub(loc, 1, 4) ~= "PK\6\7" then
    if wide then error("not a valid zip archive: a zip64 archive without its locator", 0) end
  else
    -- a zip64 end record (PyTorch writes one always): the directory ends before it
    local z64 = unpack_("<I8", loc, 9)
    if z64 < 0 or z64 + 56 > size then error("not a valid zip archive: a bad zip64 record offset", 0) end
    local r = src.read(z64, 56)
    if sub(r, 1, 4) ~= "PK\6\6" then error("not a valid zip archive: no zip64 end record", 0) end
    nent, cdsize, cdoff = unpack_("<I8I8I8", r, 33)
    cdend = z64
  end
  -- data prepended to the archive (a self-extractor, a polyglot): offsets move
  local base = cdend - cdsize - cdoff
  if base < 0 or cdsize < 0 or cdoff < 0 then error("not a valid zip archive: the central directory lies outside the file", 0) end
  if cdsize > M.MAX_MEMBER then error("the zip's central directory of " .. cdsize .. " bytes exceeds the scan limit", 0) end
  local cd = src.read(base + cdoff, cdsize)
  local entries, q = {}, 1
  for _ = 1, nent do
    if sub(cd, q, q + 3) ~= "PK\1\2" or q + 45 > #cd then error("not a valid zip archive: a bad central directory entry", 0) end
    local flags, method, _, _, crc, csize, usize, nl, xl, cl, _, _, _, lho =
      unpack_("<I2I2I2I2I4I4I4I2I2I2I2I2I4I4", cd, q + 8)
    local name = sub(cd, q + 46, q + 45 + nl)
    local x, xe = q + 46 + nl, q + 45 + nl + xl
    while x + 3 <= xe do
      local id, len = unpack_("<I2I2", cd, x)
      if id == 1 then
        local y = x + 4
        if usize == 0xFFFFFFFF and y + 7 <= xe then usize = unpack_("<I8", cd, y); y = y + 8 end
        if csize == 0xFFFFFFFF and y + 7 <= xe then csize = unpack_("<I8", cd, y); y = y + 8 end
        if lho == 0xFFFFFFFF and y + 7 <= xe then lho = unpack_("<I8", cd, y) end
      end
      x = x + 4 + len
    end
    entries[#entries + 1] = {name = name, flags = flags, method = method, crc = crc, csize = csize,
      usize = usize, lho = lho + base}
    q = q + 46 + nl + xl + cl
  end
  return {src = src, entries = entries}
end

local function member_offset(z, e)
  if e.data_off then return e.data_off end
  if e.lho < 0 or e.lho + 30 > z.src.size then error("its local header lies outside the archive", 0) end
  local h = z.src.read(e.lho, 30)
  if sub(h, 1, 4) ~= "PK\3\4" then error("no local header where the directory says", 0) end
  local nl, xl = unpack_("<I2I2", h, 27)
  e.data_off = e.lho + 30 + nl + xl
  if e.data_off + e.csize > z.src.size then error("its data runs past the end of the archive", 0) end
  return e.data_off
end

-- e's first want bytes (a sniff), or all of them (charged to the budget)
local function member_bytes(z, e, want, budget)
  if e.flags & 1 ~= 0 then error("encrypted: not read", 0) end
  if e.method ~= 0 and e.method ~= 8 then
    error("compression method " .. e.method .. " (ltorch reads stored and deflated members)", 0)
  end
  local off = member_offset(z, e)
  if want then
    if e.method == 0 then return z.src.read(off, math.min(want, e.csize)) end
    return inflate(z.src.read(off, math.min(e.csize, 65536)), want, want)
  end
  if e.usize > M.MAX_MEMBER then
    error(string.format("%d bytes exceed the scan limit of %d per member", e.usize, M.MAX_MEMBER), 0)
  end
  if e.usize > budget.left then
    error(string.format("the scan limit of %d bytes read per file is reached", M.MAX_TOTAL), 0)
  end
  budget.left = budget.left - e.usize
  if e.method == 0 then return z.src.read(off, e.usize) end
  local s = inflate(z.src.read(off, e.csize), e.usize)
  if #s ~= e.usize then error("inflates to " .. #s .. " bytes, not the " .. e.usize .. " its header says", 0) end
  return s
end

---------------------------------------------------------------------------
-- files and members
---------------------------------------------------------------------------

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", byte(c)) end))
end

-- what a file that ltorch does not scan looks like
local function not_scanned(head)
  local what
  if head:sub(1, 6) == "7z\xBC\xAF\x27\x1C" then what = "a 7z archive"
  elseif head:sub(1, 2) == "\x1f\x8b" then what = "a gzip file"
  elseif head:sub(1, 3) == "BZh" then what = "a bzip2 file"
  elseif head:sub(1, 6) == "\xFD7zXZ\0" then what = "an xz file"
  elseif head:sub(1, 4) == "\x28\xB5\x2F\xFD" then what = "a zstd file"
  elseif head:sub(1, 4) == "Rar!" then what = "a RAR archive"
  elseif head:sub(258, 262) == "ustar" then what = "a tar archive"
  elseif #head == 0 then what = "an empty file"
  else what = "unknown content (first bytes " .. hex(head:sub(1, 8)) .. ")" end
  return "not a format ltorch scans: " .. what .. "; its contents were not examined"
end

-- the kinds of an .npy header's descr: does it hold Python objects?
local function npy_has_objects(hdr)
  local descr = hdr:match("['\"]descr['\"]%s*:%s*(.-)%s*,%s*['\"]fortran_order") or
    hdr:match("['\"]descr['\"]%s*:%s*(.-)%s*,%s*['\"]shape") or hdr:match("['\"]descr['\"]%s*:%s*(.*)")
  if not descr then return nil end
  local d = descr:match("^['\"]([^'\"]*)['\"]")
  if d then return d:match("^[|<>=]?O%d*$") ~= nil end
  -- a structured dtype: [('name', 'type'[, shape]), ...] (nested lists too)
  for t in descr:gmatch("%(%s*['\"][^'\"]*['\"]%s*,%s*['\"]([^'\"]*)['\"]") do
    if t:match("^[|<>=]?O%d*$") then return true end
  end
  return false
end

local scan_source, scan_zip

-- a .npy (file or member) in src: the pickle of an object array
local function scan_npy(R, src, acc, ctx, label)
  local pre = src.read(0, math.min(src.size, 12))
  if #pre < 10 then error("truncated .npy header", 0) end
  local major = byte(pre, 7)
  local hl, hstart
  if major == 1 then hl, hstart = unpack_("<I2", pre, 9), 10
  elseif (major == 2 or major == 3) and #pre >= 12 then hl, hstart = unpack_("<I4", pre, 9), 12
  else error("unsupported .npy version " .. tostring(major), 0) end
  if hstart + hl > src.size then error("truncated .npy header", 0) end
  local hdr = src.read(hstart, hl)
  local obj = npy_has_objects(hdr)
  if obj == nil then error(".npy header without a descr", 0) end
  if not obj then return "npy", false end
  local off = hstart + hl
  local nctx = {where = ctx.where, npy = true, depth = ctx.depth}
  R.scan_blob(src, off, acc, nctx, label)
  return "npy (object array)", true
end

-- the pickles of src from byte off on, read in growing windows
function M._scan_blob(R, src, off, acc, ctx)
  local rest = src.size - off
  local win = math.min(rest, 1 << 20)
  while true do
    if win > R.budget.left then
      acc.errors[#acc.errors + 1] = string.format("%sthe scan limit of %d bytes read per file is reached",
        ctx.where and (ctx.where .. ": ") or "", M.MAX_TOTAL)
      return
    end
    local s = src.read(off, win)
    local a = new_acc()
    local r = scan_stream(s, 1, a, ctx, win < rest, ctx.tentative)
    if r ~= "retry" then
      R.budget.left = R.budget.left - win
      if r == "not a pickle" then return r end
      local emb = a.embedded
      a.embedded = {}
      merge_acc(acc, a)
      -- the zips and pickles inside bytes objects, as members
      local depth = ctx.depth or 0
      for _, e in ipairs(emb) do
        local at, len = e[1], e[2]
        local where = (ctx.where or "pickle") .. "@" .. (off + at - 1)
        local m = {name = where, kind = "bytes", bytes = len, scanned = true}
        R.members[#R.members + 1] = m
        local ok, err = pcall(function()
          if len > R.budget.left then
            error(string.format("the scan limit of %d bytes read per file is reached", M.MAX_TOTAL), 0)
          end
          R.budget.left = R.budget.left - len
          local raw = sub(s, at, at + len - 1)
          if e[3] then
            raw = raw:gsub("([\xC2\xC3])([\x80-\xBF])", function(a, b)
              return char(((byte(a) & 3) << 6) | (byte(b) & 63))
            end)
          end
          local blob = string_source(raw)
          if sub(raw, 1, 2) == "PK" then
            m.kind = "bytes: " .. scan_zip(R, blob, acc, where .. "!", depth + 1)
          else
            if depth + 1 > M.MAX_DEPTH then error("nested more than " .. M.MAX_DEPTH .. " deep: not scanned", 0) end
            m.kind = "bytes: pickle"
            M._scan_blob(R, blob, 0, acc, {where = where, depth = depth + 1})
          end
        end)
        if not ok then
          acc.errors[#acc.errors + 1] = where .. ": " .. tostring(err)
          m.error = tostring(err)
        end
      end
      return
    end
    if win >= M.MAX_MEMBER then
      R.budget.left = R.budget.left - win
      merge_acc(acc, a)
      acc.errors[#acc.errors + 1] = string.format("%sa pickle stream longer than the scan limit of %d bytes",
        ctx.where and (ctx.where .. ": ") or "", M.MAX_MEMBER)
      return
    end
    win = math.min(win * 4, rest, M.MAX_MEMBER)
  end
end

local function is_pickle_name(name)
  return name:match("%.pkl$") or name:match("%.debug_pkl$") or name:match("%.pickle$")
end

scan_zip = function(R, src, acc, prefix, depth)
  if depth > M.MAX_DEPTH then
    error("zips nested more than " .. M.MAX_DEPTH .. " deep: not scanned", 0)
  end
  local z = zip_open(src)
  -- PyTorch archives: "<folder>/data.pkl"; their storages "<folder>/data/*"
  local folders, torchscript = {}, false
  for _, e in ipairs(z.entries) do
    local f = e.name:match("^([^/]+)/data%.pkl$")
    if f then folders[f] = true end
    if e.name:match("^[^/]+/constants%.pkl$") then torchscript = true end
  end
  local storages = {}
  local kind = next(folders) and (torchscript and "torchscript" or "pt zip") or "zip"
  for _, e in ipairs(z.entries) do
    local name = e.name
    local full = prefix .. name
    local folder = name:match("^([^/]+)/data/")
    if name:sub(-1) == "/" then
      -- a directory
    elseif folder and folders[folder] then
      local g = storages[folder]
      if not g then
        g = {name = prefix .. folder .. "/data/", kind = "storages", bytes = 0, count = 0, scanned = false}
        storages[folder] = g
        R.members[#R.members + 1] = g
      end
      g.count = g.count + 1
      g.bytes = g.bytes + e.usize
    else
      local m = {name = full, kind = "data", bytes = e.usize, scanned = false}
      R.members[#R.members + 1] = m
      local ok, err = pcall(function()
        local head = e.usize > 0 and member_bytes(z, e, 16) or ""
        local ctx = {where = full, depth = depth}
        if head:sub(1, 4) == "PK\3\4" or head:sub(1, 4) == "PK\5\6" then
          m.kind, m.scanned = "zip", true
          local inner
          if e.method == 0 then
            inner = slice_source(z.src, member_offset(z, e), e.usize)
          else
            inner = string_source(member_bytes(z, e, nil, R.budget))
          end
          m.kind = scan_zip(R, inner, acc, full .. "!", depth + 1)
        elseif head:sub(1, 6) == "\x93NUMPY" then
          local src2 = e.method == 0 and slice_source(z.src, member_offset(z, e), e.usize)
            or string_source(member_bytes(z, e, nil, R.budget))
          m.kind, m.scanned = scan_npy(R, src2, acc, ctx, full)
        elseif is_pickle_name(name) or starts_pickle(head, 1) then
          m.kind, m.scanned = "pickle", true
          local s = member_bytes(z, e, nil, R.budget)
          R.budget.left = R.budget.left + #s   -- charged again by the scan
          M._scan_blob(R, string_source(s), 0, acc, ctx)
        end
      end)
      if not ok then
        acc.errors[#acc.errors + 1] = full .. ": " .. tostring(err)
        m.error = tostring(err)
      end
    end
  end
  if torchscript and depth == 0 then
    acc.notes[#acc.notes + 1] = "a TorchScript archive: its code/ records are TorchScript source that " ..
      "torch.jit.load compiles and runs with the module (not pickles; not scanned)"
  end
  return kind
end

-- Torch7 functions (bytecode) in a .t7 file: suspicious globals
local function t7_functions(R, path, acc)
  local ok, root, nodes = pcall(function()
    local h = core._fopen(path)
    local ok2, r, nd = pcall(core._t7_scan, h)
    h:close()
    if not ok2 then error(path .. ": " .. tostring(r), 0) end
    return r, nd
  end)
  if not ok then
    acc.errors[#acc.errors + 1] = tostring(root)
    return
  end
  local n = 0
  for _, node in pairs(nodes or {}) do
    if type(node) == "table" and node.kind == "function" then n = n + 1 end
  end
  if n > 0 then
    local g = note_global(acc, "torch7", "function", {where = nil})
    g.count = n
    g.class, g.why = "suspicious", "Lua bytecode in the file (Torch7's torch.load runs it when loaded)"
  end
end

-- the file's content: decide what it is and scan it
scan_source = function(R, src, acc, path)
  local head = src.read(0, math.min(src.size, 512))
  if head:sub(1, 4) == "PK\3\4" or head:sub(1, 4) == "PK\5\6" then
    R.format = scan_zip(R, src, acc, "", 0)
  elseif head:sub(1, 6) == "\x93NUMPY" then
    R.format = scan_npy(R, src, acc, {}, nil)
    if R.format == "npy" then acc.notes[#acc.notes + 1] = "no pickle: a numeric .npy array" end
  elseif starts_pickle(head, 1) then
    R.format = head:sub(1, #LEGACY_MAGIC) == LEGACY_MAGIC and "pt legacy" or "pickle"
    M._scan_blob(R, src, 0, acc, {})
  else
    if #head > 0 then
      local ok, f = pcall(function() return require("ltorch.serialize").detect(path) end)
      if ok and f and (f.name == "safetensors" or f.name == "gguf" or f.name == "t7" or f.name == "torchsharp"
          or f.name == "index") then
        R.format = f.name
        acc.notes[#acc.notes + 1] = "no pickle: a " .. f.name .. " file" ..
          (f.name == "index" and " (a shard index: scan its shard files)" or "")
        if f.name == "t7" then t7_functions(R, path, acc) end
        return
      end
    end
    if #head > 0 and OPS[byte(head, 1)] then
      -- a protocol 0 or 1 pickle has no PROTO: disassembled, it must reach
      -- a STOP or name a global
      local r = M._scan_blob(R, src, 0, acc, {tentative = true})
      if r ~= "not a pickle" then R.format = "pickle"; return end
    end
    R.format = "unknown"
    acc.errors[#acc.errors + 1] = not_scanned(head)
  end
end

local RANK = {safe = 0, suspicious = 1, dangerous = 2}

-- the report of the file at path (errors in it, never raised)
function M.scan(path)
  if type(path) ~= "string" then error("bad argument #1 to 'scan' (string expected, got " .. type(path) .. ")", 2) end
  local R = {path = path, format = nil, members = {}, budget = {left = M.MAX_TOTAL}}
  R.scan_blob = function(src, off, acc, ctx) return M._scan_blob(R, src, off, acc, ctx) end
  local acc = new_acc()
  local ok, h = pcall(core._fopen, path)
  if ok then
    local src = {size = h:size(), read = function(off, k) return h:read(off, k) end}
    local ok2, err = pcall(scan_source, R, src, acc, path)
    h:close()
    if not ok2 then acc.errors[#acc.errors + 1] = tostring(err) end
  else
    acc.errors[#acc.errors + 1] = tostring(h)
  end
  local verdict = "safe"
  for _, g in ipairs(acc.order) do
    g.where_set, g.ref, g.inst = nil, nil, nil
    if RANK[g.class] > RANK[verdict] then verdict = g.class end
  end
  if verdict ~= "dangerous" and #acc.errors > 0 then verdict = "error" end
  R.verdict = verdict
  R.globals = acc.order
  R.opcodes = acc.opcodes
  R.errors = acc.errors
  R.notes = acc.notes
  R.pickles = acc.pickles
  R.format = R.format or "unknown"
  R.budget, R.scan_blob = nil, nil
  if R.pickles == 0 and #acc.errors == 0 and not acc.notes[1] then
    acc.notes[#acc.notes + 1] = "no pickle found"
  end
  return R
end

-- the exit status of a scan of these reports: 1 if any is dangerous, else
-- 2 if any could not be scanned, else 0
function M.status(reports)
  local st = 0
  for _, r in ipairs(reports) do
    if r.verdict == "dangerous" then return 1 end
    if r.verdict == "error" then st = 2 end
  end
  return st
end

---------------------------------------------------------------------------
-- output
---------------------------------------------------------------------------

function M.render(r)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  say("%s: %s", r.path, r.verdict:upper())
  say("  format: %s, %d pickle%s", r.format, r.pickles, r.pickles == 1 and "" or "s")
  if #r.globals > 0 then
    say("  globals:")
    for _, g in ipairs(r.globals) do
      local use = g.calls > 0 and string.format("called %d", g.calls) or "not called"
      if g.builds > 0 then use = use .. string.format(", built %d", g.builds) end
      say("    %-10s %s (x%d, %s)", g.class, g.name, g.count, use)
      if g.class ~= "safe" then say("               %s", g.why) end
      if g.class ~= "safe" and #g.where > 0 then
        say("               in %s", table.concat(g.where, ", "))
      end
    end
  end
  local oc = {}
  for _, c in ipairs(M.CLASSES) do
    if r.opcodes[c] then oc[#oc + 1] = c .. " " .. r.opcodes[c] end
  end
  if #oc > 0 then say("  opcodes: %s", table.concat(oc, ", ")) end
  if #r.members > 0 then
    say("  members:")
    for _, m in ipairs(r.members) do
      if m.kind == "storages" then
        say("    %-22s %s (%d records, %d bytes; not pickles)", m.kind, m.name, m.count, m.bytes)
      else
        say("    %-22s %s (%d bytes%s)", m.kind, m.name, m.bytes, m.scanned and ", scanned" or "")
      end
    end
  end
  for _, e in ipairs(r.errors) do say("  error: %s", e) end
  for _, n in ipairs(r.notes) do say("  note: %s", n) end
  return table.concat(out, "\n")
end

local function obj(...)
  local odict = require("ltorch.odict")
  local keys, data = {}, {}
  for i = 1, select("#", ...), 2 do
    local k, v = select(i, ...)
    if v ~= nil then keys[#keys + 1] = k; data[k] = v end
  end
  return odict.from(keys, data)
end

local function json_report(r)
  local json = require("ltorch.json")
  local gl = {}
  for _, g in ipairs(r.globals) do
    gl[#gl + 1] = obj("name", g.name, "module", g.module, "attr", g.attr, "class", g.class, "why", g.why,
      "count", g.count, "calls", g.calls, "builds", g.builds, "called", g.calls + g.builds > 0,
      "where", json.array(table.move(g.where, 1, #g.where, 1, {})))
  end
  local oc = {}
  for _, c in ipairs(M.CLASSES) do oc[#oc + 1] = c; oc[#oc + 1] = r.opcodes[c] or 0 end
  local ms = {}
  for _, m in ipairs(r.members) do
    ms[#ms + 1] = obj("name", m.name, "kind", m.kind, "bytes", m.bytes, "scanned", m.scanned,
      "count", m.count, "error", m.error)
  end
  return obj("path", r.path, "verdict", r.verdict, "format", r.format, "pickles", r.pickles,
    "globals", json.array(gl), "opcodes", obj(table.unpack(oc)), "members", json.array(ms),
    "errors", json.array(table.move(r.errors, 1, #r.errors, 1, {})),
    "notes", json.array(table.move(r.notes, 1, #r.notes, 1, {})))
end

-- reports as one JSON document: {"files": [...]}
function M.to_json(reports)
  local json = require("ltorch.json")
  local files = {}
  for _, r in ipairs(reports) do files[#files + 1] = json_report(r) end
  return json.encode(obj("files", json.array(files)))
end

return M
