"""Queues: the queue resource (POST and GET /v2/queues, GET and DELETE
/v2/queues/{name}, POST /v2/queues/{name}/pause and /resume) and the order
of delivery of enqueued messages.

A message published with a queue (POST /v2/enqueue/{queue}/..., a batch
item's `queue`) waits in its queue, first in first out; at most
`parallelism` of a queue's messages are in flight (handed to the timer, in
delivery, or between retries), and the next one starts only when one of
them is delivered, failed or cancelled.  A paused queue starts nothing: an
attempt under way finishes, and a message due for a retry goes back to the
head of the queue until the queue is resumed.  `lag` counts the messages
that wait.  Enqueueing to a queue that does not exist creates it with
parallelism 1."""

import bisect
import json
import time

from .common import now_ms
from .errors import ApiError
from .params import NAME_RE

# QStash's limits on a pay-as-you-go plan; above them it answers 412.
MAX_QUEUES = 100
MAX_PARALLELISM = 100
LIMIT_TEXT = ("Either exceeded the maximum number of queues allowed "
              "or the maximum parallelism per queue")


class Queue:
    """One queue: its settings, the messages that wait ((order, msg), in
    order) and the ids of those in flight."""

    def __init__(self, name, parallelism, paused):
        self.name = name
        self.parallelism = parallelism
        self.paused = paused
        self.created_ms = self.updated_ms = now_ms()
        self.waiting = []
        self.in_flight = set()

    def view(self):
        return {"name": self.name, "parallelism": self.parallelism, "lag": len(self.waiting),
                "paused": self.paused, "createdAt": self.created_ms, "updatedAt": self.updated_ms}


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApiError(400, "invalid queue name %r: only letters, digits, '-', '_' and '.'" % (name,))


class QueuesMixin:
    """Emulator methods: the queue endpoints and the queues' delivery order."""

    # ---- delivery order (lock held) --------------------------------------

    def _queue_add(self, msg, wait_s):
        """A new message of msg.queue_name: it waits for its turn, then for
        its own delay (wait_s, already scaled)."""
        q = self.queues.get(msg.queue_name)
        if q is None:
            q = self.queues[msg.queue_name] = Queue(msg.queue_name, 1, False)
        self.seq += 1
        msg.queue_order = self.seq
        msg.queue_due = time.monotonic() + wait_s
        q.waiting.append((msg.queue_order, msg))
        self._queue_pump(q)

    def _queue_room(self, name):
        """Before a publish to queue `name` creates anything: 412 when the
        queue would be one too many."""
        if name is not None and name not in self.queues and len(self.queues) >= MAX_QUEUES:
            raise ApiError(412, LIMIT_TEXT)

    def _queue_pump(self, q):
        """Starts waiting messages while the queue is running and has room."""
        while not q.paused and q.waiting and len(q.in_flight) < q.parallelism:
            _, msg = q.waiting.pop(0)
            if msg.cancelled or self.messages.get(msg.id) is not msg:
                continue
            q.in_flight.add(msg.id)
            self._push(msg, msg.queue_due - time.monotonic())

    def _queue_may_start(self, msg):
        """The timer's question before an attempt of a queued message: False
        when its queue is paused (the message goes back to the head of the
        queue, keeping its order, and waits for resume)."""
        q = self.queues.get(msg.queue_name)
        if q is None or msg.id not in q.in_flight or not q.paused:
            return True
        q.in_flight.discard(msg.id)
        msg.queue_due = time.monotonic()
        keys = [e[0] for e in q.waiting]
        q.waiting.insert(bisect.bisect(keys, msg.queue_order), (msg.queue_order, msg))
        return False

    def _queue_done(self, msg):
        """A queued message is delivered, failed or cancelled: its place is
        free for the next one."""
        q = self.queues.get(msg.queue_name) if msg.queue_name else None
        if q is None:
            return
        q.in_flight.discard(msg.id)
        q.waiting = [e for e in q.waiting if e[1] is not msg]
        self._queue_pump(q)

    # ---- endpoints -------------------------------------------------------

    def queue_upsert(self, body):
        """POST /v2/queues {"queueName", "parallelism", "paused"?}: creates
        or changes a queue; `paused` left out keeps what the queue had."""
        try:
            doc = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid JSON body")
        if not isinstance(doc, dict):
            raise ApiError(400, "the body must be a JSON object")
        name = doc.get("queueName")
        check_name(name)
        par = doc.get("parallelism")
        if isinstance(par, bool) or not isinstance(par, int):
            raise ApiError(400, "parallelism must be an integer")
        if par < 1:
            raise ApiError(400, "parallelism must be greater than 0")
        paused = doc.get("paused")
        if paused is not None and not isinstance(paused, bool):
            raise ApiError(400, "paused must be a boolean")
        with self.cond:
            q = self.queues.get(name)
            if par > MAX_PARALLELISM or (q is None and len(self.queues) >= MAX_QUEUES):
                raise ApiError(412, LIMIT_TEXT)
            if q is None:
                q = self.queues[name] = Queue(name, par, bool(paused))
            else:
                q.parallelism = par
                if paused is not None:
                    q.paused = paused
                q.updated_ms = now_ms()
            self._queue_pump(q)
        return 200, None

    def queue_list(self):
        with self.cond:
            return 200, [self.queues[n].view() for n in sorted(self.queues)]

    def _queue(self, name):
        check_name(name)
        q = self.queues.get(name)
        if q is None:
            raise ApiError(404, "queue %s not found" % name)
        return q

    def queue_get(self, name):
        with self.cond:
            return 200, self._queue(name).view()

    def queue_delete(self, name):
        """Deleting a queue cancels the messages it still holds (those that
        wait and those in flight); deleting a queue that does not exist is
        not an error, as in QStash."""
        check_name(name)
        with self.cond:
            q = self.queues.pop(name, None)
            if q is not None:
                held = [m for _, m in q.waiting] + [self.messages[i] for i in q.in_flight
                                                    if i in self.messages]
                for m in held:
                    if self.messages.get(m.id) is m:
                        self._cancel(m)
        return 200, None

    def queue_set_paused(self, name, paused):
        with self.cond:
            q = self._queue(name)
            if q.paused != paused:
                q.paused = paused
                q.updated_ms = now_ms()
            self._queue_pump(q)
        return 200, None

