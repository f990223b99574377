-- tensor_spec: creation, views over shared storage, element access, printing,
-- memory and error messages of the tensor core.
local torch = require("ltorch")

local function rss_mib()
  local f = io.open("/proc/self/status")
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

describe("creation", function()
  it("builds tensors from nested tables, inferring dtype as PyTorch", function()
    assert.are.equal("int64", torch.tensor({1, 2, 3}):dtype())
    assert.are.equal("float32", torch.tensor({1, 2.5}):dtype())
    assert.are.equal("bool", torch.tensor({true, false}):dtype())
    assert.are.equal("float64", torch.tensor({1, 2}, {dtype = "float64"}):dtype())
    local t = torch.tensor({{1, 2, 3}, {4, 5, 6}})
    assert.are.same({2, 3}, t:size())
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, t:tolist())
    local s = torch.tensor(3.5)
    assert.are.equal(0, s:dim())
    assert.are.equal(3.5, s:item())
  end)

  it("rejects ragged tables", function()
    assert.has_error(function() torch.tensor({{1, 2}, {3}}) end,
      "expected a sequence of length 2 at dim 2 (got 1)")
  end)

  it("takes sizes as varargs or a table, with options", function()
    assert.are.same({2, 3}, torch.zeros(2, 3):size())
    assert.are.same({2, 3}, torch.zeros({2, 3}):size())
    assert.are.equal("int32", torch.ones({2, 3}, {dtype = "int32"}):dtype())
    assert.are.equal("int32", torch.ones(2, 3, {dtype = "int32"}):dtype())
    assert.are.same({}, torch.zeros({}):size())
    assert.are.same({{1, 1}, {1, 1}}, torch.ones(2, 2, {dtype = "int64"}):tolist())
    assert.are.same({7, 7}, torch.full({2}, 7):tolist())
    assert.are.equal(3, torch.empty(3):numel())
  end)

  it("has arange, linspace and eye", function()
    assert.are.same({0, 1, 2, 3}, torch.arange(4):tolist())
    assert.are.same({2, 4, 6}, torch.arange(2, 8, 2):tolist())
    assert.are.equal("float32", torch.arange(0, 1, 0.25):dtype())
    assert.are.same({0, 0.25, 0.5, 0.75}, torch.arange(0, 1, 0.25):tolist())
    assert.are.same({0, 0.5, 1}, torch.linspace(0, 1, 3):tolist())
    assert.are.same({{1, 0, 0}, {0, 1, 0}}, torch.eye(2, 3):tolist())
  end)

  it("makes random numbers repeatable with manual_seed", function()
    torch.manual_seed(42)
    local a, b, c = torch.rand(5):tolist(), torch.randn(5):tolist(), torch.randint(0, 10, {5}):tolist()
    torch.manual_seed(42)
    assert.are.same(a, torch.rand(5):tolist())
    assert.are.same(b, torch.randn(5):tolist())
    assert.are.same(c, torch.randint(0, 10, {5}):tolist())
    for _, v in ipairs(a) do assert.is_true(v >= 0 and v < 1) end
    for _, v in ipairs(c) do assert.is_true(v >= 0 and v < 10 and math.type(v) == "integer") end
  end)

  it("makes tensors from bytes", function()
    local t = torch.frombytes(string.pack("<i4i4i4i4", 1, 2, 3, 4), "int32", {2, 2})
    assert.are.same({{1, 2}, {3, 4}}, t:tolist())
    assert.has_error(function() torch.frombytes("abc", "int32") end,
      "bad argument #1 to 'frombytes' (3 bytes is not a multiple of the int32 size 4)")
    assert.is_true(torch.is_tensor(t))
    assert.is_false(torch.is_tensor({}))
  end)
end)

