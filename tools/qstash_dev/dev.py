"""The development endpoints (not QStash's): GET /__dev/deliveries (every
delivery attempt), GET /__dev/requests (API requests served per method and
route), POST /__dev/reset (forget everything)."""

import urllib.parse

from .params import parse_multi


class DevMixin:
    """Emulator methods: the /__dev/* endpoints and the request counter."""

    def dev_deliveries(self, query):
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        ids = set(parse_multi(pairs, "messageId"))
        urls = set(parse_multi(pairs, "url"))
        with self.cond:
            out = [d for d in self.deliveries
                   if (not ids or d["messageId"] in ids) and (not urls or d["url"] in urls)]
            return 200, [dict(d) for d in out]

    def count_request(self, method, route):
        with self.cond:
            key = "%s %s" % (method, route)
            self.requests[key] = self.requests.get(key, 0) + 1

    def dev_requests(self):
        """GET /__dev/requests: API requests served per method and route
        ("GET logs": 12), since the start or the last reset; benchmarks
        count what a client asked with it."""
        with self.cond:
            return 200, dict(self.requests)

    def dev_reset(self):
        with self.cond:
            self.gen += 1
            for m in self.messages.values():
                m.cancelled = True
            self._clear()
            self.burst = {}
            self.cond.notify_all()
        return 200, {"reset": True}
