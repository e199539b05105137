"""``leonardo-async list``: the account's recent generations, one line each."""

from __future__ import annotations

import argparse
import sys

from .._client import LeonardoClient
from .._errors import ValidationError
from ._common import EXIT_OK, Commands, report_invalid
from ._remote import print_json, run_with_client, view_of

__all__ = ["register"]

#: Characters of the prompt shown in the table.
PROMPT_WIDTH = 48

_DESCRIPTION = """\
List the account's recent generations (images and videos, as Leonardo lists them) with
status, creation time and prompt. The order and the largest --limit are the server's.

exit codes: 0 listed, 2 bad input, 3 API or network error"""


def register(commands: Commands) -> None:
    """Add the ``list`` subcommand."""
    parser = commands.add("list", run, help="list recent generations", description=_DESCRIPTION)
    parser.add_argument(
        "--limit", type=int, default=10, metavar="N", help="how many (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON array")


def run(args: argparse.Namespace) -> int:
    """Run ``list``."""
    if args.limit < 1:
        return report_invalid(ValidationError("--limit", args.limit, "a whole number >= 1"))

    async def work(client: LeonardoClient) -> int:
        generations = await client.list_generations(limit=args.limit)
        views = [view_of(g.id, g) for g in generations]
        if args.json:
            print_json(views)
            return EXIT_OK
        for view in views:
            prompt = (view.prompt or "").replace("\n", " ")
            if len(prompt) > PROMPT_WIDTH:
                prompt = prompt[: PROMPT_WIDTH - 1] + "…"
            created = (view.created_at or "-")[:19]
            print(f"{view.id}  {view.status:<8}  {created}  {prompt}", file=sys.stdout)
        if not views:
            print("no generations", file=sys.stdout)
        return EXIT_OK

    return run_with_client(work)
