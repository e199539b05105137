"""``leonardo-async batch``: a JSONL file of requests in, a folder of MP4s and results out.

The output folder holds everything a run needs to be resumed: ``journal.sqlite`` (the
write-ahead state of every item), the videos, and ``results.jsonl`` (one line per input
line, rewritten whole from the journal at the end of each run). A folder that already
holds a journal is only touched with ``--resume``, and only for the same input file
(unless ``--force``), so a second run can never buy the same videos again by accident.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import anyio

from .._batch import (
    BatchItem,
    BatchResult,
    BatchStatistics,
    BatchSubmitter,
    ItemState,
    JobLine,
    Journal,
    ResultLine,
    input_digest,
    plan,
    read_jobs,
)
from .._client import LeonardoClient
from .._errors import (
    JournalBusyError,
    JournalDamagedError,
    JournalMismatchError,
    LeonardoError,
    ValidationError,
)
from .._limits import Limits
from .._listing import LISTING_LAG
from .._schedule import PollSchedule
from .._validate import MAX_SECONDS, number, positive_amount
from ..models import Cost
from ._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    report,
    report_invalid,
)
from ._findings import apply_findings
from ._outdir import JOURNAL, RESULTS, key_scheme, open_journal, sweep_parts
from ._progress import Progress
from ._report import BatchPage
from ._results import money, result_lines, save_results, spent, summary_line

__all__ = ["register"]

#: The units Leonardo charges in.
UNITS = ("CREDITS", "DOLLARS")

_DESCRIPTION = """\
Run every request of a JSONL file (one JSON object per line) as fast as the API key's
limits allow, downloading the videos into --out.

Each line: "prompt", "image" (a path, relative to the file, or an image id), optional
"end_image", "model", "resolution", "orientation" or "width"/"height", "duration",
"seed", "negative_prompt", "is_public", "key", and "extra": {...} for API fields not
listed here (sent as written). Any other name is a typo: the line is refused with a
"did you mean". A bad line (not JSON, an unknown field, a broken rule, a frame file
missing or not an image, a key another line has) is reported with its number and gets
an ERROR result before anything is sent; the other lines still run (exit 2 at the end),
or, with --strict, none does. --dry-run checks every line, prices what is left to do
(by the journal in --out, if any) and exits 2 if a line is bad.

--out holds journal.sqlite: a run killed at any moment continues with --resume and never
submits an item twice. results.jsonl gets one line per input line.

