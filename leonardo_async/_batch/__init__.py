"""The batch: many image-to-video jobs, as fast as the key allows, never paid twice.

Top to bottom, the nouns first and the machinery after:

* :mod:`._pricing`: :class:`~._pricing.CostEstimator`, what a job will probably cost;
* :mod:`._items`: :class:`BatchItem`, :class:`BatchResult` and its :class:`Outcome`, the
  statistics and plans, what a batch is made of and gives back;
* :mod:`._journal`: :class:`BatchJournal`, the durable record of each item's next step,
  written before it is taken, and :class:`Journal`, which keeps it in a SQLite file;
* :mod:`._pg_journal`: :class:`PostgresJournal`, the same in PostgreSQL, shared by many
  workers that drain one batch;
* :mod:`._ledger`: :class:`Ledger`, every generation the batch made and its cost, which
  every total of money counts from;
* :mod:`._budget`: :class:`~._budget.Budget`, whether the next submit stays within the
  batch's limit;
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

from ._items import (
    BatchItem,
    BatchPlan,
    BatchResult,
    BatchStatistics,
    BatchSummary,
    Outcome,
    plan,
)
from ._journal import BatchJournal, ExtraGeneration, ItemState, Journal, JournalEntry
from ._ledger import Charge, Ledger, money
from ._pg_journal import LEASE as LEASE  # the CLI's default
from ._pg_journal import PostgresJournal, is_postgres_url
from ._results import journal_results
from ._submitter import BatchSubmitter

__all__ = [
    "BatchItem",
    "BatchJournal",
    "BatchPlan",
    "BatchResult",
    "BatchStatistics",
    "BatchSubmitter",
    "BatchSummary",
    "Charge",
    "ExtraGeneration",
    "ItemState",
    "Journal",
    "JournalEntry",
    "Ledger",
    "Outcome",
    "PostgresJournal",
    "is_postgres_url",
    "journal_results",
    "money",
    "plan",
]
