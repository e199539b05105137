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
from collections.abc import Callable, Iterator
from typing import Final, TextIO

from .._batch import FIELDS
from .._errors import ValidationError
from ._progress import LogHandler

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "INTERRUPTED",
    "Commands",
    "Handler",
    "Register",
    "invalid_text",
    "logging_to_stderr",
    "report",
    "report_invalid",
]

EXIT_OK: Final = 0
#: The generation (or some item of a batch) ended FAILED.
EXIT_FAILED: Final = 1
#: Bad input: arguments, a missing key, an unreadable image; nothing was submitted.
EXIT_BAD_INPUT: Final = 2
#: Any other error of the API, the network or the service.
EXIT_API_ERROR: Final = 3
#: Interrupted with Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130
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
}


class Commands:
    """The subcommand registry handed to each module's ``register``.

    :param subparsers: the main parser's subparsers action
    :param common: a parent parser holding the options every subcommand takes (``-v``)
    """

    def __init__(
        self,
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
        common: argparse.ArgumentParser,
    ) -> None:
        self._subparsers = subparsers
        self._common = common

    def add(
        self, name: str, handler: Handler, *, help: str, description: str
    ) -> argparse.ArgumentParser:
        """Add subcommand ``name`` run by ``handler``; returns its parser to add options to."""
        parser = self._subparsers.add_parser(
            name,
            help=help,
            description=description,
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler, parser=parser)
        return parser


Register = Callable[[Commands], None]


def report(message: str, *, stream: TextIO | None = None) -> None:
    """Write ``error: message`` to stderr."""
    print(f"leonardo-async: error: {message}", file=stream or sys.stderr)


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
