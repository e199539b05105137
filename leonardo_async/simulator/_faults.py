"""Deciding which fault to inject, and rewriting responses into broken ones.

All draws come from the simulator's one seeded RNG, so a run with the same seed and the same
request sequence fails the same way. Bursts (server errors, 429 storms) are counters: once a
burst starts, the next requests on faulted routes keep failing until it is spent. Every
injected fault is counted in :attr:`SimulatorStats.faults_injected` under its kind.
"""

from __future__ import annotations

import json
import random

from ._config import FaultConfig
from ._stats import StatsRecorder

__all__ = ["GATEWAY_ERROR_STATUSES", "SERVER_ERROR_STATUSES", "FaultInjector"]

SERVER_ERROR_STATUSES = (500, 502, 503)
GATEWAY_ERROR_STATUSES = (502, 503, 504)
_GATEWAY_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}


class FaultInjector:
    """Draws faults from a :class:`FaultConfig`, keeping burst state between requests."""

    def __init__(self, rng: random.Random, stats: StatsRecorder) -> None:
        self._rng = rng
        self._stats = stats
        self._errors_left = 0
        self._error_status = 500
        self._storm_left = 0
        #: Faults fired since the fault config in force was set (for its ``limit``).
        self._fired = 0
        self._config: FaultConfig | None = None

    def draw(self, rate: float, kind: str) -> bool:
        """Return whether a fault of probability *rate* fires (and count it if so)."""
        if rate <= 0.0 or self._rng.random() >= rate:
            return False
        self._stats.fault(kind)
        self._fired += 1
        return True

    def applies(self, faults: FaultConfig, route: str) -> bool:
        """Return whether request-level faults apply to *route* (and, under a ``limit``,
        whether any are left since these faults were set)."""
        if faults is not self._config:
            self._config, self._fired = faults, 0
        if faults.limit is not None and self._fired >= faults.limit:
            return False
        return faults.routes is None or route in faults.routes

    def server_error(self, faults: FaultConfig) -> int | None:
        """Return the status of an injected server error, or ``None``."""
        if self._errors_left > 0:
            self._errors_left -= 1
            self._stats.fault("server_error")
            return self._error_status
        if self.draw(faults.server_error_rate, "server_error"):
            self._errors_left = faults.server_error_burst - 1
            self._error_status = self._rng.choice(SERVER_ERROR_STATUSES)
            return self._error_status
        return None

    def storm(self, faults: FaultConfig) -> bool:
        """Return whether this request falls in a 429 storm."""
        if self._storm_left > 0:
            self._storm_left -= 1
            self._stats.fault("rate_limit_storm")
            return True
        if self.draw(faults.rate_limit_storm_rate, "rate_limit_storm"):
            self._storm_left = faults.rate_limit_storm_length - 1
            return True
        return False

    def malformed(self, body: bytes) -> bytes:
        """Return a broken rendition of a JSON *body*."""
        choice = self._rng.randrange(3)
        if choice == 0 and len(body) > 1:
            return body[: len(body) // 2]
        if choice == 1:
            return b"<html><body>502 Bad Gateway</body></html>"
        return b'{"error": '

    def reshape(self, body: bytes) -> bytes:
        """Return well-formed JSON of the wrong shape in place of *body*."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        top = next(iter(data), None) if isinstance(data, dict) and data else None
        choice = self._rng.randrange(3)
        if top is None or choice == 0:
            wrong: object = {"data": None}
        elif choice == 1:
            wrong = {top: {"id": 5, "status": ["x"]}}
        else:
            wrong = {top: "unexpected"}
        return json.dumps(wrong).encode()

    def gateway_page(self) -> tuple[int, str]:
        """Return the status and HTML page of a gateway that gave up on the origin."""
        status = self._rng.choice(GATEWAY_ERROR_STATUSES)
        title = f"{status} {_GATEWAY_REASONS[status]}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return status, page

    def null_cost(self) -> dict[str, str | None] | None:
        """Return a submit answer's ``cost`` with no usable price in it (one of three forms)."""
        choice = self._rng.randrange(3)
        if choice == 0:
            return None
        if choice == 1:
            return {"amount": None, "unit": None}
        return {"amount": None, "unit": "CREDITS"}

    def reset(self) -> None:
        """Forget any running burst or storm."""
        self._errors_left = 0
        self._storm_left = 0
