"""The HTTP front: http.server's request handler (HTTP/1.1 keep-alive, one
write per response, TCP_NODELAY, request bodies by Content-Length or
chunked, JSON answers and errors) and the threading server.  Routing is
routes.py."""

import http.client
import http.server
import json
import sys
import traceback

from .errors import ApiError
from .routes import handle


MAX_REQUEST_BODY = 10 * 1024 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qstash-dev"
    sys_version = ""
    timeout = 300  # idle keep-alive connections
    # TCP_NODELAY: a response never waits on Nagle's algorithm for the
    # client's delayed ACK (40 ms per request on a keep-alive connection)
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if not self.server.emu.quiet:
            sys.stderr.write("qstash-dev: %s %s\n" % (self.address_string(), fmt % args))

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (bad request line, unsupported method...) as JSON
        self.close_connection = True
        self._respond(code, {"error": message or http.client.responses.get(code, "error")}, [])

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ApiError(400, "truncated chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BODY:
                    raise ApiError(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "invalid Content-Length")
        if n < 0 or n > MAX_REQUEST_BODY:
            raise ApiError(413, "request body too large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise ApiError(400, "truncated body")
        return data

    def _respond(self, status, payload, extra):
        if payload is None:
            data = b""
        else:
            data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for n, v in extra:
            self.send_header(n, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        # headers and body in one write (end_headers() would write the
        # headers alone)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and data:
            self._headers_buffer.append(data)
        self.flush_headers()

    def _dispatch(self):
        emu = self.server.emu
        try:
            try:
                body = self._read_body()
            except (ValueError, OSError) as e:
                raise ApiError(400, "cannot read body: %s" % e)
            except ApiError:
                self.close_connection = True
                raise
            status, payload, extra = handle(emu, self.command, self.path, list(self.headers.items()),
                                            body, self.client_address[0])
        except ApiError as e:
            status, payload, extra = e.status, {"error": e.message}, e.headers
        except Exception as e:  # a bug: report it, keep serving
            traceback.print_exc()
            status, payload, extra = 500, {"error": "internal error: %s" % e}, []
        self._respond(status, payload, extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
