"""What the commands about a generation on the server share (``generate``, ``get``, ``wait``,
``download``, ``list``, ``account``).

A paid job must stay reachable after the command that submitted it gave up waiting, so
every message that leaves a job running names the exact command that picks it up again
(:func:`wait_command`). The JSON views (``--json``) are attrs classes unstructured by
cattrs, one object per generation, with the same keys whichever command prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TextIO

import anyio
import attrs
import cattrs

from .._client import LeonardoClient
from .._errors import (
    GenerationFailedError,
    GenerationNotFoundError,
    LeonardoError,
    ValidationError,
    WaitTimeoutError,
)
from .._schedule import PollSchedule
from .._tracking import TrackedJob
from ..models import Generation, GenerationJob
from ._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    report,
    report_invalid,
)
from ._findings import apply_findings
from ._progress import Progress

__all__ = [
    "GenerationView",
    "add_poll_options",
    "check_out",
    "cost_text",
    "print_json",
    "run_with_client",
    "schedule_from_args",
    "view_of",
    "wait_command",
    "wait_with_progress",
]

#: Seconds between two refreshes of the progress line while waiting.
TICK: Final = 0.25
NO_KEY: Final = (
    "LEONARDO_API_KEY is not set: export your Leonardo API key first "
    "(or try 'leonardo-async demo', which needs none)"
)


@attrs.frozen
class GenerationView:
    """One generation as ``--json`` prints it.

    :param id: the generation id (what ``get``, ``wait`` and ``download`` take)
    :param status: ``PENDING``, ``COMPLETE``, ``FAILED`` (or a state the server added)
    :param cost: the price the submit stated, as a decimal string; ``None`` when not known
        (``GET /generations/{id}`` does not report it)
    :param video: the local file the video was written to, if any
    :param video_url: the MP4's CDN URL once ``COMPLETE``
    :param next: the command that continues this job, when it was left running
    :param error: why the command could not finish with this job
    """

    id: str
    status: str
    prompt: str | None = None
    created_at: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    cost: str | None = None
    cost_unit: str | None = None
    video: str | None = None
    video_url: str | None = None
    next: str | None = None
    error: str | None = None


_views = cattrs.Converter()


def view_of(
    generation_id: str,
    generation: Generation | None,
    *,
    job: GenerationJob | None = None,
    video: Path | None = None,
    next: str | None = None,
    error: str | None = None,
) -> GenerationView:
    """The view of what is known of one generation: as polled, and as submitted."""
    cost = job.cost if job is not None else None
    return GenerationView(
        id=generation_id,
        status=_status(generation),
        prompt=generation.prompt if generation else None,
        created_at=(
            generation.created_at.isoformat()
            if generation is not None and generation.created_at is not None
            else None
        ),
        width=generation.width if generation else None,
        height=generation.height if generation else None,
        seed=generation.seed if generation else None,
        cost=None if cost is None else f"{cost.amount.normalize():f}",
        cost_unit=None if cost is None else cost.unit,
        video=None if video is None else str(video),
        video_url=generation.video_url if generation else None,
        next=next,
        error=error,
    )


def _status(generation: Generation | None) -> str:
    if generation is None:
        return "PENDING"
    return str(getattr(generation.status, "value", generation.status))


def print_json(value: object, stream: TextIO | None = None) -> None:
    """Print attrs instances (or lists of them) as one JSON document on a line."""
    data = _views.unstructure(value)
    print(json.dumps(data, ensure_ascii=False), file=stream or sys.stdout, flush=True)


def cost_text(job: GenerationJob) -> str:
    """The price a submit stated, for people: ``1070 CREDITS``."""
    if job.cost is not None:
        return f"{job.cost.amount.normalize():f} {job.cost.unit}"
    if job.api_credit_cost is not None:
        return f"{job.api_credit_cost} API credits"
    return "cost not stated"


def wait_command(generation_id: str, out: Path | None) -> str:
    """The exact command that waits for a running job (and downloads it to ``out``)."""
    words = ["leonardo-async", "wait", generation_id]
    if out is not None:
        words += ["--out", str(out)]
    return shlex.join(words)


def check_out(out: Path | None) -> None:
    """Refuse an ``--out`` that cannot become a file, before anything is sent.

    :raises ValidationError: ``out`` is a directory, its folder does not exist (made for
        it, a mistyped path would leave folders where none were meant), or its folder
        cannot be written (checked by writing there: a job paid for must have somewhere
        to land)
    """
    if out is None:
        return
    if out.is_dir():
        raise ValidationError("out", str(out), "a file path, not a directory")
    folder = out.parent
    if not folder.is_dir():
        what = (
            "is not a folder"
            if folder.exists()
            else f"does not exist (to make it: mkdir -p {shlex.quote(str(folder))})"
        )
        raise ValidationError("out", str(out), f"a file in an existing folder: {folder} {what}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ValidationError(
            "out", str(out), f"a file in a writable folder ({exc.strerror or exc})"
        ) from None


def add_poll_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--poll-initial`` and ``--poll-max``."""
    parser.add_argument(
        "--poll-initial",
        type=float,
        metavar="S",
        help="seconds before the first status check (default: 20; 1 suits the simulator)",
    )
    parser.add_argument(
        "--poll-max",
        type=float,
        metavar="S",
        help="longest pause between two status checks (default: 10)",
    )


