-- torchscript.lua: the state dict of a TorchScript archive (torch.jit.save),
-- read without running it. src/lpt.c reads the archive as it reads a
-- torch.save file when asked (core._pt_load's `torchscript` option): its
-- data.pkl objects load inert, and the class definitions under code/ come
-- back as text. This file parses that text and walks the object graph;
-- formats/pt.lua and serialize.lua call it.
--
-- What a torch.jit.save archive holds (PyTorch 1.13 observed; 2.x the same
-- apart from ".data/version" and extra records), all under one folder:
--   1. data.pkl: a protocol-2 pickle of the module object. Each TorchScript
--      object is `GLOBAL "__torch__.<module> <Class>"`, EMPTY_TUPLE, NEWOBJ,
--      then a dict of its attributes (its slots, in the class's attribute
--      order) and BUILD; tensors are _rebuild_tensor_v2 with persistent ids
--      ('storage', torch.<X>Storage, key, location, numel) whose bytes are
--      the records data/<key>, as in a torch.save file. ltorch's reader
--      gives each object {__global = "__torch__.<module>.<Class>", args = {},
--      state = <ordered dict of the attributes>}.
--   2. code/<module path>.py: the classes' TorchScript source, e.g.
--      code/__torch__/torch/nn/modules/conv.py holds the class
--      __torch__.torch.nn.modules.conv.Conv2d, code/__torch__.py the
--      classes of __main__ (mangled copies: .../linear/___torch_mangle_0.py).
--      A module class reads
--          class Conv2d(Module):
--            __parameters__ = ["weight", "bias", ]
--            __buffers__ = []
--            weight : Tensor
--            ...
--      (code/*.debug_pkl: source ranges, not read).
--   3. constants.pkl (+ constants/<key>): tensors and values the code uses
--      (CONSTANTS.c0); not part of the state dict, not read.
--   4. version (or .data/version).
--
-- The state dict, as RecursiveScriptModule.state_dict() gives it (PyTorch's
-- slot policies in torch/csrc/jit/api/module.h), per module with prefix P:
--   * its attributes named in __parameters__ whose value is a tensor (a
--     None parameter, bias=False, is skipped), in attribute order, as P..name;
--   * then those named in __buffers__ whose value is a tensor, in attribute
--     order. TorchScript keeps no persistence flag: a buffer registered
--     with persistent=False is in the scripted module's state dict (and so
--     here), unlike the eager module's (pytorch/pytorch issues #45012, #69250);
--   * then each attribute whose value is an object of a module class
--     (`class X(Module):`), recursively with prefix P..name..".", in
--     attribute order. A module reachable under two names is listed under
--     both. Plain tensor attributes, scripted (non-module) class objects and
--     custom C++ classes (__torch__.torch.classes.*) are not in it.
-- What cannot be followed without running code: a class with __setstate__
-- (its pickled state is whatever __getstate__ returned; e.g. quantized
-- modules' packed parameters) is an error naming it.

local torch = require("ltorch")
local odict = require("ltorch.odict")

local M = {}

M.MAX_DEPTH = 256

local function is_inert(v)
  return type(v) == "table" and type(rawget(v, "__global")) == "string"
end

---------------------------------------------------------------------------
-- code/: the class definitions, as text

local ESC = {a = "\a", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", v = "\v",
  ["\\"] = "\\", ['"'] = '"', ["'"] = "'"}

-- the string literal at s[i] (a quote); returns its value and the index
-- after it, or nil
local function read_string(s, i)
  local q = s:sub(i, i)
  local out, j = {}, i + 1
  while j <= #s do
    local c = s:sub(j, j)
    if c == q then return table.concat(out), j + 1 end
    if c == "\n" then return nil end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      if ESC[e] then out[#out + 1] = ESC[e]; j = j + 2
      elseif e == "x" and s:sub(j + 2, j + 3):match("^%x%x$") then
        out[#out + 1] = string.char(tonumber(s:sub(j + 2, j + 3), 16)); j = j + 4
      elseif e:match("[0-7]") then
        local oct = s:match("^[0-7][0-7]?[0-7]?", j + 1)
        local n = tonumber(oct, 8)
        if n > 255 then return nil end
        out[#out + 1] = string.char(n); j = j + 1 + #oct
      else return nil end
    else
      out[#out + 1] = c; j = j + 1
    end
  end
  return nil
end

-- the list of string literals `[ "a", "b", ]` at s[i] ("["); returns the
-- list and the index of its "]", or nil when it is anything else
local function read_list(s, i)
  local out, j = {}, i + 1
  while true do
    j = s:find("[^%s,]", j)
    if not j then return nil end
    local c = s:sub(j, j)
    if c == "]" then return out, j end
    if c ~= '"' and c ~= "'" then return nil end
    local v, nj = read_string(s, j)
    if not v then return nil end
    out[#out + 1] = v
    j = nj
  end
end

-- "__torch__/torch/nn/modules/conv.py" -> "__torch__.torch.nn.modules.conv"
local function module_of(file)
  return (file:gsub("%.py$", ""):gsub("/", "."))
end

-- Parse the code/ records ({relative name = text}) into
-- {[qualified class name] = {name =, file =, module = boolean,
--  parameters = {names}, buffers = {names}, setstate = boolean}}.
-- Only the class headers (`class Name(Bases):` at column 0) and, in a class
-- body at its own indentation (not in its methods), the
-- `__parameters__ = [...]` and `__buffers__ = [...]` lines and
-- `def __setstate__(` are read; nothing is evaluated. Raises on a list it
-- cannot read ("code/FILE line N: ...").
function M.parse_classes(code)
  local classes = {}
  local files = {}
  for f in pairs(code) do files[#files + 1] = f end
  table.sort(files)
  for _, f in ipairs(files) do
    local text = code[f]
    local mod = module_of(f)
    local cls
    local pos, line = 1, 0
    while pos <= #text do
      local eol = text:find("\n", pos, true) or #text + 1
      local l = text:sub(pos, eol - 1)
      line = line + 1
      local name, rest = l:match("^class%s+([%a_][%w_]*)%s*(.-)%s*:%s*$")
      if name then
        local bases = rest:match("^%((.*)%)$") or ""
        cls = {name = mod .. "." .. name, file = "code/" .. f, parameters = {}, buffers = {},
          module = bases:match("^%s*Module%s*$") ~= nil, setstate = false}
        classes[cls.name] = cls
      elseif l:match("^%S") then
        cls = nil   -- a top-level statement ends the class body
      elseif cls and l:match("^%s*$") == nil then
        -- the class body's own lines, at its first line's indentation (not
        -- the bodies of its methods)
        local ind = l:match("^%s+")
        cls.indent = cls.indent or ind
        local what, lb
        if ind == cls.indent then what, lb = l:match("^%s+(__%a+__)%s*=%s*()%[") end
        if what == "__parameters__" or what == "__buffers__" then
          local list, close = read_list(text, pos + lb - 1)
          if not list then
            error(string.format("code/%s line %d: cannot read the %s list of class %s", f, line,
              what, cls.name), 0)
          end
          cls[what == "__parameters__" and "parameters" or "buffers"] = list
          -- a list continued on the next lines: go on after its "]"
          local last = text:find("\n", close, true) or #text + 1
          for _ in text:sub(eol, last - 1):gmatch("\n") do line = line + 1 end
          eol = math.max(eol, last)
        elseif ind == cls.indent and l:match("^%s+def%s+__setstate__%s*%(") then
          cls.setstate = true
        end
      end
      pos = eol + 1
    end
  end
  for _, c in pairs(classes) do c.indent = nil end
  return classes
end

---------------------------------------------------------------------------
-- the loaded value

-- value: the inert root object data.pkl gave; code: the code/ records.
-- Adds value.__torchscript = {classes = M.parse_classes(code)} and returns
-- value. Raises when the root is not an object of a TorchScript module class.
function M.annotate(value, code)
  local classes = M.parse_classes(code)
  if not is_inert(value) then
    error("a TorchScript archive whose data.pkl is not a TorchScript object", 0)
  end
  local cls = classes[value.__global]
  if not cls then
    error(string.format("TorchScript class %s has no definition under code/", value.__global), 0)
  end
  if not cls.module then
    error(string.format("TorchScript class %s is not a module", value.__global), 0)
  end
  rawset(value, "__torchscript", {classes = classes})
  return value
end

-- true when v is the root of a loaded TorchScript archive
function M.is_torchscript(v)
  return is_inert(v) and type(rawget(v, "__torchscript")) == "table"
end

local function join(prefix, k)
  k = tostring(k)
  if prefix == "" then return k end
  return prefix .. "." .. k
end

local function set_of(list)
  local s = {}
  for _, n in ipairs(list) do s[n] = true end
  return s
end

-- Walk a loaded TorchScript archive in state_dict() order (the rules at the
-- top). h holds callbacks:
--   h.entry(key, tensor)          each state dict entry
--   h.module(m, prefix, class)    entering a module (the root too): its inert
--                                 table and its class record
--   h.leave(m, prefix, class)     after its entries and children
-- Returns false when v is not a loaded TorchScript archive, else true.
-- Raises "TorchScript module: ..." for what it cannot follow.
function M.visit(v, h)
  if not M.is_torchscript(v) then return false end
  local classes = v.__torchscript.classes
  local on_path = {}
  local function class_of(x)
    if not is_inert(x) then return nil end
    local c = classes[x.__global]
    if c then return c end
    if x.__global:match("^__torch__%.") and not x.__global:match("^__torch__%.torch%.classes%.") then
      error(string.format("TorchScript module: class %s has no definition under code/", x.__global), 0)
    end
    return nil
  end
  local function rec(m, cls, prefix, depth)
    local where = prefix == "" and "the root module" or "'" .. prefix .. "'"
    if depth > M.MAX_DEPTH then
      error(string.format("TorchScript module: submodules nested deeper than %d levels (at '%s')",
        M.MAX_DEPTH, prefix), 0)
    end
    if on_path[m] then
      error(string.format("TorchScript module: %s contains itself (%s)", where, m.__global), 0)
    end
    local st = rawget(m, "state")
    if cls.setstate or type(st) ~= "table" or is_inert(st) or torch.is_tensor(st) then
      error(string.format("TorchScript module: %s (%s) pickles its state through __getstate__; " ..
        "its attributes are rebuilt by its code, which ltorch does not run", where, m.__global), 0)
    end
    on_path[m] = true
    if h.module then h.module(m, prefix, cls) end
    local keys = odict.ordered_keys(st)
    for _, what in ipairs({"parameters", "buffers"}) do
      local names = set_of(cls[what])
      for _, k in ipairs(keys) do
        local x = st[k]
        if names[k] and torch.is_tensor(x) then h.entry(join(prefix, k), x) end
      end
    end
    for _, k in ipairs(keys) do
      local c = class_of(st[k])
      if c and c.module then rec(st[k], c, join(prefix, k), depth + 1) end
    end
    if h.leave then h.leave(m, prefix, cls) end
    on_path[m] = nil
  end
  rec(v, classes[v.__global], "", 1)
  return true
end

-- The scripted module's state_dict(), as an ordered dict (the tensors as
-- loaded); nil when v is not a loaded TorchScript archive.
function M.state_dict(v)
  if not M.is_torchscript(v) then return nil end
  local sd = odict.new()
  M.visit(v, {entry = function(k, x) sd[k] = x end})
  return sd
end

-- a one-line description of a loaded archive, for inspect's note and
-- convert's: "a TorchScript archive (torch.jit.save) of
-- torch.nn.modules.container.Sequential, not run" (the class without
-- "__torch__." and the "___torch_mangle_N" parts)
function M.describe(v)
  local name = v.__global:gsub("^__torch__%.", ""):gsub("___torch_mangle_%d+%.", "")
  return string.format("a TorchScript archive (torch.jit.save) of %s, not run", name)
end

return M
