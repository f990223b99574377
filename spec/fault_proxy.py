#!/usr/bin/python3
# fault_proxy.py PORT UPSTREAM_PORT MODE_FILE: an HTTP proxy on 127.0.0.1
# in front of a server (nginx in the specs) that injects the faults
# remote_spec.lua needs. MODE_FILE holds one mode, read at each request;
# a new mode (the file's text changed) restarts the counts:
#   ok              pass everything through
#   503 N           the first N requests answer 503
#   drop N          the first N GETs send half their body, then drop the connection
#   norange         Range headers are removed: the server answers 200, whole
#   oversize        206 answers carry 16 bytes more than their range
#   badrange        206 answers name another range in Content-Range
#   stall S         GETs wait S seconds before answering
#   fail_after N    every request after the first N answers 503
#   fail_puts N     every PUT after the first N answers 503 (other requests pass)
# Every request is logged as "METHOD PATH STATUS" to MODE_FILE.log.
# Standard library only (http.server, http.client).
import http.client
import http.server
import sys
import threading
import time

PORT, UPSTREAM, MODE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
state = {"mode": None, "count": 0, "gets": 0, "puts": 0}


def mode(method):
    try:
        with open(MODE_FILE) as f:
            text = f.read().strip()
    except OSError:
        text = "ok"
    with lock:
        if text != state["mode"]:
            state["mode"], state["count"], state["gets"], state["puts"] = text, 0, 0, 0
        state["count"] += 1
        if method == "GET":
            state["gets"] += 1
        if method == "PUT":
            state["puts"] += 1
        return text.split(), state["count"], state["gets"], state["puts"]


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        with lock, open(MODE_FILE + ".log", "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, code))

    def forward(self, head_only):
        words, n, gets, puts = mode(self.command)
        kind = words[0] if words else "ok"
        if kind == "503" and n <= int(words[1]):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if (kind == "fail_after" and n > int(words[1])) or (kind == "fail_puts" and self.command == "PUT" and puts > int(words[1])):
            # the body read first: a close with it unread resets the
            # connection, and the client may see that before the 503
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "stall" and not head_only:
            time.sleep(float(words[1]))
        # the Host header goes through as it came: S3's signatures cover it
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        if kind == "norange":
            headers = {k: v for k, v in headers.items() if k.lower() not in ("range", "if-range")}
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else None
        up.request(self.command, self.path, body=body_in, headers=headers)
        r = up.getresponse()
        body = b"" if head_only else r.read()
        out_headers = [(k, v) for k, v in r.getheaders() if k.lower() not in ("connection", "content-length", "transfer-encoding")]
        if r.status == 206 and kind == "oversize":
            body += b"\0" * 16
        if r.status == 206 and kind == "badrange":
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-range"]
            a, rest = r.getheader("Content-Range").split(" ")[1].split("-")
            b, total = rest.split("/")
            out_headers.append(("Content-Range", "bytes %d-%d/%s" % (int(a) + 1, int(b) + 1, total)))
        self.send_response(r.status)
        for k, v in out_headers:
            self.send_header(k, v)
        length = r.getheader("Content-Length") if head_only else str(len(body))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if head_only:
            return
        if kind == "drop" and self.command == "GET" and gets <= int(words[1]):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def do_GET(self):
        self.forward(False)

    def do_HEAD(self):
        self.forward(True)

    def do_PUT(self):
        self.forward(False)

    def do_POST(self):
        self.forward(False)

    def do_DELETE(self):
        self.forward(False)


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