describe("views", function()
  it("share storage with their source", function()
    local a = torch.arange(6):view(2, 3)
    local views = {a:t(), a:transpose(1, 2), a:permute(2, 1), a:view(3, 2), a:reshape(6),
      a:unsqueeze(1), a:unsqueeze(1):squeeze(), a:flatten(), a:select(1, 2), a:narrow(2, 2, 2), a[1]}
    for _, v in ipairs(views) do
      assert.are.equal(a:_storage_info(), v:_storage_info())
    end
    a:fill(9)
    assert.are.same({9, 9}, a:narrow(2, 2, 2)[1]:tolist())
  end)

  it("write in place under PyTorch's names too: fill_, copy_, zero_", function()
    local a = torch.arange(6):view(2, 3)
    local first = a[1]
    assert.is_true(rawequal(first, first:fill_(4)))
    assert.are.same({{4, 4, 4}, {3, 4, 5}}, a:tolist())
    local row = a[2]
    assert.is_true(rawequal(row, row:copy_(torch.tensor({7, 8, 9}))))
    assert.are.same({{4, 4, 4}, {7, 8, 9}}, a:tolist())
    a:t():narrow(1, 2, 1):zero_()
    assert.are.same({{4, 0, 4}, {7, 0, 9}}, a:tolist())
    local f = torch.ones(2, {dtype = "float16"}):zero_()
    assert.are.same({0, 0}, f:tolist())
  end)

  it("index rows with t[i], 1-based and negative from the end", function()
    local a = torch.arange(6):view(3, 2)
    assert.are.same({0, 1}, a[1]:tolist())
    assert.are.same({4, 5}, a[-1]:tolist())
    a[2] = 7
    assert.are.same({7, 7}, a[2]:tolist())
    assert.are.equal(3, #a)
  end)

  it("report strides, offsets and contiguity", function()
    local a = torch.zeros(2, 3, 4)
    assert.are.same({12, 4, 1}, a:stride())
    local t = a:transpose(1, 3)
    assert.are.same({1, 4, 12}, t:stride())
    assert.is_false(t:is_contiguous())
    assert.is_true(t:contiguous():is_contiguous())
    assert.are.equal(16, a:select(1, 2):narrow(1, 2, 1):storage_offset())
  end)

  it("permute, squeeze, unsqueeze and flatten shapes", function()
    local a = torch.zeros(2, 1, 3)
    assert.are.same({3, 2, 1}, a:permute(3, 1, 2):size())
    assert.are.same({2, 3}, a:squeeze():size())
    assert.are.same({2, 3}, a:squeeze(2):size())
    assert.are.same({2, 1, 3}, a:squeeze(1):size())
    assert.are.same({2, 1, 3, 1}, a:unsqueeze(-1):size())
    assert.are.same({6}, a:flatten():size())
    assert.are.same({2, 3}, a:flatten(2):size())
  end)

  it("reshape copies only when a view is impossible", function()
    local a = torch.arange(6):view(2, 3)
    local r = a:t():reshape(6)
    assert.are_not.equal(a:_storage_info(), r:_storage_info())
    assert.are.same({0, 3, 1, 4, 2, 5}, r:tolist())
    assert.are.same({3, 2}, a:reshape(-1, 2):size())
  end)

  it("index gathers slices at 1-based indices", function()
    local a = torch.arange(6):view(3, 2)
    assert.are.same({{4, 5}, {0, 1}}, a:index(1, {3, 1}):tolist())
    assert.are.same({{1}, {3}, {5}}, a:index(2, torch.tensor({2})):tolist())
  end)

  it("expand broadcasts with zero strides", function()
    local a = torch.tensor({1, 2, 3})
    local e = a:expand(2, 3)
    assert.are.same({{1, 2, 3}, {1, 2, 3}}, e:tolist())
    assert.are.same({0, 1}, e:stride())
  end)
end)

describe("elements", function()
  it("copy and fill convert dtypes and broadcast", function()
    local a = torch.zeros(2, 3, {dtype = "int32"})
    a:copy(torch.tensor({1.9, 2.1, -3.5}))
    assert.are.same({{1, 2, -3}, {1, 2, -3}}, a:tolist())
    local b = torch.zeros(3)
    b:copy(b:narrow(1, 1, 3))
    a:t():fill(5)
    assert.are.same({{5, 5, 5}, {5, 5, 5}}, a:tolist())
  end)

  it("copy between overlapping views of one storage is exact", function()
    local a = torch.arange(5)
    a:narrow(1, 2, 4):copy(a:narrow(1, 1, 4))
    assert.are.same({0, 0, 1, 2, 3}, a:tolist())
  end)

  it("item, tolist and tobytes", function()
    assert.are.equal(5, torch.tensor({5}):item())
    assert.is_true(math.type(torch.tensor({5}):item()) == "integer")
    assert.are.equal(true, torch.tensor(true):item())
    assert.are.equal(string.pack("<i8i8", 1, 3), torch.tensor({{1, 2}, {3, 4}}):t()[1]:tobytes())
    assert.has_error(function() torch.zeros(2):item() end,
      "calling 'item' on bad self (a tensor with 2 elements cannot be converted to a number)")
  end)

  it("clone and to(dtype) make new storage; to(same dtype) returns self", function()
    local a = torch.ones(3)
    assert.are.equal(a, a:to("float32"))
    assert.are_not.equal(a:_storage_info(), a:clone():_storage_info())
    assert.are.same({1, 1, 1}, a:to("int8"):tolist())
    assert.is_true(a:data_ptr() > 0)
    assert.are.equal("cpu", a:device())
  end)
end)

describe("printing", function()
  it("prints like PyTorch", function()
    assert.are.equal("tensor([[0, 1, 2],\n        [3, 4, 5]])", tostring(torch.arange(6):view(2, 3)))
    assert.are.equal("tensor([1.5000, 2.0000])", tostring(torch.tensor({1.5, 2})))
    assert.are.equal("tensor([1., 2.], dtype=torch.float64)", tostring(torch.tensor({1, 2}, {dtype = "float64"})))
    assert.are.equal("tensor([ True, False])", tostring(torch.tensor({true, false})))
    assert.are.equal("tensor(3)", tostring(torch.tensor(3)))
    assert.are.equal("tensor([], size=(0, 4))", tostring(torch.zeros(0, 4)))
    assert.are.equal("tensor([1.0000e-05, 1.0000e+00])", tostring(torch.tensor({1e-5, 1})))
  end)

  it("summarises big tensors", function()
    local s = tostring(torch.zeros(2000))
    assert.are.equal("tensor([0., 0., 0.,  ..., 0., 0., 0.])", s)
    local m = tostring(torch.arange(10000):view(100, 100))
    assert.truthy(m:find("...", 1, true))
    assert.truthy(m:find("9999", 1, true))
    assert.is_nil(m:find("5050", 1, true))
  end)
end)

describe("memory", function()
  it("keeps a loop of 2000 temporary 4 MiB tensors under 1 GiB", function()
    collectgarbage()
    local before = rss_mib()
    local peak = before
    for i = 1, 2000 do
      local t = torch.ones(1024 * 1024)   -- 4 MiB of float32, touched
      if i % 50 == 0 then peak = math.max(peak, rss_mib()) end
      t = nil
    end
    -- what the loop adds (8 GiB made in all), above what the suite's process held before it
    assert.is_true(peak - before < 1024, "peak resident memory " .. peak .. " MiB, " .. before .. " before")
  end)

  it("free and <close> release at once; a freed tensor raises", function()
    local t = torch.ones(10)
    t:free()
    assert.is_true(t:is_freed())
    assert.has_error(function() t:size() end, "attempt to use a freed tensor")
    t:free()  -- twice is fine
    local v
    do
      local c <close> = torch.ones(4)
      v = c
    end
    assert.has_error(function() return v + 1 end)
    assert.has_error(function() v:tolist() end, "attempt to use a freed tensor")
    assert.are.equal("tensor(<freed>)", tostring(v))
  end)

  it("a view keeps its storage alive after the source is freed", function()
    local a = torch.arange(4)
    local v = a:narrow(1, 2, 2)
    a:free()
    collectgarbage()
    assert.are.same({1, 2}, v:tolist())
  end)
end)

describe("errors", function()
  it("say what and where", function()
    local a = torch.zeros(2, 3)
    assert.has_error(function() a:view(4, 2) end,
      "bad argument #1 to 'view' (shape '{4, 2}' is invalid for input of size 6)")
    assert.has_error(function() a:t():view(6) end,
      "bad argument #1 to 'view' (view size is not compatible with input tensor's size and stride; use reshape instead)")
    assert.has_error(function() return a[4] end,    -- a[3] is nil: ipairs(a) stops there
      "index 4 is out of range for dim 1 of size 2 (indices are 1-based)")
    assert.has_error(function() a:select(2, 4) end,
      "bad argument #2 to 'select' (index 4 is out of range for dim 2 of size 3 (indices are 1-based))")
    assert.has_error(function() a:transpose(1, 3) end,
      "bad argument #2 to 'transpose' (dimension 3 out of range (expected 1 to 2, or -2 to -1))")
    assert.has_error(function() a:narrow(2, 2, 5) end,
      "bad argument #3 to 'narrow' (length 5 out of range (start 2, size 3))")
    assert.has_error(function() torch.zeros(-1) end,
      "bad argument #1 to 'zeros' (negative size -1)")
    assert.has_error(function() a:expand(3, 3) end,
      "bad argument #1 to 'expand' (size 2 of dim 1 cannot expand to 3)")
  end)
end)
