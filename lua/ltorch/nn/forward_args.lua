-- forward_args.lua: the trailing option table of a built-in layer's forward
-- (`mha(q, k, v, {attn_mask = m})`, `layer(src, {src_mask = m})`), checked
-- as constructor options are: an unknown name, a non-table, or a value of
-- the wrong kind is an error naming the layer, the argument and the option.
-- Forward errors are raised with level 0 from inside forward (the module
-- call adds which module failed).
local torch = require("ltorch")

local M = {}

-- M.options(class, argn, t, spec) -> t (or {}): spec maps each valid name
-- to its kind: "tensor" (a tensor or nil), "boolean" (true, false or nil)
local function names_of(spec)
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

function M.options(class, argn, t, spec)
  if t == nil then return {} end
  if type(t) ~= "table" or torch.is_tensor(t) or getmetatable(t) ~= nil then
    error(string.format("bad argument #%d to '%s' (table of options expected, got %s)",
      argn, class, torch.is_tensor(t) and "tensor" or type(t)), 0)
  end
  local given = {}
  for k in pairs(t) do given[#given + 1] = tostring(k) end
  table.sort(given)
  for _, k in ipairs(given) do
    local kind = spec[k]
    if kind == nil then
      error(string.format("bad option '%s' to '%s' (valid options: %s)", k, class, names_of(spec)), 0)
    end
    local v = t[k]
    if kind == "tensor" and v ~= nil and v ~= torch.null and not torch.is_tensor(v) then
      error(string.format("bad option '%s' to '%s' (tensor expected, got %s)", k, class, type(v)), 0)
    elseif kind == "boolean" and v ~= nil and type(v) ~= "boolean" then
      error(string.format("bad option '%s' to '%s' (boolean expected, got %s)", k, class, type(v)), 0)
    end
  end
  local out = {}
  for k, v in pairs(t) do if v ~= torch.null then out[k] = v end end
  return out
end

-- M.check_tensor(class, argn, v, what): v must be a tensor
function M.check_tensor(class, argn, v, what)
  if not torch.is_tensor(v) then
    error(string.format("bad argument #%d to '%s' (%s tensor expected, got %s)", argn, class,
      what, type(v)), 0)
  end
  return v
end

-- "{2, 3, 4}": a size as the nn errors write it
function M.size_str(s)
  if torch.is_tensor(s) then s = s:size() end
  return "{" .. table.concat(s, ", ") .. "}"
end

return M
