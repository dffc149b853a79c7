"""Chaos for follows, part of http_server.py's chaos mode: the logs requests
(GET /v2/logs?messageId=... or ?messageIds=...&count=...) and the DLQ lookups
(GET /v2/dlq?messageId=...) of follow, follow_many, dlq_retry with follow and
dlq_retry_each with follow, played by a hostile QStash on an unreliable
network, for spec/accounting_spec.lua.

Every message has a fate, drawn from the seed and its id:

    delivered      CREATED, ACTIVE, (RETRY, ERROR,) DELIVERED
    failed         ... FAILED with the entry's dlqId ("dlq_" + messageId)
    failed_lookup  ... FAILED without one: the DLQ lookup finds it
    cancelled      ... CANCEL_REQUESTED, CANCELLED
    pending        never ends
    skewed         DELIVERED logged before an ACTIVE of a later time (the
                   clocks of two nodes): it has ended all the same

Its end is logged once the message was asked about `needed` times: 1, or
with probability `late` (default 0.15) 2 or 3. Each request draws, from the seed, what it asked and how often it was
asked, one of the request outcomes:

    ok        the answer
    fail      503
    limited   429 with Retry-After 0 (or 1, one time in 5)
    drop      close the connection without answering
    short     a body shorter than its Content-Length, and close
    reset     half the body and a TCP reset
    stall     the headers, then nothing for `hold` seconds

and an answer may be mangled, each with its own probability (`mess`):

    shuffle    entries in any order (QStash sends the newest first)
    duplicate  some entries twice
    foreign    entries of other messages (another followed message's own,
               or a made-up message's end with a dlqId); in a lookup, a
               made-up message's DLQ entry first (as a server that ignores
               the filter would answer)
    paged      the answer over pages of `page` entries (at most 4 pages), by
               cursor
    odd        an entry without messageId, one with a number for it, one
               with a time as a string of digits
    gone       (lookups) no entry: retried or deleted meanwhile

With probability `shared` two DLQ ids (numbers 2k and 2k+1) are retried into
one message (the second answer says deduplicated), as QStash does with a
deduplication id. What was served is logged per message, and the messageId
of each DLQ id in the chaos log: the spec checks the client against them.
"""

import random
import time
import urllib.parse

OUTCOMES = ("ok", "fail", "limited", "drop", "short", "reset", "stall")
FATES = ("delivered", "failed", "failed_lookup", "cancelled", "pending", "skewed")
MESS = ("shuffle", "duplicate", "foreign", "paged", "odd", "gone")
FINAL = frozenset(["DELIVERED", "FAILED", "CANCELLED"])
BASE_TIME = 1700000000000


class Invalid(Exception):
    pass


