"""Schedules: the schedule resource (POST /v2/schedules/{destination} to
create or overwrite by Upstash-Schedule-Id, GET /v2/schedules and
/v2/schedules/{id}, DELETE /v2/schedules/{id}, PATCH or POST
/v2/schedules/{id}/pause and /resume) and their runs.

A schedule keeps the configuration headers of its create request and
publishes them, with its body, on every run of its cron (through its queue
when it has one); each message of a run carries the schedule's id
(`scheduleId` in its logs, DLQ entries and GET /v2/messages view,
Upstash-Schedule-Id on delivery).  A paused schedule skips its runs (its
nextScheduleTime goes on); resume continues with the next run, missed
ones are not made up.

Runs follow the schedule clock: the wall clock at the emulator's start,
then running 1/--time-scale times as fast (a minute of cron lasts 60 ms at
--time-scale 0.001; --time-scale 0 counts as 0.0001).  lastScheduleTime and
nextScheduleTime are times of that clock.  One thread (started with the
first schedule) waits for the next run of all schedules."""

import threading
import time

from .common import b64, header_map, now_ms, rand_base62, sha256_hex, utf8_or_none
from .config import DEFAULT_RETRIES, parse_config
from .cron import Cron
from .errors import ApiError
from .params import NAME_RE, is_http_url

MAX_SCHEDULES = 1000            # QStash's free pay-as-you-go count; 412 above it
MIN_SCALE = 0.0001

# Headers of a create request that are the schedule's, not its messages';
# the not-before and deduplication headers QStash does not document for
# schedules are dropped too (each run would be deduplicated against the last).
OWN_HEADERS = {"upstash-cron", "upstash-schedule-id", "upstash-queue-name", "upstash-not-before",
               "upstash-deduplication-id", "upstash-content-based-deduplication"}


