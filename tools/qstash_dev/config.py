"""A message's configuration: what the Upstash-* headers of a publish, a
batch entry or a DLQ retry set (parse_config: retries, Upstash-Retry-Delay
expressions, delay and not-before, timeout, method, callbacks, deduplication,
labels, flow control, redaction, forwarded headers), and the defaults when
they are absent (DEFAULT_RETRIES, the documented backoff).

Upstash-Retry-Delay is evaluated by walking its syntax tree (never eval):
numbers, `retried`, + - * / %, and the functions of RETRY_DELAY_FUNCS."""

import ast
import math
import re

from .errors import ApiError
from .params import parse_bool, parse_duration, parse_http_url


DEFAULT_RETRIES = 3
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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
