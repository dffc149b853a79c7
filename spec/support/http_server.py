#!/usr/bin/env python3
"""Scriptable, recording, fault-injecting HTTP/1.1 server for the test suite.

Usage:
    python3 spec/support/http_server.py [--port N] [--port-file PATH]
                                        [--watch-pid PID] [--verbose]
                                        [--tls CERT KEY]

The server binds 127.0.0.1 only.  Once listening it writes the port number
(decimal, newline) to --port-file atomically (temp file + rename); without
--port-file the port is printed on stdout.  It runs until SIGTERM/SIGINT/SIGHUP
(or, with --watch-pid, until that process is gone) and then exits at once,
abandoning any connection that is still open.

With --tls CERT KEY (PEM files) the server also listens on a second port
that speaks TLS (HTTP/1.1 over ALPN) and serves the same queue, records and
control endpoints; the port file then holds both ports, one a line (plain
first).

Every accepted TCP connection gets an id (1, 2, 3, ... in accept order).
Requests whose path does not start with /__ctl/ are recorded and answered by
the next scripted response (FIFO); when the queue is empty, by the default
response.

Control endpoints (never recorded; JSON in, JSON out; errors are 4xx with
{"error": "..."}):

    POST /__ctl/script       {"responses": [R, ...]}  -> {"queued": n, "pending": m}
    POST /__ctl/default      R                        -> {"ok": true}
    GET  /__ctl/requests                              -> [record, ...]
    POST /__ctl/reset                                 -> {"ok": true}
    GET  /__ctl/connections                           -> {"accepted": n}
    POST /__ctl/chaos        C                        -> {"ok": true}
    GET  /__ctl/chaos                                 -> {"ids": {id: log}}

Chaos mode (POST /__ctl/chaos; reset turns it off) plays a QStash DLQ on an
unreliable network, for accounting specs. While it is on, it answers every
request that is not a control request, instead of the queue and without
recording it. The DLQ id is the last path segment; an id already executed
answers 404 {"error": "message not found"}, as QStash does once an entry was
retried. Otherwise an outcome is drawn, at random but reproducibly (from the
seed, the id and how many requests that id had), with the weights of
C = {"seed": s, "weights": {outcome: w, ...}, "hold": seconds}:

    ok        execute, answer 201 with a PublishResponse
    fail      answer 503 without executing
    drop      execute, then close the connection without answering
    short     execute, then a body shorter than its Content-Length, and close
    reset     execute, then half the body and a TCP reset
    stall     execute, send the headers, then nothing for `hold` seconds
              (default 5), then close

The log of an id is {"received": n, "executed": bool, "outcomes": [...],
"messageId": the new message its retry answers}.

With C.follow (see chaos_follow.py) the logs and DLQ-lookup requests of
follows are answered by a hostile QStash whose messages reach their ends; GET
/__ctl/chaos then also holds {"follow": {"messages": {messageId: log},
"first": time.time() of the first of them}}.

A record is:

    {"method", "target" (raw request-target), "path", "query",
     "version" (e.g. "HTTP/1.1"),
     "headers": [[name, value], ...] (original case and order),
     "trailers": [[name, value], ...] (chunked request trailers),
     "body" (latin-1 decoded), "body_b64" (exact bytes, base64),
     "body_len", "chunked" (bool), "conn", "t" (time.monotonic() when the
     request line arrived)}

A response object R has only optional fields:

    status          int, default 200
    reason          reason phrase, default the standard one for status
    headers         {name: value} or [[name, value], ...]; sent verbatim
    body            string (sent UTF-8 encoded)
    json            any JSON value, sent compactly encoded; adds
                    Content-Type: application/json unless already given
    body_size       int, body of that many b"x"
                    (precedence when several are given: json, body_size, body)
    delay           seconds to sleep before sending anything
    keep_alive      default true; false adds "Connection: close" and closes
    fault           see FAULTS below
    delay_per_byte  for fault "slow_body", default 0.05
    chunk_size      for fault "chunked", default: body split in 4 chunks
    repeat          (only in /__ctl/script) enqueue R that many times
    interim         [{"status": 1xx, "headers": {...}}, ...]: informational
                    responses sent before this one
    echo_target     "raw", "lower" or "upper": append the request's target to
                    the body (as some proxies echo it in their errors), its
                    percent-escapes as they came, or with hex digits in
                    lower or upper case
    hold            for faults "hang" and "headers_then_stall": close after
                    that many seconds instead of when the server stops

Content-Length is added automatically unless a header named Content-Length or
Transfer-Encoding is given explicitly, the fault says otherwise, or the status
(1xx, 204, 304) has no body.  Responses to HEAD carry no body.

Faults:
    close               close the connection without sending anything
    hang                send nothing, keep the socket open until the server stops
    headers_then_stall  send status line + headers (right Content-Length), then
                        nothing; keep the socket open until the server stops
    reset_in_headers    send the status line and part of the headers, then RST
    reset_in_body       send headers and half of the body, then RST (an empty
                        body is replaced by 64 b"x" so there is a body to cut)
    short_body          Content-Length = real length + 10, send the body, then
                        close normally
    chunked             send the body with Transfer-Encoding: chunked
    slow_body           send the headers, then one body byte every
                        delay_per_byte seconds

Errors are logged to stderr only; nothing a client does can stop the server.
"""

