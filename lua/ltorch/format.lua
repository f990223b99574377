-- format.lua: tostring(t) in the style of PyTorch's print (torch/_tensor_str.py):
-- a common width and mode for all values, summarised with "..." past 1000
-- elements (3 edge items per dim), dtype shown when it is not the default.

local M = {}

local THRESHOLD, EDGE, LINEWIDTH = 1000, 3, 80

-- the elements shown, as a flat list of Lua values (only the edges when summarising)
local function shown_values(t, summarize, out)
  if t:dim() == 0 then out[#out + 1] = t:item(); return out end
  local n = t:size(1)
  if summarize and n > 2 * EDGE then
    for i = 1, EDGE do shown_values(t[i], summarize, out) end
    for i = n - EDGE + 1, n do shown_values(t[i], summarize, out) end
  else
    for i = 1, n do shown_values(t[i], summarize, out) end
  end
  return out
end

local function is_float(dt)
  return dt:match("^float") or dt:match("^bfloat") ~= nil
end

-- choose how to print floats: integer mode, fixed 4 decimals or scientific
local function float_formatter(vals)
  local finite = {}
  for _, v in ipairs(vals) do
    if v == v and v ~= math.huge and v ~= -math.huge then finite[#finite + 1] = math.abs(v) end
  end
  local int_mode = true
  for _, v in ipairs(finite) do if v ~= math.floor(v) then int_mode = false break end end
  local maxv, minv = 0, math.huge
  for _, v in ipairs(finite) do
    if v > maxv then maxv = v end
    if v ~= 0 and v < minv then minv = v end
  end
  if minv == math.huge then minv = 0 end
  local fmt
  if #finite == 0 then
    fmt = function(v) return tostring(v) end
  elseif int_mode then
    if maxv > 1e8 then fmt = function(v) return string.format("%.4e", v) end
    else fmt = function(v) return string.format("%.0f.", v) end end
  elseif (minv > 0 and maxv / minv > 1000) or maxv > 1e8 or (minv > 0 and minv < 1e-4) then
    fmt = function(v) return string.format("%.4e", v) end
  else
    fmt = function(v) return string.format("%.4f", v) end
  end
  return function(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    return fmt(v)
  end
end

local function formatter(t, vals)
  local dt = t:dtype()
  if dt == "bool" then return function(v) return v and "True" or "False" end end
  if dt:match("^complex") then
    local re, im = {}, {}
    for _, c in ipairs(vals) do re[#re + 1] = c[1]; im[#im + 1] = math.abs(c[2]) end
    local fr, fi = float_formatter(re), float_formatter(im)
    return function(c) return fr(c[1]) .. (c[2] < 0 and "-" or "+") .. fi(math.abs(c[2])) .. "j" end
  end
  if is_float(dt) then return float_formatter(vals) end
  return function(v) return string.format("%d", v) end
end

local function render(t, fmt, width, indent, summarize)
  if t:dim() == 0 then
    local s = fmt(t:item())
    return string.rep(" ", width - #s) .. s
  end
  local n = t:size(1)
  local idx = {}
  if summarize and n > 2 * EDGE then
    for i = 1, EDGE do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - EDGE + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[i] = i end
  end
  if t:dim() == 1 then
    local per_line = math.max(1, math.floor((LINEWIDTH - indent) / (width + 2)))
    local items = {}
    for _, i in ipairs(idx) do
      if i then
        local s = fmt(t[i]:item())
        items[#items + 1] = string.rep(" ", width - #s) .. s
      else
        items[#items + 1] = " ..."
      end
    end
    local lines = {}
    for k = 1, #items, per_line do
      lines[#lines + 1] = table.concat(items, ", ", k, math.min(#items, k + per_line - 1))
    end
    return "[" .. table.concat(lines, ",\n" .. string.rep(" ", indent + 1)) .. "]"
  end
  local parts = {}
  for _, i in ipairs(idx) do
    parts[#parts + 1] = i and render(t[i], fmt, width, indent + 1, summarize) or "..."
  end
  local sep = "," .. string.rep("\n", t:dim() - 1) .. string.rep(" ", indent + 1)
  return "[" .. table.concat(parts, sep) .. "]"
end

local function size_str(t)
  local s = t:size()
  return "size=(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")")
end

local default_dtype = {float32 = true, int64 = true, bool = true}

function M.tensor_tostring(t)
  if t:is_freed() then return "tensor(<freed>)" end
  local numel = t:numel()
  local dt = t:dtype()
  local suffix = {}
  local body
  if t:device() ~= "cpu" then
    t = t:to("cpu")
    suffix[#suffix + 1] = "device='cuda'"
  end
  if numel == 0 then
    body = "[]"
    if t:dim() ~= 1 then
      suffix[#suffix + 1] = size_str(t)
    end
  else
    local summarize = numel > THRESHOLD
    local vals = shown_values(t, summarize, {})
    local fmt = formatter(t, vals)
    local width = 0
    for _, v in ipairs(vals) do width = math.max(width, #fmt(v)) end
    body = render(t, fmt, width, 7, summarize)
    if summarize then suffix[#suffix + 1] = size_str(t) end
  end
  if not default_dtype[dt] then suffix[#suffix + 1] = "dtype=torch." .. dt end
  if #suffix > 0 then body = body .. ", " .. table.concat(suffix, ", ") end
  return "tensor(" .. body .. ")"
end

return M
