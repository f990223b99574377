-- einsum.lua: torch.einsum(equation, ...) in Lua over the core's views
-- (as_strided, permute, expand, reshape) and products (bmm, matmul). Lua
-- only plans: every multiplication and sum is done by the C matmul
-- (OpenBLAS), never element by element here.
--
-- The plan, as PyTorch's:
--   1. parse: one term per operand (letters a-z A-Z, at most one "..."),
--      "->" and the output, or the implicit output (the letters seen once,
--      in ASCII order, after the ellipsis dims);
--   2. per operand: a repeated letter takes the diagonal (as_strided); a
--      dim of size 1 broadcasts (expand) to the letter's size elsewhere;
--      a letter in no other operand nor the output is summed out;
--   3. operands are contracted left to right: the letters both hold are
--      batch dims when needed later (by the output or a later operand) and
--      summed otherwise; each pair is one bmm of (batch, left, summed) by
--      (batch, summed, right);
--   4. the result is permuted to the output's order.
-- Ellipsis dims get internal labels ".1" ... ".m" (m: the widest), right-
-- aligned, so operands broadcast over them as NumPy does.

local core = require("ltorch.core")

local M = {}

-- errors name einsum and the argument, at the first frame outside this
-- file (the caller of torch.einsum)
local SOURCE = debug.getinfo(1, "S").source
local function fail(arg, fmt, ...)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or info.source ~= SOURCE then break end
    level = level + 1
  end
  error(string.format("bad argument #%d to 'einsum' (" .. fmt .. ")", arg, ...), level)
end

