-- format.lua: tostring(t), character for character PyTorch 1.13's repr(t)
-- (torch/_tensor_str.py with the default print options: precision 4,
-- threshold 1000, edgeitems 3, linewidth 80). Summarised tensors show the
-- first and last 3 items of every dim longer than 6; one formatter (int mode,
-- fixed or scientific, and a common width) is chosen from the values shown;
-- complex tensors get one for the real and one for the imaginary parts.

local M = {}

local PRECISION, THRESHOLD, EDGE, LINEWIDTH = 4, 1000, 3, 80
local INF = math.huge
local CUT = setmetatable({}, {__name = "ltorch.format.cut"})   -- stands for "..."

local FIXED = "%." .. PRECISION .. "f"
local SCI = "%." .. PRECISION .. "e"

-- the values shown, as nested Lua tables (CUT where items are left out);
-- only the edges are read from a summarised tensor
local function gather(t, summarize)
  local d = t:dim()
  if d == 0 then return t:item() end
  if not summarize then return t:tolist() end
  local n = t:size(1)
  local idx = {}
  if n > 2 * EDGE then
    for i = 1, EDGE do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - EDGE + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[i] = i end
  end
  local out = {}
  for k, i in ipairs(idx) do
    if not i then out[k] = CUT
    elseif d == 1 then out[k] = t[i]:item()
    else out[k] = gather(t[i], true) end
  end
  return out
end

-- Python's format of a float: "nan" whatever its sign
local function pyfmt(spec, v)
  if v ~= v then return "nan" end
  if v == INF then return "inf" end
  if v == -INF then return "-inf" end
  return string.format(spec, v)
end

