"""The HTTP front: http.server's request handler (HTTP/1.1 keep-alive, one
write per response, TCP_NODELAY, request bodies by Content-Length or
chunked, JSON answers and errors) and the threading server.  Routing is
routes.py."""

import http.client
import http.server
import json
import re
import sys
import traceback

from .errors import ApiError
from .routes import handle


MAX_REQUEST_BODY = 10 * 1024 * 1024
# RFC 9112, 7.1: chunk-size [ chunk-ext ] CRLF, chunk-size = 1*HEXDIG. Nothing
# else is a size: not a sign, a "0x", an underscore or a space inside (Python's
# int(..., 16) takes all of these, and read(-1) reads until the peer closes).
CHUNK_LINE_RE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")
MAX_TRAILER_BYTES = 64 * 1024


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

    def _read_chunked(self):
        """A chunked body, read strictly: any size line that is not plain hex
        (a sign, a prefix, a missing CRLF) is a 400 at once, and a size that
        would pass the body limit is a 413 before anything of it is read."""
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ApiError(400, "truncated chunked body")
            m = CHUNK_LINE_RE.fullmatch(line)
            if not m:
                raise ApiError(400, "invalid chunk size line")
            size = int(m.group(1), 16)
            if size == 0:
                trailer = 0
                while True:
                    t = self.rfile.readline(8192)
                    if t in (b"\r\n", b"\n"):
                        break
                    trailer += len(t)
                    if not t or not t.endswith(b"\n") or trailer > MAX_TRAILER_BYTES:
                        raise ApiError(400, "invalid chunked trailer")
                return b"".join(chunks)
            if size > MAX_REQUEST_BODY - total:
                raise ApiError(413, "request body too large")
            data = self.rfile.read(size)
            if len(data) != size:
                raise ApiError(400, "truncated chunked body")
            if self.rfile.read(2) != b"\r\n":
                raise ApiError(400, "chunk data not followed by CRLF")
            total += size
            chunks.append(data)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return self._read_chunked()
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
                # what is left of the body cannot be found: the connection goes
                self.close_connection = True
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
