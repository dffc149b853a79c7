"""Routing: the table of endpoints (ROUTES: path pattern, methods, name), the
publish and enqueue paths with their raw destination, authorization and
burst counting per route, and which Emulator method answers (a schedule's
create path, like publish's, holds a raw destination).  A new
endpoint (queues, schedules) is one row here and one branch in handle()."""

import re
import urllib.parse

from .errors import ApiError
from .params import NAME_RE


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


# POST /v2/schedules/{id}/pause or /resume, not a create: an id has no ':'
# (a URL destination has) and a group name no '/'.
SCHEDULE_ACTION = re.compile(r"^/v2/schedules/[A-Za-z0-9_.-]+/(?:pause|resume)(?:\?|$)")

ROUTES = [
    (re.compile(r"^/v2/keys$"), ("GET",), "keys"),
    # qstash-go calls POST /v2/rotate, which QStash documents nowhere: not answered
    (re.compile(r"^/v2/keys/rotate$"), ("POST",), "keys_rotate"),
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
    (re.compile(r"^/v2/flowControl$"), ("GET",), "flow_list"),
    (re.compile(r"^/v2/flowControl/([^/]+)$"), ("GET",), "flow"),
    (re.compile(r"^/v2/flowControl/([^/]+)/(pause|resume|pin|unpin|resetRate)$"), ("POST",), "flow_action"),
    (re.compile(r"^/v2/globalParallelism$"), ("GET",), "global_parallelism"),
    (re.compile(r"^/v2/queues$"), ("GET", "POST"), "queues"),
    (re.compile(r"^/v2/queues/([^/]+)$"), ("GET", "DELETE"), "queue"),
    (re.compile(r"^/v2/queues/([^/]+)/pause$"), ("POST",), "queue_pause"),
    (re.compile(r"^/v2/queues/([^/]+)/resume$"), ("POST",), "queue_resume"),
    # POST /v2/schedules/{destination} (any other POST under /v2/schedules/) creates
    (re.compile(r"^/v2/schedules$"), ("GET",), "schedules"),
    (re.compile(r"^/v2/schedules/([^/]+)$"), ("GET", "DELETE"), "schedule"),
    # the SDKs send PATCH, QStash's OpenAPI says POST: both are accepted
    (re.compile(r"^/v2/schedules/([^/]+)/(pause|resume)$"), ("PATCH", "POST"), "schedule_action"),
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
    if method == "POST" and target.startswith("/v2/schedules/") and not SCHEDULE_ACTION.match(target):
        destination, query_token = split_destination(target[len("/v2/schedules/"):])
        token = emu.authorize(headers, query_token)
        extra = emu.check_burst(token)
        emu.count_request(method, "schedules")
        status, payload = emu.schedule_create(destination, headers, body, client_ip)
        return status, payload, extra

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
        res = emu.keys_get()
    elif name == "keys_rotate":
        res = emu.keys_rotate()
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
    elif name == "flow_list":
        res = emu.flow_list()
    elif name == "flow":
        res = emu.flow_get(arg)
    elif name == "flow_action":
        res = emu.flow_action(arg, m.group(2), query)
    elif name == "global_parallelism":
        res = emu.global_parallelism()
    elif name == "queues":
        res = emu.queue_list() if method == "GET" else emu.queue_upsert(body)
    elif name == "queue":
        res = emu.queue_get(arg) if method == "GET" else emu.queue_delete(arg)
    elif name in ("queue_pause", "queue_resume"):
        res = emu.queue_set_paused(arg, name == "queue_pause")
    elif name == "schedules":
        res = emu.schedule_list()
    elif name == "schedule":
        res = emu.schedule_get(arg) if method == "GET" else emu.schedule_delete(arg)
    elif name == "schedule_action":
        res = emu.schedule_set_paused(arg, m.group(2) == "pause")
    elif name == "dev_deliveries":
        res = emu.dev_deliveries(query)
    elif name == "dev_requests":
        res = emu.dev_requests()
    else:
        res = emu.dev_reset()
    return res[0], res[1], extra