def canonical(name):
    """A header name as QStash (Go's net/http) shows it: Test-Header."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


class Schedule:
    def __init__(self, sid, destination, cron, queue_name, headers, body, cfg, caller_ip, created_ms):
        self.id = sid
        self.destination = destination
        self.cron = cron
        self.queue_name = queue_name
        self.headers = headers        # [(name, value)] republished on every run
        self.body = body
        self.cfg = cfg
        self.caller_ip = caller_ip
        self.created_ms = created_ms
        self.paused = False
        self.next_ms = None
        self.last_ms = None
        self.last_msgs = []           # the Message objects of the last run
        self.error = None

    def header_view(self):
        pairs = []
        red = self.cfg.get("redact")
        for n, v in self.headers:
            low = n.lower()
            if low == "content-type":
                name = "Content-Type"
            elif low.startswith("upstash-forward-"):
                name = canonical(n[len("upstash-forward-"):])
            else:
                continue
            if red and (red["all_headers"] or name.lower() in red["names"]):
                v = "REDACTED:" + sha256_hex(v)
            pairs.append((name, v))
        return header_map(pairs)

    def view(self, last_states):
        cfg = self.cfg
        d = {"scheduleId": self.id, "cron": self.cron.text, "destination": self.destination,
             "method": cfg.get("method", "POST"), "header": self.header_view(),
             "createdAt": self.created_ms, "isPaused": self.paused,
             "retries": cfg.get("retries", DEFAULT_RETRIES),
             "callerIp": self.caller_ip, "callerIP": self.caller_ip}
        if self.body:
            red = cfg.get("redact")
            text = utf8_or_none(self.body)
            if red and red["body"]:
                d["body"] = "REDACTED:" + sha256_hex(self.body)
            elif text is None:
                d["bodyBase64"] = b64(self.body)
            else:
                d["body"] = text
        for key, field in (("delay", "delay"), ("timeout", "timeout"), ("callback", "callback"),
                           ("failure_callback", "failureCallback")):
            if key in cfg:
                d[field] = cfg[key]
        if "retry_delay" in cfg:
            d["retryDelayExpression"] = cfg["retry_delay"].text
        if self.queue_name:
            d["queueName"] = self.queue_name
        if "labels" in cfg:
            d["label"] = cfg["labels"][0]
            d["labels"] = list(cfg["labels"])
        if "flow_key" in cfg:
            d["flowControlKey"] = cfg["flow_key"]
            for k in ("parallelism", "rate", "period"):
                if k in cfg["flow"]:
                    d[k] = cfg["flow"][k]
            if "rate" in cfg["flow"]:
                d["ratePerSecond"] = cfg["flow"]["rate"]    # the older name qstash-js still reads
        if self.last_ms is not None:
            d["lastScheduleTime"] = self.last_ms
            d["lastScheduleStates"] = last_states
        if self.next_ms is not None:
            d["nextScheduleTime"] = self.next_ms
        if self.error:
            d["error"] = self.error
        return d


class SchedulesMixin:
    """Emulator methods: the schedule endpoints and the runs."""

    # ---- the schedule clock ----------------------------------------------

    def _schedule_clock_ms(self):
        wall, mono = self.schedule_clock0
        return int((wall + (time.monotonic() - mono) / max(self.time_scale, MIN_SCALE)) * 1000)

    def _schedule_wait_s(self, ms):
        """Real seconds until schedule-clock time `ms`."""
        return max(0.0, ms - self._schedule_clock_ms()) / 1000.0 * max(self.time_scale, MIN_SCALE)

    # ---- runs (lock held) ------------------------------------------------

    def _schedule_thread_start(self):
        if self.schedule_thread is None:
            self.schedule_thread = threading.Thread(target=self._schedule_loop, name="schedules",
                                                    daemon=True)
            self.schedule_thread.start()
        self.cond.notify_all()

    def _schedule_loop(self):
        with self.cond:
            while not self.stopping:
                now = self._schedule_clock_ms()
                wait = None
                for s in list(self.schedules.values()):
                    if s.next_ms <= now:
                        try:
                            self._schedule_run(s, now)
                        except Exception as e:     # a bug must not stop every schedule
                            s.next_ms = now + 60000
                            self.log("schedule %s: %r" % (s.id, e))
                    w = self._schedule_wait_s(s.next_ms)
                    wait = w if wait is None else min(wait, w)
                self.cond.wait(wait)

    def _schedule_run(self, s, now):
        due = s.next_ms
        s.next_ms = s.cron.next_after(max(due, now))
        if s.paused:
            return
        s.last_ms = due
        s.last_msgs = []
        s.error = None
        try:
            _, res = self.publish(s.destination, s.queue_name, s.headers, s.body, s.caller_ip,
                                  schedule_id=s.id)
        except ApiError as e:
            s.error = e.message
            self.log("schedule %s: run failed: %s" % (s.id, e.message))
            return
        for r in res if isinstance(res, list) else [res]:
            m = self.messages.get(r["messageId"])
            if m is not None:
                s.last_msgs.append(m)
        self.log("schedule %s ran: %d message(s)" % (s.id, len(s.last_msgs)))

    def _last_states(self, s):
        out = {}
        for m in s.last_msgs:
            if m.state == "FAILED" or m.state == "CANCELLED":
                out[m.id] = "FAIL"
            elif m.state == "DELIVERED":
                out[m.id] = "SUCCESS"
            else:
                out[m.id] = "IN_PROGRESS"
        return out

    # ---- endpoints -------------------------------------------------------

    def schedule_create(self, destination, headers, body, caller_ip):
        """POST /v2/schedules/{destination}: 200 {"scheduleId"}; an existing
        Upstash-Schedule-Id is overwritten whole (it keeps its createdAt;
        it is running again, not paused)."""
        first = {}
        for n, v in headers:
            first.setdefault(n.lower(), v)
        if not is_http_url(destination) and not NAME_RE.match(destination):
            raise ApiError(400, "invalid destination %r: must be an http(s) URL or a URL group name"
                           % destination)
        if "upstash-cron" not in first:
            raise ApiError(400, "Upstash-Cron header is required")
        sid = first.get("upstash-schedule-id")
        if sid is not None and not NAME_RE.match(sid):
            raise ApiError(400, "invalid schedule id %r: only letters, digits, '-', '_' and '.'" % sid)
        queue_name = first.get("upstash-queue-name")
        if queue_name is not None and not NAME_RE.match(queue_name):
            raise ApiError(400, "invalid queue name %r" % queue_name)
        cron = Cron(first["upstash-cron"])
        kept = [(n, v) for n, v in headers
                if n.lower() not in OWN_HEADERS and (n.lower().startswith("upstash-") or
                                                     n.lower() == "content-type")]
        cfg = parse_config(kept)
        with self.cond:
            old = self.schedules.get(sid) if sid else None
            if old is None and len(self.schedules) >= MAX_SCHEDULES:
                raise ApiError(412, "Exceeded the maximum number of schedules allowed")
            if sid is None:
                sid = "scd_" + rand_base62(26)
            s = Schedule(sid, destination, cron, queue_name, kept, body, cfg, caller_ip,
                         old.created_ms if old else now_ms())
            s.next_ms = cron.next_after(self._schedule_clock_ms())
            self.schedules[sid] = s
            self._schedule_thread_start()
        self.log("schedule %s: %s -> %s" % (sid, cron.text, destination))
        return 200, {"scheduleId": sid}

    def _schedule(self, sid):
        s = self.schedules.get(sid)
        if s is None:
            raise ApiError(404, "schedule %s not found" % sid)
        return s

    def schedule_list(self):
        with self.cond:
            return 200, [s.view(self._last_states(s)) for s in
                         sorted(self.schedules.values(), key=lambda s: (s.created_ms, s.id))]

    def schedule_get(self, sid):
        with self.cond:
            s = self._schedule(sid)
            return 200, s.view(self._last_states(s))

    def schedule_delete(self, sid):
        """Messages the schedule already made are still delivered; deleting
        an unknown id answers 200 (QStash's answer is not documented)."""
        with self.cond:
            self.schedules.pop(sid, None)
        return 200, None

    def schedule_set_paused(self, sid, paused):
        with self.cond:
            self._schedule(sid).paused = paused
            self.cond.notify_all()
        return 200, None
