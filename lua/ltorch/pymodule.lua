-- pymodule.lua: the state dict of a pickled PyTorch nn.Module, read from the
-- pickle's data alone. `torch.save(model)` pickles the module object itself;
-- ltorch's pickle reader never imports code, and with {unknown = "inert"}
-- each module object becomes an inert table
--
--   {__global = "torchvision.models.resnet.ResNet", args = {},
--    state = <the module's __dict__, an ordered dict>}
--
-- (loading without that option refuses the file, naming the globals). This
-- file is the one place that knows how to get `model.state_dict()` out of
-- such a value; inspect (and torch.load_state_dict) build on it.
--
--   local pymodule = require("ltorch.pymodule")
--   local v = torch.load("model.pt", {unknown = "inert"})
--   if pymodule.is_module(v) then local sd = pymodule.state_dict(v) end
--
-- The facts of PyTorch's Module pickling this relies on (torch/nn/modules/
-- module.py, unchanged from 1.x through 2.x):
--   * a Module pickles as NEWOBJ of its class (no arguments) and BUILD with
--     its __dict__ (Module defines no __reduce__ or __getstate__; its
--     __setstate__ only fills in fields older versions lacked). Legacy
--     (non-zip) files name each class through a persistent id
--     ('module', class, source_file, source), which the reader turns into the
--     class, as torch.load does. The fields used here:
--       _parameters   (Ordered)dict name -> Parameter or None (bias=False)
--       _buffers      (Ordered)dict name -> Tensor or None
--       _non_persistent_buffers_set  set of buffer names left out of the
--                     state dict (register_buffer(..., persistent=False));
--                     absent before PyTorch 1.6: every buffer is persistent.
--                     ltorch's reader gives a Python set as a Lua table
--                     {name = true}.
--       _modules      (Ordered)dict name -> child Module or None
--     Parameters arrive as tensors (torch._utils._rebuild_parameter is read
--     natively); dicts keep their insertion order (ordered dicts).
--   * Module.state_dict(prefix="") is, per module: its parameters that are not
--     None, in _parameters order, under prefix .. name; then its buffers that
--     are not None and not in _non_persistent_buffers_set, in _buffers order;
--     then each child that is not None, recursively with prefix
--     prefix .. name .. ".". There is no memo: a module reachable under two
--     names (self.shared = self.head) is listed under both, with the same
--     tensors. nn.Sequential's children are named "0", "1", ...;
--     nn.DataParallel is a module whose one child is "module", so its keys are
--     "module.conv1.weight", ...
--   * PyTorch returns detached tensors; here the loaded tensors themselves are
--     returned (same data; requires_grad as stored).
-- What cannot be followed without running code: a class overriding
-- _save_to_state_dict or get_extra_state (the "_extra_state" key), and
-- _state_dict_hooks. Those models' keys may differ from PyTorch's.
--
-- A module that is its own ancestor makes PyTorch's state_dict() recurse
-- forever; here it is an error (or skipped, with visit's cycles = "skip").
-- Nesting deeper than M.MAX_DEPTH modules is an error.

local torch = require("ltorch")
local odict = require("ltorch.odict")

local M = {}

M.MAX_DEPTH = 256

local ordered_keys = odict.ordered_keys

local function is_inert(v)
  return type(v) == "table" and type(rawget(v, "__global")) == "string"
end

-- the __dict__ of v when v is an inert pickled nn.Module, else nil
local function module_state(v)
  if not is_inert(v) then return nil end
  local st = rawget(v, "state")
  if type(st) ~= "table" or is_inert(st) or torch.is_tensor(st) then return nil end
  if type(st._parameters) == "table" or type(st._modules) == "table" then return st end
  return nil
end

-- true when v is the inert table of a pickled torch.nn.Module
function M.is_module(v) return module_state(v) ~= nil end

local function join(prefix, k)
  k = tostring(k)
  if prefix == "" then return k end
  return prefix .. "." .. k
end

local function each_entry(d, f)
  if type(d) ~= "table" then return end
  for _, k in ipairs(ordered_keys(d)) do
    local x = d[k]
    if x ~= nil and x ~= torch.null then f(k, x) end
  end
end

-- Walk a pickled module in Module.state_dict() order. h holds callbacks:
--   h.entry(key, value)    each state dict entry (value: a tensor, as loaded)
--   h.module(m, prefix)    entering a module (the root included), before its
--                          entries; m is its inert table
--   h.leave(m, prefix)     after a module's entries and children
--   h.other(key, value)    a child in _modules that is not a pickled module
--                          (None included); default: None is skipped, anything
--                          else is an error
-- opts: prefix (default ""), max_depth (default M.MAX_DEPTH), cycles ("error",
-- the default, or "skip": a module met again inside itself is left out).
-- Returns false when v is not a pickled module, else true.
function M.visit(v, h, opts)
  if not M.is_module(v) then return false end
  opts = opts or {}
  local max_depth = opts.max_depth or M.MAX_DEPTH
  local skip_cycles = opts.cycles == "skip"
  local on_path = {}   -- module -> its key, for the modules being walked
  local function other(key, x)
    if h.other then return h.other(key, x) end
    if x == torch.null then return end
    local what = is_inert(x) and x.__global or (torch.is_tensor(x) and "a tensor") or type(x)
    error(string.format("pickled module: child '%s' is not a torch.nn.Module (%s)", key, what), 0)
  end
  local function rec(m, prefix, depth)
    if depth > max_depth then
      error(string.format("pickled module: submodules nested deeper than %d levels (at '%s')",
        max_depth, prefix), 0)
    end
    if on_path[m] then
      if skip_cycles then return end
      error(string.format("pickled module: '%s' is %s again (%s): a cycle, which PyTorch's " ..
        "state_dict() cannot walk either", prefix,
        on_path[m] == "" and "the root module" or "'" .. on_path[m] .. "'", m.__global), 0)
    end
    on_path[m] = prefix
    local st = module_state(m)
    if h.module then h.module(m, prefix) end
    each_entry(st._parameters, function(k, x) h.entry(join(prefix, k), x) end)
    local nonpersistent = st._non_persistent_buffers_set
    if type(nonpersistent) ~= "table" then nonpersistent = {} end
    each_entry(st._buffers, function(k, x)
      if not nonpersistent[k] then h.entry(join(prefix, k), x) end
    end)
    local mods = st._modules
    if type(mods) == "table" then
      for _, k in ipairs(ordered_keys(mods)) do
        local c = mods[k]
        if M.is_module(c) then rec(c, join(prefix, k), depth + 1) else other(join(prefix, k), c) end
      end
    end
    if h.leave then h.leave(m, prefix) end
    on_path[m] = nil
  end
  rec(v, opts.prefix or "", 1)
  return true
end

-- PyTorch's model.state_dict() of a pickled module, as an ordered dict:
-- the same keys in the same order, the tensors as loaded. nil when v is not
-- a pickled module.
function M.state_dict(v, opts)
  if not M.is_module(v) then return nil end
  local sd = odict.new()
  M.visit(v, {entry = function(k, x) sd[k] = x end},
    {max_depth = opts and opts.max_depth, prefix = opts and opts.prefix})
  return sd
end

return M
