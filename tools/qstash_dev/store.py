"""The state: every collection the emulator holds, declared in one place
(Store.__init__ and Store._clear, which POST /__dev/reset runs again), the
lock and condition that guard them, and the stderr log."""

import sys
import threading
import time

from .signing import CURRENT_SIGNING_KEY, NEXT_SIGNING_KEY


class Store:
    """The emulator's state; the mixins of the other modules act on it, always
    under self.cond."""

    def __init__(self, token, time_scale, burst_limit, quiet):
        self.token = token
        self.time_scale = time_scale
        self.burst_limit = burst_limit
        self.quiet = quiet
        self.cond = threading.Condition(threading.RLock())
        self.stopping = False
        self.seq = 0            # DLQ id sequence and heap tie-breaker
        self.gen = 0
        self.burst = {}         # token -> [window second, count]
        self.log_seq = 0        # log entry sequence, never reset (cursors stay unambiguous)
        # the schedule clock starts at the wall clock (schedules.py), and its thread
        self.schedule_clock0 = (time.time(), time.monotonic())
        self.schedule_thread = None
        self._clear()

    def _clear(self):
        self.requests = {}      # "METHOD route" -> API requests served
        self.messages = {}      # in flight: id -> Message
        self.dlq = {}           # dlqId -> DlqEntry, insertion (= age) order
        self.deliveries = []
        self.dedup = {}         # key -> (expires at, [(messageId, url)])
        self.topics = {}        # name -> {"createdAt", "updatedAt", "endpoints": [{url, name}]}
        self.flow = {}          # flow-control key -> FlowKey (flow_control.py)
        self.active_deliveries = 0
        self.queues = {}        # name -> queues.Queue
        # the signing keys (signing.py): the public dev keys until rotated
        self.signing_keys = {"current": CURRENT_SIGNING_KEY, "next": NEXT_SIGNING_KEY}
        self.schedules = {}     # scheduleId -> schedules.Schedule
        self.heap = []
        # GET /v2/logs: [(seq, time ms, message, entry)] in append order; seqs
        # are consecutive, so the entry of seq s is at s - events[0][0]
        self.events = []
        self.events_time = 0    # entry times never go back

    def log(self, text):
        if not self.quiet:
            sys.stderr.write("qstash-dev: %s\n" % text)
            sys.stderr.flush()
