"""The mistakes of a user's second hour with the command line: each gets a message that
says what to do, and the exit code of the one table, with nothing sent that should not be."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli import FAST_POLL, START_FRAME, cli, generate_args
from _helpers import KEY, NO_LIMITS, total_requests
from test_cli_batch import results, write_jobs

from leonardo_async import (
    LeonardoClient,
    MockTransport,
    NotFoundError,
    Request,
    Response,
)
from leonardo_async.cli._common import EXIT_API_ERROR, EXIT_BAD_INPUT
from leonardo_async.cli._jobs_file import read_jobs
from leonardo_async.simulator import Simulator


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    """A folder holding start.png, for batch lines to name."""
    (tmp_path / "start.png").write_bytes(START_FRAME.read_bytes())
    return tmp_path


# --- an API root without /api/rest/v1 ---------------------------------------------------


@pytest.mark.parametrize(
    "command", [["get", "some-id"], ["account"], ["list"], ["download", "some-id"]]
)
async def test_a_base_url_without_the_api_path_is_named_not_taken_for_a_missing_id(
    command: list[str],
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every route 404s under the bare origin: the error asks whether the URL is the API
    root and says what Leonardo's ends in (exit 3), and ``get`` does not say "no
    generation" of an id it never asked the API about."""
    origin = sim.base_url.removesuffix("/api/rest/v1")
    monkeypatch.setenv("LEONARDO_BASE_URL", origin)
    extra = ["--out", str(tmp_path / "v.mp4")] if command[0] == "download" else []
    assert await cli(*command, *extra) == EXIT_API_ERROR
    err = capsys.readouterr().err
    assert f"is {origin} the API root (LEONARDO_BASE_URL, or base_url)?" in err
    assert "ends in /api/rest/v1" in err
    assert "no generation" not in err


