"""Logging in to the local hub: one shared password, with a back-off after failed attempts.

JupyterHub's ``SharedPasswordAuthenticator`` answers every attempt at once, so anyone who can
reach the login page may try hundreds of passwords a second. The shared password makes every
user name a way in, so failures are counted both per user name and per client address: after
`ThrottledSharedPasswordAuthenticator.failures_per_user` (or `failures_per_address`) failures
in a row, further attempts are refused (HTTP 429, with ``Retry-After``) for `backoff_seconds`,
doubling with each further failure up to `max_backoff_seconds`. A refused attempt is not
checked at all, so guessing during a back-off is useless. A successful login clears both counts;
failures are forgotten after `forget_after_seconds` without one.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from tornado.web import HTTPError
from traitlets import Float, Integer

__all__ = ["LoginThrottle", "ThrottledSharedPasswordAuthenticator", "client_address"]

# Failure records kept at most; the oldest go first (a flood of made-up names cannot grow the
# hub's memory, and an address sending such a flood is held back by its own record).
_MAX_RECORDS = 10_000


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0  # when the last failure happened (monotonic seconds)
    blocked_until: float = 0.0


class LoginThrottle:
    """Failed logins per user name and per address, and how long each must wait (no I/O)."""

    def __init__(
        self,
        *,
        failures_per_user: int,
        failures_per_address: int,
        backoff_seconds: float,
        max_backoff_seconds: float,
        forget_after_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowed = {"user": failures_per_user, "address": failures_per_address}
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._forget_after = forget_after_seconds
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    @staticmethod
    def _keys(user: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user", user)]
        if address:
            keys.append(("address", address))
        return keys

    def wait(self, user: str, address: str | None) -> tuple[float, str]:
        """Seconds before `user` may try again from `address` (0: now), and which count
        holds it back ("user" or "address")."""
        now = self._clock()
        self._forget(now)
        longest, which = 0.0, ""
        for key in self._keys(user, address):
            record = self._records.get(key)
            if record is not None and record.blocked_until - now > longest:
                longest, which = record.blocked_until - now, key[0]
        return longest, which

    def failed(self, user: str, address: str | None) -> None:
        """Count a failed attempt; past the allowed number it starts (or doubles) a back-off."""
        now = self._clock()
        self._forget(now)
        for key in self._keys(user, address):
            record = self._records.pop(key, None) or _Failures()
            record.count += 1
            record.last = now
            beyond = record.count - self._allowed[key[0]]
            if beyond > 0:
                # 2**beyond grows past any cap quickly: stop doubling once it is reached.
                delay = self._backoff * 2 ** min(beyond - 1, 32)
                record.blocked_until = now + min(delay, self._max_backoff)
            self._records[key] = record  # most recent last
        while len(self._records) > _MAX_RECORDS:
            self._records.popitem(last=False)

    def succeeded(self, user: str, address: str | None) -> None:
        for key in self._keys(user, address):
            self._records.pop(key, None)

    def _forget(self, now: float) -> None:
        while self._records:
            key, record = next(iter(self._records.items()))
            if now - record.last <= self._forget_after or record.blocked_until > now:
                return
            del self._records[key]


def client_address(handler, proxies_in_front: int = 0) -> str | None:
    """The address a login request came from, as far as it can be trusted.

    configurable-http-proxy appends the address that connected to it to ``X-Forwarded-For``,
    so the last entry is one no client can write (Tornado's ``remote_ip`` would take a
    client's ``X-Real-Ip``). With `proxies_in_front` more proxies before it, that many more
    entries are theirs.
    """
    request = getattr(handler, "request", None)
    if request is None:
        return None
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [hop for hop in hops if hop]
    if not hops:
        return request.remote_ip
    return hops[max(0, len(hops) - 1 - proxies_in_front)]


class ThrottledSharedPasswordAuthenticator(SharedPasswordAuthenticator):
    """The shared password (``SharedPasswordAuthenticator``) with a back-off after failures.

    Configure the passwords as ``c.SharedPasswordAuthenticator.*`` and the back-off here.
    """

    failures_per_user = Integer(
        5,
        min=1,
        config=True,
        help="""Failed logins in a row for one user name before that name must wait.

        Example: 5
        """,
    )

    failures_per_address = Integer(
        20,
        min=1,
        config=True,
        help="""Failed logins in a row from one address (any user names) before that address
        must wait. Higher than `failures_per_user`: several people may share an address.
        Example: 20
        """,
    )

    backoff_seconds = Float(
        2.0,
        min=0.0,
        config=True,
        help="""Seconds of the first wait; each further failure doubles it. Example: 2""",
    )

    max_backoff_seconds = Float(
        300.0,
        min=0.0,
        config=True,
        help="""Longest wait in seconds, however many failures. Example: 300""",
    )

    forget_after_seconds = Float(
        900.0,
        min=0.0,
        config=True,
        help="""Seconds without a failure after which a name's or address's failures are
        forgotten. Example: 900
        """,
    )

    proxies_in_front = Integer(
        0,
        min=0,
        config=True,
        help="""Reverse proxies in front of the hub's own proxy (e.g. 1 for nginx before it),
        whose X-Forwarded-For entries say where a login came from. 0: the address that
        connected to configurable-http-proxy. Example: 1
        """,
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.throttle = LoginThrottle(
            failures_per_user=self.failures_per_user,
            failures_per_address=self.failures_per_address,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            forget_after_seconds=self.forget_after_seconds,
        )

    async def authenticate(self, handler, data):
        name = self.normalize_username(str(data.get("username") or ""))
        address = client_address(handler, self.proxies_in_front)
        wait, which = self.throttle.wait(name, address)
        if wait > 0:
            seconds = math.ceil(wait)
            whose = "for this user name" if which == "user" else "from this address"
            error = HTTPError(429)
            error.jupyterhub_message = (
                f"Too many failed logins {whose}. Try again in {seconds} second"
                f"{'' if seconds == 1 else 's'}."
            )
            error.headers = {"Retry-After": str(seconds)}
            self.log.warning("Login of %r from %s refused for %ss", name[:40], address, seconds)
            raise error
        # Counted before the check: concurrent attempts cannot slip past the count.
        self.throttle.failed(name, address)
        authenticated = None
        if self.validate_username(name):
            authenticated = await super().authenticate(handler, data)
        if authenticated is not None:
            self.throttle.succeeded(name, address)
        return authenticated
