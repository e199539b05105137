"""The batch: many image-to-video jobs, as fast as the key allows, never paid twice.

Top to bottom, the nouns first and the machinery after:

* :mod:`._pricing`: :class:`~._pricing.CostEstimator`, what a job will probably cost;
* :mod:`._budget`: :class:`~._budget.Budget`, what a batch has spent per unit, and
  whether the next submit stays within it;
* :mod:`._items`: :class:`BatchItem`, :class:`BatchResult`, the statistics and plans, what
  a batch is made of and gives back;
* :mod:`._fields`: :class:`JobSpec`, the table of fields a request may name, read by the
  batch file and the CLI;
* :mod:`._jobs_file`: batch files, one JSON request per line in (:func:`read_jobs`), one
  JSON result per line out;
* :mod:`._journal`: :class:`Journal`, the durable record of each item's next step,
  written before it is taken;
* :mod:`._frames`: :class:`~._frames.FrameUploads`, each distinct local frame uploaded
  once;
* :mod:`._slots`: :class:`~._slots.BatchSlots`, the batch's own bounds inside the key's;
* :mod:`._tally`: :class:`~._tally.BatchTally`, what a run has done so far;
* :mod:`._results`: an item's :class:`BatchResult`, made from its journal row;
* :mod:`._pipeline`: :class:`~._pipeline.ItemPipeline`, one item's way from its journal
  row to its result (upload, submit, track, download);
* :mod:`._submitter`: :class:`BatchSubmitter`, the items' tasks and what bounds them.
"""

from __future__ import annotations

from ._fields import FIELDS as FIELDS  # the field names, for the CLI's messages
from ._fields import JobSpec, readable_errors
from ._items import BatchItem, BatchPlan, BatchResult, BatchStatistics, BatchSummary, plan
from ._jobs_file import CATEGORIES as CATEGORIES  # for the CLI's summary line
from ._jobs_file import (
    JobLine,
    KeyScheme,
    ResultLine,
    input_digest,
    read_jobs,
    result_line,
    unfinished_line,
    write_results,
)
from ._journal import ItemState, Journal
from ._submitter import BatchSubmitter

__all__ = [
    "BatchItem",
    "BatchPlan",
    "BatchResult",
    "BatchStatistics",
    "BatchSubmitter",
    "BatchSummary",
    "ItemState",
    "JobLine",
    "JobSpec",
    "Journal",
    "KeyScheme",
    "ResultLine",
    "input_digest",
    "plan",
    "read_jobs",
    "readable_errors",
    "result_line",
    "unfinished_line",
    "write_results",
]
