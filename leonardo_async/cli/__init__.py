"""The ``leonardo-async`` command line: ``generate``, ``get``, ``wait``, ``download``,
``list``, ``account``, ``batch``, ``sim``, ``demo`` and ``doctor``.

The only part of the package that prints, reads ``argv`` or calls :func:`anyio.run`.
Each subcommand is a module with ``register(commands)``, which adds its parser through
:meth:`._common.Commands.add` and names the handler that runs it; adding a subcommand is
one more entry in :data:`COMMANDS`. Exit codes (see :mod:`._common`): 0 done, 1 a
generation failed, 2 bad input, 3 API or network error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Final

from .. import __version__
from . import _account, _batch, _demo, _doctor, _download, _generate, _get, _list, _sim, _wait
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    Commands,
    Register,
    logging_to_stderr,
)

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order ``--help`` lists them.
COMMANDS: Final[tuple[Register, ...]] = (
    _generate.register,
    _get.register,
    _wait.register,
    _download.register,
    _list.register,
    _account.register,
    _batch.register,
    _sim.register,
    _demo.register,
    _doctor.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand.

    ``-v`` counts wherever it is written: before the subcommand (``verbose``) and after
    it (``verbose_here``, a separate name, so that a subcommand's default of zero cannot
    overwrite the count given before it).
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        dest="verbose_here",
        action="count",
        default=0,
        help="log the client's requests and decisions to stderr (the API key never appears)",
    )
    parser = argparse.ArgumentParser(
        prog="leonardo-async",
        description="Leonardo.AI image-to-video (Veo 3.1) from the command line.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log the client's requests and decisions to stderr; -vv for more",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands = Commands(subparsers, common)
    for register in COMMANDS:
        register(commands)
    return parser


def _unknown(parser: argparse.ArgumentParser, words: list[str]) -> str:
    """The usage error for ``words`` no option took, with a "did you mean" where one is close."""
    known = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    hints = []
    for word in words:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
            if close:
                hints.append(f"{word}: did you mean {close[0]}?")
    listed = " ".join(words)
    return f"unrecognized arguments: {listed}" + (f" ({'; '.join(hints)})" if hints else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` if ``None``); return the exit code.

    With no arguments at all, prints the help.
    """
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:
        parser.print_help()
        return EXIT_OK
    try:
        args, unknown = parser.parse_known_args(words)
        if unknown:
            command: argparse.ArgumentParser = getattr(args, "parser", parser)
            command.error(_unknown(command, unknown))
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        with logging_to_stderr(args.verbose + args.verbose_here):
            code: int = args.handler(args)
    except INTERRUPTED:  # one line and 130 on every Python, never a traceback
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code
