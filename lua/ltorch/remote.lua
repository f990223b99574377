-- remote.lua: loads from http:// and https:// URLs (src/remote.c does the
-- transfers with libcurl). An object is mirrored by a sparse local file;
-- before a load, what the format's loader reads ahead of the tensors is
-- fetched (prefetch): a safetensors or .npy header, a zip archive's end
-- record and central directory (a suffix range), each member's local
-- header and the records that are not tensor data, a GGUF header. Then:
--   * mmap = true (and inspect, diff, convert, safe_open): the loaders map
--     nothing of the mirror; each tensor's range is fetched on first use;
--   * eager: the whole object is fetched first, in parallel ranges.
-- Formats whose layout has no index to range on (Torch7, TorchSharp,
-- legacy .pt, a sharded index's JSON) are fetched whole.
-- Options (a load's or save's `remote` table): connections (8 ranges, or 4
-- parts of a save, at once), retries (3), timeout (seconds, 30), ca (a PEM
-- file of the certificates HTTPS servers are verified against, in place of
-- the system's; else $AWS_CA_BUNDLE for s3://, else $CURL_CA_BUNDLE, as the
-- AWS tools and curl read them).

local core = require("ltorch.core")

local M = {}

function M.is_url(p)
  return type(p) == "string" and (p:match("^https?://") ~= nil or p:match("^s3://") ~= nil)
end

-- an S3 key's path segments, percent-encoded as SigV4 signs them
local function encode_key(k)
  return (k:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- s3://bucket/key -> the HTTP URL (path-style on AWS_ENDPOINT_URL[_S3],
-- else AWS's virtual-hosted name) and the signing options from the usual
-- environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
-- AWS_REGION (or AWS_DEFAULT_REGION; us-east-1), AWS_CA_BUNDLE
local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

function M.s3_target(url)
  local bucket, key = url:match("^s3://([^/]+)/(.+)$")
  if not bucket then error(url .. ": an S3 URL is s3://bucket/key", 0) end
  local region = os.getenv("AWS_REGION") or os.getenv("AWS_DEFAULT_REGION") or "us-east-1"
  local ep = os.getenv("AWS_ENDPOINT_URL_S3") or os.getenv("AWS_ENDPOINT_URL")
  local target = ep and (ep:gsub("/+$", "") .. "/" .. bucket .. "/" .. encode_key(key))
    or ("https://" .. bucket .. ".s3." .. region .. ".amazonaws.com/" .. encode_key(key))
  local o = {headers = "x-amz-content-sha256: UNSIGNED-PAYLOAD"}
  local id, secret = os.getenv("AWS_ACCESS_KEY_ID"), os.getenv("AWS_SECRET_ACCESS_KEY")
  if id and secret then
    o.aws_sigv4 = "aws:amz:" .. region .. ":s3"
    o.userpwd = id .. ":" .. secret
  end
  local token = os.getenv("AWS_SESSION_TOKEN")
  if token then o.headers = o.headers .. "\nx-amz-security-token: " .. token end
  o.ca_file = env("AWS_CA_BUNDLE")
  return target, o
end

local OPTS = {connections = "number", retries = "number", timeout = "number", ca = "string"}

-- msg with every occurrence of the plain text from replaced by to: the
-- mirror's path or the signed HTTP URL become the name the user gave
local function swap(msg, from, to)
  return (tostring(msg):gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%"))))
end

-- the remote option table, checked
function M.check_opts(o, level)
  if o == nil then return {} end
  if type(o) ~= "table" then
    error("bad option 'remote' (table expected, got " .. type(o) .. ")", level + 1)
  end
  for k, v in pairs(o) do
    if not OPTS[k] then
      error("bad option 'remote." .. tostring(k) .. "' (valid: ca, connections, retries, timeout)", level + 1)
    end
    if OPTS[k] == "string" then
      if type(v) ~= "string" or v == "" then
        error("bad option 'remote." .. k .. "' (a file name expected)", level + 1)
      end
    elseif type(v) ~= "number" or v < 0 then
      error("bad option 'remote." .. k .. "' (a number of at least 0 expected)", level + 1)
    end
  end
  return o
end

-- open(url [, ropts]) -> handle (one ranged GET: the size, the version and
-- the first 64 KiB)
local function curl_opts(ropts, base)
  local o = base or {}
  o.connections = ropts.connections and math.max(1, math.floor(ropts.connections)) or nil
  o.retries = ropts.retries and math.floor(ropts.retries) or nil
  o.timeout_ms = ropts.timeout and math.max(1, math.floor(ropts.timeout * 1000)) or nil
  o.ca_file = ropts.ca or o.ca_file or env("CURL_CA_BUNDLE")
  return o
end

function M.open(url, ropts)
  ropts = ropts or {}
  if url:match("^s3://") then
    local target, o = M.s3_target(url)
    local ok, h = pcall(core._remote_open, target, curl_opts(ropts, o))
    if not ok then error(swap(h, target, url), 0) end
    return h
  end
  return core._remote_open(url, curl_opts(ropts))
end

-- save(url, ropts, ext, streams, write): write(local_path, follow) makes
-- the file, which becomes s3://bucket/key by a multipart upload: the upload
-- starts first (a missing bucket fails before anything is written); with
-- streams (the format writes its file front to back), write calls
-- follow(tmp) with the temporary file's name, and each part goes out as
-- soon as the writer is past it; the rest goes when the file is done. The
-- object appears only once the upload completes; a failed save aborts it,
-- and a failed upload stops the writer at its next write.
function M.save(url, ropts, ext, streams, write)
  if not url:match("^s3://") then
    error(url .. ": saving over HTTP is not supported (save to s3://bucket/key, or a file)", 0)
  end
  local target, o = M.s3_target(url)
  curl_opts(ropts or {}, o)
  local tmp = os.tmpname()
  os.remove(tmp)
  local local_path = tmp .. (ext or "")
  local ok, err = pcall(core._s3_begin, target, o)
  local up = ok and err
  if ok then
    local written = false
    ok, err = pcall(function()
      write(local_path, streams and function(tmp) up:follow(tmp) end or nil)
      written = true
      up:finish(local_path)
    end)
    -- a writer stopped by the upload's failure: that failure is the error
    if not ok and not written then err = up:failure() or err end
    up:abort()   -- nothing, once finished
  end
  os.remove(local_path)
  if not ok then
    error(swap(swap(err, local_path, url), target, url), 0)
  end
  return url
end

local WHOLE_MAX = 64 * 2^20   -- objects of unknown layout fetched whole up to this
local HEADER_MAX = 256 * 2^20 -- a header or directory read before the load, at most

-- a zip archive: end record, central directory, local headers, small records
local function prefetch_zip(h, size)
  local tail_len = math.min(size, 65557)
  local tail = h:read(size - tail_len, tail_len)
  local at
  for i = #tail - 21, 1, -1 do
    if tail:sub(i, i + 3) == "PK\5\6" then at = i break end
  end
  if not at then return end   -- the loader says what is wrong
  local cd_size, cd_off = string.unpack("<I4I4", tail, at + 12)
  if cd_off == 0xFFFFFFFF or cd_size == 0xFFFFFFFF then
    local loc = at - 20
    if loc >= 1 and tail:sub(loc, loc + 3) == "PK\6\7" then
      local z64 = string.unpack("<I8", tail, loc + 8)
      local rec = h:read(z64, 56)
      if #rec == 56 and rec:sub(1, 4) == "PK\6\6" then
        cd_size, cd_off = string.unpack("<I8I8", rec, 41)
      end
    end
  end
  -- a directory past the end, or beyond what the zip reader takes: the
  -- loader says what is wrong (it reads the mirror, where nothing is)
  if cd_off >= size or cd_size > size - cd_off or cd_size > HEADER_MAX then return end
  local cd = h:read(cd_off, cd_size)
  local ranges, p = {}, 1
  while p + 46 <= #cd + 1 and cd:sub(p, p + 3) == "PK\1\2" do
    local csize, _, nlen, elen, clen = string.unpack("<I4I4I2I2I2", cd, p + 20)
    local lho = string.unpack("<I4", cd, p + 42)
    local name = cd:sub(p + 46, p + 45 + nlen)
    -- zip64 extra: the 32-bit fields at 0xFFFFFFFF are in it, in order
    local e, eend = p + 46 + nlen, p + 46 + nlen + elen
    while e + 4 <= eend do
      local id, len = string.unpack("<I2I2", cd, e)
      if id == 1 then
        local q = e + 4
        local usize = string.unpack("<I4", cd, p + 24)
        if usize == 0xFFFFFFFF then q = q + 8 end
        if csize == 0xFFFFFFFF then csize = string.unpack("<I8", cd, q); q = q + 8 end
        if lho == 0xFFFFFFFF then lho = string.unpack("<I8", cd, q) end
      end
      e = e + 4 + len
    end
    -- the local header and the start of the data (an .npz member's .npy
    -- header); whole records but tensor data (<folder>/data/<key>)
    local window = 30 + nlen + 1024
    if not name:match("/data/[^/]+$") then window = window + csize end
    ranges[#ranges + 1] = lho
    ranges[#ranges + 1] = window
    p = p + 46 + nlen + elen + clen
  end
  ranges[#ranges + 1] = cd_off
  ranges[#ranges + 1] = cd_size
  h:fetch(ranges)
end

-- a GGUF header: walked over the mirror, fetched as it goes
local function prefetch_gguf(h, size)
  local pos, buf, base = 0, "", 0
  local function need(n)
    if pos + n > HEADER_MAX then error("long") end
    if pos + n > base + #buf then
      local want = math.max(n, 1 << 20)
      buf = h:read(pos, math.min(want, size - pos))
      base = pos
      if #buf < n then error("short") end
    end
  end
  local function u(fmt, n)
    need(n)
    local v = string.unpack(fmt, buf, pos - base + 1)
    pos = pos + n
    return v
  end
  local SIZES = {[0] = 1, 1, 2, 2, 4, 4, 4, 1, nil, nil, 8, 8, 8}
  local function value(t)
    if t == 8 then local n = u("<I8", 8); need(n); pos = pos + n
    elseif t == 9 then
      local et, n = u("<I4", 4), u("<I8", 8)
      if et == 8 or et == 9 then for _ = 1, n do value(et) end
      else local w = SIZES[et] or error("type"); need(0); pos = pos + w * n end
    else pos = pos + (SIZES[t] or error("type")) end
  end
  local ok = pcall(function()
    u("<I4", 4); u("<I4", 4)
    local nt, nkv = u("<I8", 8), u("<I8", 8)
    for _ = 1, nkv do local n = u("<I8", 8); need(n); pos = pos + n; value(u("<I4", 4)) end
    for _ = 1, nt do
      local n = u("<I8", 8); need(n); pos = pos + n
      local nd = u("<I4", 4); pos = pos + 8 * nd + 4 + 8
    end
  end)
  -- what was walked, and a little past it (the alignment padding)
  h:fetch(0, math.min(size, (ok and pos or base + #buf) + 4096))
end

-- the ranged layout the object's first bytes start: "zip", "npy", "gguf",
-- "safetensors", or nil (a layout read as a whole)
local function layout(head)
  if head:sub(1, 4) == "PK\3\4" or head:sub(1, 4) == "PK\5\6" then return "zip" end
  if head:sub(1, 6) == "\x93NUMPY" and #head >= 12 then return "npy" end
  if head:sub(1, 4) == "GGUF" then return "gguf" end
  -- safetensors: u64 length, then JSON
  if #head >= 9 and head:sub(1, 1) ~= "{" and head:sub(9, 9) == "{" then return "safetensors" end
end

-- what a load reads before the tensors: fetched into the mirror
function M.prefetch(h)
  local size = h:size()
  if size == 0 then return end
  local head = h:read(0, math.min(size, 65536))
  local kind = layout(head)
  if kind == "zip" then
    prefetch_zip(h, size)
  elseif kind == "npy" then
    local major = head:byte(7)
    local hl = major == 1 and string.unpack("<I2", head, 9) or string.unpack("<I4", head, 9)
    h:fetch(0, 12 + hl)
  elseif kind == "gguf" then
    prefetch_gguf(h, size)
  elseif kind == "safetensors" then
    local n = string.unpack("<I8", head)
    if n <= size - 8 and n <= HEADER_MAX then h:fetch(0, 8 + n) end
  elseif size <= WHOLE_MAX then
    h:fetch(0, size)
  end
end

-- an eager load's fetch: the whole object. A ranged layout's C loaders
-- read the mirror only through lt_pread_all and lt_map_file, so the object
-- goes into memory, which they then see as the file (one copy, huge
-- pages); any other layout (read by Lua's io too) into the mirror.
local function fetch_all(h, progress)
  local size = h:size()
  if size > 0 and layout(h:read(0, math.min(size, 64))) then
    if progress then h:fetch_memory(progress) else h:fetch_memory() end
  elseif progress then h:fetch(0, size, progress) else h:fetch(0, size) end
end


-- with_mirror(url, ropts, eager, fn [, progress]): fn(local_path) runs the
-- loader on the mirror; eager fetches everything first, reporting
-- progress(done, total) as the requests finish
function M.with_mirror(url, ropts, eager, fn, progress)
  local h = M.open(url, ropts)
  local ok, a, b, c = pcall(function()
    if eager then
      fetch_all(h, progress)
    else
      M.prefetch(h)
    end
    return fn(h:path(), h)
  end)
  local path = h:path()
  -- an eager load's tensors hold what they need (the object's memory);
  -- a lazy one's deferred storages hold the object open themselves
  if eager then h:close() end
  if not ok then
    local msg = swap(a, path, url)
    if url:match("^s3://") then msg = swap(msg, (M.s3_target(url)), url) end
    error(msg, 0)
  end
  return a, b, c
end

return M
