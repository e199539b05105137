"""What the simulator saw: live counters, and the frozen snapshot handed out.

Tests and benchmarks judge a client by what reached the server (how many submits, how many
duplicates, whether an API key leaked to the storage host). The servers bump the mutable
:class:`StatsRecorder`; :meth:`StatsRecorder.snapshot` freezes it into a
:class:`SimulatorStats`, which also travels as JSON through ``GET /_sim/stats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["SimulatorStats", "StatsRecorder"]


def _frozen_map(value: Mapping[Any, int]) -> Mapping[Any, int]:
    return dict(value)


@attrs.frozen
class SimulatorStats:
    """A snapshot of the simulator's counters since start or the last reset.

    :param requests: API requests per route name (``"POST /init-image"``...), including
        refused ones; ``"(unmatched)"`` counts unknown paths.
    :param storage_requests: requests to the storage host per route name.
    :param responses: API responses per HTTP status code (dropped connections have none).
    :param rate_limited: 429 answers, real or injected.
    :param generations_created: generations created (also those whose response was lost).
    :param duplicate_submissions: creations whose fingerprint (every submit field that shapes
        the video, the seed excepted) had been created before.
    :param peak_running: most generations one key had running, measured at each submit.
    :param running_now: generations running when the snapshot was taken.
    :param peak_queued: most generations one key had queued behind busy slots.
    :param peak_attempted: most generations one key would have had in flight (running or
        queued) had each submit been accepted, measured at each submit, refused ones too.
    :param refused_in_flight: submits refused because every slot was busy (with
        ``refuse_at_concurrency``) or the queue was full.
    :param storage_auth_headers: storage requests that carried an ``Authorization`` header.
    :param uploads_completed: presigned uploads accepted.
    :param uploads_rejected: presigned uploads refused.
    :param downloads: CDN responses sent in full.
    :param webhooks_sent: callbacks the receiver answered with 2xx.
    :param webhooks_failed: callbacks that failed (error status, refused, timed out).
    :param faults_injected: injected faults per kind.
    :param credits_spent: credits charged for created generations.
    """

    requests: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    storage_requests: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    responses: Mapping[int, int] = attrs.field(factory=dict, converter=_frozen_map)
    rate_limited: int = 0
    generations_created: int = 0
    duplicate_submissions: int = 0
    peak_running: int = 0
    running_now: int = 0
    peak_queued: int = 0
    peak_attempted: int = 0
    refused_in_flight: int = 0
    storage_auth_headers: int = 0
    uploads_completed: int = 0
    uploads_rejected: int = 0
    downloads: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    faults_injected: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    credits_spent: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (status codes become string keys)."""
        data = attrs.asdict(self)
        data["responses"] = {str(code): n for code, n in sorted(self.responses.items())}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SimulatorStats:
        """Rebuild a snapshot from :meth:`to_json` output (e.g. read from ``/_sim/stats``)."""
        fields = {f.name for f in attrs.fields(cls)}
        kwargs = {k: val for k, val in data.items() if k in fields}
        kwargs["responses"] = {int(c): n for c, n in data.get("responses", {}).items()}
        return cls(**kwargs)


class StatsRecorder:
    """Mutable counters the servers bump; one per simulator, survives restarts."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        self.requests: Counter[str] = Counter()
        self.storage_requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.rate_limited = 0
        self.generations_created = 0
        self.duplicate_submissions = 0
        self.peak_running = 0
        self.peak_queued = 0
        self.peak_attempted = 0
        self.refused_in_flight = 0
        self.storage_auth_headers = 0
        self.uploads_completed = 0
        self.uploads_rejected = 0
        self.downloads = 0
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self.credits_spent = 0

    def fault(self, kind: str) -> None:
        """Count one injected fault of *kind*."""
        self.faults[kind] += 1

    def snapshot(self, running_now: int) -> SimulatorStats:
        """Freeze the counters, with *running_now* measured by the caller."""
        return SimulatorStats(
            requests=self.requests,
            storage_requests=self.storage_requests,
            responses=self.responses,
            rate_limited=self.rate_limited,
            generations_created=self.generations_created,
            duplicate_submissions=self.duplicate_submissions,
            peak_running=self.peak_running,
            running_now=running_now,
            peak_queued=self.peak_queued,
            peak_attempted=self.peak_attempted,
            refused_in_flight=self.refused_in_flight,
            storage_auth_headers=self.storage_auth_headers,
            uploads_completed=self.uploads_completed,
            uploads_rejected=self.uploads_rejected,
            downloads=self.downloads,
            webhooks_sent=self.webhooks_sent,
            webhooks_failed=self.webhooks_failed,
            faults_injected=self.faults,
            credits_spent=self.credits_spent,
        )
