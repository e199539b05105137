"""``leonardo-async batch``: a JSONL file of requests in, a folder of MP4s and results out.

The output folder holds everything a run needs to be resumed: ``journal.sqlite`` (the
write-ahead state of every item), the videos, and ``results.jsonl`` (a line appended as
each item ends, then rewritten whole, one line per input line, at the end of each run).
A folder that already holds a journal is only touched with ``--resume``, and only for the
same input file (unless ``--force``), so a second run can never buy the same videos again
by accident.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import TextIO, TypeVar

import anyio

from .._batch import (
    LEASE,
    BatchItem,
    BatchJournal,
    BatchResult,
    BatchStatistics,
    BatchSubmitter,
    ItemState,
    Journal,
    Ledger,
    Outcome,
    journal_results,
    money,
    plan,
)
from .._client import LeonardoClient
from .._errors import (
    FrameCropWarning,
    JournalBusyError,
    JournalDamagedError,
    JournalMismatchError,
    JournalUnreachableError,
    JournalWriteError,
    LeonardoError,
    ValidationError,
)
from .._files import FrameMisfit, frame_misfit, image_file_size
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
    add_redis_option,
    report,
    report_invalid,
    report_warning,
)
from ._findings import apply_findings
from ._generate import id_note
from ._jobs_file import JobLine, ResultLine, input_digest, read_jobs, result_line
from ._outdir import RESULTS, journal_file, key_scheme, open_journal, open_shared, sweep_parts
from ._progress import Progress
from ._remote import NO_KEY
from ._report import BatchPage
from ._results import ResultsLog, result_lines, save_results, summary_line

__all__ = ["register"]

#: What a journal opener gives (a journal, or ``None`` where there is no file).
J = TypeVar("J")

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
(by the journal in --out, if any) and exits 2 if a line is bad. --json prints the
summary (or the plan) as one JSON object on stdout; errors stay on stderr.

--out holds journal.sqlite: a run killed at any moment continues with --resume and never
submits an item twice. results.jsonl gets a line as each item ends (a killed run leaves
whole lines), then one line per input line, in order, at the end.

One run at a time owns --out (a second exits 2, naming the first's pid). --resume
refuses a folder without journal state, and a fresh run a folder holding earlier videos
or results, unless --force. While a run goes, journal.sqlite-wal is part of the journal.

--journal postgresql://user@host/db?schema=NAME keeps the journal in PostgreSQL instead
(pip install 'leonardo-async[postgres]'): any number of workers, on any machines, started
with the same jobs file and URL drain the batch together, each item worked on by one
worker at a time; a worker that dies leaves its items to the others after --journal-lease
seconds, and an item it may have submitted is looked up in the listing before anything
is sent again. A worker started with another jobs file is refused (exit 2). --report
writes results.jsonl and index.html into --out for the whole batch from the journal,
sending nothing (exit 0 if every line is complete, else 1).

exit codes: 0 every item complete, 1 some failed or errored, 2 bad input (nothing
submitted for it; a held, damaged or missing journal, or one of another jobs file; a bad
line outranks failed items), 3 API, network or disk error (a journal database that
cannot be reached: nothing is submitted), 130/143 stopped by Ctrl-C/SIGTERM (resume with
--resume)"""


