"""The log (GET /v2/logs and /v2/events): the entry appended at each state
of a message (CREATED, ACTIVE, ERROR, RETRY, FAILED, DELIVERED,
CANCEL_REQUESTED, CANCELLED), the newest MAX_LOG_ENTRIES kept, and the
listing with its filters and "<time>-<seq>" cursors."""

from .common import now_ms
from .errors import ApiError
from .params import LOG_LIST, parse_selection


MAX_LOG_ENTRIES = 100000        # GET /v2/logs keeps the newest ones
LOG_STATES = ("CREATED", "ACTIVE", "RETRY", "ERROR", "DELIVERED", "FAILED",
              "CANCEL_REQUESTED", "CANCELLED")

# the state filter's shorthand: a message on its way
IN_PROGRESS = ("ACTIVE", "RETRY", "ERROR")


class LogsMixin:
    """Emulator methods: append a log entry (lock held), list the log."""

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
