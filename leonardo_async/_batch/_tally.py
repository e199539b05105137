"""What one batch run has done so far: items per step, results per status, time, requests.

:class:`BatchTally` is counted into by each item's pipeline (:mod:`._pipeline`) and
read by :class:`~._submitter.BatchSubmitter` for its statistics, its progress callback and
its summary. It is one place for the counts, so that a snapshot never mixes two runs.
"""

from __future__ import annotations

import time
from typing import Final

from .._client import LeonardoClient
from ._items import BatchStatistics, BatchSummary, ResultStatus
from ._ledger import Ledger

__all__ = ["BatchTally"]

#: The steps an item is counted in while it is worked on.
STEPS: Final = ("queued", "uploading", "submitting", "running", "downloading")


class BatchTally:
    """Items per step now, results per status in this run, and the run's time and requests.

    :param client: the batch's client (for its request count and key's running limit)
    :param ledger: the batch's money (for the credits spent)
    """

    def __init__(self, client: LeonardoClient, ledger: Ledger) -> None:
        self._client = client
        self._ledger = ledger
        #: Items in each of :data:`STEPS` now.
        self.steps: dict[str, int] = dict.fromkeys(STEPS, 0)
        #: Items per result status in this run.
        self.ended: dict[ResultStatus, int] = {"COMPLETE": 0, "FAILED": 0, "ERROR": 0}
        #: Items in the batch, once known (a list's length, or the end of an iterable).
        self.total: int | None = None
        #: The batch's own running bound, when it has one (else the key's is reported).
        self.running_limit: int | None = None
        self._started = time.monotonic()
        self._requests_at_start = 0

    def start(self) -> None:
        """A run begins: its time and requests count from now."""
        self._started = time.monotonic()
        self._requests_at_start = self._client.requests_sent

    def restart_results(self) -> None:
        """Count results afresh: each run counts from the journal (a second run must not
        count twice)."""
        self.ended.update(dict.fromkeys(self.ended, 0))

    def statistics(self) -> BatchStatistics:
        """A snapshot of the batch now."""
        return BatchStatistics(
            total=self.total,
            queued=self.steps["queued"],
            uploading=self.steps["uploading"],
            submitting=self.steps["submitting"],
            running=self.steps["running"],
            downloading=self.steps["downloading"],
            complete=self.ended["COMPLETE"],
            failed=self.ended["FAILED"],
            errors=self.ended["ERROR"],
            credits=self._ledger.spent(),
            elapsed=time.monotonic() - self._started,
            running_limit=self.running_limit or self._client.statistics().running_limit,
        )

    def summary(self) -> BatchSummary:
        """Counts, credits and time so far."""
        stats = self.statistics()
        return BatchSummary(
            total=stats.done,
            complete=stats.complete,
            failed=stats.failed,
            errors=stats.errors,
            credits=stats.credits,
            elapsed=stats.elapsed,
            requests=self._client.requests_sent - self._requests_at_start,
            credits_estimated=self._ledger.estimated(),
            maybe_paid=self._ledger.maybe_paid,
            extra_generations=self._ledger.extra_count,
        )