def schedule_from_args(args: argparse.Namespace) -> PollSchedule | None:
    """The poll schedule of ``--poll-initial``/``--poll-max``; ``None`` for the default.

    :raises ValidationError: a value is not a positive number of seconds
    """
    if args.poll_initial is None and args.poll_max is None:
        return None
    default = PollSchedule()
    for flag, value in (("--poll-initial", args.poll_initial), ("--poll-max", args.poll_max)):
        if value is not None and not value > 0:
            raise ValidationError(flag, value, "a positive number of seconds")
    try:
        return PollSchedule(
            initial=default.initial if args.poll_initial is None else args.poll_initial,
            max_interval=default.max_interval if args.poll_max is None else args.poll_max,
        )
    except ValueError as exc:
        raise ValidationError("--poll-initial/--poll-max", args.poll_max, str(exc)) from None


async def wait_with_progress(tracked: TrackedJob, progress: Progress) -> Generation:
    """Await a tracked job, redrawing the progress line with its status and checks."""
    while True:
        seen = tracked.generation
        progress.update(status=_status(seen), looks=tracked.looks)
        with anyio.move_on_after(TICK):
            generation = await tracked
            break
    progress.update(status=_status(generation), looks=tracked.looks)
    return generation


def run_with_client(
    work: Callable[[LeonardoClient], Awaitable[int]],
    *,
    schedule: PollSchedule | None = None,
) -> int:
    """Run ``work`` with a client for the key in the environment; errors become exit codes.

    A missing key or bad input exits 2, a ``FAILED`` generation 1, an id the server does
    not know 4, any other error of the API or the network 3, each with one line on
    stderr.
    """
    api_key = os.environ.get("LEONARDO_API_KEY", "")
    if not api_key.strip():
        report(NO_KEY)
        return EXIT_BAD_INPUT

    async def main() -> int:
        async with LeonardoClient(
            api_key,
            base_url=os.environ.get("LEONARDO_BASE_URL") or None,
            poll_schedule=schedule,
        ) as client:
            await apply_findings(client)
            return await work(client)

    try:
        return anyio.run(main)
    except ValidationError as exc:
        return report_invalid(exc)
    except GenerationFailedError as exc:
        report(f"{exc} (Leonardo reports no reason)")
        return EXIT_FAILED
    except GenerationNotFoundError as exc:
        report(str(exc))
        return EXIT_NOT_FOUND
    except WaitTimeoutError as exc:  # callers that wait report it with the command to resume
        report(str(exc))
        return EXIT_API_ERROR
    except (LeonardoError, OSError) as exc:
        report(str(exc))
        return EXIT_API_ERROR
