"""Who may call: the accepted token (DEFAULT_TOKEN, QStash's public dev
token, is the default), the Bearer header or ?qstash_token= check, and the
optional per-second burst limit (--burst-limit) with its Burst-RateLimit-*
headers and 429.

bench/run reads the DEFAULT_TOKEN line of this file with sed: keep it one
line of the form DEFAULT_TOKEN = "..."."""

import hmac
import time

from .errors import ApiError


DEFAULT_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="


class AuthMixin:
    """Emulator methods: authorize a request, count it against the burst limit."""

    def check_burst(self, token):
        """Returns extra headers; raises 429 when over the limit."""
        if not self.burst_limit:
            return []
        with self.cond:
            sec = int(time.time())
            w = self.burst.get(token)
            if w is None or w[0] != sec:
                w = self.burst[token] = [sec, 0]
            w[1] += 1
            remaining = self.burst_limit - w[1]
        headers = [("Burst-RateLimit-Limit", str(self.burst_limit)),
                   ("Burst-RateLimit-Remaining", str(max(0, remaining))),
                   ("Burst-RateLimit-Reset", str(sec + 1))]
        if remaining < 0:
            raise ApiError(429, "burst rate limit exceeded: %d requests per second" % self.burst_limit,
                           headers)
        return headers

    def authorize(self, headers, query_token):
        token = None
        for n, v in headers:
            if n.lower() == "authorization":
                scheme, _, cred = v.strip().partition(" ")
                if scheme.lower() == "bearer":
                    token = cred.strip()
                break
        if token is None:
            token = query_token
        if token is None:
            raise ApiError(401, "authorization required: send 'Authorization: Bearer <token>' or ?qstash_token=")
        if not hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8")):
            raise ApiError(401, "invalid token")
        return token
