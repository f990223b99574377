-- rnn_utils.lua: torch.nn.utils.rnn, sequences of different lengths in one
-- batch (PyTorch's torch.nn.utils.rnn, whose names, arguments and defaults
-- these are). A PackedSequence holds the steps of every sequence, time step
-- by time step, without padding:
--   data              {sum(batch_sizes), *}: step 1 of every sequence, then
--                     step 2 of those that have one, ...
--   batch_sizes       int64 {T}: how many sequences have step t (not increasing)
--   sorted_indices    int64 {N} or nil: the batch's sequences longest first,
--                     as indices into the batch given (1-based, as every
--                     ltorch index; PyTorch's are 0-based)
--   unsorted_indices  int64 {N} or nil: the inverse permutation
-- LSTM, GRU and RNN take one as input (rnn_base.lua) and give one as output;
-- their states are in the batch's own order.
--
--   pack_padded_sequence(input, lengths [, batch_first = false, enforce_sorted = true])
--   pad_packed_sequence(sequence [, batch_first = false, padding_value = 0, total_length])
--     -> padded, lengths (int64)
--   pad_sequence(sequences [, batch_first = false, padding_value = 0])
--   pack_sequence(sequences [, enforce_sorted = true])
--   unpad_sequence(padded, lengths [, batch_first = false]) -> list of tensors
--   unpack_sequence(packed) -> list of tensors
-- Each takes its arguments by position, or the trailing ones in a table.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

local M = {}

local PS = {__name = "ltorch.PackedSequence"}
PS.__index = PS

function PS.__tostring(p)
  return string.format("PackedSequence(data=%s, batch_sizes=%s, sorted_indices=%s, unsorted_indices=%s)",
    tostring(p.data), tostring(p.batch_sizes), tostring(p.sorted_indices), tostring(p.unsorted_indices))
end

-- p:to(...) -> a PackedSequence whose data is p.data:to(...)
function PS.to(p, ...)
  return M.PackedSequence(p.data:to(...), p.batch_sizes, p.sorted_indices, p.unsorted_indices)
end

local function fail(name, fmt, ...) error(string.format("%s: " .. fmt, name, ...), 3) end

local function int_list(name, what, v)
  local out = {}
  if torch.is_tensor(v) then
    if v:dim() ~= 1 then fail(name, "%s must be 1-D, got %d-D", what, v:dim()) end
    for i, x in ipairs(v:tolist()) do out[i] = math.tointeger(x) end
  elseif type(v) == "table" then
    for i, x in ipairs(v) do out[i] = math.tointeger(x) end
  else
    fail(name, "%s must be a list or a 1-D tensor of integers, got %s", what, type(v))
  end
  for i = 1, #out do
    if out[i] == nil then fail(name, "%s[%d] is not an integer", what, i) end
  end
  return out
end

local function int64(list) return torch.tensor(list, {dtype = "int64"}) end

-- PackedSequence(data, batch_sizes [, sorted_indices, unsorted_indices])
function M.PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)
  local name = "PackedSequence"
  if not torch.is_tensor(data) then fail(name, "data must be a tensor, got %s", type(data)) end
  local bs = int_list(name, "batch_sizes", batch_sizes)
  local total, prev = 0, math.huge
  for t, b in ipairs(bs) do
    if b < 1 or b > prev then fail(name, "batch_sizes must be positive and not increasing (step %d: %d)", t, b) end
    prev, total = b, total + b
  end
  if data:dim() < 1 or data:size(1) ~= total then
    fail(name, "data has %d rows, batch_sizes add up to %d", data:dim() > 0 and data:size(1) or 0, total)
  end
  if sorted_indices ~= nil and unsorted_indices == nil then
    -- PyTorch derives the inverse when only sorted_indices is given
    local s = int_list(name, "sorted_indices", sorted_indices)
    local inv = {}
    for i, k in ipairs(s) do inv[k] = i end
    unsorted_indices = int64(inv)
  end
  return setmetatable({data = data, batch_sizes = torch.is_tensor(batch_sizes) and batch_sizes or int64(bs),
    sorted_indices = sorted_indices, unsorted_indices = unsorted_indices}, PS)
end

function M.is_packed(x) return getmetatable(x) == PS end

-- the sizes of a PackedSequence as a Lua list
function M.batch_sizes_of(p) return int_list("PackedSequence", "batch_sizes", p.batch_sizes) end

