"""Messages: the Message model (its QStash views and the filters of a bulk
cancel), publishing (to a URL or a URL group, deduplication by id or
content, POST /v2/batch), GET /v2/messages/{id} and the cancels (one, bulk).

A new message is logged (logs.py) and handed to the timer (scheduler.py),
or to its queue (queues.py), which hands it to the timer in its turn."""

import hashlib
import time
import urllib.parse

from .common import b64, header_map, new_message_id, now_ms, sha256_hex, utf8_or_none
from .config import DEFAULT_RETRIES, parse_config
from .errors import ApiError
from .params import MESSAGE_CANCEL, NAME_RE, is_http_url, parse_batch, parse_selection


DEDUP_WINDOW_S = 600            # 10 minutes, never scaled

# Request headers never forwarded by Upstash-Header-Forward.
NO_FORWARD = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "authorization", "expect", "te", "trailer", "upgrade", "proxy-authorization",
    "proxy-connection", "content-type", "user-agent", "accept-encoding",
}


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
            if self.flow_key:
                d["flowControlKey"] = self.flow_key
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


class MessagesMixin:
    """Emulator methods: create, publish, look up and cancel messages."""

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
        if msg.flow_key:
            self._flow_new_message(msg)
        self._event(msg, "CREATED", {"nextDeliveryTime": not_before} if not_before > created else None)
        wait_s = max(0.0, (not_before - created) / 1000.0) * self.time_scale
        if msg.queue_name:
            self._queue_add(msg, wait_s)
        else:
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

    def publish(self, destination, queue_name, headers, body, caller_ip, schedule_id=None):
        """A publish request, or a run of schedule `schedule_id` (schedules.py)."""
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
        base = {"content_type": content_type, "fwd": fwd, "body": body, "queue_name": queue_name,
                "schedule_id": schedule_id}
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
            self._queue_room(queue_name)
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
        self._queue_done(m)

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
