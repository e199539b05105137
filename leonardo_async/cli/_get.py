"""``leonardo-async get ID``: what the server says of one generation, now."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from .._client import LeonardoClient
from .._errors import GenerationNotFoundError, NotFoundError
from ..models import Generation
from ._common import EXIT_NOT_FOUND, EXIT_OK, Commands, report
from ._remote import GenerationView, print_json, run_with_client, view_of, wait_command

__all__ = ["describe", "register"]

_DESCRIPTION = """\
Show one generation: status, prompt, size, and the video's URL once COMPLETE.
The cost is not part of what GET /generations/{id} reports; generate and batch print it
when they submit.

exit codes: 0 shown, 2 bad input, 3 API or network error, 4 no such generation"""


def register(commands: Commands) -> None:
    """Add the ``get`` subcommand."""
    parser = commands.add(
        "get", run, help="show one generation's status and video URL", description=_DESCRIPTION
    )
    parser.add_argument("id", metavar="ID", help="the generation id")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run ``get``."""

    async def work(client: LeonardoClient) -> int:
        generation = await fetch(client, args.id)
        if generation is None:
            return EXIT_NOT_FOUND
        view = view_of(generation.id, generation)
        if args.json:
            print_json(view)
        else:
            describe(view, sys.stdout)
        return EXIT_OK

    return run_with_client(work)


async def fetch(client: LeonardoClient, generation_id: str) -> Generation | None:
    """The generation, or ``None`` after saying that the server does not know it."""
    try:
        generation = await client.get_generation(generation_id)
    except NotFoundError as exc:
        if exc.api_root is not None:  # the route is missing, not the id: say which
            raise
        generation = None
    if generation is None:
        report(str(GenerationNotFoundError(generation_id)))
    return generation


def describe(view: GenerationView, stream: TextIO) -> None:
    """Print a generation for people: one ``name: value`` line per known field."""
    lines = {
        "generation": view.id,
        "status": view.status,
        "created": view.created_at,
        "prompt": view.prompt,
        "size": f"{view.width}x{view.height}" if view.width and view.height else None,
        "seed": view.seed,
        "cost": f"{view.cost} {view.cost_unit}" if view.cost is not None else None,
        "video": view.video,
        "video url": view.video_url,
    }
    for name, value in lines.items():
        if value is not None:
            print(f"{name}: {value}", file=stream)
    if view.status == "PENDING":
        print(f"to wait for it: {wait_command(view.id, None)} --out FILE.mp4", file=stream)
