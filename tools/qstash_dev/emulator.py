#!/usr/bin/env python3
"""qstash-dev: a local QStash emulator (publish, batch, delivery, retries,
the DLQ, message get and cancel, URL groups, logs; README.md lists what it
covers).

One file, Python 3 standard library only.  State lives in memory.

    python3 tools/qstash-dev [--port N] [--host 127.0.0.1] [--token T]
                             [--time-scale F] [--burst-limit N]
                             [--port-file PATH] [--quiet]

Besides the QStash REST endpoints it serves two debugging endpoints (token
required): GET /__dev/deliveries (every delivery attempt) and
POST /__dev/reset (forget everything), GET /__dev/requests (API requests
served per method and route).
"""

import argparse
import ast
import base64
import hashlib
import heapq
import hmac
import http.client
import http.server
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse

DEFAULT_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
REGION = "EU-CENTRAL-1"
USER_AGENT = "Upstash-QStash"

DEFAULT_RETRIES = 3
DEDUP_WINDOW_S = 600            # 10 minutes, never scaled
DEFAULT_DELIVERY_TIMEOUT_S = 900
CALLBACK_TIMEOUT_S = 30
MAX_REQUEST_BODY = 10 * 1024 * 1024
MAX_RESPONSE_BODY = 1024 * 1024
MAX_DELIVERY_LOG = 10000
MAX_LOG_ENTRIES = 100000        # GET /v2/logs keeps the newest ones
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DURATION_RE = re.compile(r"^(?:[0-9]+[smhd])+$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Request headers never forwarded by Upstash-Header-Forward.
NO_FORWARD = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "authorization", "expect", "te", "trailer", "upgrade", "proxy-authorization",
    "proxy-connection", "content-type", "user-agent", "accept-encoding",
}
# Stored headers never put on the wire by the deliverer (HTTP framing).
NO_SEND = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
           "te", "trailer", "upgrade", "expect"}


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.headers = headers or []


def now_ms():
    return int(time.time() * 1000)


