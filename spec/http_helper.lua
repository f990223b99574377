-- http_helper.lua: real HTTP servers for the remote specs, on loopback
-- ports, started by a spec and stopped after it.
--   nginx(root [, {tls = true}]) -> server: Debian's nginx serving the
--     folder root, its access log holding each request's method, path,
--     status, bytes sent and Range header (server:log() parses it once
--     nginx has written it; server:bytes() sums it); with tls, over HTTPS
--     with a self-signed certificate made by openssl (server.ca, its file)
--   s3rver() -> server: an S3 server with the bucket bkt
--   proxy(upstream_port) -> server: spec/fault_proxy.py in front of a
--     server; the faults it injects are read per request from its mode file
--     (server.set(mode); "ok" at first), each request logged to server.log
--     ("METHOD PATH STATUS" lines; server.requests() reads them)
-- Each server has url, port, stop().
local sh = require("sh_helper")

local M = {}

-- the servers are not ltorch: under make asan they run without its preload
local CLEAN = "env -u LD_PRELOAD "

local function free_port()
  -- a port the kernel hands out for a moment; taken again at once
  local out = sh.run(CLEAN .. "/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1]); s.close()'")
  return tonumber(out)
end

local function wait_up(port)
  for _ = 1, 100 do
    local _, code = sh.run(CLEAN .. "/usr/bin/python3 -c 'import socket; socket.create_connection((\"127.0.0.1\"," .. port .. "),0.2).close()'")
    if code == 0 then return true end
    os.execute("sleep 0.05")
  end
  return false
end