function M.pack_padded_sequence(...)
  local name = "pack_padded_sequence"
  local a = base.args(name, {"input", "lengths", "batch_first", "enforce_sorted"}, ...)
  local x = a.input
  if not torch.is_tensor(x) then fail(name, "input must be a tensor, got %s", type(x)) end
  if x:dim() < 2 then fail(name, "input must have a time and a batch dim, got %d-D", x:dim()) end
  if a.batch_first then x = x:transpose(1, 2) end
  local T, N = x:size(1), x:size(2)
  local lens = int_list(name, "lengths", a.lengths)
  if #lens ~= N then fail(name, "expected %d lengths (the batch size), got %d", N, #lens) end
  for i, l in ipairs(lens) do
    if l < 1 then fail(name, "length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0") end
    if l > T then fail(name, "lengths[%d] is %d, past the input's %d steps", i, l, T) end
  end
  local sorted_indices, unsorted_indices
  if a.enforce_sorted == nil or a.enforce_sorted then
    for i = 2, N do
      if lens[i] > lens[i - 1] then
        fail(name, "'lengths' array must be sorted in decreasing order when 'enforce_sorted' is true. " ..
          "You can pass enforce_sorted = false to pack_padded_sequence and/or pack_sequence to sidestep this " ..
          "requirement if you do not need ONNX exportability.")
      end
    end
  else
    local order = {}
    for i = 1, N do order[i] = i end
    table.sort(order, function(p, q) if lens[p] ~= lens[q] then return lens[p] > lens[q] end return p < q end)
    local inv, sl = {}, {}
    for r, i in ipairs(order) do inv[i] = r; sl[r] = lens[i] end
    sorted_indices, unsorted_indices = int64(order), int64(inv)
    x = x:index_select(2, sorted_indices)
    lens = sl
  end
  local bs, parts = {}, {}
  local n = N
  for t = 1, lens[1] do
    while lens[n] < t do n = n - 1 end
    bs[t] = n
    parts[t] = x:select(1, t):narrow(1, 1, n)
  end
  return setmetatable({data = torch.cat(parts, 1), batch_sizes = int64(bs), sorted_indices = sorted_indices,
    unsorted_indices = unsorted_indices}, PS)
end

function M.pad_packed_sequence(...)
  local name = "pad_packed_sequence"
  local a = base.args(name, {"sequence", "batch_first", "padding_value", "total_length"}, ...)
  local p = a.sequence
  if not M.is_packed(p) then fail(name, "sequence must be a PackedSequence, got %s", type(p)) end
  local bs = M.batch_sizes_of(p)
  local T, N = #bs, bs[1] or 0
  local TT = T
  if a.total_length ~= nil then
    TT = math.tointeger(a.total_length)
    if TT == nil or TT < T then
      fail(name, "expected total_length to be at least the length of the longest sequence in the input, " ..
        "but got total_length=%s and max sequence length being %d", tostring(a.total_length), T)
    end
  end
  local size = p.data:size()
  size[1] = N
  table.insert(size, 1, TT)
  local out = torch.full(size, a.padding_value or 0, {dtype = p.data:dtype()})
  local off = 0
  for t = 1, T do
    out:select(1, t):narrow(1, 1, bs[t]):copy(p.data:narrow(1, off + 1, bs[t]))
    off = off + bs[t]
  end
  local lens = {}
  for i = 1, N do
    local l = 0
    while l < T and bs[l + 1] >= i do l = l + 1 end
    lens[i] = l
  end
  local lengths = int64(lens)
  if p.unsorted_indices ~= nil then
    out = out:index_select(2, p.unsorted_indices)
    lengths = lengths:index_select(1, p.unsorted_indices)
  end
  if a.batch_first then out = out:transpose(1, 2) end
  return out, lengths
end

function M.pad_sequence(...)
  local name = "pad_sequence"
  local a = base.args(name, {"sequences", "batch_first", "padding_value"}, ...)
  local seqs = a.sequences
  if type(seqs) ~= "table" or #seqs == 0 then fail(name, "sequences must be a non-empty list of tensors") end
  local L = 0
  for i, s in ipairs(seqs) do
    if not torch.is_tensor(s) or s:dim() < 1 then fail(name, "sequences[%d] must be a tensor of 1 dim or more", i) end
    if s:size(1) > L then L = s:size(1) end
  end
  local size = seqs[1]:size()
  size[1] = #seqs
  table.insert(size, 1, L)
  local out = torch.full(size, a.padding_value or 0, {dtype = seqs[1]:dtype()})
  for i, s in ipairs(seqs) do
    if s:size(1) > 0 then out:select(2, i):narrow(1, 1, s:size(1)):copy(s) end
  end
  if a.batch_first then out = out:transpose(1, 2) end
  return out
end

function M.pack_sequence(...)
  local name = "pack_sequence"
  local a = base.args(name, {"sequences", "enforce_sorted"}, ...)
  local seqs = a.sequences
  if type(seqs) ~= "table" then fail(name, "sequences must be a list of tensors, got %s", type(seqs)) end
  local lens = {}
  for i, s in ipairs(seqs) do
    if not torch.is_tensor(s) or s:dim() < 1 then fail(name, "sequences[%d] must be a tensor of 1 dim or more", i) end
    lens[i] = s:size(1)
  end
  return M.pack_padded_sequence(M.pad_sequence(seqs), lens, false, a.enforce_sorted == nil or a.enforce_sorted)
end

function M.unpad_sequence(...)
  local name = "unpad_sequence"
  local a = base.args(name, {"padded_sequences", "lengths", "batch_first"}, ...)
  local x = a.padded_sequences
  if not torch.is_tensor(x) or x:dim() < 2 then fail(name, "padded_sequences must be a tensor of 2 dims or more") end
  if not a.batch_first then x = x:transpose(1, 2) end
  local lens = int_list(name, "lengths", a.lengths)
  local out = {}
  for i, l in ipairs(lens) do out[i] = x:select(1, i):narrow(1, 1, l) end
  return out
end

function M.unpack_sequence(p)
  if not M.is_packed(p) then fail("unpack_sequence", "packed_sequences must be a PackedSequence, got %s", type(p)) end
  local padded, lengths = M.pad_packed_sequence(p, true)
  return M.unpad_sequence(padded, lengths, true)
end

return M
