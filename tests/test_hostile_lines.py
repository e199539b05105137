"""Hostile batch lines: each is a line error naming its line and field, never a crash, a
hang or a paid job; the good lines around it still run.

Lone surrogates (``"\\ud800"`` in JSON reads as one), nesting past any request's needs,
a FIFO as a frame, a byte order mark and a stray carriage return.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest
from _cli import cli, cli_config, generate_args
from _images import png_bytes
from hypothesis import given
from hypothesis import strategies as st
from test_cli_batch import KEY, batch, requests_seen, results

from leonardo_async import BatchItem, ValidationError
from leonardo_async.cli._jobs_file import JobLine, _parse_line, read_jobs
from leonardo_async.simulator import Simulator, SimulatorConfig

GOOD = '{"prompt": "waves", "image": "start.png"}'


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY, job_seconds=0.05)


def jobs_file(folder: Path, *lines: str, prefix: bytes = b"") -> Path:
    """A batch file of these raw lines (JSON text as written, escapes included)."""
    path = folder / "jobs.jsonl"
    path.write_bytes(prefix + "\n".join(lines).encode("utf-8") + b"\n")
    return path


def errors(path: Path) -> dict[int, str]:
    """Line number -> error, for the lines that are errors."""
    return {job.line: job.error or "" for job in read_jobs(path) if job.item is None}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"prompt": "a \\ud800 b", "image": "start.png"}', "prompt"),
        ('{"prompt": "waves", "image": "start.png", "key": "k\\udfff"}', "key"),
        ('{"prompt": "waves", "image": "st\\ud800art.png"}', "image"),
        ('{"prompt": "waves", "image": "start.png", "extra": {"a": ["\\ud83d"]}}', "extra.a[0]"),
        ('{"prompt": "waves", "image": "start.png", "\\ud800": 1}', "a field name"),
    ],
)
def test_a_lone_surrogate_is_a_line_error_naming_the_field(
    folder: Path, line: str, field: str
) -> None:
    """Text that is not UTF-8 (it would be paid for, then break every write) is refused."""
    path = jobs_file(folder, GOOD, line, GOOD.replace("waves", "gulls"))
    found = errors(path)
    assert list(found) == [2]
    assert found[2].startswith(f"line 2: {field}: ")
    assert "not text" in found[2]
    assert [job.line for job in read_jobs(path) if job.item is not None] == [1, 3]


def test_a_surrogate_prompt_is_refused_by_the_request_itself() -> None:
    """The Python API refuses it too, before anything is sent."""
    with pytest.raises(ValidationError, match=r"invalid prompt=.*no lone surrogates"):
        BatchItem.create(prompt="a \ud800", image="img-1")


@pytest.mark.parametrize("depth", [40, 5000, 200_000])
def test_deep_nesting_is_a_line_error(folder: Path, depth: int) -> None:
    """Nesting past 32 levels, even past the JSON reader's recursion limit: one line error."""
    nested = "[" * depth + "]" * depth
    line = '{"prompt": "waves", "image": "start.png", "extra": {"deep": ' + nested + "}}"
    found = errors(jobs_file(folder, GOOD, line, GOOD))
    assert list(found) == [2]
    assert "nested deeper than 32 levels" in found[2]
    if depth < 1000:  # the reader got through it: the field is named
        assert found[2].startswith("line 2: extra: ")


def test_a_byte_order_mark_and_stray_carriage_returns_shift_no_line(folder: Path) -> None:
    """A BOM before line 1 is skipped; only \\n ends a line, so \\r splits none."""
    lines = [
        GOOD,
        '{"prompt": "one",\r "image": "start.png"}',
        "not json",
        '{"prompt": "two", "image": "start.png"}\r',
        "still not json",
    ]
    path = jobs_file(folder, *lines, prefix=b"\xef\xbb\xbf")
    assert sorted(errors(path)) == [3, 5]
    assert [job.line for job in read_jobs(path) if job.item is not None] == [1, 2, 4]


@given(st.text(st.characters(codec="utf-8"), max_size=30) | st.text(max_size=30))
def test_any_prompt_text_gives_an_item_or_a_line_error(text: str) -> None:
    """Any string, surrogates included, as a prompt: an item, or an error naming line 1."""
    raw = json.dumps({"prompt": text, "image": "img-1"}, ensure_ascii=True)
    job = _parse_one(raw)
    if job.item is None:
        assert job.error is not None
        assert job.error.startswith("line 1: ")
    else:
        assert job.item.spec.prompt == text
        text.encode("utf-8")  # only real text gets through


def _parse_one(raw: str) -> JobLine:
    return _parse_line(1, raw.encode("ascii"), Path())


@pytest.fixture
def fifo(folder: Path) -> Path:
    """A FIFO named like an image, with no writer: reading it would wait forever."""
    path = folder / "pipe.png"
    os.mkfifo(path)
    return path


async def test_a_fifo_frame_is_a_line_error_not_a_hang(folder: Path, fifo: Path) -> None:
    """read_jobs checks frames without blocking on them."""
    path = jobs_file(folder, GOOD, '{"prompt": "x", "image": "pipe.png"}')
    with anyio.fail_after(30):
        found = await anyio.to_thread.run_sync(errors, path, abandon_on_cancel=True)
    assert list(found) == [2]
    assert "line 2: invalid image=" in found[2]
    assert "not a FIFO or device" in found[2]


async def test_good_lines_run_around_hostile_ones(
    sim: Simulator, folder: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO frame, a lone-surrogate prompt and a deep line among good lines: the good
    ones complete, each bad one gets its line error, results.jsonl is written, exit 2."""
    lines = [
        GOOD,
        '{"prompt": "x", "image": "pipe.png"}',
        '{"prompt": "paid then broken \\ud800", "image": "start.png"}',
        '{"prompt": "deep", "image": "start.png", "extra": {"d": ' + "[" * 9000 + "]" * 9000 + "}}",
        GOOD.replace("waves", "gulls"),
    ]
    path = jobs_file(folder, *lines)
    out = folder / "out"
    with anyio.fail_after(60):
        assert await batch(path, out) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for number in (2, 3, 4):
        assert f"line {number}: " in err
    found = {line["line"]: line for line in results(out)}
    assert [found[n]["status"] for n in range(1, 6)] == [
        "COMPLETE", "ERROR", "ERROR", "ERROR", "COMPLETE",
    ]  # fmt: skip
    assert sim.statistics().generations_created == 2


async def test_dry_run_and_generate_do_not_hang_on_a_fifo(
    sim: Simulator, folder: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run reports the line; generate --image FIFO is bad input; nothing is sent."""
    path = jobs_file(folder, GOOD, '{"prompt": "x", "image": "pipe.png"}')
    with anyio.fail_after(60):
        assert await batch(path, folder / "out", "--dry-run") == 2
        assert await cli(*generate_args(folder / "v.mp4", "--image", fifo)) == 2
    assert "not a FIFO or device" in capsys.readouterr().err
    assert requests_seen(sim) == 0


def test_frame_bytes_still_read(folder: Path) -> None:
    """A regular PNG next to the FIFO reads as before (the check costs nothing)."""
    (folder / "other.png").write_bytes(png_bytes(rgb=(1, 2, 3)))
    path = jobs_file(folder, '{"prompt": "x", "image": "other.png"}')
    assert errors(path) == {}
