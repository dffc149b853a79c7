"""Cron expressions of schedules: the check QStash makes (400 for anything
but five fields of `*`, values, ranges, lists and steps, with an optional
leading `CRON_TZ=<IANA zone> `) and the next run after a time, computed by
croniter (Debian's python3-croniter), imported only when a schedule is
made so that the emulator starts without it.

The next run is found in the zone's local time and placed in the zone by
zoneinfo (croniter's own handling of a zone's DST changes is not relied on)."""

import datetime
import os
import re
import sys

from .errors import ApiError

# field name, lowest, highest (7 is Sunday like 0)
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
ITEM_RE = re.compile(r"^(?:\*|([0-9]{1,3})(?:-([0-9]{1,3}))?)(?:/([0-9]{1,3}))?$")
ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")

# Debian installs python3-croniter for its own python3; a python3 from
# elsewhere (pyenv, a virtualenv) finds it there too, after its own paths.
DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
MISSING = ("schedules need the Python package croniter: install Debian's python3-croniter "
           "(or pip install croniter) for the python3 that runs qstash-dev")

_croniter = None


def croniter_class():
    """croniter.croniter, imported on first use; ApiError 501 naming the
    package when it cannot be imported."""
    global _croniter
    if _croniter is None:
        try:
            from croniter import croniter
        except ImportError:
            if DEBIAN_DIST_PACKAGES in sys.path or not os.path.isdir(
                    os.path.join(DEBIAN_DIST_PACKAGES, "croniter")):
                raise ApiError(501, MISSING)
            sys.path.append(DEBIAN_DIST_PACKAGES)
            try:
                from croniter import croniter
            except ImportError:
                raise ApiError(501, MISSING)
        _croniter = croniter
    return _croniter


def _zone(name):
    import zoneinfo
    if not ZONE_RE.match(name) or ".." in name:
        raise ApiError(400, "invalid cron: CRON_TZ=%s is not an IANA time zone name" % name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if not zoneinfo.available_timezones():
            return datetime.timezone.utc      # no tz database here: UTC, as QStash's default
        raise ApiError(400, "invalid cron: unknown time zone %r" % name)


class Cron:
    """A checked expression: text (as stored: surrounding spaces trimmed),
    fields (the five, space-joined) and zone (a tzinfo)."""

    def __init__(self, text):
        if not isinstance(text, str) or re.search(r"[\x00-\x08\x0a-\x1f]", text):
            raise ApiError(400, "invalid cron: %r" % (text,))
        self.text = text.strip()
        rest = self.text
        self.zone = datetime.timezone.utc
        if rest.startswith("CRON_TZ="):
            name, _, rest = rest[len("CRON_TZ="):].partition(" ")
            self.zone = _zone(name)
        parts = rest.split()
        if len(parts) != len(FIELDS):
            raise ApiError(400, "invalid cron %r: want 5 fields (minute hour day-of-month month "
                                "day-of-week), got %d" % (self.text, len(parts)))
        for part, (name, lo, hi) in zip(parts, FIELDS):
            for item in part.split(","):
                m = ITEM_RE.match(item)
                if not m:
                    raise ApiError(400, "invalid cron %r: %s field %r" % (self.text, name, part))
                a, b, step = (int(x) if x is not None else None for x in m.groups())
                for v in (a, b):
                    if v is not None and not lo <= v <= hi:
                        raise ApiError(400, "invalid cron %r: %s %d is outside %d-%d" % (
                            self.text, name, v, lo, hi))
                if b is not None and b < a:
                    raise ApiError(400, "invalid cron %r: %s range %d-%d" % (self.text, name, a, b))
                if step is not None and not 1 <= step <= hi:
                    raise ApiError(400, "invalid cron %r: %s step %d" % (self.text, name, step))
        self.fields = " ".join(parts)
        croniter_class()        # 501 now, not at the first run, when croniter is missing

    def next_after(self, ms):
        """The first run strictly after `ms` (unix ms), in unix ms."""
        cls = croniter_class()
        t = ms / 1000.0
        while True:
            local = datetime.datetime.fromtimestamp(t, self.zone).replace(tzinfo=None)
            nxt = cls(self.fields, local).get_next(datetime.datetime)
            at = nxt.replace(tzinfo=self.zone).timestamp()
            if at > ms / 1000.0:
                return int(round(at * 1000))
            t = max(at, t) + 60       # a local time a DST change repeats: look past it