def rand_base62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def new_message_id():
    return "msg_" + rand_base62(26)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def utf8_or_none(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def sign_jwt(url, body, key=CURRENT_SIGNING_KEY):
    """HS256 JWT as QStash puts in Upstash-Signature."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "jwt_" + rand_base62(24),
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode("ascii"),
    }
    seg = lambda obj: b64url_nopad(json.dumps(obj, separators=(",", ":")).encode("utf-8"))
    signing_input = seg(header) + "." + seg(claims)
    sig = hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url_nopad(sig)


# --------------------------------------------------------------------------
# Value parsers
# --------------------------------------------------------------------------

def parse_duration(value, field, allow_plain=False):
    v = value.strip()
    if allow_plain and v.isdigit():
        return int(v)
    if not DURATION_RE.match(v):
        raise ApiError(400, "invalid %s: %r is not a duration like 10s, 5m, 1d10h30m" % (field, value))
    return sum(int(n) * UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)([smhd])", v))


def parse_http_url(value, field):
    v = value.strip()
    if not is_http_url(v):
        raise ApiError(400, "invalid %s: %r is not an http(s) URL" % (field, value))
    return v


def is_http_url(v):
    if not v or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in v) or "#" in v:
        return False
    try:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return False
        parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return True


def _round_half_away(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


RETRY_DELAY_FUNCS = {
    # name: (min args, max args, implementation)
    "pow": (2, 2, math.pow),
    "exp": (1, 1, math.exp),
    "sqrt": (1, 1, math.sqrt),
    "abs": (1, 1, abs),
    "floor": (1, 1, math.floor),
    "ceil": (1, 1, math.ceil),
    "round": (1, 1, _round_half_away),
    "min": (1, 16, min),
    "max": (1, 16, max),
}
_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: math.fmod(a, b),
}


class RetryDelayExpr:
    """Safe evaluator for Upstash-Retry-Delay (an ast walk, never eval)."""

    def __init__(self, text):
        if len(text) > 1000:
            raise ValueError("expression too long")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise ValueError("syntax error")
        self._check(tree.body, 0)
        self.tree = tree.body
        self.text = text

    def _check(self, node, depth):
        if depth > 50:
            raise ValueError("expression nested too deeply")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ValueError("only numbers are allowed")
        elif isinstance(node, ast.Name):
            if node.id != "retried":
                raise ValueError("unknown variable %r (only 'retried')" % node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise ValueError("operator not allowed")
            self._check(node.left, depth + 1)
            self._check(node.right, depth + 1)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise ValueError("operator not allowed")
            self._check(node.operand, depth + 1)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in RETRY_DELAY_FUNCS:
                raise ValueError("unknown function")
            lo, hi, _ = RETRY_DELAY_FUNCS[node.func.id]
            if node.keywords or not (lo <= len(node.args) <= hi):
                raise ValueError("wrong number of arguments to %s" % node.func.id)
            for a in node.args:
                if isinstance(a, ast.Starred):
                    raise ValueError("syntax not allowed")
                self._check(a, depth + 1)
        else:
            raise ValueError("syntax not allowed")

    def _eval(self, node, retried):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(retried)
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, retried), self._eval(node.right, retried))
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, retried)
            return -v if isinstance(node.op, ast.USub) else v
        fn = RETRY_DELAY_FUNCS[node.func.id][2]
        return float(fn(*[self._eval(a, retried) for a in node.args]))

    def evaluate(self, retried):
        """Delay in milliseconds, or None when the expression cannot be computed."""
        try:
            v = self._eval(self.tree, retried)
        except (ArithmeticError, ValueError, TypeError):
            return None
        if not math.isfinite(v):
            return None
        return max(0.0, v)


def default_backoff_ms(n):
    """QStash's default: min(86400, e^(2.5*n)) seconds, n = retry number (1 for the first retry)."""
    try:
        s = math.exp(2.5 * n)
    except OverflowError:
        s = 86400.0
    return min(86400.0, s) * 1000.0


def parse_flow_value(value):
    out = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        k, v = k.strip().lower(), v.strip()
        if not sep or not v:
            raise ApiError(400, "invalid Upstash-Flow-Control-Value: %r (want parallelism=N, rate=N, period=D)" % value)
        if k in ("parallelism", "rate"):
            if not v.isdigit():
                raise ApiError(400, "invalid Upstash-Flow-Control-Value: %s must be an integer" % k)
            out[k] = int(v)
        elif k == "period":
            out[k] = parse_duration(v, "Upstash-Flow-Control-Value period", allow_plain=True)
        else:
            raise ApiError(400, "invalid Upstash-Flow-Control-Value: unknown key %r" % k)
    return out


def parse_redact(value):
    red = {"body": False, "all_headers": False, "names": set()}
    for tok in value.split(","):
        tok = tok.strip()
        if not tok:
            continue
        low = tok.lower()
        if low == "body":
            red["body"] = True
        elif low in ("header", "headers"):
            red["all_headers"] = True
        else:
            m = re.match(r"^headers?\[([^\]]+)\]$", tok, re.I)
            if not m:
                raise ApiError(400, "invalid Upstash-Redact-Fields: unknown field %r" % tok)
            red["names"].add(m.group(1).strip().lower())
    return red


def parse_bool(value, field):
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ApiError(400, "invalid %s: %r (want true or false)" % (field, value))


def parse_config(items):
    """Configuration headers of a publish or DLQ-retry request.

    Returns a dict holding only the settings present in the request."""
    cfg = {}
    fwd, cb_fwd, fcb_fwd = [], [], []
    first = {}
    for name, value in items:
        low = name.lower()
        for prefix, dest in (("upstash-forward-", fwd),
                             ("upstash-callback-forward-", cb_fwd),
                             ("upstash-failure-callback-forward-", fcb_fwd)):
            if low.startswith(prefix):
                if len(name) > len(prefix):
                    dest.append((name[len(prefix):], value))
                break
        else:
            if low.startswith("upstash-") and low not in first:
                first[low] = value
    if fwd:
        cfg["fwd"] = fwd
    if cb_fwd:
        cfg["callback_fwd"] = cb_fwd
    if fcb_fwd:
        cfg["failure_callback_fwd"] = fcb_fwd

    def get(h):
        return first.get(h)

    v = get("upstash-retries")
    if v is not None:
        v = v.strip()
        if not re.match(r"^[0-9]{1,9}$", v):
            raise ApiError(400, "invalid Upstash-Retries: %r is not a non-negative integer" % v)
        cfg["retries"] = int(v)
    v = get("upstash-retry-delay")
    if v is not None:
        try:
            cfg["retry_delay"] = RetryDelayExpr(v)
        except ValueError as e:
            raise ApiError(400, "invalid Upstash-Retry-Delay: %r: %s" % (v, e))
    v = get("upstash-delay")
    if v is not None:
        cfg["delay"] = parse_duration(v, "Upstash-Delay")
    v = get("upstash-not-before")
    if v is not None:
        v = v.strip()
        if not re.match(r"^[0-9]{1,15}$", v):
            raise ApiError(400, "invalid Upstash-Not-Before: %r is not unix seconds" % v)
        cfg["not_before"] = int(v)
    v = get("upstash-timeout")
    if v is not None:
        t = parse_duration(v, "Upstash-Timeout")
        if t <= 0:
            raise ApiError(400, "invalid Upstash-Timeout: must be positive")
        cfg["timeout"] = t
    v = get("upstash-method")
    if v is not None:
        m = v.strip().upper()
        if m not in METHODS:
            raise ApiError(400, "invalid Upstash-Method: %r (want one of %s)" % (v, ", ".join(METHODS)))
        cfg["method"] = m
    v = get("upstash-callback")
    if v is not None:
        cfg["callback"] = parse_http_url(v, "Upstash-Callback")
    v = get("upstash-failure-callback")
    if v is not None:
        cfg["failure_callback"] = parse_http_url(v, "Upstash-Failure-Callback")
    v = get("upstash-deduplication-id")
    if v is not None:
        if not v.strip():
            raise ApiError(400, "invalid Upstash-Deduplication-Id: empty")
        cfg["dedup_id"] = v.strip()
    v = get("upstash-content-based-deduplication")
    if v is not None:
        cfg["content_dedup"] = parse_bool(v, "Upstash-Content-Based-Deduplication")
    v = get("upstash-label")
    if v is not None:
        labels = [x.strip() for x in v.split(",") if x.strip()]
        if not labels:
            raise ApiError(400, "invalid Upstash-Label: empty")
        cfg["labels"] = labels
    key = get("upstash-flow-control-key")
    val = get("upstash-flow-control-value")
    if val is not None and key is None:
        raise ApiError(400, "invalid Upstash-Flow-Control-Value: Upstash-Flow-Control-Key is required with it")
    if key is not None:
        if not key.strip():
            raise ApiError(400, "invalid Upstash-Flow-Control-Key: empty")
        cfg["flow_key"] = key.strip()
        cfg["flow"] = parse_flow_value(val) if val is not None else {}
    v = get("upstash-redact-fields")
    if v is not None:
        cfg["redact"] = parse_redact(v)
    v = get("upstash-header-forward")
    if v is not None:
        cfg["header_forward"] = parse_bool(v, "Upstash-Header-Forward")
    return cfg


def parse_multi(pairs, key):
    vals = []
    for k, v in pairs:
        if k == key:
            vals.extend(x.strip() for x in v.split(",") if x.strip())
    return vals


def parse_int_param(value, name, lo=None, hi=None):
    v = value.strip()
    if not re.match(r"^-?[0-9]{1,18}$", v):
        raise ApiError(400, "invalid %s: %r is not an integer" % (name, value))
    n = int(v)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ApiError(400, "invalid %s: %d out of range [%s, %s]" % (name, n, lo, hi))
    return n


# How a bulk request says what it targets.  Filters are QStash's names; the
# kind says how a value is read: "strings" and "ints" are multi-value (repeated
# keys or comma-separated, OR within a filter), "int" takes the last value.
DLQ_FILTERS = {
    "messageId": "strings", "url": "strings", "topicName": "strings",
    "scheduleId": "strings", "queueName": "strings", "callerIp": "strings",
    "label": "strings", "flowControlKey": "strings", "responseStatus": "ints",
    "fromDate": "int", "toDate": "int",
}
MESSAGE_FILTERS = {
    "url": "strings", "host": "strings", "path": "strings", "topicName": "strings",
    "scheduleId": "strings", "queueName": "strings", "callerIp": "strings",
    "callerIP": "strings",  # deprecated spelling, same filter
    "label": "strings", "flowControlKey": "strings", "fromDate": "int", "toDate": "int",
}
LOG_STATES = ("CREATED", "ACTIVE", "RETRY", "ERROR", "DELIVERED", "FAILED",
              "CANCEL_REQUESTED", "CANCELLED")
# the state filter's shorthand: a message on its way
IN_PROGRESS = ("ACTIVE", "RETRY", "ERROR")
LOG_FILTERS = dict(MESSAGE_FILTERS, messageId="strings", state="strings",
                   urlGroup="strings")  # urlGroup: topicName's newer name
# Filter spellings that mean another filter.
FILTER_ALIASES = {"callerIP": "callerIp", "urlGroup": "topicName"}


def parse_int_cursor(value):
    if not re.match(r"^[0-9]{1,18}$", value):
        raise ApiError(400, "invalid cursor %r" % value)
    return int(value)


def parse_log_cursor(value):
    """A logs cursor, "<time ms>-<seq>" of the last entry of the previous
    page: returns the seq, the page goes on strictly after it."""
    m = re.match(r"^([0-9]{1,15})-([0-9]{1,18})$", value)
    if not m:
        raise ApiError(400, "invalid cursor %r" % value)
    return int(m.group(2))


# Per endpoint: the id-list key, its filters, whether unknown keys and empty
# values are refused and a JSON body {"<ids>": [...]} is read (bulk actions),
# whether unknown keys alone are refused (lists), the count limits (default
# None = every match), whether it pages and how its cursor is read.
DLQ_LIST = {"ids": "dlqIds", "filters": DLQ_FILTERS, "strict": False, "known_only": False,
            "max_count": 100, "default_count": 100, "paged": True, "cursor": parse_int_cursor}
DLQ_BULK = dict(DLQ_LIST, strict=True)
MESSAGE_CANCEL = {"ids": "messageIds", "filters": MESSAGE_FILTERS, "strict": True,
                  "known_only": True, "max_count": 500, "default_count": None, "paged": False}
# GET /v2/logs: messageIds (qstash-js sends them at the root) is one more
# messageId filter; count up to 1000 as qstash-js documents
LOG_LIST = {"ids": "messageIds", "filters": LOG_FILTERS, "strict": False, "known_only": True,
            "max_count": 1000, "default_count": 100, "paged": True, "cursor": parse_log_cursor}

EMPTY_IDS = ("empty %s: an empty id list is refused, it would mean every message "
             "(to target every message, send no filter at all)")


def parse_ids_body(body, key):
    """Ids of a JSON body {"<key>": [...]} (the form the Python and Go SDKs
    send), or None when there is no body.  Anything else in a body is a 400:
    a body that was ignored would leave no filter, which means everything."""
    if not body.strip():
        return None
    want = 'want {"%s": ["id", ...]}' % key
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid JSON body: " + want)
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid JSON body: " + want)
    for k in doc:
        if k != key:
            raise ApiError(400, "unknown field %r in the JSON body: %s" % (k, want))
    ids = doc.get(key)
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ApiError(400, "invalid %s in the JSON body: %s" % (key, want))
    if not ids:
        raise ApiError(400, EMPTY_IDS % key)
    return ids


def parse_selection(query, body, spec):
    """Parse a bulk or list request: {"ids": [...] or None, "filters", "count", "cursor"}."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    ids_key = spec["ids"]
    if spec["strict"] or spec["known_only"]:
        known = set(spec["filters"]) | {ids_key, "count", "qstash_token"}
        if spec["paged"]:
            known.add("cursor")
        for k, v in pairs:
            if k not in known:
                raise ApiError(400, "unknown query parameter %r" % k)
            if spec["strict"] and k in spec["filters"] and not [x for x in v.split(",") if x.strip()]:
                raise ApiError(400, "query parameter %r has no value "
                                    "(to target every message, send no filter at all)" % k)
    ids = None
    if any(k == ids_key for k, _ in pairs):
        ids = parse_multi(pairs, ids_key)
        if not ids:
            raise ApiError(400, EMPTY_IDS % ids_key)
    if spec["strict"]:
        body_ids = parse_ids_body(body, ids_key)
        if body_ids is not None:
            ids = (ids or []) + body_ids
    filters = {}
    for key, kind in spec["filters"].items():
        if kind == "int":
            vals = [v for k, v in pairs if k == key and v.strip()]
            if vals:
                filters[key] = parse_int_param(vals[-1], key)
            continue
        vals = parse_multi(pairs, key)
        if vals:
            filters[key] = set(vals) if kind == "strings" else {parse_int_param(x, key) for x in vals}
    for alias, key in FILTER_ALIASES.items():
        if alias in filters:
            filters.setdefault(key, set()).update(filters.pop(alias))
    count = spec["default_count"]
    cvals = [v for k, v in pairs if k == "count"]
    if cvals:
        count = parse_int_param(cvals[-1], "count", 1, spec["max_count"])
    cursor = None
    cur = [v for k, v in pairs if k == "cursor" and v != ""] if spec["paged"] else []
    if cur:
        cursor = spec["cursor"](cur[-1])
    return {"filters": filters, "ids": ids, "count": count, "cursor": cursor}


BATCH_FIELDS = ("destination", "headers", "body", "queue")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_batch(body):
    """The messages of a batch: [(destination, queue or None, [(name, value)], body bytes)]."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid JSON body: want an array of messages")
    if not isinstance(doc, list):
        raise ApiError(400, "invalid JSON body: want an array of messages")
    if not doc:
        raise ApiError(400, "empty batch: send at least one message")
    out = []
    for i, item in enumerate(doc):
        where = "message %d" % i
        if not isinstance(item, dict):
            raise ApiError(400, "%s: must be an object" % where)
        for k in item:
            if k not in BATCH_FIELDS:
                raise ApiError(400, "%s: unknown field %r (want %s)" % (where, k, ", ".join(BATCH_FIELDS)))
        dest = item.get("destination")
        if not isinstance(dest, str) or not dest:
            raise ApiError(400, "%s: destination is required (a URL or a URL group name)" % where)
        headers = item.get("headers")
        if headers is None:
            headers = {}
        if not isinstance(headers, dict):
            raise ApiError(400, "%s: headers must be an object of strings" % where)
        pairs = []
        for n, v in headers.items():
            if not HEADER_NAME_RE.match(n) or not isinstance(v, str) or re.search(r"[\r\n\0]", v):
                raise ApiError(400, "%s: invalid header %r" % (where, n))
            pairs.append((n, v))
        data = item.get("body")
        if data is None:
            data = ""
        if not isinstance(data, str):
            raise ApiError(400, "%s: body must be a string" % where)
        queue = item.get("queue")
        if queue is not None and not isinstance(queue, str):
            raise ApiError(400, "%s: queue must be a string" % where)
        out.append((dest, queue, pairs, data.encode("utf-8")))
    return out