def _weights(given, names, what):
    if not isinstance(given, dict) or set(given) - set(names):
        raise Invalid("chaos follow %s are among: %s" % (what, ", ".join(names)))
    table = []
    for name in names:
        w = given.get(name, 0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise Invalid("chaos follow %s %s must be a number >= 0" % (what, name))
        if w > 0:
            table.append((name, float(w)))
    if not table:
        raise Invalid("chaos follow %s: at least one above 0" % what)
    return table


def _probability(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise Invalid("chaos follow %s must be a probability" % what)
    return float(v)


def normalize(c):
    """The "follow" part of a chaos configuration: {"outcomes": {name: w},
    "fates": {name: w}, "mess": {name: probability}, "page": n, "shared": p,
    "late": p}."""
    if not isinstance(c, dict) or set(c) - {"outcomes", "fates", "mess", "page", "shared", "late"}:
        raise Invalid('chaos follow takes {"outcomes", "fates", "mess", "page", "shared", "late"}')
    mess = c.get("mess") or {}
    if not isinstance(mess, dict) or set(mess) - set(MESS):
        raise Invalid("chaos follow mess is among: %s" % ", ".join(MESS))
    page = c.get("page", 2)
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise Invalid("chaos follow page must be an integer >= 1")
    return {
        "outcomes": _weights(c.get("outcomes") or {"ok": 1}, OUTCOMES, "outcomes"),
        "fates": _weights(c.get("fates") or {"delivered": 1}, FATES, "fates"),
        "mess": {name: _probability(p, "mess " + name) for name, p in mess.items()},
        "page": page,
        "shared": _probability(c.get("shared", 0), "shared"),
        "late": _probability(c.get("late", 0.15), "late"),
    }


def _pick(rng, table):
    x = rng.random() * sum(w for _, w in table)
    for name, w in table:
        if x < w:
            return name
        x -= w
    return table[-1][0]


def dlq_id_of(mid):
    return "dlq_" + mid


class FollowChaos:
    """The messages and the open cursors of one chaos run; called with the
    server's lock held."""

    def __init__(self, seed, cfg, hold):
        self.seed = seed
        self.cfg = cfg
        self.hold = hold
        self.messages = {}   # messageId -> its log (see message())
        self.asked = {}      # request key -> how many times
        self.cursors = {}    # cursor -> the entries of the pages left
        self.next_cursor = 0
        self.first = None    # time.time() of the first follow request

    def publish(self, dlq_id):
        """The answer to the retry of dlq_id: its own new message, or (with
        probability `shared`) one it shares with the id next to it (ids end
        in a number: 2k and 2k+1 pair), as QStash answers two retries it
        deduplicated into one message."""
        prefix, _, num = dlq_id.rpartition("-")
        if num.isdigit() and self.rng("shared", prefix, int(num) // 2).random() < self.cfg["shared"]:
            return {"messageId": "msg_chaos_shared_%s-%d" % (prefix, int(num) // 2),
                    "deduplicated": int(num) % 2 == 1}
        return {"messageId": "msg_chaos_" + dlq_id, "deduplicated": False}

    def rng(self, *parts):
        return random.Random(":".join([self.seed] + [str(p) for p in parts]))

    def message(self, mid):
        m = self.messages.get(mid)
        if m is None:
            rng = self.rng("fate", mid)
            late = rng.random() < self.cfg["late"]
            m = {"fate": _pick(rng, self.cfg["fates"]), "needed": rng.choice((2, 2, 3)) if late else 1,
                 "time": BASE_TIME + rng.randrange(10 ** 6) * 100, "polls": 0, "lookups": 0,
                 "served_final": False, "served_dlq": False}
            self.messages[mid] = m
        return m

    def timeline(self, mid, m):
        """The entries logged so far for message mid, oldest first."""
        t, fate = m["time"], m["fate"]

        def e(dt, state, **more):
            d = {"time": t + dt, "state": state, "messageId": mid, "url": "https://example.com/x"}
            d.update(more)
            return d
        out = [e(0, "CREATED")]
        if fate == "skewed":
            out.append(e(1, "DELIVERED"))
            out.append(e(2, "ACTIVE"))
            return out if m["polls"] >= m["needed"] else out[:1]
        out.append(e(1, "ACTIVE"))
        if m["polls"] >= 2:
            out.append(e(2, "RETRY", error="502 Bad Gateway"))
            out.append(e(3, "ERROR", responseStatus=502))
        if m["polls"] < m["needed"] or fate == "pending":
            return out
        if fate == "delivered":
            out.append(e(10, "DELIVERED", responseStatus=200))
        elif fate == "failed":
            out.append(e(10, "FAILED", dlqId=dlq_id_of(mid)))
        elif fate == "failed_lookup":
            out.append(e(10, "FAILED"))
        else:
            out.append(e(9, "CANCEL_REQUESTED"))
            out.append(e(10, "CANCELLED"))
        return out

    def foreign(self, rng, asked):
        """Entries of messages not asked about, as a server that ignores the
        filter sends them: another message's own entries (its end, if it
        has one yet), or a made-up message's end with its dlqId."""
        others = sorted(m for m in self.messages if m not in asked)
        if others and rng.random() < 0.5:
            mid = rng.choice(others)
            return [dict(x) for x in self.timeline(mid, self.messages[mid])]
        mid = "msg_foreign_%d" % rng.randrange(1000)
        t = BASE_TIME + rng.randrange(10 ** 8)
        return [{"time": t, "state": "FAILED", "messageId": mid, "dlqId": dlq_id_of(mid)},
                {"time": t + 1, "state": "DELIVERED", "messageId": mid}]

    def respond(self, req):
        """The response (a response object for http_server.normalize_response)
        and the outcome drawn, or None when req is not a follow request."""
        if req["method"] != "GET" or req["path"] not in ("/v2/logs", "/v2/dlq"):
            return None
        q = urllib.parse.parse_qs(req["query"], keep_blank_values=True)
        if self.first is None:
            self.first = time.time()
        if req["path"] == "/v2/dlq":
            if "messageId" not in q:
                return None
            return self.lookup(q["messageId"][0])
        return self.logs(q)

    def draw(self, key):
        n = self.asked.get(key, 0) + 1
        self.asked[key] = n
        rng = self.rng(key, n)
        return rng, _pick(rng, self.cfg["outcomes"])

    def mess(self, rng, name):
        return rng.random() < self.cfg["mess"].get(name, 0)

    def logs(self, q):
        mids = q.get("messageIds") or q.get("messageId") or []
        cursor = (q.get("cursor") or [None])[0]
        key = "logs|%s|%s" % (",".join(sorted(mids)), cursor or "")
        rng, outcome = self.draw(key)
        if cursor is not None:
            # the pages left of an earlier answer (the same for a repeat)
            entries, paged = self.cursors.get(cursor, []), True
        else:
            try:
                since = int(q["fromDate"][0]) if "fromDate" in q else None
            except ValueError:
                since = None
            entries = []
            for mid in mids:
                m = self.message(mid)
                m["polls"] += 1
                entries.extend(x for x in self.timeline(mid, m) if since is None or x["time"] >= since)
            if self.mess(rng, "foreign"):
                entries.extend(self.foreign(rng, set(mids)))
            if self.mess(rng, "duplicate") and entries:
                entries.extend(dict(x) for x in rng.sample(entries, max(1, len(entries) // 2)))
            if self.mess(rng, "odd"):
                entries.append({"time": BASE_TIME, "state": "DELIVERED"})
                entries.append({"time": BASE_TIME, "state": "DELIVERED", "messageId": 42})
            entries.sort(key=lambda x: -x["time"])  # newest first, as QStash
            if self.mess(rng, "odd") and entries:
                entries[0] = dict(entries[0], time=str(entries[0]["time"]))
            if self.mess(rng, "shuffle"):
                rng.shuffle(entries)
            paged = self.mess(rng, "paged")
        # pages of `page` entries, but never more than 4 of a poll: a big
        # follow_many must still see its messages in its time
        size = max(self.cfg["page"], -(-len(entries) // 4)) if paged else max(1, len(entries))
        pages = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        body = {"events" if rng.random() < 0.3 else "logs": pages[0]}
        if len(pages) > 1:
            self.next_cursor += 1
            nxt = "cur-%d-%d" % (self.next_cursor, rng.randrange(10 ** 6))
            self.cursors[nxt] = [x for p in pages[1:] for x in p]
            body["cursor"] = nxt
        if outcome == "ok":
            for x in pages[0]:
                m = self.messages.get(x.get("messageId"))
                if m is not None and x["state"] in FINAL and x.get("messageId") in mids:
                    m["served_final"] = True
        return self.answer(rng, outcome, body), outcome

    def lookup(self, mid):
        rng, outcome = self.draw("dlq|" + mid)
        m = self.message(mid)
        m["lookups"] += 1
        found = []
        if m["fate"] in ("failed", "failed_lookup") and not self.mess(rng, "gone"):
            found.append({"dlqId": dlq_id_of(mid), "messageId": mid, "url": "https://example.com/x"})
        if self.mess(rng, "foreign"):
            other = "msg_foreign_%d" % rng.randrange(1000)
            found.insert(0, {"dlqId": dlq_id_of(other), "messageId": other})
        if outcome == "ok" and any(x["messageId"] == mid for x in found):
            m["served_dlq"] = True
        return self.answer(rng, outcome, {"messages": found}), outcome

    def answer(self, rng, outcome, body):
        if outcome == "fail":
            return {"status": 503, "json": {"error": "service unavailable"}}
        if outcome == "limited":
            return {"status": 429, "json": {"error": "too many requests"},
                    "headers": {"Retry-After": "1" if rng.random() < 0.2 else "0"}}
        if outcome == "drop":
            return {"fault": "close"}
        r = {"status": 200, "json": body}
        if outcome == "short":
            r["fault"] = "short_body"
        elif outcome == "reset":
            r["fault"] = "reset_in_body"
        elif outcome == "stall":
            r["fault"] = "headers_then_stall"
            r["hold"] = self.hold
        return r

    def report(self):
        return {"messages": {mid: dict(m) for mid, m in self.messages.items()}, "first": self.first}
