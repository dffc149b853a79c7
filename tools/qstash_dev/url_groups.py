"""URL groups (topics): GET /v2/topics, GET and DELETE /v2/topics/{name},
POST (PUT) and DELETE /v2/topics/{name}/endpoints.  Publishing to a group is
messages.py."""

import json

from .common import now_ms
from .errors import ApiError
from .params import NAME_RE, is_http_url


class UrlGroupsMixin:
    """Emulator methods: the URL group endpoints."""

    def topics_list(self):
        with self.cond:
            return 200, [self._topic_view(n) for n in sorted(self.topics)]

    def _topic_view(self, name):
        t = self.topics[name]
        return {"name": name, "createdAt": t["createdAt"], "updatedAt": t["updatedAt"],
                "endpoints": [dict(ep) for ep in t["endpoints"]]}

    def topic_get(self, name):
        with self.cond:
            if name not in self.topics:
                raise ApiError(404, "url group %s not found" % name)
            return 200, self._topic_view(name)

    def topic_delete(self, name):
        # QStash answers 200 for a group that does not exist (qstash-go's and
        # qstash-py's integration tests delete before creating)
        with self.cond:
            self.topics.pop(name, None)
        return 200, None

    @staticmethod
    def _parse_endpoints(body):
        try:
            doc = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid JSON body")
        eps = doc.get("endpoints") if isinstance(doc, dict) else None
        if not isinstance(eps, list) or not eps:
            raise ApiError(400, "endpoints: a non-empty array is required")
        out = []
        for ep in eps:
            if not isinstance(ep, dict):
                raise ApiError(400, "endpoints: each endpoint must be an object")
            url, name = ep.get("url"), ep.get("name")
            if url is not None and (not isinstance(url, str) or not is_http_url(url)):
                raise ApiError(400, "endpoints: invalid url %r" % (url,))
            if name is not None and (not isinstance(name, str) or not NAME_RE.match(name)):
                raise ApiError(400, "endpoints: invalid name %r" % (name,))
            if url is None and name is None:
                raise ApiError(400, "endpoints: url or name is required")
            out.append({k: v for k, v in (("url", url), ("name", name)) if v is not None})
        return out

    def topic_add_endpoints(self, name, body):
        if not NAME_RE.match(name):
            raise ApiError(400, "invalid url group name %r" % name)
        eps = self._parse_endpoints(body)
        if any("url" not in ep for ep in eps):
            raise ApiError(400, "endpoints: url is required")
        with self.cond:
            t = self.topics.get(name)
            now = now_ms()
            if t is None:
                t = self.topics[name] = {"createdAt": now, "updatedAt": now, "endpoints": []}
            for ep in eps:
                t["endpoints"] = [e for e in t["endpoints"] if e["url"] != ep["url"]]
                t["endpoints"].append(ep)
            t["updatedAt"] = now
        return 200, None

    def topic_remove_endpoints(self, name, body):
        eps = self._parse_endpoints(body)
        with self.cond:
            t = self.topics.get(name)
            if t is None:
                raise ApiError(404, "url group %s not found" % name)
            for ep in eps:
                t["endpoints"] = [e for e in t["endpoints"]
                                  if not (("url" in ep and e["url"] == ep["url"]) or
                                          ("name" in ep and e.get("name") == ep["name"]))]
            t["updatedAt"] = now_ms()
            if not t["endpoints"]:  # QStash deletes a group left without endpoints
                del self.topics[name]
        return 200, None