function M.nginx(root, opts)
  local dir = sh.mkdir()
  for _, d in ipairs({"tmp", "logs"}) do os.execute("mkdir -p " .. sh.quote(dir .. "/" .. d)) end
  -- HTTPS: a self-signed certificate for 127.0.0.1, made now (server.ca)
  local tls, ca = opts and opts.tls, dir .. "/cert.pem"
  if tls then
    local out, code, err = sh.run(CLEAN .. "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -addext subjectAltName=IP:127.0.0.1 -keyout " .. sh.quote(dir .. "/key.pem") .. " -out " .. sh.quote(ca))
    if code ~= 0 then error("openssl could not make a certificate: " .. out .. err) end
  end
  for _ = 1, 5 do
    local port = free_port()
    local listen = "listen 127.0.0.1:" .. port .. (tls and (" ssl; ssl_certificate " .. ca .. "; ssl_certificate_key "
      .. dir .. "/key.pem") or "")
    sh.spit(dir .. "/nginx.conf", table.concat({
      "daemon on;", "user root;", "worker_processes 1;",
      "pid " .. dir .. "/nginx.pid;", "error_log " .. dir .. "/logs/error.log;",
      "events { worker_connections 256; }",
      "http {",
      "  log_format ranges '$request_method $uri $status $bytes_sent \"$http_range\"';",
      "  access_log " .. dir .. "/logs/access.log ranges;",
      "  client_body_temp_path " .. dir .. "/tmp; proxy_temp_path " .. dir .. "/tmp;",
      "  fastcgi_temp_path " .. dir .. "/tmp; uwsgi_temp_path " .. dir .. "/tmp; scgi_temp_path " .. dir .. "/tmp;",
      "  sendfile on; keepalive_requests 100000;",
      "  server { " .. listen .. "; root " .. root .. "; location / { }",
      "    location /forbidden/ { return 403; } }",
      "}", ""}, "\n"))
    local _, code = sh.run(CLEAN .. "/usr/sbin/nginx -p " .. sh.quote(dir) .. " -c " .. sh.quote(dir .. "/nginx.conf"))
    if code == 0 and wait_up(port) then
      local s = {url = (tls and "https" or "http") .. "://127.0.0.1:" .. port, port = port, dir = dir,
                 ca = tls and ca or nil}
      function s.stop()
        sh.run(CLEAN .. "/usr/sbin/nginx -p " .. sh.quote(dir) .. " -c " .. sh.quote(dir .. "/nginx.conf") .. " -s stop")
        os.execute("rm -rf " .. sh.quote(dir))
      end
      -- nginx logs a request after its last byte went out, so a client can
      -- be done before the line is there: wait until the log has not grown
      -- for 60 ms (2 s at most)
      local function settle()
        local function size()
          local f = io.open(dir .. "/logs/access.log")
          if not f then return 0 end
          local n = f:seek("end")
          f:close()
          return n
        end
        local last, quiet = size(), 0
        for _ = 1, 66 do
          sh.run("sleep 0.03")
          local now = size()
          if now == last then quiet = quiet + 1 else quiet, last = 0, now end
          if quiet >= 2 then return end
        end
      end
      -- the requests logged so far: {method, path, status, bytes, range}
      function s.log()
        settle()
        local out = {}
        local f = io.open(dir .. "/logs/access.log")
        if not f then return out end
        for l in f:lines() do
          local m, p, st, b, r = l:match('^(%S+) (%S+) (%d+) (%d+) "(.*)"$')
          if m then out[#out + 1] = {method = m, path = p, status = tonumber(st), bytes = tonumber(b), range = r} end
        end
        f:close()
        return out
      end
      function s.bytes()
        local n = 0
        for _, r in ipairs(s.log()) do n = n + r.bytes end
        return n
      end
      function s.clear() settle() sh.spit(dir .. "/logs/access.log", "") end
      return s
    end
  end
  error("nginx did not start (" .. (sh.slurp(dir .. "/logs/error.log") or "") .. ")")
end

-- s3rver (npm, under Debian's node) on a loopback port with the bucket
-- "bkt", started by spec/s3rver_abort.js, which adds the
-- AbortMultipartUpload s3rver lacks; its data folder is server.dir (an
-- upload's parts are in bkt/._S3rver_uploads until it completes or is
-- aborted)
function M.s3rver(build)
  local dir = sh.mkdir()
  local modules = (build or "build") .. "/npm/node_modules"
  for _ = 1, 5 do
    local port = free_port()
    local pidf = os.tmpname()
    os.execute("env -u LD_PRELOAD node spec/s3rver_abort.js " .. sh.quote(modules) .. " " .. sh.quote(dir)
      .. " 127.0.0.1 " .. port .. " bkt >/dev/null 2>&1 & echo $! > " .. sh.quote(pidf))
    local pid = (sh.slurp(pidf) or ""):match("%d+")
    os.remove(pidf)
    if pid and wait_up(port) then
      return {url = "http://127.0.0.1:" .. port, port = port, dir = dir,
              stop = function() os.execute("kill " .. pid); os.execute("rm -rf " .. sh.quote(dir)) end}
    end
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  end
  error("s3rver did not start")
end

function M.proxy(upstream_port)
  local mode_file = os.tmpname()
  sh.spit(mode_file, "ok")
  for _ = 1, 5 do
    local port = free_port()
    local pidf = os.tmpname()
    os.execute(CLEAN .. "/usr/bin/python3 spec/fault_proxy.py " .. port .. " " .. upstream_port .. " "
      .. sh.quote(mode_file) .. " >/dev/null 2>&1 & echo $! > " .. sh.quote(pidf))
    local pid = (sh.slurp(pidf) or ""):match("%d+")
    os.remove(pidf)
    if pid and wait_up(port) then
      local p = {url = "http://127.0.0.1:" .. port, port = port, log = mode_file .. ".log"}
      function p.set(mode) sh.spit(mode_file, mode) end
      function p.requests() return sh.slurp(p.log) or "" end
      function p.stop()
        os.execute("kill " .. pid)
        os.remove(mode_file)
        os.remove(p.log)
      end
      return p
    end
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  end
  os.remove(mode_file)
  error("the fault proxy did not start")
end

return M
