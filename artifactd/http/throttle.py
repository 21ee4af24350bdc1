"""Failed-login throttling (RELIABILITY §3 #47), in memory in the server process.

Failures are counted in a sliding window per client address and per user name.
Past ``limit`` failures in ``window`` seconds, that key is blocked for
``base * 2**(failures - limit)`` seconds (capped at ``max_block``); a blocked
client gets 429 with Retry-After *before* its credential is checked, so guessing
costs nothing but time. A success clears its own address and user-name counters only,
never another address's. Memory is bounded by ``max_keys`` (oldest keys are dropped).
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Callable

from artifactd.errors import TooManyRequests, Unauthorized

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.model import Principal


class Throttled(TooManyRequests):
    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = max(1, math.ceil(retry_after))


class LoginThrottle:
    def __init__(self, limit: int = 10, window: float = 300.0, base: float = 1.0, max_block: float = 900.0,
                 max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.base = base
        self.max_block = max_block
        self.max_keys = max_keys
        self.clock = clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str | None, user: str | None) -> list[str]:
        out = [f"addr:{address or '-'}"]
        if user:
            out.append(f"user:{user}")
        return out

    def check(self, address: str | None, user: str | None) -> None:
        """Raise Throttled while any key of this attempt is blocked."""
        now = self.clock()
        with self._lock:
            wait = max((self._blocked.get(k, 0.0) - now for k in self.keys(address, user)), default=0.0)
        if wait > 0:
            raise Throttled(wait)

    def failure(self, address: str | None, user: str | None) -> None:
        now = self.clock()
        with self._lock:
            for k in self.keys(address, user):
                q = self._fails.get(k)
                if q is None:
                    q = self._fails[k] = deque()
                self._fails.move_to_end(k)
                q.append(now)
                while q and q[0] <= now - self.window:
                    q.popleft()
                excess = len(q) - self.limit
                if excess >= 0:
                    self._blocked[k] = now + min(self.max_block, self.base * 2 ** min(excess, 30))
            while len(self._fails) > self.max_keys:
                old, _ = self._fails.popitem(last=False)
                self._blocked.pop(old, None)

    def success(self, address: str | None, user: str | None) -> None:
        with self._lock:
            for k in self.keys(address, user):
                self._fails.pop(k, None)
                self._blocked.pop(k, None)


def claimed_user(header: str | None) -> str | None:
    """The user name an Authorization header claims (tokens: the token's hash prefix), never the secret."""
    from artifactd import auth

    try:
        parsed = auth.parse_authorization(header)
    except Unauthorized:
        return None
    if parsed is None:
        return None
    scheme, user, _secret = parsed
    if scheme == "bearer" or user == "__token__":
        return None  # tokens are 256-bit random: throttle by address only
    return user


def authenticate(app: "App", throttle: LoginThrottle | None, header: str | None, address: str | None) -> "Principal":
    """``app.authenticate`` behind the throttle: blocked → 429; wrong credential → counted, 401."""
    if throttle is None or not header:
        return app.authenticate(header)
    user = claimed_user(header)
    throttle.check(address, user)
    try:
        p = app.authenticate(header)
    except Unauthorized:
        throttle.failure(address, user)
        raise
    throttle.success(address, user)
    return p
