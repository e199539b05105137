"""One exit code table: the code's (``cli._common.EXIT_CODES``), which the README shows."""

from __future__ import annotations

import re
from pathlib import Path

from leonardo_async.cli import _common, build_parser
from leonardo_async.cli._common import EXIT_CODES, exit_code_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_shows_the_exit_code_table_of_the_code() -> None:
    """The README's exit code table is the one ``EXIT_CODES`` renders, row for row."""
    text = README.read_text(encoding="utf-8")
    start = text.index("| code | meaning |")
    end = text.index("\n\n", start)
    assert text[start:end] == exit_code_table()


def test_every_exit_code_constant_is_in_the_table_once() -> None:
    """Each ``EXIT_*`` constant of the CLI has a row, and no row lacks its constant."""
    constants = {
        name: value
        for name, value in vars(_common).items()
        if re.fullmatch(r"EXIT_[A-Z_]+", name) and isinstance(value, int)
    }
    assert sorted(constants.values()) == sorted(EXIT_CODES)
    assert len(set(constants.values())) == len(constants)


def test_help_lists_the_exit_codes() -> None:
    """``leonardo-async --help`` ends with every code of the table."""
    help_text = build_parser().format_help()
    listed = re.findall(r"^\s+(\d+)  ", help_text.split("exit codes", 1)[1], re.MULTILINE)
    assert [int(code) for code in listed] == list(EXIT_CODES)
