"""The ``leonardo-async`` command line: ``generate``, ``get``, ``wait``, ``download``,
``list``, ``account``, ``batch``, ``sim``, ``demo`` and ``doctor``.

The only part of the package that prints, reads ``argv`` or calls :func:`anyio.run`.
Each subcommand is a module with ``register(commands)``, which adds its parser through
:meth:`._common.Commands.add` and names the handler that runs it; adding a subcommand is
one more entry in :data:`COMMANDS`. The exit codes are :data:`._common.EXIT_CODES`,
listed by ``--help``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Sequence
from typing import Final

from .. import __version__
from . import _account, _batch, _demo, _doctor, _download, _generate, _get, _list, _sim, _wait
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INTERRUPTED,
    CommandParser,
    Commands,
    Register,
    add_verbose_option,
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


def build_parser() -> CommandParser:
    """The argument parser with every registered subcommand."""
    parser = CommandParser(
        prog="leonardo-async",
        description="Leonardo.AI image-to-video (Veo 3.1) from the command line.",
        epilog=_exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbose_option(parser, before_the_command=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=CommandParser
    )
    commands = Commands(subparsers)
    for register in COMMANDS:
        register(commands)
    return parser


def _exit_codes_help() -> str:
    """:data:`EXIT_CODES` for ``--help``, wrapped at 80 columns."""
    lines = ["exit codes, for every command:"]
    for code, text in EXIT_CODES.items():
        lines += textwrap.wrap(
            text.replace("`", ""), 80, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def _unknown(parser: CommandParser, words: list[str]) -> str:
    """The usage error for ``words`` no option took, with a "did you mean" where one is close."""
    known = parser.long_options
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
            command: CommandParser = getattr(args, "parser", parser)
            command.error(_unknown(command, unknown))
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        with logging_to_stderr(args.verbose):
            code: int = args.handler(args)
    except INTERRUPTED:  # one line and 130 on every Python, never a traceback
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code
