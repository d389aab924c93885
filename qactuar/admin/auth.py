"""Admission to the admin socket: the token check, the failed-login lockout and the rejection log throttle.

One ``Gatekeeper`` serves every connection of an admin server, because an attacker opens as many connections
as it likes: per-connection counting would limit nothing.

- A hello's token is compared with ``hmac.compare_digest`` on UTF-8 bytes, so the time taken does not
  depend on how much of a guess was right (CWE-208).
- Failed logins (a wrong token, or a first message that is not a well-formed hello) are counted over a
  sliding window; when ``failures`` of them fall inside ``window`` seconds, hellos are refused unchecked for
  ``lockout`` seconds.  Bytes that look like HTTP and silent connections are rejected too but do not count:
  a browser page can send those in a loop, and must not be able to lock the operator out.  A browser cannot
  send a hello at all.
- Each rejection is logged on ``qt_server`` at WARNING with the peer and the reason -- never the presented
  token -- at most ``failures`` lines per window; beyond that one line says logging is paused, and the
  next logged line says how many were left out.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import deque
from collections.abc import Callable

from qactuar.logs import escape_log_text

server_log = logging.getLogger("qt_server")


class _Window:
    """Counts events in the last ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.clock = clock
        self.times: deque[float] = deque()

    def add(self) -> int:
        """Record one event now; return how many fall in the window, this one included."""
        now = self.clock()
        self.times.append(now)
        while self.times[0] <= now - self.seconds:
            self.times.popleft()
        return len(self.times)


class Gatekeeper:
    def __init__(
        self,
        token: str,
        *,
        failures: int = 5,
        window: float = 10.0,
        lockout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token.encode()
        self._failures = failures
        self._lockout = lockout
        self._clock = clock
        self._failed = _Window(window, clock)
        self._logged = _Window(window, clock)
        self._locked_until = 0.0
        self._unlogged = 0

    def locked_out(self) -> float:
        """Seconds until hellos are checked again (0 when they are now)."""
        return max(0.0, self._locked_until - self._clock())

    def token_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._token)

    def reject(self, peer: str, reason: str, *, failed_login: bool) -> None:
        """Note one rejected connection (``failed_login`` counts toward the lockout) and log it."""
        self._log(f"Admin connection from {escape_log_text(peer)} rejected: {escape_log_text(reason)}")
        if failed_login and not self.locked_out() and self._failed.add() >= self._failures:
            self._locked_until = self._clock() + self._lockout
            server_log.warning(
                "Admin socket: %d failed logins within %g s; refusing logins for %g s",
                self._failures,
                self._failed.seconds,
                self._lockout,
            )

    def _log(self, line: str) -> None:
        count = self._logged.add()
        if count < self._failures:
            if self._unlogged:
                line += f" ({self._unlogged} earlier rejections were not logged)"
                self._unlogged = 0
            server_log.warning("%s", line)
        elif count == self._failures:
            server_log.warning("%s; further rejections are not logged for a while", line)
        else:
            self._unlogged += 1
