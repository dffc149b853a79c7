"""The timer: a heap of (due time, seq, message) and one thread that starts a
delivery attempt (delivery.py) when a message falls due, woken whenever the
heap changes.  Delays, not-before and retry backoffs are scaled by
--time-scale here.  Schedules (cron) will push their next run here too."""

import heapq
import threading
import time


class SchedulerMixin:
    """Emulator methods: start and stop the timer thread, push a message."""

    def start(self):
        t = threading.Thread(target=self._scheduler, name="scheduler", daemon=True)
        t.start()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _push(self, msg, wait_s):
        self.seq += 1
        heapq.heappush(self.heap, (time.monotonic() + max(0.0, wait_s), self.seq, msg))
        self.cond.notify_all()

    def _scheduler(self):
        with self.cond:
            while not self.stopping:
                now = time.monotonic()
                while self.heap and self.heap[0][0] <= now:
                    _, _, msg = heapq.heappop(self.heap)
                    if msg.cancelled or msg.gen != self.gen or self.messages.get(msg.id) is not msg:
                        continue
                    if msg.queue_name and not self._queue_may_start(msg):
                        continue                # waits its turn in its queue (queues.py)
                    if msg.flow_key:
                        self._flow_due(msg)     # waits its turn (flow_control.py)
                    else:
                        self._start_delivery(msg)
                wait = (self.heap[0][0] - now) if self.heap else None
                wake = self._flow_tick(now)
                if wake is not None:
                    wait = max(0.0, wake - now) if wait is None else min(wait, max(0.0, wake - now))
                self.cond.wait(wait)

    def _start_delivery(self, msg):
        """Lock held.  One attempt of `msg` starts now."""
        msg.state = "ACTIVE"
        self.active_deliveries += 1
        self._event(msg, "ACTIVE")
        threading.Thread(target=self._deliver, args=(msg,), daemon=True).start()
