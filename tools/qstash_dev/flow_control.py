"""Flow control: the live state of each key that Upstash-Flow-Control-Key
creates (its configuration, taken from each new message unless pinned; the
deliveries active now; the dispatches counted in the current rate period;
the waitlist), the admission of a due message (scheduler.py asks here
before starting a delivery), and the endpoints: GET /v2/flowControl[/{key}],
POST /v2/flowControl/{key}/pause|resume|pin|unpin|resetRate and
GET /v2/globalParallelism.

Rate periods are fixed windows: once `rate` dispatches were counted, the
waitlist waits for the next period (its length scaled by --time-scale like
every other wait).  A key lives until POST /__dev/reset."""

import collections
import time
import urllib.parse

from .errors import ApiError
from .params import parse_bool, parse_int_param


# What GET /v2/globalParallelism reports as the account's cap: the
# pay-as-you-go plan's (the emulator reports it, it does not enforce it).
GLOBAL_PARALLELISM_MAX = 100
PERIOD_MAX_S = 7 * 24 * 3600    # QStash's longest period: one week
LIMIT_MAX = 1000000


class FlowKey:
    def __init__(self, key):
        self.key = key
        self.parallelism = None     # None: no limit
        self.rate = None
        self.period = 1             # seconds, as QStash reports it
        self.pinned_parallelism = False
        self.pinned_rate = False
        self.paused = False
        self.active = 0             # deliveries in flight
        self.rate_count = 0         # dispatched in the current period
        self.period_start = time.time()
        self.period_start_mono = time.monotonic()
        self.waitlist = collections.deque()

    def view(self, waiting):
        return {
            "flowControlKey": self.key,
            "waitListSize": waiting,
            "parallelismMax": self.parallelism or 0,
            "parallelismCount": self.active,
            "rateMax": self.rate or 0,
            "rateCount": self.rate_count,
            "ratePeriod": self.period,
            "ratePeriodStart": int(self.period_start),
            "isPaused": self.paused,
            "isPinnedParallelism": self.pinned_parallelism,
            "isPinnedRate": self.pinned_rate,
        }

    def restart_period(self):
        self.rate_count = 0
        self.period_start = time.time()
        self.period_start_mono = time.monotonic()


class FlowControlMixin:
    """Emulator methods: flow-control state (lock held) and its endpoints."""

    def _flow_new_message(self, msg):
        """Lock held.  A new message's value configures its key, unless pinned."""
        fk = self.flow.get(msg.flow_key)
        if fk is None:
            fk = self.flow[msg.flow_key] = FlowKey(msg.flow_key)
        if not fk.pinned_parallelism:
            fk.parallelism = msg.parallelism
        if not fk.pinned_rate:
            fk.rate = msg.rate
            fk.period = msg.period or 1

    def _flow_live(self, msg):
        return not msg.cancelled and msg.gen == self.gen and self.messages.get(msg.id) is msg

    def _flow_window_end(self, fk):
        return fk.period_start_mono + fk.period * self.time_scale

    def _flow_admits(self, fk, now):
        # an ended period is rolled over first, whatever else holds the
        # waitlist: the timer must never wait for a period end gone by
        if now >= self._flow_window_end(fk):
            fk.restart_period()
        if fk.paused:
            return False
        if fk.parallelism is not None and fk.active >= fk.parallelism:
            return False
        return fk.rate is None or fk.rate_count < fk.rate

    def _flow_due(self, msg):
        """Lock held.  A due message of a key joins the key's waitlist (FIFO)
        and goes out when its key admits it."""
        fk = self.flow.get(msg.flow_key)
        if fk is None:              # its key was forgotten by a reset
            fk = self.flow[msg.flow_key] = FlowKey(msg.flow_key)
        fk.waitlist.append(msg)
        self._flow_pump(fk, time.monotonic())

    def _flow_pump(self, fk, now):
        """Lock held.  Starts the waitlist's messages that the key admits."""
        while fk.waitlist:
            if not self._flow_live(fk.waitlist[0]):
                fk.waitlist.popleft()
                continue
            if not self._flow_admits(fk, now):
                return
            msg = fk.waitlist.popleft()
            fk.active += 1
            fk.rate_count += 1
            msg.flow_counted = True
            self._start_delivery(msg)

    def _flow_done(self, msg):
        """Lock held.  A delivery of a key ended: its slot frees."""
        if not getattr(msg, "flow_counted", False):
            return
        msg.flow_counted = False
        fk = self.flow.get(msg.flow_key)
        if fk is not None and msg.gen == self.gen:
            fk.active = max(0, fk.active - 1)
            self._flow_pump(fk, time.monotonic())

    def _flow_tick(self, now):
        """Lock held (the timer).  Starts what a new rate period admits;
        returns the monotonic time of the next period end that waiting
        messages wait for, or None."""
        wake = None
        for fk in self.flow.values():
            if not fk.waitlist:
                continue
            self._flow_pump(fk, now)
            if fk.waitlist and not fk.paused and fk.rate is not None and fk.rate_count >= fk.rate:
                end = self._flow_window_end(fk)
                wake = end if wake is None else min(wake, end)
        return wake

    # ---- endpoints --------------------------------------------------------

    def _flow_key(self, key):
        fk = self.flow.get(key)
        if fk is None:
            raise ApiError(404, "flow control key %s not found" % key)
        return fk

    def _flow_view(self, fk):
        return fk.view(sum(1 for m in fk.waitlist if self._flow_live(m)))

    def flow_list(self):
        with self.cond:
            return 200, [self._flow_view(fk) for fk in self.flow.values()]

    def flow_get(self, key):
        with self.cond:
            return 200, self._flow_view(self._flow_key(key))

    def flow_action(self, key, action, query):
        """pause, resume, pin, unpin, resetRate: 200 with an empty body."""
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        params.pop("qstash_token", None)
        with self.cond:
            fk = self._flow_key(key)
            if action == "pause":
                fk.paused = True
            elif action == "resume":
                fk.paused = False
            elif action == "resetRate":
                fk.restart_period()
            elif action == "pin":
                self._flow_pin(fk, params)
            else:
                for name, attr in (("parallelism", "pinned_parallelism"), ("rate", "pinned_rate")):
                    if name in params and parse_bool(params[name], name):
                        setattr(fk, attr, False)
            self._flow_pump(fk, time.monotonic())
            self.cond.notify_all()
        return 200, None

    def _flow_pin(self, fk, params):
        got = {}
        for name, hi in (("parallelism", LIMIT_MAX), ("rate", LIMIT_MAX), ("period", PERIOD_MAX_S)):
            if params.get(name, "") != "":
                got[name] = parse_int_param(params[name], name, 1, hi)
        if "parallelism" not in got and "rate" not in got:
            raise ApiError(400, "pin needs parallelism or rate")
        if "parallelism" in got:
            fk.parallelism = got["parallelism"]
            fk.pinned_parallelism = True
        if "rate" in got:
            fk.rate = got["rate"]
            fk.pinned_rate = True
        if "period" in got:
            fk.period = got["period"]
        fk.restart_period()         # pinning resets the rate state

    def global_parallelism(self):
        with self.cond:
            out = {"parallelismMax": GLOBAL_PARALLELISM_MAX}
            if self.active_deliveries:      # QStash leaves the count out when 0
                out["parallelismCount"] = self.active_deliveries
            return 200, out