-- the labels of one term ("ij", "...ij"), the ellipsis as "..."; nil and
-- a message when the term is malformed
local function parse_term(s)
  local items, i, ell = {}, 1, false
  while i <= #s do
    local c = s:sub(i, i)
    if c:match("^[A-Za-z]$") then
      items[#items + 1] = c
      i = i + 1
    elseif s:sub(i, i + 2) == "..." then
      if ell then return nil, "more than one '...' in the term '" .. s .. "'" end
      ell = true
      items[#items + 1] = "..."
      i = i + 3
    else
      return nil, "invalid subscript '" .. c .. "' in the term '" .. s .. "' (letters a-z, A-Z and '...' only)"
    end
  end
  return items, nil, ell
end

-- the equation against the operands: a list of label lists (one per
-- operand, one label per dim), the output's labels, and each label's size
local function plan(eq, ops)
  if type(eq) ~= "string" then fail(1, "equation string expected, got %s", type(eq)) end
  local s = eq:gsub("%s", "")
  local lhs, rhs = s:match("^(.-)%->(.*)$")
  if not lhs then lhs = s end
  if rhs and rhs:find("->", 1, true) then fail(1, "more than one '->' in '%s'", eq) end
  local terms = {}
  for term in (lhs .. ","):gmatch("([^,]*),") do terms[#terms + 1] = term end
  if #terms ~= #ops then
    fail(1, "the equation '%s' has %d operand%s, %d given", eq, #terms, #terms == 1 and "" or "s", #ops)
  end
  local parsed, width = {}, 0
  for i, term in ipairs(terms) do
    local items, msg, ell = parse_term(term)
    if not items then fail(1, "%s", msg) end
    local nd, nlab = ops[i]:dim(), #items - (ell and 1 or 0)
    if (ell and nd < nlab) or (not ell and nd ~= nlab) then
      fail(i + 1, "operand %d has %d dims, its subscripts '%s' name %s%d", i, nd, term,
        ell and "at least " or "", nlab)
    end
    parsed[i] = {items = items, ell = ell and nd - nlab or nil}
    if ell and nd - nlab > width then width = nd - nlab end
  end
  -- labels per dim, ellipsis dims right-aligned on .1 ... .width
  local labels, count, size, any_ell = {}, {}, {}, false
  for i, p in ipairs(parsed) do
    local l = {}
    for _, it in ipairs(p.items) do
      if it == "..." then
        any_ell = true
        for j = width - p.ell + 1, width do l[#l + 1] = "." .. j end
      else
        l[#l + 1] = it
      end
    end
    local sz, seen = ops[i]:size(), {}
    for d, k in ipairs(l) do
      if seen[k] then
        if sz[d] ~= sz[seen[k]] then
          fail(i + 1, "subscript %s is repeated in operand %d with sizes %d and %d", k, i, sz[seen[k]], sz[d])
        end
      else
        seen[k] = d
        count[k] = (count[k] or 0) + 1
        local have = size[k]
        if have == nil or have == 1 then size[k] = sz[d]
        elseif sz[d] ~= 1 and sz[d] ~= have then
          local name = k:sub(1, 1) == "." and "'...'" or k
          fail(i + 1, "subscript %s has size %d in operand %d, which does not broadcast with size %d", name, sz[d], i, have)
        end
      end
    end
    labels[i] = l
  end
  local out = {}
  if rhs then
    local items, msg = parse_term(rhs)
    if not items then fail(1, "%s", msg) end
    local seen = {}
    for _, it in ipairs(items) do
      if it == "..." then
        for j = 1, width do out[#out + 1] = "." .. j end
      else
        if seen[it] then fail(1, "output subscript %s appears more than once", it) end
        if not count[it] then fail(1, "output subscript %s appears in no operand", it) end
        seen[it] = true
        out[#out + 1] = it
      end
    end
  else
    if any_ell then for j = 1, width do out[#out + 1] = "." .. j end end
    local once = {}
    for k, n in pairs(count) do
      if n == 1 and k:sub(1, 1) ~= "." then once[#once + 1] = k end
    end
    -- a letter repeated inside one operand (a trace) is not "seen once"
    for _, l in ipairs(labels) do
      local c = {}
      for _, k in ipairs(l) do c[k] = (c[k] or 0) + 1 end
      for k, n in pairs(c) do
        if n > 1 then
          for j = #once, 1, -1 do if once[j] == k then table.remove(once, j) end end
        end
      end
    end
    table.sort(once)
    for _, k in ipairs(once) do out[#out + 1] = k end
  end
  return labels, out, size
end

-- t with repeated labels reduced to their diagonal (a view), and its labels
local function diagonals(t, l)
  local sz, st = t:size(), t:stride()
  local sizes, strides, nl, at = {}, {}, {}, {}
  for d, k in ipairs(l) do
    local j = at[k]
    if j then strides[j] = strides[j] + st[d]
    else
      nl[#nl + 1] = k
      sizes[#nl], strides[#nl], at[k] = sz[d], st[d], #nl
    end
  end
  if #nl == #l then return t, l end
  return t:as_strided(sizes, strides, t:storage_offset()), nl
end

-- t with its size-1 dims expanded to their labels' sizes (a view)
local function broadcast(t, l, size)
  local sz, grow = t:size(), false
  local want = {}
  for d, k in ipairs(l) do
    want[d] = size[k]
    if sz[d] ~= size[k] then grow = true end
  end
  if not grow then return t end
  return t:expand(want)
end

local function prod(sizes)
  local n = 1
  for _, s in ipairs(sizes) do n = n * s end
  return n
end

-- t summed over the labels in drop (a set): the dims moved last, merged
-- into one, and multiplied by a vector of ones
local function sum_out(t, l, drop)
  local keep, gone, kl, ksz, gsz = {}, {}, {}, {}, {}
  local sz = t:size()
  for d, k in ipairs(l) do
    if drop[k] then gone[#gone + 1], gsz[#gsz + 1] = d, sz[d]
    else keep[#keep + 1], kl[#kl + 1], ksz[#ksz + 1] = d, k, sz[d] end
  end
  if #gone == 0 then return t, l end
  local perm = {}
  for _, d in ipairs(keep) do perm[#perm + 1] = d end
  for _, d in ipairs(gone) do perm[#perm + 1] = d end
  local K = prod(gsz)
  local shape = {table.unpack(ksz)}
  shape[#shape + 1] = K
  local m = t:permute(perm):reshape(shape)
  return core.matmul(m, core.ones(K, {dtype = t:dtype()})), kl
end

-- the contraction of (a, la) and (b, lb) keeping the labels in need (a
-- set) as batch dims: one bmm
local function contract(a, la, b, lb, need, size)
  local ina, inb = {}, {}
  for _, k in ipairs(la) do ina[k] = true end
  for _, k in ipairs(lb) do inb[k] = true end
  -- a label in one operand only and not needed is summed there first
  local da, db = {}, {}
  for _, k in ipairs(la) do if not inb[k] and not need[k] then da[k] = true end end
  for _, k in ipairs(lb) do if not ina[k] and not need[k] then db[k] = true end end
  a, la = sum_out(a, la, da)
  b, lb = sum_out(b, lb, db)
  local batch, left, summed, right = {}, {}, {}, {}
  for _, k in ipairs(la) do
    if inb[k] then
      if need[k] then batch[#batch + 1] = k else summed[#summed + 1] = k end
    else
      left[#left + 1] = k
    end
  end
  for _, k in ipairs(lb) do if not ina[k] then right[#right + 1] = k end end
  local function perm_of(l, groups)
    local at, p = {}, {}
    for d, k in ipairs(l) do at[k] = d end
    for _, g in ipairs(groups) do for _, k in ipairs(g) do p[#p + 1] = at[k] end end
    return p
  end
  local function sizes(g)
    local s = {}
    for i, k in ipairs(g) do s[i] = size[k] end
    return s
  end
  local nb, nl, nk, nr = prod(sizes(batch)), prod(sizes(left)), prod(sizes(summed)), prod(sizes(right))
  local A = a:permute(perm_of(la, {batch, left, summed})):reshape(nb, nl, nk)
  local B = b:permute(perm_of(lb, {batch, summed, right})):reshape(nb, nk, nr)
  local r = core.bmm(A, B)
  local rl, shape = {}, {}
  for _, g in ipairs({batch, left, right}) do
    for _, k in ipairs(g) do rl[#rl + 1], shape[#shape + 1] = k, size[k] end
  end
  return r:reshape(shape), rl
end

-- einsum(equation, a, b, ...) or einsum(equation, {a, b, ...})
function M.einsum(eq, ...)
  local ops = {...}
  if #ops == 1 and type(ops[1]) == "table" and not core.is_tensor(ops[1]) then ops = ops[1] end
  if #ops == 0 then fail(2, "at least one operand expected") end
  for i = 1, #ops do
    if not core.is_tensor(ops[i]) then fail(i + 1, "tensor expected, got %s", type(ops[i])) end
  end
  local labels, out, size = plan(eq, ops)
  local inout = {}
  for _, k in ipairs(out) do inout[k] = true end
  -- labels per operand after the diagonals, and how many operands hold each
  local ts, ls, holders = {}, {}, {}
  for i, t in ipairs(ops) do
    ts[i], ls[i] = diagonals(t, labels[i])
    ts[i] = broadcast(ts[i], ls[i], size)
    for _, k in ipairs(ls[i]) do holders[k] = (holders[k] or 0) + 1 end
  end
  for i = 1, #ts do
    local drop = {}
    for _, k in ipairs(ls[i]) do if holders[k] == 1 and not inout[k] then drop[k] = true end end
    ts[i], ls[i] = sum_out(ts[i], ls[i], drop)
  end
  local t, l = ts[1], ls[1]
  for i = 2, #ts do
    local need = {}
    for k in pairs(inout) do need[k] = true end
    for j = i + 1, #ts do for _, k in ipairs(ls[j]) do need[k] = true end end
    t, l = contract(t, l, ts[i], ls[i], need, size)
  end
  local at, perm = {}, {}
  for d, k in ipairs(l) do at[k] = d end
  for i, k in ipairs(out) do perm[i] = at[k] end
  if #perm ~= #l then   -- cannot happen: every label left is in the output
    error("einsum: internal error planning '" .. eq .. "'")
  end
  local identity = true
  for i, d in ipairs(perm) do if d ~= i then identity = false end end
  if identity then return t end
  return t:permute(perm)
end

return M
