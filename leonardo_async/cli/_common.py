"""What every subcommand shares: exit codes, registration, error reports, logging.

A subcommand is a module with ``register(commands: Commands) -> None``, which calls
:meth:`Commands.add` once and adds its own arguments to the parser it gets back; the
handler it names takes the parsed :class:`argparse.Namespace` and returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Protocol, TextIO

from .._errors import ValidationError
from ._fields import FIELDS
from ._progress import LogHandler

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_BAD_INPUT",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "INTERRUPTED",
    "CommandParser",
    "Commands",
    "Handler",
    "Register",
    "Subcommands",
    "add_verbose_option",
    "exit_code_table",
    "invalid_text",
    "logging_to_stderr",
    "report",
    "report_invalid",
    "report_warning",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_API_ERROR: Final = 3
EXIT_NOT_FOUND: Final = 4
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143

#: What each exit code means, for every command: the one source that ``--help``, the
#: README's table and the commands' own descriptions follow (a test holds the README to it).
EXIT_CODES: Final[Mapping[int, str]] = {
    EXIT_OK: "done",
    EXIT_FAILED: "a generation (or some line of a batch) ended `FAILED` or was not made",
    EXIT_BAD_INPUT: (
        "bad input: options, a missing key, an unreadable image or a bad batch line "
        "(nothing was submitted for it)"
    ),
    EXIT_API_ERROR: (
        "an API, network, service or disk error, or a wait's `--timeout` passed "
        "(the job keeps running)"
    ),
    EXIT_NOT_FOUND: "no such generation: the server does not know the id given",
    EXIT_INTERRUPTED: "interrupted with Ctrl-C",
    EXIT_TERMINATED: "stopped by `SIGTERM` (`batch`)",
}


def exit_code_table() -> str:
    """:data:`EXIT_CODES` as the Markdown table the README shows."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])


#: What Ctrl-C raises out of :func:`anyio.run`: ``KeyboardInterrupt``, except on Python
#: 3.10, whose tasks cannot be uncancelled, where the main task's ``CancelledError``
#: comes out instead.
INTERRUPTED: Final = (KeyboardInterrupt, asyncio.CancelledError)

Handler = Callable[[argparse.Namespace], int]

#: How a :class:`ValidationError` field is called on the command line.
FLAGS: Final = {
    "api_key": "LEONARDO_API_KEY",
    "base_url": "LEONARDO_BASE_URL",
    "prompt": "--prompt",
    "image": "--image",
    "end_image": "--end-image",
    "image id": "--image",
    "model": "--model",
    "duration": "--duration",
    "resolution": "--resolution",
    "orientation": "--orientation",
    "width x height": "--width/--height",
    "seed": "--seed",
    "out": "--out",
    "redis": "--redis",
}


def add_redis_option(parser: argparse.ArgumentParser) -> None:
    """``--redis URL``: share the key's limits with every process on that Redis."""
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share the key's limits (rates, slots, pauses) with every process using the "
        "same Redis and key (default: LEONARDO_REDIS_URL; pip install 'leonardo-async[redis]')",
    )


class CommandParser(argparse.ArgumentParser):
    """An argument parser that keeps the long options given to it, for "did you mean".

    argparse keeps a parser's options only in private attributes; the command line reads
    none of them, so each parser writes down the ``--`` options it is given as they are
    added (its own ``--help`` included).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: The parser's long options, in the order they were added.
        self.long_options: list[str] = []  # before argparse adds --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action:
        self.long_options += [flag for flag in name_or_flags if flag.startswith("--")]
        return super().add_argument(*name_or_flags, **kwargs)


class Subcommands(Protocol):
    """What the command line uses of :meth:`argparse.ArgumentParser.add_subparsers`'
    answer (argparse's class for it is private), made with ``parser_class=CommandParser``."""

    def add_parser(
        self,
        name: str,
        *,
        help: str,
        description: str,
        formatter_class: type[argparse.HelpFormatter],
    ) -> CommandParser: ...


def add_verbose_option(parser: CommandParser, *, before_the_command: bool = False) -> None:
    """``-v``, wherever it is written: before the subcommand or after it.

    Both write ``verbose``. After the subcommand it has no default (``SUPPRESS``), so that
    a subcommand given no ``-v`` leaves the count written before it as it was.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if before_the_command else argparse.SUPPRESS,
        help="log the client's requests and decisions to stderr (the API key never appears)",
    )


class Commands:
    """The subcommand registry handed to each module's ``register``.

    :param subparsers: the main parser's ``add_subparsers(parser_class=CommandParser)``
    """

    def __init__(self, subparsers: Subcommands) -> None:
        self._subparsers = subparsers

    def add(self, name: str, handler: Handler, *, help: str, description: str) -> CommandParser:
        """Add subcommand ``name`` run by ``handler``; returns its parser to add options to."""
        parser = self._subparsers.add_parser(
            name,
            help=help,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_verbose_option(parser)
        parser.set_defaults(handler=handler, parser=parser)
        return parser


Register = Callable[[Commands], None]


def report(message: str, *, stream: TextIO | None = None) -> None:
    """Write ``error: message`` to stderr."""
    print(f"leonardo-async: error: {message}", file=stream or sys.stderr)


def report_warning(message: str, *, stream: TextIO | None = None) -> None:
    """Write ``warning: message`` to stderr: the run goes on, maybe not as meant."""
    print(f"leonardo-async: warning: {message}", file=stream or sys.stderr)


def report_invalid(exc: ValidationError, *, stream: TextIO | None = None) -> int:
    """Report bad input, naming the option it came from; returns :data:`EXIT_BAD_INPUT`."""
    report(invalid_text(exc), stream=stream)
    return EXIT_BAD_INPUT


def invalid_text(exc: ValidationError) -> str:
    """The option, the value and what is allowed: ``--duration: invalid value 5: one of ...``."""
    flag = FLAGS.get(exc.field)
    if flag is None:
        flag = "--" + exc.field.replace("_", "-") if exc.field in FIELDS else exc.field
    value = "(not set)" if exc.value is None else repr(exc.value)
    # "or None" is how the library says "may be left unset"; an option left out already is.
    allowed = exc.allowed.removesuffix(" or None")
    return f"{flag}: invalid value {value}: {allowed}"


class _Redact(logging.Filter):
    """Replace the API key wherever it shows up in a record (it should not, ever)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg = message.replace(self._secret, "<api key>")
            record.args = None
        return True


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """With ``-v``, send the ``leonardo_async`` logger at DEBUG to stderr, for the block.

    Without it, warnings and errors still reach stderr. Records go through the active
    progress display; the API key from ``LEONARDO_API_KEY`` is masked in any of them. The
    logger is left as it was found afterwards (``main()`` may run inside a test suite).
    """
    logger = logging.getLogger("leonardo_async")
    saved = (logger.level, logger.propagate)
    handler = LogHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        if verbosity
        else logging.Formatter("%(levelname)s: %(message)s")
    )
    secret = os.environ.get("LEONARDO_API_KEY")
    if secret:
        handler.addFilter(_Redact(secret))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
