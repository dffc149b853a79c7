#!/usr/bin/env python3
"""A controllable HTTP destination for tests.

    python3 spec/support/sink.py --port-file PATH [--port 0] [--watch-pid PID]

Every request is recorded and answered with the current mode, except:
  POST /__sink/mode      JSON {"status": 500, "headers": {"Name": "v"}, "body": "text",
                               "delay": seconds, "statuses": [500, 500, 200]}
                         sets the answer ("statuses" are used first, one per request,
                         then "status"; default 200 with body "ok")
  GET  /__sink/received  JSON array of {method, target, headers: [[name, value]...],
                         body | bodyBase64, t}
  POST /__sink/reset     forget received requests and go back to the default mode
"""

import argparse
import base64
import http.server
import json
import os
import signal
import sys
import threading
import time

DEFAULT_MODE = {"status": 200, "headers": {}, "body": None, "delay": 0, "statuses": []}


class Sink:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = dict(DEFAULT_MODE, statuses=[])
        self.received = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sink"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(out)
                out.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body, headers=(), ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for n, v in headers:
            self.send_header(n, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self):
        sink = self.server.sink
        body = self._body()
        path = self.path.split("?", 1)[0]
        if path == "/__sink/mode" and self.command == "POST":
            try:
                doc = json.loads(body.decode("utf-8") or "{}")
            except ValueError:
                return self._send(400, b'{"error":"bad json"}')
            with sink.lock:
                mode = dict(DEFAULT_MODE, statuses=[])
                mode.update({k: v for k, v in doc.items() if k in DEFAULT_MODE})
                mode["statuses"] = list(mode["statuses"] or [])
                sink.mode = mode
            return self._send(200, b"{}")
        if path == "/__sink/received" and self.command == "GET":
            with sink.lock:
                data = json.dumps(sink.received).encode("utf-8")
            return self._send(200, data)
        if path == "/__sink/reset" and self.command == "POST":
            with sink.lock:
                sink.received = []
                sink.mode = dict(DEFAULT_MODE, statuses=[])
            return self._send(200, b"{}")

        rec = {"method": self.command, "target": self.path,
               "headers": [[n, v] for n, v in self.headers.items()], "t": time.time()}
        try:
            rec["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            rec["bodyBase64"] = base64.b64encode(body).decode("ascii")
        with sink.lock:
            sink.received.append(rec)
            mode = sink.mode
            status = mode["statuses"].pop(0) if mode["statuses"] else mode["status"]
            headers = list((mode["headers"] or {}).items())
            text = mode["body"]
            delay = mode["delay"] or 0
        if delay:
            time.sleep(delay)
        if text is None:
            text = "ok" if 200 <= status < 300 else "sink error %d" % status
        try:
            self._send(int(status), text.encode("utf-8"), headers, "text/plain; charset=utf-8")
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class Server(http.server.ThreadingHTTPServer):
    # bursts of deliveries arrive at once: the default backlog of 5 drops connections
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--watch-pid", type=int)
    args = ap.parse_args()
    server = Server((args.host, args.port), Handler)
    server.sink = Sink()
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as fh:
            fh.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("sink listening on http://%s:%d" % (args.host, port), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    while not stop.wait(0.25):
        if args.watch_pid and not pid_alive(args.watch_pid):
            break
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