One run at a time owns --out (a second exits 2, naming the first's pid). --resume
refuses a folder without journal state, and a fresh run a folder holding earlier videos
or results, unless --force. While a run goes, journal.sqlite-wal is part of the journal.

exit codes: 0 every item complete, 1 some failed or errored, 2 bad input (nothing
submitted for it; a held, damaged or missing journal), 3 API, network or disk error,
130/143 stopped by Ctrl-C/SIGTERM (resume with --resume)"""


def register(commands: Commands) -> None:
    """Add the ``batch`` subcommand."""
    parser = commands.add(
        "batch", run, help="run a JSONL file of requests, resumably", description=_DESCRIPTION
    )
    parser.add_argument("jobs", type=Path, help="the JSONL file of requests")
    parser.add_argument("--out", type=Path, required=True, help="folder for videos and results")
    parser.add_argument(
        "--concurrency", type=int, help="generations running at once (default: the key's slots)"
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        help="generations to keep queued behind the running ones on a server that queues "
        "(default: 2 with the key's slots, 0 with --concurrency; 0 never submits past them)",
    )
    parser.add_argument("--rpm", type=float, help="requests per minute (default 2000)")
    parser.add_argument("--spm", type=float, help="submits per minute (default 100)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the batch journaled in --out"
    )
    parser.add_argument(
        "--force", action="store_true", help="resume even if the input file changed"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every line and price what is left; submit nothing (exit 2 if a line is bad)",
    )
    parser.add_argument("--max-credits", help="stop submitting before this many credits are spent")
    parser.add_argument(
        "--max-cost",
        nargs=2,
        metavar=("AMOUNT", "UNIT"),
        help="stop submitting before this much is spent, in the account's unit "
        "(CREDITS or DOLLARS); a charge in another unit stops further submits",
    )
    parser.add_argument("--no-download", action="store_true", help="leave the videos on the CDN")
    parser.add_argument(
        "--strict", action="store_true", help="refuse the whole file if a line is bad"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="on resume, submit FAILED items again (pays again)",
    )
    parser.add_argument(
        "--poll-initial", type=float, help="seconds before a job's first status check"
    )
    parser.add_argument("--poll-max", type=float, help="most seconds between status checks")
    parser.add_argument(
        "--timeout", type=float, help="seconds one job may run before it is left for --resume"
    )
    parser.add_argument(
        "--listing-lag",
        type=float,
        metavar="SECONDS",
        help=f"seconds the generation listing may take to show a new job, before a lost "
        f"submit is ruled out and sent again (default {LISTING_LAG:g})",
    )


def run(args: argparse.Namespace) -> int:
    """The ``batch`` handler: validate everything, then run."""
    try:
        jobs = read_jobs(args.jobs)
        options = _Options.from_args(args)
    except ValidationError as exc:
        return report_invalid(exc)
    bad = [job for job in jobs if job.item is None]
    for job in bad:
        report(str(job.error))
    if bad and args.strict:
        report(f"{len(bad)} bad line(s); nothing submitted (--strict)")
        return EXIT_BAD_INPUT
    items = [job.item for job in jobs if job.item is not None]
    if args.dry_run:
        return _dry_run(jobs, _left_to_do(args, items), sys.stdout)
    try:
        _check_writable(args.out)
    except OSError as exc:
        report(f"--out {args.out}: not a writable folder ({exc.strerror or exc})")
        return EXIT_BAD_INPUT
    code = anyio.run(_run_batch, args, options, jobs)
    return EXIT_BAD_INPUT if bad and code == EXIT_OK else code


class _Options:
    """The parsed numeric options, checked before anything is sent."""

    def __init__(
        self,
        limits: Limits,
        schedule: PollSchedule | None,
        budget: Cost | None,
        listing_lag: float = LISTING_LAG,
    ) -> None:
        self.limits = limits
        self.schedule = schedule
        self.budget = budget
        self.listing_lag = listing_lag

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Options:
        """Every numeric option finite and in range, or a :class:`ValidationError`."""
        for flag, value in (("--poll-initial", args.poll_initial), ("--poll-max", args.poll_max)):
            number(flag, value, 0.001, MAX_SECONDS, allow_none=True)
        number("--timeout", args.timeout, 0.001, MAX_SECONDS, allow_none=True)
        number("--listing-lag", args.listing_lag, 0.0, MAX_SECONDS, allow_none=True)
        try:
            limits = Limits(
                requests_per_minute=2000.0 if args.rpm is None else args.rpm,
                submits_per_minute=100.0 if args.spm is None else args.spm,
                max_running="account" if args.concurrency is None else args.concurrency,
                max_queued=args.max_queued,
            )
        except ValidationError as exc:
            flags = {
                "requests_per_minute": "--rpm",
                "submits_per_minute": "--spm",
                "max_queued": "--max-queued",
            }
            raise ValidationError(
                flags.get(exc.field, "--concurrency"), exc.value, exc.allowed
            ) from None
        schedule = None
        if args.poll_initial is not None or args.poll_max is not None:
            default = PollSchedule()
            schedule = PollSchedule(
                initial=default.initial if args.poll_initial is None else args.poll_initial,
                max_interval=default.max_interval if args.poll_max is None else args.poll_max,
            )
        lag = LISTING_LAG if args.listing_lag is None else args.listing_lag
        return cls(limits, schedule, _budget(args), lag)


def _budget(args: argparse.Namespace) -> Cost | None:
    if args.max_credits is not None and args.max_cost is not None:
        raise ValidationError("--max-credits", args.max_credits, "not together with --max-cost")
    if args.max_credits is not None:
        return Cost(positive_amount("--max-credits", args.max_credits), "CREDITS")
    if args.max_cost is None:
        return None
    amount, unit = args.max_cost
    if unit.upper() not in UNITS:
        raise ValidationError("--max-cost UNIT", unit, " or ".join(UNITS))
    return Cost(positive_amount("--max-cost AMOUNT", amount), unit.upper())


def _left_to_do(args: argparse.Namespace, items: list[BatchItem]) -> list[BatchItem]:
    """The items a run would still pay for, by the journal in ``--out`` if there is one.

    Items complete or submitted (paid, being waited for) are done; failed ones count only
    with ``--retry-failed``. Without a journal, every item is left.
    """
    path = args.out / JOURNAL
    if not path.is_file():
        return items
    try:
        journal = Journal(path)
    except (JournalBusyError, JournalDamagedError) as exc:
        report(f"note: {exc}; pricing every item")
        return items
    with journal:
        if journal.meta("input") != input_digest(args.jobs):
            report(f"note: the journal in {args.out} was written for another input file")
        if key_scheme(journal) == "line":
            items = [job.item for job in read_jobs(args.jobs, keys="line") if job.item]
        paid = {ItemState.COMPLETE, ItemState.SUBMITTED}
        if not args.retry_failed:
            paid.add(ItemState.FAILED)
        left = []
        for index, item in enumerate(items):
            entry = journal.entry(item.key or str(index))
            if entry is None or entry.state not in paid:
                left.append(item)
    print(
        f"journal:          {len(items) - len(left)} item(s) already done or paid for",
        file=sys.stdout,
    )
    return left


def _dry_run(jobs: list[JobLine], items: list[BatchItem], stream: TextIO) -> int:
    """Print the plan of what is left; exit 2 if any line is bad (a validator's answer)."""
    the_plan = plan(items)
    bad = sum(job.item is None for job in jobs)
    print(f"items:            {the_plan.items} to run ({bad} bad lines)", file=stream)
    print(f"frames to upload: {the_plan.frames_to_upload}", file=stream)
    for unit, amount in sorted(the_plan.estimated.items()):
        print(f"estimated cost:   {amount:f} {unit}", file=stream)
    if the_plan.unpriced:
        print(f"not priced:       {the_plan.unpriced} item(s) of unknown models", file=stream)
    if the_plan.sources:
        print(f"estimate source:  {'; '.join(the_plan.sources)}", file=stream)
    elif not the_plan.items:
        print("estimated cost:   nothing: no item is left to pay for", file=stream)
    print("dry run: nothing was submitted", file=stream)
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
        pass


async def _run_batch(args: argparse.Namespace, options: _Options, jobs: list[JobLine]) -> int:
    try:
        journal = open_journal(args)
    except (JournalMismatchError, JournalBusyError, JournalDamagedError) as exc:
        report(str(exc))
        return EXIT_BAD_INPUT
    sweep_parts(args.out)
    if key_scheme(journal) == "line":
        jobs = read_jobs(args.jobs, keys="line")
    items = [job.item for job in jobs if job.item is not None]
    results: dict[str, BatchResult] = {}
    stopped_by: list[int] = []
    code: int | None = None
    page = BatchPage(args.out, args.jobs.name, jobs, results)  # out/index.html, kept current
    spent_before = spent(journal)
    lines: list[ResultLine] = []
    with journal, Progress(sys.stderr, total=len(items), label="batch") as progress:
        try:
            client = LeonardoClient(
                limits=options.limits,
                poll_schedule=options.schedule,
                listing_lag=options.listing_lag,
            )
        except ValidationError as exc:
            return report_invalid(exc)
        batch = BatchSubmitter(
            client,
            journal=journal,
            out_dir=None if args.no_download else args.out,
            schedule=options.schedule,
            budget=options.budget,
            retry_failed=args.retry_failed,
            force=args.force,
            wait_timeout=args.timeout,
            on_progress=lambda stats: _show(progress, stats),
        )
        try:
            async with client, batch, _stopped_by_signal(stopped_by):
                await apply_findings(client)
                async with batch.stream(items) as stream:
                    async for result in stream:
                        results[result.key] = result
                        page.changed()
                        if result.status != "COMPLETE":
                            progress.message(f"line {result.key}: {result.status}: {result.error}")
        except JournalMismatchError as exc:
            report(str(exc))
            code = EXIT_BAD_INPUT
        except LeonardoError as exc:
            report(str(exc))
            code = EXIT_API_ERROR
        finally:
            lines = result_lines(jobs, results, journal)
            unwritten = save_results(args.out, lines)
            page.write(finished=True)
            spent_after = spent(journal)
    summary = batch.summary()
    if unwritten is not None:
        report(f"{args.out / RESULTS} cannot be written: {unwritten}")
    this_run = {
        unit: amount - spent_before.get(unit, Decimal(0))
        for unit, amount in spent_after.items()
        if amount != spent_before.get(unit, Decimal(0))
    }
    print(
        f"{summary_line(lines)} in {summary.elapsed:.1f} s; credits this run "
        f"{money(this_run)} (batch total {money(spent_after)}); {summary.requests} "
        "requests; "
        + (f"results in {args.out / RESULTS}" if unwritten is None else "no results file"),
        file=sys.stdout,
    )
    if stopped_by:
        counts = Counter(line.category for line in lines)
        resume = shlex.join(
            ["leonardo-async", "batch", str(args.jobs), "--out", str(args.out), "--resume"]
        )
        print(
            f"interrupted by {signal.Signals(stopped_by[0]).name}: {counts['complete']} "
            f"complete, {counts['running']} still running on the server (paid for; --resume "
            f"waits for them without submitting again), {counts['not_started']} not "
            f"started; continue with:\n  {resume}"
        )
        return 128 + stopped_by[0]
    if code is not None:
        return code
    if unwritten is not None:
        return EXIT_API_ERROR
    return EXIT_OK if summary.complete == len(items) else EXIT_FAILED


@contextlib.asynccontextmanager
async def _stopped_by_signal(received: list[int]) -> AsyncIterator[None]:
    """Stop the block cleanly on SIGTERM or SIGINT, as Ctrl-C would, noting the signal.

    Only the main thread can take signals; elsewhere (a test's worker thread) the block
    just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, (signal.SIGTERM, signal.SIGINT), received, tg.cancel_scope)
            yield
            tg.cancel_scope.cancel()
    except Exception as exc:
        # The block's own error comes out as itself, not in the task group's exception
        # group, so that the handlers around it (a journal that cannot be written: exit
        # 3) see it as they do off the main thread, and no traceback is printed.
        inner = getattr(exc, "exceptions", None)
        if isinstance(inner, tuple) and len(inner) == 1 and isinstance(inner[0], Exception):
            raise inner[0] from None
        raise


async def _watch(
    signals: tuple[signal.Signals, ...], received: list[int], scope: anyio.CancelScope
) -> None:
    with anyio.open_signal_receiver(*signals) as arrivals:
        async for signum in arrivals:
            received.append(int(signum))
            scope.cancel()
            return


def _show(progress: Progress, stats: BatchStatistics) -> None:
    credits = stats.credits.get("CREDITS")
    progress.update(
        submitted=stats.submitted,
        running=stats.running,
        done=stats.done,
        failed=stats.failed,
        errors=stats.errors,
        credits=credits,
    )
