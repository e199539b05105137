"""Every paid job stays reachable: ``get``, ``wait``, ``download``, ``list``, ``account``,
and ``generate``'s way out (timeout, ``--json``), run in-process against the simulator."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest
from _cli import FAST_POLL, cli, cli_config, generate_args

from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "sk-jobs-CANARY-7c1d2e3f-never-print"
SUBMIT = "POST /generations-image-to-video"


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY)


async def left_running(sim: Simulator, out: Path, *extra: str) -> str:
    """Run a generate whose --timeout passes on a long job; returns the job's id."""
    sim.configure(durations=JobDurations.fixed(600))
    assert await cli(*generate_args(out, "--timeout", "0.1", *extra)) == 3
    return sim.generations[-1].id


def submits(sim: Simulator) -> int:
    """How many submits the simulator received."""
    return sim.statistics().requests.get(SUBMIT, 0)


def one_json(text: str) -> Any:
    """The single JSON document ``text`` holds (one line)."""
    (line,) = text.strip().splitlines()
    return json.loads(line)


def wait_command_in(text: str) -> list[str]:
    """The ``leonardo-async wait ...`` command a message tells the user to run."""
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("leonardo-async wait ")]
    return shlex.split(line)[1:]


async def test_after_a_timeout_the_printed_wait_downloads_and_nothing_is_paid_twice(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate --timeout prints the exact wait command; running it downloads the video,
    and the server saw one submit."""
    sim.configure(durations=JobDurations.fixed(3))
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out, "--timeout", "0.1")) == 3
    err = capsys.readouterr().err
    (generation,) = sim.generations
    command = wait_command_in(err)
    assert command == ["wait", generation.id, "--out", str(out)]
    assert "generate" not in err.split("error:", 1)[1]  # never a hint to run generate again
    assert not out.exists()
    assert await cli(*command, *FAST_POLL) == 0
    assert out.read_bytes() == sim.video_bytes(generation.id)
    assert submits(sim) == 1


@pytest.mark.parametrize("command", [["wait", "--timeout", "0.2", *FAST_POLL], ["download"]])
async def test_wait_and_download_of_a_running_job_print_the_wait_to_run(
    command: list[str], sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wait whose --timeout passes, and download of a running job, exit 3 and print the
    wait command to run (again); nothing is submitted or written."""
    out = tmp_path / "video.mp4"
    generation_id = await left_running(sim, out)
    capsys.readouterr()
    name, *options = command
    assert await cli(name, generation_id, "--out", out, *options) == 3
    assert wait_command_in(capsys.readouterr().err) == ["wait", generation_id, "--out", str(out)]
    assert submits(sim) == 1
    assert not out.exists()


async def test_generate_json_prints_one_object(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate --json prints exactly one JSON object: id, status, cost, video path and URL."""
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out, "--json")) == 0
    (generation,) = sim.generations
    printed = one_json(capsys.readouterr().out)
    assert printed["id"] == generation.id
    assert printed["status"] == "COMPLETE"
    assert printed["cost"] == str(generation.cost)
    assert printed["cost_unit"] == "CREDITS"
    assert printed["video"] == str(out)
    assert printed["video_url"].endswith(".mp4")
    assert printed["next"] is None


async def test_generate_json_after_a_timeout_says_how_to_continue(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timed-out generate --json still prints one object: PENDING, and the wait command."""
    out = tmp_path / "video.mp4"
    generation_id = await left_running(sim, out, "--json")
    printed = one_json(capsys.readouterr().out)
    assert printed["id"] == generation_id
    assert printed["status"] == "PENDING"
    assert shlex.split(printed["next"])[1:] == ["wait", generation_id, "--out", str(out)]


async def test_get_and_list_print_json_with_id_and_status(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """get ID --json and list --json show the generation with its id, status and prompt."""
    assert await cli(*generate_args(tmp_path / "video.mp4")) == 0
    (generation,) = sim.generations
    capsys.readouterr()
    assert await cli("get", generation.id, "--json") == 0
    got = one_json(capsys.readouterr().out)
    assert (got["id"], got["status"], got["prompt"]) == (generation.id, "COMPLETE", "waves")
    assert got["video_url"].endswith(".mp4")
    assert await cli("list", "--limit", "5", "--json") == 0
    listed = one_json(capsys.readouterr().out)
    assert [(g["id"], g["status"]) for g in listed] == [(generation.id, "COMPLETE")]
    assert await cli("list") == 0
    assert generation.id in capsys.readouterr().out
    assert await cli("get", generation.id) == 0
    assert "status: COMPLETE" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["get", "wait", "download"])
async def test_an_unknown_id_exits_4_naming_it(
    command: str, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """get, wait and download of an id the server does not know exit 4 and say so (wait
    does not wait for ever on a mistyped id)."""
    extra = [] if command == "get" else ["--out", str(tmp_path / "v.mp4")]
    assert await cli(command, "no-such-generation", *extra) == 4
    assert "no generation 'no-such-generation'" in capsys.readouterr().err


async def test_wait_on_a_finished_job_looks_at_once(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wait ID, with the default schedule (first look at 20 s for a job just submitted),
    looks at a job finished earlier at once: one status request, exit 0, the video."""
    assert await cli(*generate_args(tmp_path / "first.mp4")) == 0
    (generation,) = sim.generations
    polls = sim.statistics().requests.get("GET /generations/{id}", 0)
    out = tmp_path / "again.mp4"
    with anyio.fail_after(15):  # the default schedule's first look would be at 20 s
        assert await cli("wait", generation.id, "--out", out) == 0
    assert sim.statistics().requests.get("GET /generations/{id}", 0) == polls + 1
    assert out.read_bytes() == sim.video_bytes(generation.id)
    assert submits(sim) == 1


async def test_download_of_a_finished_job_writes_its_video(sim: Simulator, tmp_path: Path) -> None:
    """download ID --out FILE writes the MP4 of a COMPLETE generation."""
    assert await cli(*generate_args(tmp_path / "first.mp4")) == 0
    (done,) = sim.generations
    out = tmp_path / "again.mp4"
    assert await cli("download", done.id, "--out", out) == 0
    assert out.read_bytes() == sim.video_bytes(done.id)


async def test_account_json_shows_user_slots_and_balance(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """account --json prints the user id, the slots and the balance /me reports."""
    assert await cli("account", "--json") == 0
    account = one_json(capsys.readouterr().out)
    assert account["user_id"] == sim.user_id
    assert account["concurrency_slots"] == sim.config.concurrency_slots
    assert account["balance"] == account["subscription_tokens"] + (account["paid_tokens"] or 0)
    assert await cli("account") == 0
    assert sim.user_id in capsys.readouterr().out


@pytest.mark.parametrize("command", [["get", "x"], ["list"], ["account"], ["wait", "x"]])
async def test_commands_without_a_key_exit_2(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without LEONARDO_API_KEY every API command exits 2 and names the variable."""
    monkeypatch.delenv("LEONARDO_API_KEY", raising=False)
    assert await cli(*command) == 2
    assert "LEONARDO_API_KEY" in capsys.readouterr().err


async def test_wait_refuses_a_directory_as_out_before_any_request(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wait --out DIR exits 2 naming --out; nothing is asked of the server."""
    assert await cli("wait", "some-id", "--out", tmp_path) == 2
    assert "--out" in capsys.readouterr().err
    assert sum(sim.statistics().requests.values()) == 0