def header_map(pairs):
    out = {}
    for n, v in pairs:
        out.setdefault(n, []).append(v)
    return out


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

class Message:
    FIELDS = ("url", "topic_name", "endpoint_name", "method", "content_type", "fwd", "body",
              "max_retries", "retry_delay", "callback", "failure_callback", "callback_fwd",
              "failure_callback_fwd", "queue_name", "caller_ip", "labels", "flow_key",
              "parallelism", "rate", "period", "timeout", "redact", "schedule_id")

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.get(f))
        self.id = new_message_id()
        self.created_ms = kw["created_ms"]
        self.not_before_ms = kw["not_before_ms"]
        self.retried = 0
        self.gen = kw["gen"]
        self.state = "CREATED"
        self.cancelled = False
        self._log_base = None

    def fields(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    def wire_headers(self):
        """(name, value) pairs as the destination receives them (before Upstash-* extras)."""
        out = []
        if self.content_type is not None:
            out.append(("Content-Type", self.content_type))
        out.extend(self.fwd or [])
        return out

    def view(self, redacted=True):
        d = {"messageId": self.id, "url": self.url}
        if self.topic_name:
            d["topicName"] = self.topic_name
        if self.endpoint_name:
            d["endpointName"] = self.endpoint_name
        d["method"] = self.method
        red = self.redact if redacted else None
        d["header"] = self.header_view(red)
        if red and red["body"]:
            d["body"] = "REDACTED:" + sha256_hex(self.body)
        else:
            text = utf8_or_none(self.body)
            if text is None:
                d["bodyBase64"] = b64(self.body)
            else:
                d["body"] = text
        d["maxRetries"] = self.max_retries
        d["notBefore"] = self.not_before_ms
        d["createdAt"] = self.created_ms
        if self.callback:
            d["callback"] = self.callback
        if self.failure_callback:
            d["failureCallback"] = self.failure_callback
        if self.queue_name:
            d["queueName"] = self.queue_name
        if self.schedule_id:
            d["scheduleId"] = self.schedule_id
        d["callerIP"] = self.caller_ip
        if self.labels:
            d["label"] = self.labels[0]
            d["labels"] = list(self.labels)
        if self.flow_key:
            d["flowControlKey"] = self.flow_key
            for k in ("rate", "period", "parallelism"):
                if getattr(self, k) is not None:
                    d[k] = getattr(self, k)
        if self.retry_delay is not None:
            d["retryDelayExpression"] = self.retry_delay.text
        return d

    def header_view(self, red):
        """The headers as {Name: [values]}, redacted as `red` says (None: not)."""
        hdrs = []
        for n, v in self.wire_headers():
            if red and (red["all_headers"] or n.lower() in red["names"]):
                v = "REDACTED:" + sha256_hex(v)
            hdrs.append((n, v))
        return header_map(hdrs)

    def log_base(self):
        """The fields every log entry of this message carries (computed once:
        a message's fields do not change)."""
        if self._log_base is None:
            d = {"url": self.url}
            if self.topic_name:
                d["topicName"] = self.topic_name
            if self.endpoint_name:
                d["endpointName"] = self.endpoint_name
            if self.queue_name:
                d["queueName"] = self.queue_name
            if self.schedule_id:
                d["scheduleId"] = self.schedule_id
            d["header"] = self.header_view(self.redact)
            if self.redact and self.redact["body"]:
                d["body"] = b64(("REDACTED:" + sha256_hex(self.body)).encode("ascii"))
            else:
                d["body"] = b64(self.body)
            if self.labels:
                d["label"] = self.labels[0]
                d["labels"] = list(self.labels)
            self._log_base = d
        return self._log_base

    def matches(self, f):
        """The filters of a bulk cancel (see MESSAGE_FILTERS)."""
        checks = (
            ("url", (self.url,)), ("topicName", (self.topic_name,)),
            ("scheduleId", (self.schedule_id,)), ("queueName", (self.queue_name,)),
            ("callerIp", (self.caller_ip,)), ("flowControlKey", (self.flow_key,)),
            ("label", self.labels or ()),
        )
        for key, values in checks:
            if key in f and not any(v in f[key] for v in values):
                return False
        if "host" not in f and "path" not in f:
            return self._dates_match(f)
        parts = urllib.parse.urlsplit(self.url)
        host = (parts.hostname or "").lower()
        if "path" in f and (parts.path or "/") not in f["path"]:
            return False
        if "host" in f:
            # the host name, with or without the URL's port
            names = {host, "%s:%s" % (host, parts.port) if parts.port else host}
            if not names & {h.lower() for h in f["host"]}:
                return False
        return self._dates_match(f)

    def _dates_match(self, f):
        if "fromDate" in f and self.created_ms < f["fromDate"]:
            return False
        if "toDate" in f and self.created_ms > f["toDate"]:
            return False
        return True


class DlqEntry:
    def __init__(self, dlq_id, order, msg, result):
        self.dlq_id = dlq_id
        self.order = order
        self.msg = msg
        self.status = result["status"]
        self.resp_headers = result["headers"]
        self.resp_body = result["body"]

    def view(self):
        d = {"dlqId": self.dlq_id}
        d.update(self.msg.view())
        d["responseStatus"] = self.status
        d["responseHeader"] = header_map(self.resp_headers)
        text = utf8_or_none(self.resp_body)
        if text is None:
            d["responseBodyBase64"] = b64(self.resp_body)
        else:
            d["responseBody"] = text
        return d

    def matches(self, f):
        m = self.msg
        checks = (
            ("messageId", m.id), ("url", m.url), ("topicName", m.topic_name),
            ("scheduleId", m.schedule_id), ("queueName", m.queue_name),
            ("callerIp", m.caller_ip), ("flowControlKey", m.flow_key),
            ("responseStatus", self.status),
        )
        for key, value in checks:
            if key in f and value not in f[key]:
                return False
        if "label" in f and not any(l in f["label"] for l in (m.labels or ())):
            return False
        if "fromDate" in f and m.created_ms < f["fromDate"]:
            return False
        if "toDate" in f and m.created_ms > f["toDate"]:
            return False
        return True


# --------------------------------------------------------------------------
# Outgoing HTTP
# --------------------------------------------------------------------------

def http_send(url, method, headers, body, timeout):
    """One HTTP request, no proxy.  Returns dict(status, headers, body, error)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = None
    try:
        if parts.scheme.lower() == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conn.putrequest(method, target, skip_accept_encoding=True)
        for n, v in headers:
            conn.putheader(n, v)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read(MAX_RESPONSE_BODY)
        return {"status": resp.status, "headers": resp.getheaders(), "body": data, "error": None}
    except (OSError, http.client.HTTPException, ValueError) as e:
        return {"status": 0, "headers": [], "body": b"", "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------

class Emulator:
    def __init__(self, token, time_scale, burst_limit, quiet):
        self.token = token
        self.time_scale = time_scale
        self.burst_limit = burst_limit
        self.quiet = quiet
        self.cond = threading.Condition(threading.RLock())
        self.stopping = False
        self.seq = 0            # DLQ id sequence and heap tie-breaker
        self.gen = 0
        self.burst = {}         # token -> [window second, count]
        self.log_seq = 0        # log entry sequence, never reset (cursors stay unambiguous)
        self._clear()

    def _clear(self):
        self.requests = {}      # "METHOD route" -> API requests served
        self.messages = {}      # in flight: id -> Message
        self.dlq = {}           # dlqId -> DlqEntry, insertion (= age) order
        self.deliveries = []
        self.dedup = {}         # key -> (expires at, [(messageId, url)])
        self.topics = {}        # name -> {"createdAt", "updatedAt", "endpoints": [{url, name}]}
        self.heap = []
        # GET /v2/logs: [(seq, time ms, message, entry)] in append order; seqs
        # are consecutive, so the entry of seq s is at s - events[0][0]
        self.events = []
        self.events_time = 0    # entry times never go back

    def log(self, text):
        if not self.quiet:
            sys.stderr.write("qstash-dev: %s\n" % text)
            sys.stderr.flush()

    # ---------------------------------------------------------- scheduling

    def start(self):
        t = threading.Thread(target=self._scheduler, name="scheduler", daemon=True)
        t.start()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _push(self, msg, wait_s):
        self.seq += 1
        heapq.heappush(self.heap, (time.monotonic() + max(0.0, wait_s), self.seq, msg))
        self.cond.notify_all()

    def _scheduler(self):
        with self.cond:
            while not self.stopping:
                now = time.monotonic()
                while self.heap and self.heap[0][0] <= now:
                    _, _, msg = heapq.heappop(self.heap)
                    if msg.cancelled or msg.gen != self.gen or self.messages.get(msg.id) is not msg:
                        continue
                    msg.state = "ACTIVE"
                    self._event(msg, "ACTIVE")
                    threading.Thread(target=self._deliver, args=(msg,), daemon=True).start()
                wait = (self.heap[0][0] - now) if self.heap else None
                self.cond.wait(wait)

    def _record(self, gen, kind, msg_id, url, method, headers, body, retried, result):
        rec = {"kind": kind, "messageId": msg_id, "url": url, "method": method,
               "status": result["status"], "retried": retried,
               "headers": {}, "t": time.time()}
        for n, v in headers:
            rec["headers"][n] = (rec["headers"][n] + ", " + v) if n in rec["headers"] else v
        text = utf8_or_none(body)
        if text is None:
            rec["bodyBase64"] = b64(body)
        else:
            rec["body"] = text
        if result["error"]:
            rec["error"] = result["error"]
        with self.cond:
            if gen != self.gen:   # finished after a reset: forget it
                return
            self.deliveries.append(rec)
            if len(self.deliveries) > MAX_DELIVERY_LOG:
                del self.deliveries[: len(self.deliveries) - MAX_DELIVERY_LOG]

    def _deliver(self, msg):
        retried = msg.retried
        headers = [(n, v) for n, v in msg.wire_headers() if n.lower() not in NO_SEND]
        headers += [
            ("Upstash-Message-Id", msg.id),
            ("Upstash-Retried", str(retried)),
            ("Upstash-Signature", sign_jwt(msg.url, msg.body)),
            ("User-Agent", USER_AGENT),
            ("Upstash-Caller-Ip", msg.caller_ip),
            ("upstash-region", REGION),
        ]
        if msg.topic_name:
            headers.append(("Upstash-Topic-Name", msg.topic_name))
        if msg.schedule_id:
            headers.append(("Upstash-Schedule-Id", msg.schedule_id))
        timeout = msg.timeout or DEFAULT_DELIVERY_TIMEOUT_S
        result = http_send(msg.url, msg.method, headers, msg.body, timeout)
        self._record(msg.gen, "message", msg.id, msg.url, msg.method, headers, msg.body, retried, result)
        self.log("deliver %s %s %s retried=%d -> %s%s" % (
            msg.id, msg.method, msg.url, retried, result["status"],
            " (%s)" % result["error"] if result["error"] else ""))

        dlq_entry = None
        with self.cond:
            if msg.gen != self.gen or msg.cancelled or self.messages.get(msg.id) is not msg:
                return
            status = result["status"]
            answered = {"responseStatus": status} if status else {}
            if 200 <= status < 300:
                msg.state = "DELIVERED"
                del self.messages[msg.id]
                self._event(msg, "DELIVERED", answered)
            else:
                failure = dict(answered, error=result["error"] or "status %d" % status)
                self._event(msg, "ERROR", failure)
                non_retryable = status == 489 and any(
                    n.lower() == "upstash-nonretryable-error" and v.strip().lower() == "true"
                    for n, v in result["headers"])
                if non_retryable or retried >= msg.max_retries:
                    msg.state = "FAILED"
                    del self.messages[msg.id]
                    dlq_entry = self._add_dlq(msg, result)
                    self._event(msg, "FAILED", dict(failure, dlqId=dlq_entry.dlq_id))
                else:
                    msg.state = "RETRY"
                    delay_ms = None
                    if msg.retry_delay is not None:
                        delay_ms = msg.retry_delay.evaluate(retried)
                    if delay_ms is None:
                        delay_ms = default_backoff_ms(retried + 1)
                    msg.retried = retried + 1
                    # nextDeliveryTime as QStash would say it (unscaled)
                    self._event(msg, "RETRY", {"nextDeliveryTime": now_ms() + int(delay_ms)})
                    self._push(msg, delay_ms / 1000.0 * self.time_scale)
        if msg.callback:
            self._callback(msg, result, retried, None)
        if dlq_entry is not None and msg.failure_callback:
            self._callback(msg, result, retried, dlq_entry.dlq_id)

    def _event(self, msg, state, extra=None):
        """Lock held.  Append a log entry of `msg` (GET /v2/logs)."""
        if msg.gen != self.gen:   # a message from before a reset: forget it
            return
        self.log_seq += 1
        t = self.events_time = max(self.events_time, now_ms())
        entry = {"time": t, "state": state, "messageId": msg.id}
        if extra:
            entry.update(extra)
        entry.update(msg.log_base())
        self.events.append((self.log_seq, t, msg, entry))
        if len(self.events) > MAX_LOG_ENTRIES:
            del self.events[: len(self.events) - MAX_LOG_ENTRIES]

    def _add_dlq(self, msg, result):
        self.seq += 1
        dlq_id = "%d-%d" % (now_ms(), self.seq)
        entry = DlqEntry(dlq_id, self.seq, msg, result)
        self.dlq[dlq_id] = entry
        return entry

    def _callback(self, msg, result, retried, dlq_id):
        """Callback / failure callback: one best-effort POST."""
        payload = {
            "status": result["status"],
            "header": header_map(result["headers"]),
            "body": b64(result["body"]),
            "retried": retried,
            "maxRetries": msg.max_retries,
        }
        if dlq_id is not None:
            payload["dlqId"] = dlq_id
        payload["sourceMessageId"] = msg.id
        if msg.topic_name:
            payload["topicName"] = msg.topic_name
        if msg.endpoint_name:
            payload["endpointName"] = msg.endpoint_name
        payload.update({
            "url": msg.url,
            "method": msg.method,
            "sourceHeader": header_map(msg.wire_headers()),
            "sourceBody": b64(msg.body),
            "notBefore": msg.not_before_ms,
            "createdAt": msg.created_ms,
        })
        if msg.schedule_id:
            payload["scheduleId"] = msg.schedule_id
        payload["callerIP"] = msg.caller_ip
        if dlq_id is None:
            url, kind, extra = msg.callback, "callback", msg.callback_fwd or []
        else:
            url, kind, extra = msg.failure_callback, "failureCallback", msg.failure_callback_fwd or []
        body = json.dumps(payload).encode("utf-8")
        headers = [("Content-Type", "application/json")] + [
            (n, v) for n, v in extra if n.lower() not in NO_SEND]
        headers += [
            ("Upstash-Message-Id", new_message_id()),
            ("Upstash-Retried", "0"),
            ("Upstash-Signature", sign_jwt(url, body)),
            ("User-Agent", USER_AGENT),
            ("Upstash-Caller-Ip", msg.caller_ip),
            ("upstash-region", REGION),
        ]

        def run():
            res = http_send(url, "POST", headers, body, CALLBACK_TIMEOUT_S)
            self._record(msg.gen, kind, msg.id, url, "POST", headers, body, 0, res)
            self.log("%s for %s -> %s" % (kind, msg.id, res["status"]))

        threading.Thread(target=run, daemon=True).start()

    # ---------------------------------------------------------- messages

    def _new_message(self, fields, cfg, caller_ip):
        """Build and schedule a message from base fields + configuration overrides.

        Must be called with the lock held."""
        f = dict(fields)
        for key, attr in (("retries", "max_retries"), ("retry_delay", "retry_delay"),
                          ("timeout", "timeout"), ("method", "method"),
                          ("callback", "callback"), ("failure_callback", "failure_callback"),
                          ("labels", "labels"), ("redact", "redact")):
            if key in cfg:
                f[attr] = cfg[key]
        if "callback_fwd" in cfg:
            f["callback_fwd"] = cfg["callback_fwd"]
        if "failure_callback_fwd" in cfg:
            f["failure_callback_fwd"] = cfg["failure_callback_fwd"]
        if "flow_key" in cfg:
            f["flow_key"] = cfg["flow_key"]
            for k in ("parallelism", "rate", "period"):
                f[k] = cfg["flow"].get(k)
        if f.get("max_retries") is None:
            f["max_retries"] = DEFAULT_RETRIES
        if not f.get("method"):
            f["method"] = "POST"
        if f.get("caller_ip") is None:
            f["caller_ip"] = caller_ip
        created = now_ms()
        if "not_before" in cfg:
            not_before = cfg["not_before"] * 1000
        elif "delay" in cfg:
            not_before = created + cfg["delay"] * 1000
        else:
            not_before = created
        msg = Message(created_ms=created, not_before_ms=not_before, gen=self.gen, **f)
        self.messages[msg.id] = msg
        self._event(msg, "CREATED", {"nextDeliveryTime": not_before} if not_before > created else None)
        wait_s = max(0.0, (not_before - created) / 1000.0) * self.time_scale
        self._push(msg, wait_s)
        self.log("new message %s -> %s (maxRetries=%d, wait=%.3fs)" % (
            msg.id, msg.url, msg.max_retries, wait_s))
        return msg

    def _dedup_key(self, cfg, destination, content_type, fwd, body):
        if "dedup_id" in cfg:
            return "id:" + cfg["dedup_id"]
        if cfg.get("content_dedup"):
            h = hashlib.sha256()
            for part in (destination, content_type or ""):
                h.update(part.encode("utf-8") + b"\0")
            for n, v in sorted((n.lower(), v) for n, v in fwd):
                h.update(("%s:%s" % (n, v)).encode("utf-8") + b"\0")
            h.update(body)
            return "content:" + h.hexdigest()
        return None

    def _dedup_lookup(self, key):
        if key is None:
            return None
        now = time.time()
        for k in [k for k, (exp, _) in self.dedup.items() if exp <= now]:
            del self.dedup[k]
        hit = self.dedup.get(key)
        return hit[1] if hit else None

    def publish(self, destination, queue_name, headers, body, caller_ip):
        cfg = parse_config(headers)
        content_type = None
        for n, v in headers:
            if n.lower() == "content-type":
                content_type = v
                break
        fwd = list(cfg.get("fwd", []))
        if cfg.get("header_forward"):
            fwd = [(n, v) for n, v in headers
                   if not n.lower().startswith("upstash-") and n.lower() not in NO_FORWARD] + fwd
        base = {"content_type": content_type, "fwd": fwd, "body": body, "queue_name": queue_name}
        is_url = is_http_url(destination)
        if not is_url and not NAME_RE.match(destination):
            raise ApiError(400, "invalid destination %r: must be an http(s) URL or a URL group name" % destination)
        with self.cond:
            if is_url:
                targets = [(destination, None, None)]
            else:
                topic = self.topics.get(destination)
                if topic is None:
                    raise ApiError(404, "url group %s not found" % destination)
                if not topic["endpoints"]:
                    raise ApiError(400, "url group %s has no endpoints" % destination)
                targets = [(ep["url"], destination, ep.get("name")) for ep in topic["endpoints"]]
            key = self._dedup_key(cfg, destination, content_type, fwd, body)
            hit = self._dedup_lookup(key)
            if hit is not None:
                if is_url:
                    return 202, {"messageId": hit[0][0], "url": hit[0][1], "deduplicated": True}
                return 202, [{"messageId": mid, "url": u, "deduplicated": True} for mid, u in hit]
            made = []
            for url, topic_name, endpoint_name in targets:
                f = dict(base, url=url, topic_name=topic_name, endpoint_name=endpoint_name)
                msg = self._new_message(f, cfg, caller_ip)
                made.append((msg.id, url))
            if key is not None:
                self.dedup[key] = (time.time() + DEDUP_WINDOW_S, made)
        if is_url:
            return 200, {"messageId": made[0][0], "url": made[0][1]}
        return 200, [{"messageId": mid, "url": u} for mid, u in made]

    def batch(self, body, caller_ip):
        """POST /v2/batch: each message as a publish of its own.  A malformed
        request is a 400 and sends nothing; a message that cannot be published
        (bad header, unknown URL group) gets {"error"} in its place and the
        others are still sent, as QStash documents."""
        out = []
        for destination, queue_name, headers, data in parse_batch(body):
            try:
                if queue_name is not None and not NAME_RE.match(queue_name):
                    raise ApiError(400, "invalid queue name %r" % queue_name)
                out.append(self.publish(destination, queue_name, headers, data, caller_ip)[1])
            except ApiError as e:
                out.append({"error": e.message})
        return 200, out

    def _retry_entry(self, entry, cfg):
        """Lock held.  New message from a DLQ entry; removes the entry."""
        old = entry.msg
        fields = old.fields()
        if "fwd" in cfg:
            names = {n.lower() for n, _ in cfg["fwd"]}
            fields["fwd"] = [(n, v) for n, v in (old.fwd or []) if n.lower() not in names] + cfg["fwd"]
        del self.dlq[entry.dlq_id]
        key = self._dedup_key(cfg, old.topic_name or old.url, old.content_type, fields["fwd"] or [], old.body)
        hit = self._dedup_lookup(key)
        if hit is not None:
            return {"messageId": hit[0][0], "deduplicated": True}
        msg = self._new_message(fields, cfg, old.caller_ip)
        if key is not None:
            self.dedup[key] = (time.time() + DEDUP_WINDOW_S, [(msg.id, msg.url)])
        return {"messageId": msg.id}

    # ---------------------------------------------------------- DLQ

    def _select(self, q):
        """Entries for a parsed DLQ query: (entries, next cursor or None)."""
        if q["ids"] is not None:
            seen, out = set(), []
            for i in q["ids"]:
                if i in self.dlq and i not in seen:
                    seen.add(i)
                    out.append(self.dlq[i])
            return out, None
        out = []
        for e in self.dlq.values():
            if e.order < (q["cursor"] or 0) or not e.matches(q["filters"]):
                continue
            if len(out) == q["count"]:
                return out, str(e.order)
            out.append(e)
        return out, None

    def dlq_list(self, query):
        q = parse_selection(query, b"", DLQ_LIST)
        with self.cond:
            entries, cursor = self._select(q)
            res = {"messages": [e.view() for e in entries]}
        if cursor is not None:
            res["cursor"] = cursor
        return 200, res

    def dlq_get(self, dlq_id):
        with self.cond:
            e = self.dlq.get(dlq_id)
            if e is None:
                raise ApiError(404, "message not found in dlq")
            return 200, e.view()

    def dlq_delete(self, dlq_id):
        with self.cond:
            if self.dlq.pop(dlq_id, None) is None:
                raise ApiError(404, "message not found in dlq")
        return 200, None

    def dlq_bulk_delete(self, query, body):
        q = parse_selection(query, body, DLQ_BULK)
        with self.cond:
            entries, cursor = self._select(q)
            for e in entries:
                del self.dlq[e.dlq_id]
        res = {"deleted": len(entries)}
        if cursor is not None:
            res["cursor"] = cursor
        return 200, res

    def dlq_retry(self, dlq_id, headers):
        cfg = parse_config(headers)
        with self.cond:
            e = self.dlq.get(dlq_id)
            if e is None:
                raise ApiError(404, "message not found in dlq")
            return 201, self._retry_entry(e, cfg)

    def dlq_bulk_retry(self, query, body, headers):
        q = parse_selection(query, body, DLQ_BULK)
        cfg = parse_config(headers)
        with self.cond:
            if q["ids"] is not None and any(i not in self.dlq for i in q["ids"]):
                raise ApiError(404, "Some messages were not found in the DLQ")
            entries, cursor = self._select(q)
            responses = [self._retry_entry(e, cfg) for e in entries]
        res = {"responses": responses}
        if cursor is not None:
            res["cursor"] = cursor
        return 201, res

    # ---------------------------------------------------------- misc endpoints

    def message_get(self, msg_id):
        with self.cond:
            m = self.messages.get(msg_id)
            if m is None:
                raise ApiError(404, "message not found")
            return 200, m.view()

    def _cancel(self, m):
        """Lock held.  The scheduler skips a cancelled message; a delivery in
        flight finishes, but its outcome is dropped (no retry, no DLQ)."""
        del self.messages[m.id]
        m.cancelled = True
        self._event(m, "CANCEL_REQUESTED")
        m.state = "CANCELLED"
        self._event(m, "CANCELLED")

    def message_cancel(self, msg_id):
        # 200 {"cancelled": 1}: the official SDK reads the count from it
        with self.cond:
            m = self.messages.get(msg_id)
            if m is None:
                raise ApiError(404, "message not found")
            self._cancel(m)
        return 200, {"cancelled": 1}

    def messages_cancel(self, query, body):
        """Bulk cancel: the ids given (unknown ones skipped), or the oldest
        `count` messages matching the filters (every match without count)."""
        q = parse_selection(query, body, MESSAGE_CANCEL)
        with self.cond:
            if q["ids"] is not None:
                targets = [self.messages[i] for i in dict.fromkeys(q["ids"]) if i in self.messages]
            else:
                targets = [m for m in self.messages.values() if m.matches(q["filters"])]
                if q["count"] is not None:
                    targets = targets[:q["count"]]
            for m in targets:
                self._cancel(m)
        return 200, {"cancelled": len(targets)}

    # ---------------------------------------------------------- logs

    def logs_list(self, query):
        """GET /v2/logs (and /v2/events): entries newest first, `count` a page.

        The cursor is "<time>-<seq>" of the page's last entry; the next page
        starts strictly before it, so entries appended meanwhile (newer) are
        neither repeated nor make older ones skipped."""
        q = parse_selection(query, b"", LOG_LIST)
        with self.cond:
            # for GET /__dev/requests: how many messages a client asks
            # about per request, and how many requests follow a cursor
            self.requests["logs messageIds"] = self.requests.get("logs messageIds", 0) + len(q["ids"] or ())
            if q["cursor"]:
                self.requests["logs with cursor"] = self.requests.get("logs with cursor", 0) + 1
        f = q["filters"]
        ids = set(f.pop("messageId", ()))
        if q["ids"] is not None:
            ids.update(q["ids"])
        states = None
        if "state" in f:
            states = set()
            for st in f.pop("state"):
                if st == "IN_PROGRESS":
                    states.update(IN_PROGRESS)
                elif st in LOG_STATES:
                    states.add(st)
                else:
                    raise ApiError(400, "invalid state %r (want one of %s or IN_PROGRESS)" %
                                   (st, ", ".join(LOG_STATES)))
        # dates filter the entry's time, the rest the message's fields
        lo, hi = f.pop("fromDate", None), f.pop("toDate", None)
        count = q["count"]
        out, cursor = [], None
        with self.cond:
            ev = self.events
            i = len(ev) - 1
            if q["cursor"] is not None and ev:
                i = min(i, q["cursor"] - ev[0][0] - 1)
            while i >= 0:
                seq, t, msg, entry = ev[i]
                i -= 1
                if ((ids and msg.id not in ids) or (states is not None and entry["state"] not in states)
                        or (lo is not None and t < lo) or (hi is not None and t > hi)
                        or (f and not msg.matches(f))):
                    continue
                if len(out) == count:   # one more match: there is a next page
                    last = out[-1]
                    cursor = "%d-%d" % (last[0], last[1])
                    break
                out.append((t, seq, entry))
        logs = [e for _, _, e in out]
        res = {"events": logs, "logs": logs}
        if cursor is not None:
            res = dict(cursor=cursor, **res)
        return 200, res

    def topics_list(self):
        with self.cond:
            return 200, [self._topic_view(n) for n in sorted(self.topics)]

    def _topic_view(self, name):
        t = self.topics[name]
        return {"name": name, "createdAt": t["createdAt"], "updatedAt": t["updatedAt"],
                "endpoints": [dict(ep) for ep in t["endpoints"]]}

    def topic_get(self, name):
        with self.cond:
            if name not in self.topics:
                raise ApiError(404, "url group %s not found" % name)
            return 200, self._topic_view(name)

    def topic_delete(self, name):
        with self.cond:
            if self.topics.pop(name, None) is None:
                raise ApiError(404, "url group %s not found" % name)
        return 200, None

    @staticmethod
    def _parse_endpoints(body):
        try:
            doc = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid JSON body")
        eps = doc.get("endpoints") if isinstance(doc, dict) else None
        if not isinstance(eps, list) or not eps:
            raise ApiError(400, "endpoints: a non-empty array is required")
        out = []
        for ep in eps:
            if not isinstance(ep, dict):
                raise ApiError(400, "endpoints: each endpoint must be an object")
            url, name = ep.get("url"), ep.get("name")
            if url is not None and (not isinstance(url, str) or not is_http_url(url)):
                raise ApiError(400, "endpoints: invalid url %r" % (url,))
            if name is not None and (not isinstance(name, str) or not NAME_RE.match(name)):
                raise ApiError(400, "endpoints: invalid name %r" % (name,))
            if url is None and name is None:
                raise ApiError(400, "endpoints: url or name is required")
            out.append({k: v for k, v in (("url", url), ("name", name)) if v is not None})
        return out

    def topic_add_endpoints(self, name, body):
        if not NAME_RE.match(name):
            raise ApiError(400, "invalid url group name %r" % name)
        eps = self._parse_endpoints(body)
        if any("url" not in ep for ep in eps):
            raise ApiError(400, "endpoints: url is required")
        with self.cond:
            t = self.topics.get(name)
            now = now_ms()
            if t is None:
                t = self.topics[name] = {"createdAt": now, "updatedAt": now, "endpoints": []}
            for ep in eps:
                t["endpoints"] = [e for e in t["endpoints"] if e["url"] != ep["url"]]
                t["endpoints"].append(ep)
            t["updatedAt"] = now
        return 200, None

    def topic_remove_endpoints(self, name, body):
        eps = self._parse_endpoints(body)
        with self.cond:
            t = self.topics.get(name)
            if t is None:
                raise ApiError(404, "url group %s not found" % name)
            for ep in eps:
                t["endpoints"] = [e for e in t["endpoints"]
                                  if not (("url" in ep and e["url"] == ep["url"]) or
                                          ("name" in ep and e.get("name") == ep["name"]))]
            t["updatedAt"] = now_ms()
            if not t["endpoints"]:  # QStash deletes a group left without endpoints
                del self.topics[name]
        return 200, None

    def dev_deliveries(self, query):
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        ids = set(parse_multi(pairs, "messageId"))
        urls = set(parse_multi(pairs, "url"))
        with self.cond:
            out = [d for d in self.deliveries
                   if (not ids or d["messageId"] in ids) and (not urls or d["url"] in urls)]
            return 200, [dict(d) for d in out]

    def count_request(self, method, route):
        with self.cond:
            key = "%s %s" % (method, route)
            self.requests[key] = self.requests.get(key, 0) + 1

    def dev_requests(self):
        """GET /__dev/requests: API requests served per method and route
        ("GET logs": 12), since the start or the last reset; benchmarks
        count what a client asked with it."""
        with self.cond:
            return 200, dict(self.requests)

    def dev_reset(self):
        with self.cond:
            self.gen += 1
            for m in self.messages.values():
                m.cancelled = True
            self._clear()
            self.burst = {}
            self.cond.notify_all()
        return 200, {"reset": True}

    # ---------------------------------------------------------- request handling

    def check_burst(self, token):
        """Returns extra headers; raises 429 when over the limit."""
        if not self.burst_limit:
            return []
        with self.cond:
            sec = int(time.time())
            w = self.burst.get(token)
            if w is None or w[0] != sec:
                w = self.burst[token] = [sec, 0]
            w[1] += 1
            remaining = self.burst_limit - w[1]
        headers = [("Burst-RateLimit-Limit", str(self.burst_limit)),
                   ("Burst-RateLimit-Remaining", str(max(0, remaining))),
                   ("Burst-RateLimit-Reset", str(sec + 1))]
        if remaining < 0:
            raise ApiError(429, "burst rate limit exceeded: %d requests per second" % self.burst_limit,
                           headers)
        return headers

    def authorize(self, headers, query_token):
        token = None
        for n, v in headers:
            if n.lower() == "authorization":
                scheme, _, cred = v.strip().partition(" ")
                if scheme.lower() == "bearer":
                    token = cred.strip()
                break
        if token is None:
            token = query_token
        if token is None:
            raise ApiError(401, "authorization required: send 'Authorization: Bearer <token>' or ?qstash_token=")
        if not hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8")):
            raise ApiError(401, "invalid token")
        return token


def split_destination(rest):
    """Split the raw destination of a publish path from a qstash_token query parameter."""
    token = None
    base, sep, query = rest.partition("?")
    if sep:
        kept = []
        for part in query.split("&"):
            k, eq, v = part.partition("=")
            if k == "qstash_token":
                token = urllib.parse.unquote_plus(v)
            else:
                kept.append(part)
        rest = base + ("?" + "&".join(kept) if kept else "")
    low = rest[:10].lower()
    if low.startswith("http%3a") or low.startswith("https%3a"):
        rest = urllib.parse.unquote(rest)
    return rest, token


ROUTES = [
    (re.compile(r"^/v2/keys$"), ("GET",), "keys"),
    (re.compile(r"^/v2/dlq$"), ("GET", "DELETE"), "dlq"),
    (re.compile(r"^/v2/dlq/retry$"), ("POST",), "dlq_bulk_retry"),
    (re.compile(r"^/v2/dlq/retry/([^/]+)$"), ("POST",), "dlq_retry"),
    (re.compile(r"^/v2/dlq/([^/]+)$"), ("GET", "DELETE"), "dlq_one"),
    (re.compile(r"^/v2/messages$"), ("DELETE",), "messages"),
    (re.compile(r"^/v2/messages/([^/]+)$"), ("GET", "DELETE"), "message"),
    (re.compile(r"^/v2/batch$"), ("POST",), "batch"),
    # /v2/logs is QStash's OpenAPI path, /v2/events the older one qstash-js calls
    (re.compile(r"^/v2/(?:logs|events)$"), ("GET",), "logs"),
    (re.compile(r"^/v2/topics$"), ("GET",), "topics"),
    (re.compile(r"^/v2/topics/([^/]+)$"), ("GET", "DELETE"), "topic"),
    # POST is QStash's upsert; PUT is accepted too
    (re.compile(r"^/v2/topics/([^/]+)/endpoints$"), ("POST", "PUT", "DELETE"), "topic_endpoints"),
    (re.compile(r"^/__dev/deliveries$"), ("GET",), "dev_deliveries"),
    (re.compile(r"^/__dev/reset$"), ("POST",), "dev_reset"),
    (re.compile(r"^/__dev/requests$"), ("GET",), "dev_requests"),
]


def handle(emu, method, target, headers, body, client_ip):
    """Route one request.  Returns (status, payload or None, extra headers)."""
    if target.startswith("/v2/publish/") or target.startswith("/v2/enqueue/"):
        if method != "POST":
            raise ApiError(405, "method %s not allowed, use POST" % method, [("Allow", "POST")])
        queue_name = None
        if target.startswith("/v2/publish/"):
            rest = target[len("/v2/publish/"):]
        else:
            queue_name, slash, rest = target[len("/v2/enqueue/"):].partition("/")
            if not slash:
                raise ApiError(404, "not found: %s" % target.split("?")[0])
            if not NAME_RE.match(queue_name):
                raise ApiError(400, "invalid queue name %r" % queue_name)
        destination, query_token = split_destination(rest)
        emu.authorize(headers, query_token)
        status, payload = emu.publish(destination, queue_name, headers, body, client_ip)
        return status, payload, []

    path, _, query = target.partition("?")
    for rx, methods, name in ROUTES:
        m = rx.match(path)
        if m:
            break
    else:
        raise ApiError(404, "not found: %s" % path)
    if method not in methods:
        raise ApiError(405, "method %s not allowed on %s" % (method, path),
                       [("Allow", ", ".join(methods))])
    qtok = [v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k == "qstash_token"]
    token = emu.authorize(headers, qtok[0] if qtok else None)
    # batch, like publish, has no per-second limit in QStash
    extra = [] if name.startswith("dev_") or name == "batch" else emu.check_burst(token)
    arg = urllib.parse.unquote(m.group(1)) if m.groups() else None
    if not name.startswith("dev_"):
        emu.count_request(method, name)

    if name == "keys":
        res = (200, {"current": CURRENT_SIGNING_KEY, "next": NEXT_SIGNING_KEY})
    elif name == "dlq":
        res = emu.dlq_list(query) if method == "GET" else emu.dlq_bulk_delete(query, body)
    elif name == "dlq_one":
        res = emu.dlq_get(arg) if method == "GET" else emu.dlq_delete(arg)
    elif name == "dlq_retry":
        res = emu.dlq_retry(arg, headers)
    elif name == "dlq_bulk_retry":
        res = emu.dlq_bulk_retry(query, body, headers)
    elif name == "message":
        res = emu.message_get(arg) if method == "GET" else emu.message_cancel(arg)
    elif name == "messages":
        res = emu.messages_cancel(query, body)
    elif name == "batch":
        res = emu.batch(body, client_ip)
    elif name == "logs":
        res = emu.logs_list(query)
    elif name == "topics":
        res = emu.topics_list()
    elif name == "topic":
        res = emu.topic_get(arg) if method == "GET" else emu.topic_delete(arg)
    elif name == "topic_endpoints":
        if method == "DELETE":
            res = emu.topic_remove_endpoints(arg, body)
        else:
            res = emu.topic_add_endpoints(arg, body)
    elif name == "dev_deliveries":
        res = emu.dev_deliveries(query)
    elif name == "dev_requests":
        res = emu.dev_requests()
    else:
        res = emu.dev_reset()
    return res[0], res[1], extra


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


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, path)


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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="qstash-dev", description="Local QStash emulator (in-memory).")
    ap.add_argument("--port", type=int, default=None,
                    help="port to listen on (default $QSTASH_DEV_PORT or 8080; 0 = any free port)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--token", default=DEFAULT_TOKEN, help="accepted token (default: the public dev token)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply every delay, backoff and not-before wait by F (default 1.0)")
    ap.add_argument("--burst-limit", type=int, default=0,
                    help="max requests per second per token on non-publish endpoints (default: unlimited)")
    ap.add_argument("--port-file", default=None, help="write the bound port to PATH (atomically)")
    ap.add_argument("--watch-pid", type=int, default=None,
                    help="exit when process PID is gone (for test harnesses)")
    ap.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = ap.parse_args(argv)

    port = args.port
    if port is None:
        env = os.environ.get("QSTASH_DEV_PORT", "").strip()
        try:
            port = int(env) if env else 8080
        except ValueError:
            ap.error("QSTASH_DEV_PORT must be an integer, got %r" % env)
    if not 0 <= port <= 65535:
        ap.error("--port must be 0..65535")
    if args.time_scale < 0 or not math.isfinite(args.time_scale):
        ap.error("--time-scale must be >= 0")
    if args.burst_limit < 0:
        ap.error("--burst-limit must be >= 0")
    if not args.token:
        ap.error("--token must not be empty")

    emu = Emulator(args.token, args.time_scale, args.burst_limit, args.quiet)
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    try:
        server = Server((args.host, port), Handler)
    except OSError as e:
        sys.stderr.write("qstash-dev: cannot listen on %s:%d: %s\n" % (args.host, port, e))
        return 1
    server.emu = emu
    actual = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, actual)
    host = "[%s]" % args.host if ":" in args.host else args.host
    sys.stdout.write("qstash-dev listening on http://%s:%d\n" % (host, actual))
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    emu.start()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    while not stop.wait(0.25):
        if args.watch_pid and not pid_alive(args.watch_pid):
            break
    server.shutdown()
    server.server_close()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
