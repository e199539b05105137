"""``leonardo-async wait ID``: wait for a running generation, then download it if asked.

The way back to a job that ``generate`` left running (its ``--timeout`` passed, or it was
interrupted): nothing is submitted, so nothing is paid again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._client import LeonardoClient
from .._errors import ValidationError, WaitTimeoutError
from ._common import EXIT_API_ERROR, EXIT_OK, Commands, report, report_invalid
from ._get import describe
from ._progress import Progress
from ._remote import (
    add_poll_options,
    check_out,
    print_json,
    run_with_client,
    schedule_from_args,
    view_of,
    wait_command,
    wait_with_progress,
)

__all__ = ["register"]

_DESCRIPTION = """\
Wait for a generation to finish (one submitted by generate, batch or anything else),
then, with --out, download its video. Nothing is submitted: nothing is paid again.

It looks at the job at once (it may have finished long ago), then by the schedule.

exit codes: 0 done, 1 the generation failed, 2 bad input, 3 API or network error or
--timeout passed (the job keeps running: run the same command again), 4 no such
generation"""


def register(commands: Commands) -> None:
    """Add the ``wait`` subcommand."""
    parser = commands.add(
        "wait", run, help="wait for a generation, then download it", description=_DESCRIPTION
    )
    parser.add_argument("id", metavar="ID", help="the generation id")
    parser.add_argument(
        "--out", type=Path, metavar="FILE.mp4", help="download the video here when done"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds to wait before giving up (default: no limit)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_poll_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``wait``."""
    try:
        if args.timeout is not None and not args.timeout > 0:
            raise ValidationError("--timeout", args.timeout, "a positive number of seconds")
        check_out(args.out)
        schedule = schedule_from_args(args)
    except ValidationError as exc:
        return report_invalid(exc)
    out: Path | None = args.out

    async def work(client: LeonardoClient) -> int:
        with Progress(sys.stderr, label="wait") as progress:
            tracked = client.track(args.id, deadline=args.timeout)
            try:
                generation = await wait_with_progress(tracked, progress)
            except WaitTimeoutError as exc:
                progress.close()
                report(f"{exc}; it keeps running on the server")
                print(f"to wait again, run:\n  {wait_command(args.id, out)}", file=sys.stderr)
                if args.json:
                    print_json(
                        view_of(args.id, tracked.generation, next=wait_command(args.id, out))
                    )
                return EXIT_API_ERROR
            path = None
            if out is not None:
                progress.update(status="downloading")
                path = await client.download(generation, out)
                progress.update(status="done")
        view = view_of(generation.id, generation, video=path)
        if args.json:
            print_json(view)
        else:
            describe(view, sys.stdout)
        return EXIT_OK

    return run_with_client(work, schedule=schedule)
