"""The dead-letter queue: the DlqEntry model (a failed message with the last
response, its view and filters), adding an entry when a message fails, and
the endpoints: list, get, delete, bulk delete, retry, bulk retry."""

import time

from .common import b64, header_map, now_ms, utf8_or_none
from .config import parse_config
from .errors import ApiError
from .messages import DEDUP_WINDOW_S
from .params import DLQ_BULK, DLQ_LIST, parse_selection


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


class DlqMixin:
    """Emulator methods: the DLQ endpoints and adding an entry (lock held)."""

    def _add_dlq(self, msg, result):
        self.seq += 1
        dlq_id = "%d-%d" % (now_ms(), self.seq)
        entry = DlqEntry(dlq_id, self.seq, msg, result)
        self.dlq[dlq_id] = entry
        return entry

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
