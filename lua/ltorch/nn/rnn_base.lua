-- rnn_base.lua: what LSTM, GRU and RNN share (PyTorch's RNNBase): the
-- constructor's arguments, the parameters, the checks of forward's
-- arguments, and the loop over layers, directions and time steps; and
-- what LSTMCell, GRUCell and RNNCell share (RNNCellBase): one step.
--
-- Parameters, for layer k (0-based, as PyTorch names them) and direction
-- suffix "" or "_reverse": weight_ih_lk {G, in}, weight_hh_lk {G, Hr},
-- bias_ih_lk {G}, bias_hh_lk {G}, weight_hr_lk {proj_size, H} (LSTM with
-- proj_size), where G is 4H (LSTM: gates i, f, g, o), 3H (GRU: r, z, n) or
-- H (RNN), Hr is proj_size or H, and in is input_size for layer 0, else
-- Hr * directions. All drawn uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch.
--
-- The input projection of a whole sequence is one matmul (x W_ih^T + b_ih
-- for all time steps); each time step is then one matmul with W_hh and the
-- gate arithmetic, all C tensor ops.
local torch = require("ltorch")
local base = require("ltorch.nn.module")

local M = {}

local GATES = {LSTM = 4, GRU = 3, RNN_TANH = 1, RNN_RELU = 1}

local function size_str(s)
  if torch.is_tensor(s) then s = s:size() end
  return "{" .. table.concat(s, ", ") .. "}"
end

-- the fields layers and cells share: mode, input_size, hidden_size, bias
local function sizes(self, class, mode, a)
  local I, H = a.input_size, a.hidden_size
  base.check(math.type(I) == "integer" and I >= 0, class, "input_size must be a non-negative integer")
  base.check(math.type(H) == "integer" and H > 0, class, "hidden_size must be a positive integer")
  self.mode = mode
  self.input_size, self.hidden_size = I, H
  self.bias = a.bias ~= false
  return I, H
end

-- weight_ih<sfx> {G, lin}, weight_hh<sfx> {G, Hr}, bias_ih<sfx>, bias_hh<sfx> {G}
-- (with bias), uniform(-1/sqrt(H), 1/sqrt(H)) in that order, as PyTorch
local function weights(self, sfx, G, lin, Hr)
  local bound = 1 / math.sqrt(self.hidden_size)
  local function param(...) return torch.nn.Parameter(base.uniform({...}, bound)) end
  self["weight_ih" .. sfx] = param(G, lin)
  self["weight_hh" .. sfx] = param(G, Hr)
  if self.bias then
    self["bias_ih" .. sfx] = param(G)
    self["bias_hh" .. sfx] = param(G)
  end
  return param
end

local function placed(self, a)
  if a.dtype ~= nil then self:to(a.dtype) end
  if a.device ~= nil then self:to(a.device) end
end

-- M.nonlinearity(class, a) -> "tanh" or "relu" (a.nonlinearity), else an error
function M.nonlinearity(class, a)
  local nl = a.nonlinearity or "tanh"
  if nl ~= "tanh" and nl ~= "relu" then
    base.fail(class, "unknown nonlinearity '%s' (expected 'tanh' or 'relu')", tostring(nl))
  end
  return nl
end

-- M.lstm_state(class, state) -> h0, c0 of forward's state {h0, c0}, or nil
function M.lstm_state(class, state)
  if state == nil then return nil end
  if type(state) ~= "table" or torch.is_tensor(state) or getmetatable(state) ~= nil then
    error(string.format("bad argument #2 to '%s' (state {h0, c0} expected, got %s)", class,
      torch.is_tensor(state) and "tensor" or type(state)), 0)
  end
  local h0, c0 = state[1], state[2]
  if h0 == nil or c0 == nil then
    error(string.format("bad argument #2 to '%s' (state {h0, c0} expected, got a table without %s)",
      class, h0 == nil and "h0" or "c0"), 0)
  end
  return h0, c0
end

-- M.init(self, class, mode, a): the fields and parameters of args a (from
-- base.args with input_size, hidden_size, num_layers, bias, batch_first,
-- dropout, bidirectional, [proj_size,] device, dtype)
function M.init(self, class, mode, a)
  local I, H = sizes(self, class, mode, a)
  local L = a.num_layers or 1
  base.check(math.type(L) == "integer" and L > 0, class, "num_layers must be a positive integer")
  local p = a.dropout or 0
  if type(p) ~= "number" or p < 0 or p > 1 then
    base.fail(class, "dropout should be a number in range [0, 1] representing the probability of an element " ..
      "being zeroed, got %s", tostring(p))
  end
  local proj = a.proj_size or 0
  base.check(math.type(proj) == "integer" and proj >= 0, class,
    "proj_size should be a positive integer or zero to disable projections")
  base.check(proj < H, class, "proj_size has to be smaller than hidden_size")
  self.num_layers = L
  self.batch_first = a.batch_first == true
  self.dropout = p + 0.0
  self.bidirectional = a.bidirectional == true
  self.proj_size = proj
  local D = self.bidirectional and 2 or 1
  local G = GATES[mode] * H
  local Hr = proj > 0 and proj or H
  for k = 0, L - 1 do
    for d = 0, D - 1 do
      local sfx = k .. (d == 1 and "_reverse" or "")
      local param = weights(self, "_l" .. sfx, G, k == 0 and I or Hr * D, Hr)
      if proj > 0 then self["weight_hr_l" .. sfx] = param(proj, H) end
    end
  end
  placed(self, a)
end

-- PyTorch's extra_repr of RNNBase
function M.extra_repr(self)
  local s = string.format("%d, %d", self.input_size, self.hidden_size)
  if self.proj_size ~= 0 then s = s .. ", proj_size=" .. self.proj_size end
  if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
  if not self.bias then s = s .. ", bias=False" end
  if self.batch_first then s = s .. ", batch_first=True" end
  if self.dropout ~= 0 then s = s .. ", dropout=" .. base.pyrepr(self.dropout) end
  if self.bidirectional then s = s .. ", bidirectional=True" end
  return s
end

local function fail(class, argn, fmt, ...)
  error(string.format("bad argument #%d to '%s' (" .. fmt .. ")", argn, class, ...), 0)
end

-- the last size of input x must be input_size
local function check_width(self, class, x)
  if x:size(-1) ~= self.input_size then
    fail(class, 1, "input:size(-1) must be equal to input_size: expected %d, got %d", self.input_size, x:size(-1))
  end
end

-- M.check_input(self, class, x) -> batched: x must be a 2-D (unbatched) or
-- 3-D tensor whose last size is input_size
function M.check_input(self, class, x)
  if not torch.is_tensor(x) then fail(class, 1, "input tensor expected, got %s", type(x)) end
  if x:dim() ~= 2 and x:dim() ~= 3 then
    fail(class, 1, "2-D (unbatched) or 3-D input expected, got %d-D", x:dim())
  end
  check_width(self, class, x)
  return x:dim() == 3
end

-- x, and its dtype, as the layer computes it: a float input as it is, any
-- other in the weights' dtype
local function as_float(x, w)
  local dt = x:dtype()
  if dt:match("^float") or dt:match("^bfloat") then return x, dt end
  return x:to(w:dtype()), w:dtype()
end

-- M.check_state(class, argn, what, t, batched, want): t (h0 or c0) must be a
-- tensor of size want ({L * D, N, size}), or {L * D, size} unbatched;
-- returns it with the batch dim
function M.check_state(class, argn, what, t, batched, want)
  if not torch.is_tensor(t) then fail(class, argn, "%s tensor expected, got %s", what, type(t)) end
  local nd = batched and 3 or 2
  if t:dim() ~= nd then
    fail(class, argn, "for %s input, %s should be %d-D, got %d-D", batched and "batched 3-D" or "unbatched 2-D",
      what, nd, t:dim())
  end
  if not batched then t = t:unsqueeze(2) end
  local s = t:size()
  if s[1] ~= want[1] or s[2] ~= want[2] or s[3] ~= want[3] then
    local w = batched and want or {want[1], want[3]}
    fail(class, argn, "%s of size %s expected, got %s", what, size_str(w),
      size_str(batched and s or {s[1], s[3]}))
  end
  return t
end

-- one step of a cell: the new state from the input projection xp {N, G}
-- (x W_ih^T + b_ih) and the state; returns the new (h, c)
local core = require("ltorch.core")
local STEP_MM_ROWS = 16

-- h W_hh^T + b_hh: through core._step_mm with wp, W_hh packed once per
-- sequence (a gemm would pack it again at every step), else linear
local function hidden(h, w_hh, wp, b_hh)
  return wp and core._step_mm(h, wp, w_hh:size(1), b_hh) or torch.linear(h, w_hh, b_hh)
end

local function lstm_step(xp, h, c, w_hh, wt, b_hh, w_hr, H)
  local hh = hidden(h, w_hh, wt, b_hh)
  -- float32/float64: gates = xp + hh, their activations and the state
  -- update in one C pass
  local h2, c2 = core._lstm_cell(hh, c, xp)
  if h2 ~= nil then
    if w_hr ~= nil then h2 = torch.linear(h2, w_hr) end
    return h2, c2
  end
  local g = xp + hh
  local i = torch.sigmoid(g:narrow(2, 1, H))
  local f = torch.sigmoid(g:narrow(2, H + 1, H))
  local gg = torch.tanh(g:narrow(2, 2 * H + 1, H))
  local o = torch.sigmoid(g:narrow(2, 3 * H + 1, H))
  c = f * c + i * gg
  h = o * torch.tanh(c)
  if w_hr ~= nil then h = torch.linear(h, w_hr) end
  return h, c
end

local function gru_step(xp, h, w_hh, wt, b_hh, H)
  local gh = hidden(h, w_hh, wt, b_hh)
  local r = torch.sigmoid(xp:narrow(2, 1, H) + gh:narrow(2, 1, H))
  local z = torch.sigmoid(xp:narrow(2, H + 1, H) + gh:narrow(2, H + 1, H))
  local n = torch.tanh(xp:narrow(2, 2 * H + 1, H) + r * gh:narrow(2, 2 * H + 1, H))
  return n + z * (h - n)
end

local function rnn_step(xp, h, w_hh, wt, b_hh, relu)
  local a = xp + hidden(h, w_hh, wt, b_hh)
  return relu and torch.relu(a) or torch.tanh(a)
end

-- one step of the layer's cell: the new (h, c) from xt, the state and
-- the direction's weights w
local function cell(mode, xt, h, c, w, H)
  if mode == "LSTM" then return lstm_step(xt, h, c, w.hh, w.t, w.b_hh, w.hr, H) end
  if mode == "GRU" then return gru_step(xt, h, w.hh, w.t, w.b_hh, H) end
  return rnn_step(xt, h, w.hh, w.t, w.b_hh, mode == "RNN_RELU")
end

-- the layers and directions over x ({T, N, in}, or packed rows {S, in}):
-- for each, its initial state (h0, c0 checked states or zeros), the input
-- projection of every step at once (one matmul), then dir(d, xp, h, c, w)
-- -> its output, final h and c; directions' outputs are joined on dim
-- cat_dim. Returns output, h_n {L * D, N, Hr}, c_n {L * D, N, H} (LSTM).
local function layers(self, x, N, T, h0, c0, cat_dim, dir)
  local mode = self.mode
  local H, L = self.hidden_size, self.num_layers
  local D = self.bidirectional and 2 or 1
  local Hr = self.proj_size > 0 and self.proj_size or H
  local dt
  x, dt = as_float(x, self.weight_ih_l0)
  local hs, cs = {}, {}
  local layer_in = x
  for k = 0, L - 1 do
    local outs = {}
    for d = 0, D - 1 do
      local sfx = k .. (d == 1 and "_reverse" or "")
      local idx = k * D + d + 1
      local w = {hh = self["weight_hh_l" .. sfx], b_hh = self["bias_hh_l" .. sfx], hr = self["weight_hr_l" .. sfx]}
      -- the step kernel pays off for a few rows; a big batch packs W_hh once per
      -- step in a gemm that has enough rows to amortise it
      w.t = T > 1 and N <= STEP_MM_ROWS and core._step_pack(w.hh) or nil
      local h = h0 and h0:select(1, idx) or torch.zeros({N, Hr}, {dtype = dt})
      local c
      if mode == "LSTM" then c = c0 and c0:select(1, idx) or torch.zeros({N, H}, {dtype = dt}) end
      local xp = torch.linear(layer_in, self["weight_ih_l" .. sfx], self["bias_ih_l" .. sfx])
      outs[d + 1], hs[idx], cs[idx] = dir(d, xp, h, c, w)
    end
    layer_in = D == 2 and torch.cat(outs, cat_dim) or outs[1]
    if self.training and self.dropout > 0 and k < L - 1 then
      layer_in = torch.dropout(layer_in, self.dropout, true)
    end
  end
  return layer_in, torch.stack(hs, 1), mode == "LSTM" and torch.stack(cs, 1) or nil
end

-- M.run(self, x, h0, c0) -> output {T, N, D * Hr}, h_n {L * D, N, Hr},
-- c_n {L * D, N, H} (LSTM): x is {T, N, in} (sequence first, batched), h0
-- and c0 checked states or nil (zeros)
function M.run(self, x, h0, c0)
  local mode, H = self.mode, self.hidden_size
  local T, N = x:size(1), x:size(2)
  local Hr = self.proj_size > 0 and self.proj_size or H
  return layers(self, x, N, T, h0, c0, 3, function(d, xp, h, c, w)
    local steps = {}
    local first, last, step = 1, T, 1
    if d == 1 then first, last, step = T, 1, -1 end
    for t = first, last, step do
      h, c = cell(mode, xp:select(1, t), h, c, w, H)
      steps[t] = h
    end
    return T > 0 and torch.stack(steps, 1) or torch.zeros({0, N, Hr}, {dtype = xp:dtype()}), h, c
  end)
end

-- M.run_packed(self, data, bs, h0, c0) -> output data {S, D * Hr}, h_n,
-- c_n: the layers over a packed batch (rnn_utils.lua): data {S, in} holds
-- step t of the bs[t] longest sequences at rows off_t + 1 .. off_t + bs[t];
-- h0, c0 checked states in the sorted order, or nil. A sequence's state
-- stops at its last step: going forward the batch narrows to the rows
-- still running (the rows left hold their final states); going back it
-- starts with the longest-only rows and takes on each sequence's initial
-- state at its last step.
function M.run_packed(self, data, bs, h0, c0)
  local mode, H = self.mode, self.hidden_size
  local T, N = #bs, bs[1]
  local off = {}
  do local o = 0 for t = 1, T do off[t] = o; o = o + bs[t] end end
  return layers(self, data, N, T, h0, c0, 2, function(d, xp, h, c, w)
    local steps = {}
    if d == 0 then
      local hf, cf = {}, {}   -- final states of the rows that stopped, in the order they did
      local hr, cr, cur = h, c, N
      for t = 1, T do
        local b = bs[t]
        if b < cur then
          hf[#hf + 1] = hr:narrow(1, b + 1, cur - b)
          if cr then cf[#cf + 1] = cr:narrow(1, b + 1, cur - b) end
          hr = hr:narrow(1, 1, b)
          if cr then cr = cr:narrow(1, 1, b) end
          cur = b
        end
        hr, cr = cell(mode, xp:narrow(1, off[t] + 1, b), hr, cr, w, H)
        steps[t] = hr
      end
      -- rows 1 .. cur, then the stopped ones from the latest to stop to the first
      local hl, cl = {hr}, {cr}
      for i = #hf, 1, -1 do hl[#hl + 1] = hf[i]; cl[#cl + 1] = cf[i] end
      h = #hl > 1 and torch.cat(hl, 1) or hr
      if mode == "LSTM" then c = #cl > 1 and torch.cat(cl, 1) or cr end
    else
      local cur = bs[T]
      local hr, cr = h:narrow(1, 1, cur), c and c:narrow(1, 1, cur)
      for t = T, 1, -1 do
        local b = bs[t]
        if b > cur then
          hr = torch.cat({hr, h:narrow(1, cur + 1, b - cur)}, 1)
          if cr then cr = torch.cat({cr, c:narrow(1, cur + 1, b - cur)}, 1) end
          cur = b
        end
        hr, cr = cell(mode, xp:narrow(1, off[t] + 1, b), hr, cr, w, H)
        steps[t] = hr
      end
      h, c = hr, cr
    end
    return torch.cat(steps, 1), h, c
  end)
end

-- the forward of a PackedSequence: a PackedSequence out, the states in the
-- batch's own order (its sorted_indices permute h0 and c0 in, and back out)
local function forward_packed(self, class, p, h0, c0)
  local ru = require("ltorch.nn.rnn_utils")
  local data = p.data
  if data:dim() ~= 2 then fail(class, 1, "a PackedSequence of 2-D data expected, got %d-D", data:dim()) end
  check_width(self, class, data)
  local bs = ru.batch_sizes_of(p)
  local D = self.bidirectional and 2 or 1
  local Hr = self.proj_size > 0 and self.proj_size or self.hidden_size
  local N = bs[1]
  if h0 ~= nil then h0 = M.check_state(class, 2, "h0", h0, true, {self.num_layers * D, N, Hr}) end
  if c0 ~= nil then c0 = M.check_state(class, 2, "c0", c0, true, {self.num_layers * D, N, self.hidden_size}) end
  if p.sorted_indices ~= nil then
    if h0 ~= nil then h0 = h0:index_select(2, p.sorted_indices) end
    if c0 ~= nil then c0 = c0:index_select(2, p.sorted_indices) end
  end
  local out, h_n, c_n = M.run_packed(self, data, bs, h0, c0)
  if p.unsorted_indices ~= nil then
    h_n = h_n:index_select(2, p.unsorted_indices)
    if c_n then c_n = c_n:index_select(2, p.unsorted_indices) end
  end
  return ru.PackedSequence(out, p.batch_sizes, p.sorted_indices, p.unsorted_indices), h_n, c_n
end

-- M.forward(self, class, x, h0, c0, argn) -> output, h_n, c_n: forward of
-- any of the three, with PyTorch's batch_first and unbatched handling, or
-- of a PackedSequence
function M.forward(self, class, x, h0, c0)
  if require("ltorch.nn.rnn_utils").is_packed(x) then return forward_packed(self, class, x, h0, c0) end
  local batched = M.check_input(self, class, x)
  local D = self.bidirectional and 2 or 1
  local Hr = self.proj_size > 0 and self.proj_size or self.hidden_size
  if not batched then
    x = x:unsqueeze(2)
  elseif self.batch_first then
    x = x:transpose(1, 2)
  end
  local N = x:size(2)
  local what = "h0"
  if h0 ~= nil then h0 = M.check_state(class, 2, what, h0, batched, {self.num_layers * D, N, Hr}) end
  if c0 ~= nil then c0 = M.check_state(class, 2, "c0", c0, batched, {self.num_layers * D, N, self.hidden_size}) end
  local out, h_n, c_n = M.run(self, x, h0, c0)
  if not batched then
    out, h_n = out:squeeze(2), h_n:squeeze(2)
    if c_n then c_n = c_n:squeeze(2) end
  elseif self.batch_first then
    out = out:transpose(1, 2)
  end
  return out, h_n, c_n
end

-- M.forward_h(self, class, x, h0) -> output, h_n: the forward of RNN and GRU,
-- whose state is one tensor h0 (optional)
function M.forward_h(self, class, x, h0)
  if h0 ~= nil and not torch.is_tensor(h0) then
    error(string.format("bad argument #2 to '%s' (h0 tensor expected, got %s)", class, type(h0)), 0)
  end
  local out, h_n = M.forward(self, class, x, h0)
  return out, h_n
end

-- ---- cells (PyTorch's RNNCellBase: LSTMCell, GRUCell, RNNCell) ----------

-- M.cell_init(self, class, mode, a): input_size, hidden_size, bias,
-- device, dtype of args a; parameters weight_ih {G, in}, weight_hh {G, H},
-- bias_ih, bias_hh {G}, uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch
function M.cell_init(self, class, mode, a)
  local I, H = sizes(self, class, mode, a)
  weights(self, "", GATES[mode] * H, I, H)
  placed(self, a)
end

-- PyTorch's extra_repr of RNNCellBase
function M.cell_repr(self)
  local s = string.format("%d, %d", self.input_size, self.hidden_size)
  if not self.bias then s = s .. ", bias=False" end
  if self.nonlinearity ~= nil and self.nonlinearity ~= "tanh" then s = s .. ", nonlinearity=" .. self.nonlinearity end
  return s
end

-- M.cell_forward(self, class, x, h, c) -> h' (and c' for LSTMCell): one
-- step on x {N, in} or unbatched {in}; h, c {N, H} ({H}), zeros when nil
function M.cell_forward(self, class, x, h, c)
  if not torch.is_tensor(x) then fail(class, 1, "input tensor expected, got %s", type(x)) end
  if x:dim() ~= 1 and x:dim() ~= 2 then
    fail(class, 1, "expected input to be 1-D or 2-D, got %d-D", x:dim())
  end
  check_width(self, class, x)
  local batched = x:dim() == 2
  if not batched then x = x:unsqueeze(1) end
  local N, H = x:size(1), self.hidden_size
  local dt
  x, dt = as_float(x, self.weight_ih)
  local function state(t, what)
    if t == nil then return torch.zeros({N, H}, {dtype = dt}) end
    if not torch.is_tensor(t) then fail(class, 2, "%s tensor expected, got %s", what, type(t)) end
    local want = batched and {N, H} or {H}
    local s = t:size()
    if #s ~= #want or s[1] ~= want[1] or s[2] ~= want[2] then
      fail(class, 2, "%s of size %s expected, got %s", what, size_str(want), size_str(s))
    end
    return batched and t or t:unsqueeze(1)
  end
  h = state(h, "h0")
  local mode = self.mode
  if mode == "LSTM" then c = state(c, "c0") end
  local xp = torch.linear(x, self.weight_ih, self.bias_ih)
  local w = {hh = self.weight_hh, b_hh = self.bias_hh}
  h, c = cell(mode, xp, h, c, w, H)
  if not batched then
    h = h:squeeze(1)
    if c then c = c:squeeze(1) end
  end
  return h, c
end

-- flatten_parameters(): PyTorch's cuDNN weight packing; nothing to do here
function M.flatten_parameters() end

return M