import argparse
import base64
import collections
import http
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback

import chaos_follow  # beside this file: the follow part of chaos mode

CTL_PREFIX = "/__ctl/"
MAX_LINE = 64 * 1024
MAX_HEADERS_BYTES = 1024 * 1024
MAX_HEADERS = 1000

FAULTS = frozenset([
    "close",
    "hang",
    "headers_then_stall",
    "reset_in_headers",
    "reset_in_body",
    "short_body",
    "chunked",
    "slow_body",
])

RESPONSE_FIELDS = frozenset([
    "status", "reason", "headers", "body", "json", "body_size", "delay",
    "keep_alive", "fault", "delay_per_byte", "chunk_size", "interim",
    "echo_target", "hold",
])

ECHO_MODES = frozenset(["raw", "lower", "upper"])

CHAOS_OUTCOMES = ("ok", "fail", "drop", "short", "reset", "stall")

BUILTIN_DEFAULT = {
    "status": 201,
    "headers": [["Content-Type", "application/json"]],
    "body": '{"messageId":"msg_test","deduplicated":false}',
}

VERBOSE = False


def log(msg):
    try:
        sys.stderr.write("[http_server %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
        sys.stderr.flush()
    except Exception:
        pass


class BadRequest(Exception):
    def __init__(self, msg, status=400):
        Exception.__init__(self, msg)
        self.status = status


class InvalidResponse(Exception):
    """A control request carried an invalid response object."""


class PeerClosed(Exception):
    """The client closed the connection in the middle of a request."""


# --------------------------------------------------------------------------
# Shared state

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.queue = collections.deque()
        self.records = []
        self.default = normalize_response(BUILTIN_DEFAULT)
        self.accepted = 0
        self.chaos = None      # the chaos configuration, or None
        self.chaos_log = {}    # id -> {"received", "executed", "outcomes"}

    def record_and_pick(self, rec):
        with self.lock:
            self.records.append(rec)
            if self.queue:
                return self.queue.popleft()
            return self.default


# --------------------------------------------------------------------------
# Response objects

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_int(v, field):
    if _is_int(v):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise InvalidResponse("%s must be an integer, got %r" % (field, v))


def _header_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if _is_number(v):
        return repr(v)
    if v is None:
        return ""
    return json.dumps(v, separators=(",", ":"))


def _headers(h):
    """Headers given as {name: value} or [[name, value], ...] -> [(name, value)]."""
    headers = []
    if h is None:
        pass
    elif isinstance(h, dict):
        for k, v in h.items():
            headers.append((str(k), _header_text(v)))
    elif isinstance(h, list):
        for pair in h:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise InvalidResponse("headers array entries must be [name, value]")
            headers.append((str(pair[0]), _header_text(pair[1])))
    else:
        raise InvalidResponse("headers must be an object or an array of pairs")
    return headers


def normalize_response(r, allow_repeat=False):
    """Validate a response object; return (normalized copy).

    With allow_repeat the returned dict may carry "repeat".
    """
    if not isinstance(r, dict):
        raise InvalidResponse("response must be a JSON object, got %r" % (r,))
    allowed = RESPONSE_FIELDS | (frozenset(["repeat"]) if allow_repeat else frozenset())
    unknown = sorted(set(r) - allowed)
    if unknown:
        raise InvalidResponse("unknown response field(s): %s" % ", ".join(unknown))
    out = {}
    status = _as_int(r.get("status", 200), "status")
    if not 100 <= status <= 999:
        raise InvalidResponse("status out of range: %r" % status)
    out["status"] = status
    if "reason" in r:
        if not isinstance(r["reason"], str):
            raise InvalidResponse("reason must be a string")
        out["reason"] = r["reason"]
    headers = _headers(r.get("headers"))
    out["headers"] = headers
    out["interim"] = []
    for i in r.get("interim") or []:
        if not isinstance(i, dict) or set(i) - {"status", "headers"}:
            raise InvalidResponse("interim entries are {status, headers}")
        st = _as_int(i.get("status", 100), "interim status")
        if not 100 <= st <= 199:
            raise InvalidResponse("interim status must be 1xx, got %r" % st)
        out["interim"].append((st, _headers(i.get("headers"))))
    if "json" in r:
        out["body"] = json.dumps(r["json"], separators=(",", ":"), ensure_ascii=False) \
            .encode("utf-8", "surrogateescape")
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    elif "body_size" in r:
        n = _as_int(r["body_size"], "body_size")
        if n < 0:
            raise InvalidResponse("body_size must be >= 0")
        out["body"] = b"x" * n
    elif "body" in r and r["body"] is not None:
        if not isinstance(r["body"], str):
            raise InvalidResponse("body must be a string")
        out["body"] = r["body"].encode("utf-8", "surrogateescape")
    else:
        out["body"] = b""
    for field in ("delay", "delay_per_byte"):
        if field in r:
            v = r[field]
            if not _is_number(v) or v < 0:
                raise InvalidResponse("%s must be a number >= 0" % field)
            out[field] = float(v)
    out.setdefault("delay", 0.0)
    out.setdefault("delay_per_byte", 0.05)
    if "chunk_size" in r:
        cs = _as_int(r["chunk_size"], "chunk_size")
        if cs < 1:
            raise InvalidResponse("chunk_size must be >= 1")
        out["chunk_size"] = cs
    if "echo_target" in r:
        if r["echo_target"] not in ECHO_MODES:
            raise InvalidResponse("echo_target must be one of %s" % ", ".join(sorted(ECHO_MODES)))
        out["echo_target"] = r["echo_target"]
    if "hold" in r:
        if not _is_number(r["hold"]) or r["hold"] < 0:
            raise InvalidResponse("hold must be a number >= 0")
        out["hold"] = float(r["hold"])
    ka = r.get("keep_alive", True)
    if not isinstance(ka, bool):
        raise InvalidResponse("keep_alive must be a boolean")
    out["keep_alive"] = ka
    fault = r.get("fault")
    if fault is not None:
        if fault not in FAULTS:
            raise InvalidResponse("unknown fault %r (known: %s)" % (fault, ", ".join(sorted(FAULTS))))
        out["fault"] = fault
    if allow_repeat and "repeat" in r:
        n = _as_int(r["repeat"], "repeat")
        if n < 0:
            raise InvalidResponse("repeat must be >= 0")
        out["repeat"] = n
    return out


# --------------------------------------------------------------------------
# Connection I/O

class Conn:
    def __init__(self, sock, conn_id, state):
        self.sock = sock
        self.id = conn_id
        self.state = state
        self.buf = bytearray()
        self.closed = False

    # --- reading -----------------------------------------------------------
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError()
        self.buf += data

    def readline(self, limit=MAX_LINE):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if line.endswith(b"\r\n"):
                    return line[:-2]
                return line[:-1]
            if len(self.buf) > limit:
                raise BadRequest("line too long", 431)
            start = len(self.buf)
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    # --- writing -----------------------------------------------------------
    def send(self, data):
        if data:
            self.sock.sendall(data)

    def close(self):
        """Orderly close (FIN)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Abortive close (RST)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def wait_until_stop(self, hold=None):
        # Keep the socket open (and unread) until the server shuts down, or
        # for `hold` seconds.
        self.state.stop.wait(hold)


def parse_headers(conn):
    headers = []
    total = 0
    while True:
        line = conn.readline()
        if not line:
            return headers
        total += len(line) + 2
        if total > MAX_HEADERS_BYTES or len(headers) > MAX_HEADERS:
            raise BadRequest("header section too large", 431)
        text = line.decode("latin-1")
        if text[0] in " \t":
            if not headers:
                raise BadRequest("continuation line before first header")
            name, value = headers[-1]
            headers[-1] = [name, (value + " " + text.strip(" \t")).strip(" \t")]
            continue
        if ":" not in text:
            raise BadRequest("malformed header line: %r" % text)
        name, value = text.split(":", 1)
        if not name or name != name.strip(" \t"):
            raise BadRequest("malformed header name: %r" % name)
        headers.append([name, value.strip(" \t")])


def header_values(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def read_request(conn):
    """Read one request.  Returns None on a clean EOF between requests."""
    # Skip empty lines before the request line (RFC 9112 section 2.2).
    while True:
        try:
            line = conn.readline()
        except EOFError:
            if conn.buf:
                raise PeerClosed("EOF inside request line")
            return None
        if line:
            break
    t = time.monotonic()
    try:
        text = line.decode("latin-1")
        parts = text.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise BadRequest("malformed request line: %r" % text)
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise BadRequest("unsupported protocol version %r" % version, 505)
        headers = parse_headers(conn)

        te = ",".join(header_values(headers, "transfer-encoding")).lower()
        codings = [c.strip() for c in te.split(",") if c.strip()]
        chunked = bool(codings) and codings[-1] == "chunked"
        if codings and not chunked:
            raise BadRequest("unsupported Transfer-Encoding %r" % te, 501)
        length = 0
        if not chunked:
            cls = header_values(headers, "content-length")
            if cls:
                values = set(v.strip() for cl in cls for v in cl.split(","))
                if len(values) != 1:
                    raise BadRequest("conflicting Content-Length values")
                value = values.pop()
                if not value.isdigit():
                    raise BadRequest("invalid Content-Length %r" % value)
                length = int(value)

        expect = ",".join(header_values(headers, "expect")).lower()
        if "100-continue" in expect and version == "HTTP/1.1" and (chunked or length > 0):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")

        trailers = []
        if chunked:
            pieces = []
            while True:
                size_line = conn.readline().decode("latin-1")
                size_text = size_line.split(";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest("invalid chunk size line %r" % size_line)
                if size < 0:
                    raise BadRequest("invalid chunk size line %r" % size_line)
                if size == 0:
                    trailers = parse_headers(conn)
                    break
                pieces.append(conn.read_exact(size))
                if conn.readline() != b"":
                    raise BadRequest("missing CRLF after chunk data")
            body = b"".join(pieces)
        else:
            body = conn.read_exact(length)
    except EOFError:
        raise PeerClosed("EOF inside request")

    conn_tokens = [v.strip().lower() for cv in header_values(headers, "connection") for v in cv.split(",")]
    if version == "HTTP/1.0":
        keep_alive = "keep-alive" in conn_tokens
    else:
        keep_alive = "close" not in conn_tokens

    path, sep, query = target.partition("?")
    return {
        "method": method,
        "target": target,
        "path": path,
        "query": query,
        "version": version,
        "headers": headers,
        "trailers": trailers,
        "body": body,
        "chunked": chunked,
        "keep_alive": keep_alive,
        "t": t,
    }


def make_record(req, conn_id):
    body = req["body"]
    return {
        "method": req["method"],
        "target": req["target"],
        "path": req["path"],
        "query": req["query"],
        "version": req["version"],
        "headers": [list(h) for h in req["headers"]],
        "trailers": [list(h) for h in req["trailers"]],
        "body": body.decode("latin-1"),
        "body_b64": base64.b64encode(body).decode("ascii"),
        "body_len": len(body),
        "chunked": req["chunked"],
        "conn": conn_id,
        "t": req["t"],
    }


# --------------------------------------------------------------------------
# Sending responses

def reason_phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status %d" % status


def send_response(conn, req, r):
    """Send response r for req.  Returns True to keep the connection open."""
    state = conn.state
    if r["delay"] > 0:
        if state.stop.wait(r["delay"]):
            return False

    fault = r.get("fault")
    if fault == "close":
        conn.close()
        return False
    if fault == "hang":
        conn.wait_until_stop(r.get("hold"))
        return False

    status = r["status"]
    headers = list(r["headers"])
    body = r["body"]
    if "echo_target" in r:
        body = body + echo_target(req["target"], r["echo_target"]).encode("latin-1")
    if fault == "reset_in_body" and not body:
        body = b"x" * 64
    has = set(k.lower() for k, _ in headers)
    no_body_status = status < 200 or status in (204, 304)
    keep = r["keep_alive"] and req["keep_alive"]

    if fault == "chunked":
        if "transfer-encoding" not in has:
            headers.append(("Transfer-Encoding", "chunked"))
    elif fault == "short_body":
        if "content-length" not in has:
            headers.append(("Content-Length", str(len(body) + 10)))
        keep = False
    elif not no_body_status and not ({"content-length", "transfer-encoding"} & has):
        headers.append(("Content-Length", str(len(body))))
    if not keep and "connection" not in has:
        headers.append(("Connection", "close"))

    interim = b"".join(
        ("HTTP/1.1 %d %s\r\n" % (st, reason_phrase(st)) +
         "".join("%s: %s\r\n" % (k, v) for k, v in ih) + "\r\n").encode("latin-1", "replace")
        for st, ih in r.get("interim", ()))
    status_line = "HTTP/1.1 %d %s\r\n" % (status, r.get("reason", reason_phrase(status)))
    head = interim + (status_line + "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n") \
        .encode("latin-1", "replace")
    send_body = req["method"] != "HEAD" and not no_body_status

    if fault == "headers_then_stall":
        conn.send(head)
        conn.wait_until_stop(r.get("hold"))
        return False
    if fault == "reset_in_headers":
        sl = len(status_line)
        rest = len(head) - sl
        cut = sl + max(1, rest // 2)
        cut = min(cut, len(head) - 3)  # never send the terminating blank line
        conn.send(head[:max(cut, 1)])
        time.sleep(0.02)
        conn.reset()
        return False
    if fault == "reset_in_body":
        conn.send(head + (body[:len(body) // 2] if send_body else b""))
        time.sleep(0.02)
        conn.reset()
        return False
    if fault == "chunked":
        conn.send(head)
        if send_body:
            size = r.get("chunk_size") or max(1, -(-len(body) // 4))
            for i in range(0, len(body), size):
                piece = body[i:i + size]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
    elif fault == "slow_body":
        conn.send(head)
        if send_body:
            dpb = r["delay_per_byte"]
            for i in range(len(body)):
                if dpb > 0 and state.stop.wait(dpb):
                    return False
                conn.send(body[i:i + 1])
    else:  # no fault, or short_body
        conn.send(head + (body if send_body else b""))

    if not keep:
        conn.close()
        return False
    return True


def echo_target(target, mode):
    """The request target as a proxy might echo it: percent-escapes kept, or
    with their hex digits in one case."""
    if mode == "lower":
        return re.sub(r"%[0-9A-Fa-f]{2}", lambda m: m.group(0).lower(), target)
    if mode == "upper":
        return re.sub(r"%[0-9A-Fa-f]{2}", lambda m: m.group(0).upper(), target)
    return target


# --------------------------------------------------------------------------
# Chaos mode

def normalize_chaos(c):
    if not isinstance(c, dict) or set(c) - {"seed", "weights", "hold", "follow"}:
        raise InvalidResponse('chaos takes {"seed", "weights", "hold", "follow"}')
    weights = c.get("weights") or {}
    if not isinstance(weights, dict) or set(weights) - set(CHAOS_OUTCOMES):
        raise InvalidResponse("chaos weights are among: %s" % ", ".join(CHAOS_OUTCOMES))
    table = []
    for name in CHAOS_OUTCOMES:
        w = weights.get(name, 0)
        if not _is_number(w) or w < 0:
            raise InvalidResponse("chaos weight %s must be a number >= 0" % name)
        if w > 0:
            table.append((name, float(w)))
    if not table:
        raise InvalidResponse("chaos needs at least one weight above 0")
    hold = c.get("hold", 5)
    if not _is_number(hold) or hold < 0:
        raise InvalidResponse("chaos hold must be a number >= 0")
    out = {"seed": str(c.get("seed", 0)), "table": table, "hold": float(hold)}
    if c.get("follow") is not None:
        try:
            out["follow"] = chaos_follow.FollowChaos(out["seed"], chaos_follow.normalize(c["follow"]),
                                                     out["hold"])
        except chaos_follow.Invalid as e:
            raise InvalidResponse(str(e))
    return out


def chaos_draw(chaos, dlq_id, n):
    """The outcome of request number n (1, 2, ...) for dlq_id: the same for
    the same seed whatever the order requests arrive in."""
    rng = random.Random("%s:%s:%d" % (chaos["seed"], dlq_id, n))
    x = rng.random() * sum(w for _, w in chaos["table"])
    for name, w in chaos["table"]:
        if x < w:
            return name
        x -= w
    return chaos["table"][-1][0]


def chaos_response(state, req):
    """Draws, logs and returns the response of a request in chaos mode."""
    dlq_id = req["path"].rstrip("/").rsplit("/", 1)[-1]
    with state.lock:
        chaos = state.chaos
        follow = chaos.get("follow")
        picked = follow.respond(req) if follow is not None else None
        if picked is not None:
            r, outcome = picked
            entry = state.chaos_log.setdefault(req["path"], {"received": 0, "executed": False, "outcomes": []})
            entry["received"] += 1
            entry["outcomes"].append(outcome)
            return normalize_response(r)
        entry = state.chaos_log.setdefault(dlq_id, {"received": 0, "executed": False, "outcomes": []})
        entry["received"] += 1
        if entry["executed"]:
            outcome = "gone"
        else:
            outcome = chaos_draw(chaos, dlq_id, entry["received"])
            entry["executed"] = outcome != "fail"
        entry["outcomes"].append(outcome)
        publish = {"messageId": "msg_chaos_%s" % dlq_id, "deduplicated": False}
        if follow is not None:
            publish = follow.publish(dlq_id)
        entry["messageId"] = publish["messageId"]
    if outcome == "gone":
        r = {"status": 404, "json": {"error": "message not found"}}
    elif outcome == "fail":
        r = {"status": 503, "json": {"error": "service unavailable"}}
    elif outcome == "ok":
        r = {"status": 201, "json": publish}
    elif outcome == "drop":
        r = {"fault": "close"}
    elif outcome == "short":
        r = {"status": 201, "json": publish, "fault": "short_body"}
    elif outcome == "reset":
        r = {"status": 201, "json": publish, "fault": "reset_in_body"}
    else:  # stall
        r = {"status": 201, "json": publish, "fault": "headers_then_stall", "hold": chaos["hold"]}
    return normalize_response(r)


def json_response(status, value, keep_alive=True):
    return {
        "status": status,
        "headers": [("Content-Type", "application/json")],
        "body": json.dumps(value, separators=(",", ":")).encode("utf-8"),
        "delay": 0.0,
        "keep_alive": keep_alive,
    }


def handle_control(conn, req):
    state = conn.state
    path, method = req["path"], req["method"]
    name = path[len(CTL_PREFIX):]

    def payload():
        try:
            return json.loads(req["body"].decode("utf-8", "surrogateescape") or "null")
        except ValueError as e:
            raise InvalidResponse("invalid JSON body: %s" % e)

    try:
        if name == "script" and method == "POST":
            p = payload()
            if isinstance(p, list):
                responses = p
            elif isinstance(p, dict):
                responses = p.get("responses", [])
                # An empty Lua table may arrive as {} instead of [].
                if responses == {}:
                    responses = []
            else:
                raise InvalidResponse('expected {"responses": [...]}')
            if not isinstance(responses, list):
                raise InvalidResponse('"responses" must be an array')
            expanded = []
            for r in responses:
                n = normalize_response(r, allow_repeat=True)
                count = n.pop("repeat", 1)
                expanded.extend([n] * count)
            with state.lock:
                state.queue.extend(expanded)
                pending = len(state.queue)
            result = {"queued": len(expanded), "pending": pending}
        elif name == "default" and method == "POST":
            n = normalize_response(payload())
            with state.lock:
                state.default = n
            result = {"ok": True}
        elif name == "requests" and method == "GET":
            with state.lock:
                result = list(state.records)
        elif name == "reset" and method == "POST":
            with state.lock:
                state.queue.clear()
                state.records = []
                state.default = normalize_response(BUILTIN_DEFAULT)
                state.chaos = None
                state.chaos_log = {}
            result = {"ok": True}
        elif name == "chaos" and method == "POST":
            chaos = normalize_chaos(payload())
            with state.lock:
                state.chaos = chaos
                state.chaos_log = {}
            result = {"ok": True}
        elif name == "chaos" and method == "GET":
            with state.lock:
                result = {"ids": {k: dict(v, outcomes=list(v["outcomes"]))
                                  for k, v in state.chaos_log.items()}}
                if state.chaos is not None and state.chaos.get("follow") is not None:
                    result["follow"] = state.chaos["follow"].report()
        elif name == "connections" and method == "GET":
            with state.lock:
                result = {"accepted": state.accepted}
        elif name == "pending" and method == "GET":
            with state.lock:
                result = {"pending": len(state.queue)}
        else:
            return send_response(conn, req, json_response(
                404, {"error": "unknown control endpoint %s %s" % (method, path)}))
    except InvalidResponse as e:
        return send_response(conn, req, json_response(400, {"error": str(e)}))
    return send_response(conn, req, json_response(200, result))


def handle_connection(state, sock, conn_id, tls=None):
    if tls is not None:
        try:
            sock.settimeout(10)
            sock = tls.wrap_socket(sock, server_side=True)
            sock.settimeout(None)
        except (OSError, ssl.SSLError) as e:
            log("conn %d: TLS handshake failed: %s" % (conn_id, e))
            try:
                sock.close()
            except OSError:
                pass
            return
    conn = Conn(sock, conn_id, state)
    try:
        while not state.stop.is_set():
            try:
                req = read_request(conn)
            except BadRequest as e:
                log("conn %d: bad request: %s" % (conn_id, e))
                try:
                    conn.send(("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                               % (e.status, reason_phrase(e.status))).encode("latin-1"))
                except OSError:
                    pass
                break
            except PeerClosed as e:
                log("conn %d: client closed the connection: %s" % (conn_id, e))
                break
            if req is None:
                break
            if req["path"].startswith(CTL_PREFIX):
                keep = handle_control(conn, req)
            elif state.chaos is not None:
                keep = send_response(conn, req, chaos_response(state, req))
            else:
                r = state.record_and_pick(make_record(req, conn_id))
                if VERBOSE:
                    log("conn %d: %s %s -> %d %s" % (conn_id, req["method"], req["target"],
                                                     r["status"], r.get("fault", "")))
                keep = send_response(conn, req, r)
            if not keep:
                break
    except OSError as e:
        log("conn %d: socket error: %s" % (conn_id, e))
    except Exception:
        log("conn %d: unexpected error:\n%s" % (conn_id, traceback.format_exc()))
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Main

class _Stop(BaseException):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def write_port_file(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")
    except (OSError, ValueError):
        return True


def watchdog(pid, state):
    while not state.stop.wait(0.5):
        if not pid_alive(pid):
            log("watched process %d is gone; exiting" % pid)
            try:
                sys.stderr.flush()
            finally:
                os._exit(0)


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def accept_loop(state, listener, tls):
    """Accepts connections for ever, one thread each (TLS handshakes included)."""
    while True:
        try:
            sock, _ = listener.accept()
        except OSError as e:
            log("accept failed: %s" % e)
            time.sleep(0.05)
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with state.lock:
            state.accepted += 1
            conn_id = state.accepted
        threading.Thread(target=handle_connection, args=(state, sock, conn_id, tls),
                         name="conn-%d" % conn_id, daemon=True).start()


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description="Scriptable fault-injecting HTTP/1.1 test server")
    ap.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--watch-pid", type=int, help="exit when this process no longer exists")
    ap.add_argument("--verbose", action="store_true", help="log every recorded request to stderr")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="also listen on a second port with TLS (PEM certificate and key)")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    state = State()
    listener = listen(args.port)
    port = listener.getsockname()[1]
    tls_listener = tls = None
    ports = "%d\n" % port
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls[0], args.tls[1])
        tls.set_alpn_protocols(["http/1.1"])
        tls_listener = listen(0)
        ports += "%d\n" % tls_listener.getsockname()[1]

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    code = 0
    try:
        if args.port_file:
            write_port_file(args.port_file, ports)
        else:
            sys.stdout.write(ports)
            sys.stdout.flush()
        if args.watch_pid:
            threading.Thread(target=watchdog, args=(args.watch_pid, state), daemon=True).start()
        if tls_listener is not None:
            threading.Thread(target=accept_loop, args=(state, tls_listener, tls), daemon=True).start()
        accept_loop(state, listener, None)
    except _Stop:
        pass
    except Exception:
        log("fatal:\n%s" % traceback.format_exc())
        code = 1
    finally:
        state.stop.set()
        for lst in (listener, tls_listener):
            try:
                if lst is not None:
                    lst.close()
            except OSError:
                pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        # Exit without waiting for connection threads (some may be hanging
        # on purpose); the kernel closes every remaining socket.
        os._exit(code)


if __name__ == "__main__":
    main()