def register(commands: Commands) -> None:
    """Add the ``batch`` subcommand."""
    parser = commands.add(
        "batch", run, help="run a JSONL file of requests, resumably", description=_DESCRIPTION
    )
    parser.add_argument("jobs", type=Path, help="the JSONL file of requests")
    parser.add_argument("--out", type=Path, required=True, help="folder for videos and results")
    add_redis_option(parser)
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
        "--journal",
        metavar="PATH|URL",
        help="the journal: a SQLite file (default: journal.sqlite in --out), or a "
        "postgresql:// URL shared by every worker of the batch",
    )
    parser.add_argument(
        "--journal-lease",
        type=float,
        default=LEASE,
        metavar="SECONDS",
        help=f"a PostgreSQL journal: seconds a worker's items stay its own without a "
        f"renewal, before a dead worker's items go to the others (default {LEASE:g})",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="write results.jsonl and index.html for the whole batch from the journal; "
        "send nothing",
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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (or the --dry-run plan) as one JSON object on stdout",
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
    for note in _frame_notes(jobs, args.jobs.parent):
        report_warning(note)
    if bad and args.strict:
        report(f"{len(bad)} bad line(s); nothing submitted (--strict)")
        return EXIT_BAD_INPUT
    if args.dry_run:
        left, done = _left_to_do(args, jobs)
        return _dry_run(jobs, left, done, sys.stdout, as_json=args.json)
    if not args.report and not os.environ.get("LEONARDO_API_KEY", "").strip():
        report(NO_KEY)  # before --out is made or a progress line drawn
        return EXIT_BAD_INPUT
    try:
        _check_writable(args.out)
    except OSError as exc:
        report(f"--out {args.out}: not a writable folder ({exc.strerror or exc})")
        return EXIT_BAD_INPUT
    code = _report(args, jobs) if args.report else anyio.run(_run_batch, args, options, jobs)
    # A bad line is the input's fault, to be fixed before anything else: it outranks the
    # jobs that failed (1), not an API error (3) or a stop (130/143).
    return EXIT_BAD_INPUT if bad and code in (EXIT_OK, EXIT_FAILED) else code


def _frame_notes(jobs: list[JobLine], folder: Path) -> list[str]:
    """The warnings about the lines' frames, before anything is sent: a value taken for
    an image id that does not look like one, and a frame file the line's video would
    crop to the other orientation's shape (once per file and size, naming its lines).

    :param folder: the jobs file's, which relative frame paths are read from
    """
    notes: list[str] = []
    base = str(folder.resolve()) + os.sep  # the reader made relative frame paths absolute
    sizes: dict[str, tuple[int, int] | None] = {}
    crops: dict[tuple[str, tuple[int, int]], tuple[FrameMisfit, list[int]]] = {}
    for job in jobs:
        if job.item is None:
            continue
        for name, source in (("image", job.item.image), ("end_image", job.item.end_image)):
            if isinstance(source, str):
                note = id_note(source, f"line {job.line}: {name}", folder)
                notes.extend([note] if note is not None else [])
            elif isinstance(source, os.PathLike):
                path = os.fspath(source)
                if path not in sizes:
                    sizes[path] = image_file_size(path)
                shown = path.removeprefix(base)
                misfit = frame_misfit(sizes[path], job.item.spec, f"{name} {shown}")
                if misfit is not None:
                    crops.setdefault((misfit.label, misfit.video), (misfit, []))[1].append(job.line)
    for misfit, lines in crops.values():
        (width, height), shape = misfit.video, misfit.fits.value
        fix = f'"orientation": "{shape}" (or "width": {height}, "height": {width})'
        named = ", ".join(map(str, lines[:10]))
        if len(lines) > 10:
            named += f" and {len(lines) - 10} more"
        notes.append(f"{'lines' if len(lines) > 1 else 'line'} {named}: {misfit.text(fix)}")
    return notes


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
        number("--journal-lease", args.journal_lease, 0.1, 86_400.0)
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


def _left_to_do(
    args: argparse.Namespace, jobs: list[JobLine]
) -> tuple[list[BatchItem], int | None]:
    """The items a run would still pay for, by the journal in ``--out`` if there is one,
    and how many it has done or paid for (``None`` without a journal).

    Items complete or submitted (paid, being waited for) are done; failed ones count only
    with ``--retry-failed``. Without a journal, every item is left.
    """
    items = [job.item for job in jobs if job.item is not None]
    try:
        journal = _existing_journal(args)
    except (
        JournalBusyError,
        JournalDamagedError,
        JournalMismatchError,
        JournalUnreachableError,
        ValidationError,
    ) as exc:
        report(f"note: {exc}; pricing every item")
        return items, None
    if journal is None:
        return items, None
    with journal:
        if journal.meta("input") != input_digest(args.jobs):
            report(f"note: the journal in {args.out} was written for another input file")
        if key_scheme(journal) == "line":
            jobs = read_jobs(args.jobs, keys="line")
        paid = {ItemState.COMPLETE, ItemState.SUBMITTED}
        if not args.retry_failed:
            paid.add(ItemState.FAILED)
        left = []
        for job in jobs:
            if job.item is None or job.key is None:  # a bad line: no item, so no key
                continue
            entry = journal.entry(job.key)
            if entry is None or entry.state not in paid:
                left.append(job.item)
    return left, len(items) - len(left)


def _existing_journal(args: argparse.Namespace) -> BatchJournal | None:
    """The batch's journal to read (``--dry-run``, ``--report``); ``None`` without a file.

    A database's journal is read as it is, never claimed for this jobs file.
    """
    path = journal_file(args)
    if path is None:
        return open_shared(args, joining=False)
    return Journal(path) if path.is_file() else None


def _dry_run(
    jobs: list[JobLine],
    items: list[BatchItem],
    done: int | None,
    stream: TextIO,
    *,
    as_json: bool = False,
) -> int:
    """Print the plan of what is left; exit 2 if any line is bad (a validator's answer)."""
    the_plan = plan(items)
    bad = sum(job.item is None for job in jobs)
    if as_json:
        view = {
            "dry_run": True,
            "items": the_plan.items,
            "bad_lines": bad,
            "already_done": done,
            "frames_to_upload": the_plan.frames_to_upload,
            "estimated_cost": {unit: f"{amount:f}" for unit, amount in the_plan.estimated.items()},
            "unpriced": the_plan.unpriced,
            "estimate_sources": list(the_plan.sources),
        }
        print(json.dumps(view), file=stream, flush=True)
        return EXIT_BAD_INPUT if bad else EXIT_OK
    if done is not None:
        print(f"journal:          {done} item(s) already done or paid for", file=stream)
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


def _amounts(totals: dict[str, Decimal]) -> dict[str, str]:
    """Money per unit for JSON: exact decimal strings, never floats."""
    return {unit: f"{amount:f}" for unit, amount in sorted(totals.items())}


def _journal_or_exit(open_it: Callable[[], J]) -> J | int:
    """The journal ``open_it`` gives, or the exit code of why it cannot be had (said on
    stderr): one in use, damaged or another batch's is bad input, an unreachable
    database an API error."""
    try:
        return open_it()
    except (JournalMismatchError, JournalBusyError, JournalDamagedError) as exc:
        report(str(exc))
        return EXIT_BAD_INPUT
    except JournalUnreachableError as exc:
        report(str(exc))
        return EXIT_API_ERROR
    except ValidationError as exc:
        return report_invalid(exc)


def _check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
        pass


async def _run_batch(args: argparse.Namespace, options: _Options, jobs: list[JobLine]) -> int:
    journal = _journal_or_exit(functools.partial(open_journal, args))
    if isinstance(journal, int):
        return journal
    sweep_parts(args.out)
    if key_scheme(journal) == "line":
        jobs = read_jobs(args.jobs, keys="line")
    items = [job.item for job in jobs if job.item is not None]
    results: dict[str, BatchResult] = {}
    stopped_by: list[int] = []
    code: int | None = None
    lines: list[ResultLine] = []
    with journal, Progress(sys.stderr, total=len(items), label="batch") as progress:
        try:
            client = LeonardoClient(
                limits=options.limits,
                redis=args.redis,
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
        ledger = batch.ledger  # what every total of money below counts from
        page = BatchPage(args.out, args.jobs.name, jobs, results, ledger=ledger)
        log = ResultsLog(args.out)  # each line as its item ends: a crash leaves a prefix
        numbers = {job.key: job.line for job in jobs if job.key is not None}
        for job in jobs:
            if job.item is None:
                log.append(result_line(job.line, None, job.error))
        # The crops were said above, per file and size, naming the lines in the jobs
        # file's own words: the library's warning of each would say it again.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FrameCropWarning)
            try:
                async with client, batch, _stopped_by_signal(stopped_by):
                    await apply_findings(client)
                    async with batch.stream(items) as stream:
                        async for result in stream:
                            results[result.key] = result
                            log.append(result_line(numbers[result.key], result))
                            page.changed()
                            if result.status != "COMPLETE":
                                progress.message(
                                    f"line {result.key}: {result.status}: {result.error}"
                                )
            except JournalMismatchError as exc:
                report(str(exc))
                code = EXIT_BAD_INPUT
            except LeonardoError as exc:
                report(str(exc))
                code = EXIT_API_ERROR
            finally:
                log.close()
                lines, readable = _accounts(journal, jobs, results, ledger, args)
                unwritten = save_results(args.out, lines)
                page.write(finished=True)
    summary = batch.summary()
    if unwritten is not None:
        report(f"{args.out / RESULTS} cannot be written: {unwritten}")
    resume = shlex.join(
        ["leonardo-async", "batch", str(args.jobs), "--out", str(args.out), "--resume"]
    )
    counts = Counter(line.category for line in lines)
    if args.json:
        view = {
            "counts": {outcome.value: counts[outcome] for outcome in Outcome},
            "items": len(items),
            "elapsed_s": round(summary.elapsed, 3),
            "credits_this_run": _amounts(ledger.this_run()),
            "credits_total": _amounts(ledger.spent()),
            "credits_estimated": _amounts(ledger.estimated()),
            "maybe_paid": ledger.maybe_paid,
            "extra_generations": ledger.extra_count,
            "requests": summary.requests,
            "results": None if unwritten is not None else str(args.out / RESULTS),
            "stopped_by": signal.Signals(stopped_by[0]).name if stopped_by else None,
            "resume": resume if stopped_by else None,
        }
        print(json.dumps(view), file=sys.stdout, flush=True)
    else:
        # Workers of a shared journal spend at once: what "this run" spent is not apart.
        if not readable:
            credits = f"credits as last read {_total(ledger)} (the journal cannot be read)"
        elif journal.shared:
            credits = f"credits (whole batch) {_total(ledger)}"
        else:
            credits = f"credits this run {money(ledger.this_run())} (batch total {_total(ledger)})"
        print(
            f"{summary_line(lines)} in {summary.elapsed:.1f} s; {credits}; "
            f"{summary.requests} requests; "
            + (f"results in {args.out / RESULTS}" if unwritten is None else "no results file"),
            file=sys.stdout,
        )
    if stopped_by:
        if not args.json:
            maybe = counts[Outcome.MAYBE_SUBMITTED]
            print(
                f"interrupted by {signal.Signals(stopped_by[0]).name}: {counts[Outcome.COMPLETE]} "
                f"complete, {counts[Outcome.RUNNING]} still running on the server (paid for; "
                f"--resume waits for them without submitting again), "
                + (f"{maybe} maybe submitted (--resume looks for them first), " if maybe else "")
                + f"{counts[Outcome.NOT_STARTED]} not started; continue with:\n  {resume}"
            )
        return 128 + stopped_by[0]
    if code is not None:
        return code
    if unwritten is not None:
        return EXIT_API_ERROR
    if journal.shared:  # the batch's state, whichever worker did what
        return EXIT_OK if all(line.status == "COMPLETE" for line in lines) else EXIT_FAILED
    complete = counts[Outcome.COMPLETE]
    return EXIT_OK if complete == len(items) else EXIT_FAILED


def _total(ledger: Ledger) -> str:
    """The batch's total, saying which part is estimated and what may be paid besides."""
    text = money(ledger.spent())
    estimated = ledger.estimated()
    if estimated:
        text += f", {money(estimated)} of it estimated"
    if ledger.unpriced:
        text += f", and {ledger.unpriced} generation(s) of no known price"
    if ledger.maybe_paid:
        text += f"; {ledger.maybe_paid} submit(s) maybe paid, not found yet"
    return text


def _accounts(
    journal: BatchJournal,
    jobs: list[JobLine],
    results: dict[str, BatchResult],
    ledger: Ledger,
    args: argparse.Namespace,
) -> tuple[list[ResultLine], bool]:
    """One line per input line, by the journal; and whether the journal could be read.

    A journal that can no longer be read (its database gone) leaves this worker's own
    results and what the ledger last read: the other workers, or ``--report`` later,
    have the rest.
    """
    try:
        if journal.shared:  # what the other workers ended is in the journal
            results = {**_ended(journal, jobs, args), **results}
            ledger.load(journal.entries(), journal.extras())
        return result_lines(jobs, results, journal, ledger), True
    except JournalWriteError as exc:
        report(f"{exc}; {RESULTS} holds this worker's results only (--report writes them all)")
        return result_lines(jobs, results, None, ledger), False


def _ended(
    journal: BatchJournal, jobs: list[JobLine], args: argparse.Namespace
) -> dict[str, BatchResult]:
    """The results the journal holds for the jobs file's lines, whoever ended them."""
    items = {job.key: job.item for job in jobs if job.key is not None and job.item is not None}
    return journal_results(journal, items, None if args.no_download else args.out)


def _report(args: argparse.Namespace, jobs: list[JobLine]) -> int:
    """``--report``: the batch's results and review page from its journal, sending nothing."""
    journal = _journal_or_exit(functools.partial(_existing_journal, args))
    if isinstance(journal, int):
        return journal
    if journal is None:
        report(f"--report: no journal at {journal_file(args)}; nothing to report")
        return EXIT_BAD_INPUT
    with journal:
        if key_scheme(journal) == "line":
            jobs = read_jobs(args.jobs, keys="line")
        results = _ended(journal, jobs, args)
        ledger = Ledger.of(journal.entries(), journal.extras())
        lines = result_lines(jobs, results, journal, ledger)
    unwritten = save_results(args.out, lines)
    BatchPage(args.out, args.jobs.name, jobs, results, ledger=ledger).write(finished=True)
    if unwritten is not None:
        report(f"{args.out / RESULTS} cannot be written: {unwritten}")
        return EXIT_API_ERROR
    print(
        f"{summary_line(lines)}; credits {_total(ledger)}; results in {args.out / RESULTS} "
        "(from the journal; nothing was sent)",
        file=sys.stdout,
    )
    return EXIT_OK if all(line.status == "COMPLETE" for line in lines) else EXIT_FAILED


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
