"""Parsing of request values and query parameters: durations, URLs, names,
booleans, integers; the filters each list or bulk endpoint takes (one table
per endpoint: DLQ_LIST, DLQ_BULK, MESSAGE_CANCEL, LOG_LIST), its cursors, a
bulk body {"<ids>": [...]} (parse_selection); and the body of POST /v2/batch.
The Upstash-* configuration headers are config.py."""

import json
import re
import urllib.parse

from .errors import ApiError


NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DURATION_RE = re.compile(r"^(?:[0-9]+[smhd])+$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def parse_bool(value, field):
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ApiError(400, "invalid %s: %r (want true or false)" % (field, value))


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
