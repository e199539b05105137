"""The job tracker: many generations watched at once, from one scheduler task.

Top to bottom:

* :mod:`._job`: :class:`TrackedJob`, what a waiter holds, the :class:`StatusSource` the
  tracker reads through, and :class:`TrackerStatistics`;
* :mod:`._watchlist`: :class:`~._watchlist.Watchlist`, the tracker's book of watched jobs,
  when each is next due and what a look's outcome does to it;
* :mod:`._lookout`: :class:`~._lookout.Lookout`, how the jobs are looked at (per-job polls
  from a worker pool, listing rounds, and a fleet's rounds);
* :mod:`._fanin`: :class:`~._fanin.CallbackFanIn`, webhook callbacks and the fleet's
  listing rounds passed between the trackers of every client of the key on one Redis;
* :mod:`._tracker`: :class:`JobTracker`, the scheduler over them, and its public calls.
"""

from __future__ import annotations

from ._fanin import CallbackFanIn
from ._job import ProgressCallback, StatusSource, TrackedJob, TrackerStatistics, UpdateCallback
from ._tracker import JobTracker

__all__ = [
    "CallbackFanIn",
    "JobTracker",
    "ProgressCallback",
    "StatusSource",
    "TrackedJob",
    "TrackerStatistics",
    "UpdateCallback",
]
