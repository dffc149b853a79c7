"""Delivery and retries: one HTTP attempt to a destination (http_send), what
its outcome does (DELIVERED; ERROR then RETRY with the message's
Upstash-Retry-Delay or the default backoff; FAILED into the DLQ), the
callback and failure callback, and the record of every attempt that
GET /__dev/deliveries shows.  The timer that starts attempts is scheduler.py."""

import http.client
import json
import ssl
import threading
import time
import urllib.parse

from .common import b64, header_map, new_message_id, now_ms, utf8_or_none
from .config import default_backoff_ms


REGION = "EU-CENTRAL-1"
USER_AGENT = "Upstash-QStash"
DEFAULT_DELIVERY_TIMEOUT_S = 900
CALLBACK_TIMEOUT_S = 30
MAX_RESPONSE_BODY = 1024 * 1024
MAX_DELIVERY_LOG = 10000

# Stored headers never put on the wire by the deliverer (HTTP framing).
NO_SEND = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
           "te", "trailer", "upgrade", "expect"}


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


class DeliveryMixin:
    """Emulator methods: deliver a due message, record the attempt, call back."""

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
            ("Upstash-Signature", self.sign(msg.url, msg.body)),
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
            if msg.gen == self.gen:
                self.active_deliveries = max(0, self.active_deliveries - 1)
            if msg.flow_key:
                self._flow_done(msg)
            if msg.gen != self.gen or msg.cancelled or self.messages.get(msg.id) is not msg:
                return
            status = result["status"]
            answered = {"responseStatus": status} if status else {}
            if 200 <= status < 300:
                msg.state = "DELIVERED"
                del self.messages[msg.id]
                self._event(msg, "DELIVERED", answered)
                self._queue_done(msg)
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
                    self._queue_done(msg)
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
            ("Upstash-Signature", self.sign(url, body)),
            ("User-Agent", USER_AGENT),
            ("Upstash-Caller-Ip", msg.caller_ip),
            ("upstash-region", REGION),
        ]

        def run():
            res = http_send(url, "POST", headers, body, CALLBACK_TIMEOUT_S)
            self._record(msg.gen, kind, msg.id, url, "POST", headers, body, 0, res)
            self.log("%s for %s -> %s" % (kind, msg.id, res["status"]))

        threading.Thread(target=run, daemon=True).start()
