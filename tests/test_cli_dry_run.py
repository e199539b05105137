"""``generate --dry-run`` and ``batch --json``: what a run would send, and a summary a
program can read, run in-process against a simulator over loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _cli import END_FRAME, START_FRAME, cli, cli_config, generate_args

from leonardo_async.simulator import Simulator, SimulatorConfig

KEY = "sk-dry-CANARY-3c81e0aa-never-print"


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY)


def requests_seen(sim: Simulator) -> int:
    """Every request the simulator saw, on the API and the storage host."""
    stats = sim.statistics()
    return sum(stats.requests.values()) + sum(stats.storage_requests.values())


def _json_out(capsys: pytest.CaptureFixture[str]) -> Any:
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err
    (line,) = printed.out.splitlines()
    return json.loads(line)


async def test_a_dry_run_prints_the_very_body_a_run_sends_and_sends_nothing(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dry run's request is the run's submit (but the upload's id and the random
    seed, fixed only when it is sent), with the key redacted and no request made."""
    out = tmp_path / "v.mp4"
    options = ("--end-image", END_FRAME, "--duration", "4", "--model", "VEO3_1FAST")
    assert await cli(*generate_args(out, *options, "--dry-run", "--json")) == 0
    preview = _json_out(capsys)
    assert requests_seen(sim) == 0
    assert not out.exists()
    request = preview["request"]
    assert request["method"] == "POST"
    assert request["url"] == f"{sim.base_url}/generations-image-to-video"
    assert request["headers"]["authorization"] == "Bearer [redacted]"
    assert [u["field"] for u in preview["uploads"]] == ["image", "end_image"]
    assert preview["estimated_cost"]["unit"] == "CREDITS"
    assert preview["auto_seed"] is True

    assert await cli(*generate_args(out, *options)) == 0
    (generation,) = sim.generations
    uploaded = {"imageId", "endFrameImage", "seed"}
    sent = {k: v for k, v in generation.body.items() if k not in uploaded}
    assert {k: v for k, v in request["body"].items() if k not in uploaded} == sent
    assert str(START_FRAME) in request["body"]["imageId"]
    assert str(END_FRAME) in request["body"]["endFrameImage"]["id"]


async def test_a_dry_run_in_text_says_what_is_uploaded_and_priced(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text form names the upload, an id sent as an id, the request and the cost."""
    args = generate_args(tmp_path / "v.mp4", "--end-image", "img-123", "--dry-run")
    assert await cli(*args) == 0
    printed = capsys.readouterr().out
    assert KEY not in printed
    assert printed.startswith("dry run: nothing was sent\n")
    assert f"upload image: {START_FRAME}" in printed
    assert "end_image: 'img-123' is sent as an image id" in printed
    assert f"POST {sim.base_url}/generations-image-to-video" in printed
    assert "authorization: Bearer [redacted]" in printed
    assert "estimated cost:   2140 CREDITS" in printed
    assert requests_seen(sim) == 0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--duration", "7"), "--duration"),
        (("--end-image", "missing/end.png"), "--end-image"),
    ],
)
async def test_a_dry_run_of_bad_input_exits_2_naming_it(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    named: str,
) -> None:
    """A dry run checks what a run checks: bad input exits 2, naming the option."""
    assert await cli(*generate_args(tmp_path / "v.mp4", *extra, "--dry-run")) == 2
    printed = capsys.readouterr()
    assert named in printed.err
    assert printed.out == ""
    assert requests_seen(sim) == 0


# --- batch --json -------------------------------------------------------------------------


async def _batch(jobs: Path, out: Path, *extra: str) -> int:
    fast = ("--poll-initial", "0.05", "--poll-max", "0.2", "--spm", "6000", "--rpm", "60000")
    return await cli("batch", jobs, "--out", out, *fast, *extra)


def _jobs(folder: Path, *lines: dict[str, Any] | str) -> Path:
    (folder / "start.png").write_bytes(START_FRAME.read_bytes())
    path = folder / "jobs.jsonl"
    text = "\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


async def test_batch_json_is_one_summary_object_agreeing_with_the_server(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one object: the counts of results.jsonl, what the server charged,
    the results file; a bad line is counted and reported on stderr only."""
    jobs = _jobs(
        tmp_path,
        {"prompt": "one", "image": "start.png"},
        {"prompt": "two", "image": "start.png", "duration": 4},
        {"prompt": "bad", "image": "start.png", "duration": 5},
    )
    out = tmp_path / "out"
    assert await _batch(jobs, out, "--json") == 2  # a bad line: exit 2, the rest ran
    summary = _json_out(capsys)
    assert summary["counts"]["complete"] == 2
    assert sum(summary["counts"].values()) == 3
    assert summary["items"] == 2
    charged = sum(generation.cost for generation in sim.generations)
    assert summary["credits_this_run"] == {"CREDITS": str(charged)}
    assert summary["credits_total"] == summary["credits_this_run"]
    assert summary["results"] == str(out / "results.jsonl")
    assert summary["stopped_by"] is None
    assert summary["resume"] is None
    assert summary["requests"] >= 4  # two uploads' asks and two submits at the least
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3


async def test_batch_dry_run_json_prices_what_is_left(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run --json prices every line; after a run, only what the journal lacks."""
    jobs = _jobs(tmp_path, {"prompt": "one", "image": "start.png", "duration": 4})
    out = tmp_path / "out"
    assert await _batch(jobs, out, "--dry-run", "--json") == 0
    plan = _json_out(capsys)
    assert plan["items"] == 1
    assert plan["already_done"] is None
    assert plan["frames_to_upload"] == 1
    assert plan["estimated_cost"] == {"CREDITS": "1070"}
    assert requests_seen(sim) == 0

    assert await _batch(jobs, out) == 0
    capsys.readouterr()
    assert await _batch(jobs, out, "--resume", "--dry-run", "--json") == 0
    again = _json_out(capsys)
    assert again["items"] == 0
    assert again["already_done"] == 1
    assert again["estimated_cost"] == {}