async def test_generate_at_a_bare_origin_names_the_api_root(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = sim.base_url.removesuffix("/api/rest/v1")
    monkeypatch.setenv("LEONARDO_BASE_URL", origin + "/")
    assert await cli(*generate_args(tmp_path / "v.mp4")) == EXIT_API_ERROR
    assert f"is {origin} the API root" in capsys.readouterr().err
    assert sim.generations == ()


@pytest.mark.parametrize(
    ("base_url", "blamed"),
    [
        ("https://api.test", True),
        ("https://api.test/leonardo/", True),
        ("https://api.test/api/rest/v1", False),
        ("https://api.test/api/rest/v1/", False),
    ],
)
async def test_a_404_names_the_root_only_when_its_path_is_not_the_apis(
    base_url: str, blamed: bool
) -> None:
    """In Python too: ``NotFoundError.api_root`` and the message's question, for a root
    not ending in /api/rest/v1 only (under the right root, a 404 is about the object)."""

    def handler(request: Request) -> Response:
        return Response.json(404, {"error": "resource does not exist", "code": "not-found"})

    transport = MockTransport(handler)
    async with LeonardoClient(KEY, base_url=base_url, limits=NO_LIMITS, transport=transport) as c:
        with pytest.raises(NotFoundError) as info:
            await c.me()
    root = base_url.rstrip("/")
    assert info.value.api_root == (root if blamed else None)
    assert (f"is {root} the API root" in str(info.value)) is blamed


# --- --out in a folder that does not exist ---------------------------------------------


@pytest.mark.parametrize("command", ["generate", "wait", "download"])
async def test_out_in_a_missing_folder_is_bad_input_and_no_folder_made(
    command: str, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped folder is not made (it would leave folders where none were meant): exit
    2 naming --out and the folder, and how to make it, before any request."""
    out = tmp_path / "no-such" / "dir" / "v.mp4"
    argv = generate_args(out) if command == "generate" else [command, "some-id", "--out", out]
    assert await cli(*argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"--out: invalid value '{out}'" in err
    assert f"{out.parent} does not exist (to make it: mkdir -p {out.parent})" in err
    assert not (tmp_path / "no-such").exists()
    assert total_requests(sim) == 0


# --- batch without a key ---------------------------------------------------------------


async def test_batch_without_a_key_says_so_in_the_shells_words_and_makes_nothing(
    frames: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named as the variable to set (not ``api_key=``), with no progress line, and
    --out is not made."""
    monkeypatch.delenv("LEONARDO_API_KEY", raising=False)
    jobs = write_jobs(frames / "jobs.jsonl", {"prompt": "a", "image": "start.png"})
    assert await cli("batch", jobs, "--out", frames / "out") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == (
        "leonardo-async: error: LEONARDO_API_KEY is not set: export your Leonardo API key "
        "first (or try 'leonardo-async demo', which needs none)\n"
    )
    assert not (frames / "out").exists()


# --- a misspelt required field ---------------------------------------------------------


@pytest.mark.parametrize(("line", "meant"), [({"promt": "a"}, "prompt"), ({"imag": "x"}, "image")])
def test_a_misspelt_required_field_gets_its_did_you_mean(
    frames: Path, line: dict[str, str], meant: str
) -> None:
    """ "promt" is named as the typo it is, as "durration" is, not as a missing prompt."""
    fields = {"prompt": "a", "image": "start.png"}
    fields.pop(meant)
    jobs = write_jobs(frames / "jobs.jsonl", {**fields, **line})
    (job,) = read_jobs(jobs)
    assert job.item is None
    assert f'not a field: did you mean "{meant}"?' in str(job.error)


# --- a frame value taken for an image id -----------------------------------------------


async def test_a_frame_that_is_no_file_and_no_id_shape_is_said_to_be_sent_as_an_id(
    sim: Simulator,
    frames: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--image startpng`` (the dot lost) is still an id, as documented, but the
    warning says so before the submit and names the file meant."""
    monkeypatch.chdir(frames)
    argv = ["generate", "--prompt", "waves", "--out", "v.mp4", *FAST_POLL, "--dry-run"]
    assert await cli(*argv, "--image", "startpng") == 0
    err = capsys.readouterr().err
    assert (
        "leonardo-async: warning: --image startpng is no file here, so it is sent as an image "
        "id, which it does not look like (Leonardo's are UUIDs; a file needs an image "
        "extension or a /): did you mean start.png?"
    ) in err
    assert await cli(*argv, "--image", "5ba91faf-7a02-4204-b7c1-bd874da5e709") == 0
    assert "warning" not in capsys.readouterr().err
    assert total_requests(sim) == 0


async def test_a_batch_line_whose_frame_is_taken_for_an_id_is_warned_of(
    sim: Simulator, frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(
        frames / "jobs.jsonl",
        {"prompt": "a", "image": "start.png"},
        {"prompt": "b", "image": "startpng"},
    )
    assert await cli("batch", jobs, "--out", frames / "out", "--dry-run") == 0
    err = capsys.readouterr().err
    assert "warning: line 2: image startpng is no file here, so it is sent as an image id" in err
    assert "did you mean start.png?" in err
    assert "line 1" not in err


# --- bad lines beside failed jobs ------------------------------------------------------


async def test_bad_lines_beside_failed_jobs_exit_2_as_the_table_says(
    sim: Simulator, frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line outranks failed items: exit 2 (what to fix first is the input), and
    the failed lines are still reported as failed."""
    sim.configure(failure_rate=1.0)
    jobs = write_jobs(frames / "jobs.jsonl", {"prompt": "a", "image": "start.png"}, "{broken")
    code = await cli("batch", jobs, "--out", frames / "out", *FAST_POLL)
    assert code == EXIT_BAD_INPUT
    assert [line["category"] for line in results(frames / "out")] == ["failed", "bad_line"]
    assert "0 complete, 1 failed" in capsys.readouterr().out


# --- a value of the wrong kind ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--duration", "4s", "one of 4, 6, 8 seconds"),
        ("--seed", "lucky", "an integer from 0 to 2147483637"),
        ("--model", "veo2", "allow_any_model=True, in Python only"),
    ],
)
async def test_a_value_of_the_wrong_kind_is_answered_with_what_is_allowed(
    option: str,
    value: str,
    allowed: str,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not argparse's bare "invalid int value": the option, the value and what it takes,
    in the command line's words (no Python-only "pass allow_any_model=True")."""
    assert await cli(*generate_args(tmp_path / "v.mp4", option, value)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{option}: invalid value '{value}': " in err
    assert allowed in err
    assert "or pass" not in err
    assert total_requests(sim) == 0
