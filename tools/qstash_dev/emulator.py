"""The emulator: one object, the state of store.py with the methods of each
concern mixed in from its own module.  Handlers (routes.py) call its public
methods; every method that touches the state holds self.cond.

A new concern (queues, schedules) is a module with its mixin, listed here,
its collections declared in store.py and its endpoints in routes.py.
"""

from .auth import AuthMixin
from .delivery import DeliveryMixin
from .dev import DevMixin
from .dlq import DlqMixin
from .flow_control import FlowControlMixin
from .logs import LogsMixin
from .messages import MessagesMixin
from .queues import QueuesMixin
from .scheduler import SchedulerMixin
from .signing import SigningMixin
from .schedules import SchedulesMixin
from .store import Store
from .url_groups import UrlGroupsMixin


class Emulator(Store, AuthMixin, SchedulerMixin, DeliveryMixin, MessagesMixin, DlqMixin,
               LogsMixin, UrlGroupsMixin, FlowControlMixin, QueuesMixin, SchedulesMixin, SigningMixin,
               DevMixin):
    """A whole QStash: Emulator(token, time_scale, burst_limit, quiet)."""