local function pad(s, width)
  if #s >= width then return s end
  return string.rep(" ", width - #s) .. s
end

-- _Formatter of a floating tensor: vals are its shown values
local function float_formatter(vals)
  local int_mode, sci_mode, width = true, false, 1
  local nz = {}
  for _, v in ipairs(vals) do
    if v == v and v ~= INF and v ~= -INF and v ~= 0 then nz[#nz + 1] = v end
  end
  if #nz > 0 then
    local maxv, minv = 0, INF
    for _, v in ipairs(nz) do
      local a = math.abs(v)
      if a > maxv then maxv = a end
      if a < minv then minv = a end
      if int_mode and v ~= math.floor(v) then int_mode = false end
    end
    local spec, extra
    if maxv / minv > 1000.0 or maxv > 1.0e8 or (not int_mode and minv < 1.0e-4) then
      sci_mode, spec, extra = true, SCI, 0
    elseif int_mode then
      spec, extra = "%.0f", 1
    else
      spec, extra = FIXED, 0
    end
    for _, v in ipairs(nz) do
      local n = #string.format(spec, v) + extra
      if n > width then width = n end
    end
  end
  local fmt
  if sci_mode then
    fmt = function(v) return pad(pyfmt(SCI, v), width) end
  elseif int_mode then
    fmt = function(v)
      if v ~= v or v == INF or v == -INF then return pad(pyfmt("%.0f", v), width) end
      return pad(string.format("%.0f", v) .. ".", width)
    end
  else
    fmt = function(v) return pad(pyfmt(FIXED, v), width) end
  end
  return {width = width, format = fmt}
end

-- a uint64 element (a Lua integer holding its bits) in decimal: past
-- 2^63 - 1 the integer is negative, so divide as unsigned
local function unsigned_str(v)
  if v >= 0 then return string.format("%d", v) end
  local q = (v >> 1) // 5            -- v // 10 as unsigned
  return string.format("%d%d", q, v - q * 10)
end

-- _Formatter of an integer or bool tensor (uint64: its values unsigned)
local function plain_formatter(vals, is_bool, unsigned)
  local str
  if is_bool then str = function(v) return v and "True" or "False" end
  elseif unsigned then str = unsigned_str
  else str = function(v) return string.format("%d", v) end end
  local width = 1
  for _, v in ipairs(vals) do
    local n = #str(v)
    if n > width then width = n end
  end
  return {width = width, format = function(v) return pad(str(v), width) end}
end

-- a complex value: real part, then the imaginary one with its sign and "j"
local function complex_str(f1, f2, c)
  local re = f1.format(c[1])
  local im = (f2.format(c[2]) .. "j"):gsub("^ +", "")
  local first = im:sub(1, 1)
  if first == "+" or first == "-" then return re .. im end
  return re .. "+" .. im
end

-- _tensor_str_with_formatter over the gathered values v of dim d
local function render(v, d, indent, fmt, element_length)
  if d == 0 then return fmt(v) end
  if d == 1 then
    local per_line = math.max(1, (LINEWIDTH - indent) // element_length)
    local items = {}
    for k, x in ipairs(v) do items[k] = x == CUT and " ..." or fmt(x) end
    local lines = {}
    for k = 1, #items, per_line do
      lines[#lines + 1] = table.concat(items, ", ", k, math.min(#items, k + per_line - 1))
    end
    return "[" .. table.concat(lines, ",\n" .. string.rep(" ", indent + 1)) .. "]"
  end
  local parts = {}
  for k, x in ipairs(v) do
    parts[k] = x == CUT and "..." or render(x, d - 1, indent + 1, fmt, element_length)
  end
  return "[" .. table.concat(parts, "," .. string.rep("\n", d - 1) .. string.rep(" ", indent + 1)) .. "]"
end

-- _tensor_str of a tensor with elements
local function tensor_str(t, indent)
  local dt = t:dtype()
  local summarize = t:numel() > THRESHOLD
  local vals = gather(t, summarize)
  local flat = {}
  local function walk(x)
    if type(x) ~= "table" then flat[#flat + 1] = x
    elseif x ~= CUT then for _, y in ipairs(x) do walk(y) end end
  end
  local fmt, element_length
  if dt:match("^complex") then
    -- a complex item is {re, im}: tell items from lists by the dim
    local re, im = {}, {}
    local function walkc(x, d)
      if d == 0 then re[#re + 1] = x[1]; im[#im + 1] = x[2] return end
      for _, y in ipairs(x) do if y ~= CUT then walkc(y, d - 1) end end
    end
    walkc(vals, t:dim())
    local f1, f2 = float_formatter(re), float_formatter(im)
    fmt = function(c) return complex_str(f1, f2, c) end
    element_length = f1.width + 2 + f2.width + 1
  else
    walk(vals)
    local f
    if dt == "bool" then f = plain_formatter(flat, true)
    elseif dt:match("float") then f = float_formatter(flat)
    else f = plain_formatter(flat, false, dt == "uint64") end
    fmt = f.format
    element_length = f.width + 2
  end
  return render(vals, t:dim(), indent, fmt, element_length)
end

local function size_str(t)
  local s = t:size()
  return "size=(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")")
end

-- dtypes whose name PyTorch leaves out (default float float32 and its complex64)
local default_dtype = {float32 = true, complex64 = true, int64 = true, bool = true}

-- _add_suffixes: each suffix after ", " or, past the line width, on a new line
local function add_suffixes(s, suffixes, indent)
  local parts = {s}
  local last_nl = 0
  local p = s:find("\n", 1, true)
  while p do last_nl = p; p = s:find("\n", p + 1, true) end
  local last_line_len = #s - last_nl + 2
  for _, suffix in ipairs(suffixes) do
    if last_line_len + #suffix + 2 > LINEWIDTH then
      parts[#parts + 1] = ",\n" .. string.rep(" ", indent) .. suffix
      last_line_len = indent + #suffix
    else
      parts[#parts + 1] = ", " .. suffix
      last_line_len = last_line_len + #suffix + 2
    end
  end
  parts[#parts + 1] = ")"
  return table.concat(parts)
end

function M.tensor_tostring(t)
  if t:is_freed() then return "tensor(<freed>)" end
  local prefix = "tensor("
  local indent = #prefix
  local dt = t:dtype()
  local suffixes = {}
  local dev = t:device()
  if dev ~= "cpu" then
    suffixes[#suffixes + 1] = "device='" .. (dev:find(":", 1, true) and dev or dev .. ":0") .. "'"
    t = t:to("cpu")
  end
  local body
  if t:numel() == 0 then
    -- the shape unless it is (0,); the dtype unless it is the default float
    if t:dim() ~= 1 then suffixes[#suffixes + 1] = size_str(t) end
    if dt ~= "float32" then suffixes[#suffixes + 1] = "dtype=torch." .. dt end
    body = "[]"
  else
    if not default_dtype[dt] then suffixes[#suffixes + 1] = "dtype=torch." .. dt end
    body = tensor_str(t, indent)
  end
  if t:requires_grad() then suffixes[#suffixes + 1] = "requires_grad=True" end
  return add_suffixes(prefix .. body, suffixes, indent)
end

return M
