"""``leonardo-async download ID --out FILE``: fetch a finished generation's video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._client import LeonardoClient
from .._errors import ValidationError
from ..models import GenerationStatus
from ._common import (
    EXIT_API_ERROR,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    Commands,
    report,
    report_invalid,
)
from ._get import fetch
from ._remote import check_out, run_with_client, wait_command

__all__ = ["register"]

_DESCRIPTION = """\
Download the video of a COMPLETE generation to FILE (written whole or not at all).
A generation still running is not waited for: the message names the 'wait' to run.

exit codes: 0 downloaded, 1 the generation failed (no video), 2 bad input,
3 API or network error, or not finished yet, 4 no such generation"""


def register(commands: Commands) -> None:
    """Add the ``download`` subcommand."""
    parser = commands.add(
        "download", run, help="download a finished generation's video", description=_DESCRIPTION
    )
    parser.add_argument("id", metavar="ID", help="the generation id")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE.mp4", help="where to write the video"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``download``."""
    try:
        check_out(args.out)
    except ValidationError as exc:
        return report_invalid(exc)

    async def work(client: LeonardoClient) -> int:
        generation = await fetch(client, args.id)
        if generation is None:
            return EXIT_NOT_FOUND
        if generation.status == GenerationStatus.FAILED:
            report(f"generation {args.id} FAILED: it has no video (Leonardo reports no reason)")
            return EXIT_FAILED
        if generation.status != GenerationStatus.COMPLETE:
            report(
                f"generation {args.id} is {generation.status} (not finished); "
                f"to wait for it and download it, run:\n  {wait_command(args.id, args.out)}"
            )
            return EXIT_API_ERROR
        path = await client.download(generation, args.out)
        print(f"video: {path}", file=sys.stdout)
        return EXIT_OK

    return run_with_client(work)
