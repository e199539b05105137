"""``leonardo-async batch`` run in-process (``main([...])`` in a worker thread) on the simulator.

Exit codes: 0 every line complete, 1 some job failed or errored, 2 bad input (nothing
submitted for it), 3 API or network error. The output folder is only reused with
``--resume``, and only for the same input unless ``--force``.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from _images import png_bytes
from hypothesis import given
from hypothesis import strategies as st

from leonardo_async._batch._items import video_name
from leonardo_async.cli import main
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "sk-batch-CANARY-0f3a9c7e-never-print"
FAST_POLL = ("--poll-initial", "0.05", "--poll-max", "0.2", "--spm", "6000", "--rpm", "60000")
SUBMIT = "POST /generations-image-to-video"
NAME = re.compile(r"^\d{5}-[a-z0-9]+(-[a-z0-9]+)*-[a-z0-9]+\.mp4$")


#: The simulator of the batch command's tests (here and in the modules that import this
#: mark): short jobs and this module's key.
ON_BATCH_SIMULATOR = pytest.mark.leonardo_simulator(
    SimulatorConfig(api_key=KEY, durations=JobDurations.fixed(0.05), seed=11)
)
pytestmark = ON_BATCH_SIMULATOR


async def batch(jobs: Path, out: Path, *extra: str) -> int:
    """Run ``leonardo-async batch`` in a worker thread (it runs its own event loop)."""
    argv = ["batch", str(jobs), "--out", str(out), *FAST_POLL, *extra]
    with anyio.fail_after(60):
        return await anyio.to_thread.run_sync(main, argv)


def write_jobs(path: Path, *lines: dict[str, Any] | str) -> Path:
    """Write a JSONL batch file (dicts as JSON, strings as they are)."""
    text = "\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def jobs_of(folder: Path, count: int, prefix: str = "shot") -> Path:
    """A batch file of ``count`` good lines, prompts distinct."""
    lines = [{"prompt": f"{prefix} {i}", "image": "start.png"} for i in range(count)]
    return write_jobs(folder / "jobs.jsonl", *lines)


def results(out: Path) -> list[dict[str, Any]]:
    """The lines of ``out/results.jsonl``."""
    text = (out / "results.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def requests_seen(sim: Simulator) -> int:
    """Every request the simulator saw, API and storage."""
    stats = sim.statistics()
    return sum(stats.requests.values()) + sum(stats.storage_requests.values())


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, links and dots resolved, lies directly in ``folder``."""
    return path.resolve().parent == folder.resolve()


def files_in(folder: Path) -> list[str]:
    """Names of everything in ``folder``."""
    return sorted(p.name for p in folder.iterdir())


def assert_videos_exact(sim: Simulator, out: Path, lines: list[dict[str, Any]]) -> None:
    """Every COMPLETE line names an MP4 inside ``out`` holding the simulator's exact bytes."""
    for line in lines:
        if line["status"] == "COMPLETE":
            video = Path(line["video"])
            assert video.parent == out
            assert video.read_bytes() == sim.video_bytes(line["generation_id"])


# --- exit codes ------------------------------------------------------------------------


async def test_a_batch_exits_0_with_one_result_line_per_input_line(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every line completes: exit 0, results.jsonl in input order, byte-exact MP4s."""
    out = folder / "out"
    assert await batch(jobs_of(folder, 5), out) == 0
    lines = results(out)
    assert [line["line"] for line in lines] == [1, 2, 3, 4, 5]
    assert all(line["status"] == "COMPLETE" and line["error"] is None for line in lines)
    assert all(line["cost"] == "2140" and line["cost_unit"] == "CREDITS" for line in lines)
    assert_videos_exact(sim, out, lines)
    assert sim.statistics().generations_created == 5
    assert sim.statistics().duplicate_submissions == 0
    assert "5 complete, 0 failed in " in capsys.readouterr().out
    assert not [name for name in files_in(out) if name.endswith(".part")]


async def test_every_batch_submit_is_private_unless_its_line_asks(
    sim: Simulator, folder: Path
) -> None:
    """Lines without ``is_public`` are sent ``isPublic: false``; a line may ask for true."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "quiet", "image": "start.png"},
        {"prompt": "shown", "image": "start.png", "is_public": True},
    )
    assert await batch(jobs, folder / "out") == 0
    sent = {g.body["prompt"]: g.body["isPublic"] for g in sim.generations}
    assert sent == {"quiet": False, "shown": True}


async def test_a_failed_job_exits_1(sim: Simulator, folder: Path) -> None:
    """A job that ends FAILED exits 1 and is FAILED in results.jsonl."""
    sim.configure(failure_rate=1.0)
    out = folder / "out"
    assert await batch(jobs_of(folder, 2), out) == 1
    assert [line["status"] for line in results(out)] == ["FAILED", "FAILED"]
    assert all(line["video"] is None for line in results(out))


async def test_a_bad_line_is_reported_the_rest_run_and_the_exit_is_2(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --strict a bad line is an ERROR result, the good lines complete, exit 2."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "good one", "image": "start.png"},
        {"prompt": "bad", "image": "start.png", "duration": 5},
        {"prompt": "good two", "image": "start.png"},
    )
    out = folder / "out"
    assert await batch(jobs, out) == 2
    lines = results(out)
    assert [line["status"] for line in lines] == ["COMPLETE", "ERROR", "COMPLETE"]
    assert lines[1]["error"].startswith("line 2: invalid duration=5")
    assert "line 2: invalid duration=5" in capsys.readouterr().err
    assert sim.statistics().generations_created == 2


async def test_strict_with_a_bad_line_exits_2_and_submits_nothing(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--strict refuses the whole file for one bad line; the API sees no request."""
    jobs = write_jobs(folder / "jobs.jsonl", {"prompt": "good", "image": "start.png"}, "{not json")
    out = folder / "out"
    assert await batch(jobs, out, "--strict") == 2
    err = capsys.readouterr().err
    assert "line 2: not valid JSON" in err
    assert "nothing submitted" in err
    assert requests_seen(sim) == 0
    assert not out.exists()


async def test_a_missing_image_file_is_a_bad_line(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A frame file that does not exist is caught while reading: its line errs, exit 2."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "here", "image": "start.png"},
        {"prompt": "not here", "image": "frames/missing.png"},
    )
    out = folder / "out"
    assert await batch(jobs, out) == 2
    lines = results(out)
    assert [line["status"] for line in lines] == ["COMPLETE", "ERROR"]
    assert "missing.png" in lines[1]["error"]
    assert lines[1]["error"].startswith("line 2: ")
    assert "line 2: " in capsys.readouterr().err
    assert sim.statistics().generations_created == 1
    assert await batch(jobs, folder / "strict", "--strict") == 2
    assert sim.statistics().generations_created == 1


async def test_an_api_error_exits_3(
    sim: Simulator,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key the API refuses exits 3, and the wrong key is not printed either."""
    sim.configure(auth_hook_errors=False)
    monkeypatch.setenv("LEONARDO_API_KEY", "sk-wrong-CANARY-key")
    assert await batch(jobs_of(folder, 2), folder / "out") == 3
    printed = capsys.readouterr()
    assert "401" in printed.err
    assert "sk-wrong-CANARY-key" not in printed.out + printed.err
    assert sim.statistics().generations_created == 0


@pytest.mark.parametrize("key", ["sk-wrong-CANARY-key", "0f3a9c7e-5b2e-4d41-9c7e-0f3a9c7e5b2e"])
async def test_a_refused_key_stops_the_batch_at_once(
    sim: Simulator,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
) -> None:
    """A malformed or unknown key: exit 3 naming LEONARDO_API_KEY, after at most 2 requests."""
    monkeypatch.setenv("LEONARDO_API_KEY", key)
    assert await batch(jobs_of(folder, 5), folder / "out") == 3
    printed = capsys.readouterr()
    assert "LEONARDO_API_KEY" in printed.err
    assert key not in printed.out + printed.err
    assert requests_seen(sim) <= 2
    assert sim.statistics().generations_created == 0


async def test_a_key_echoed_by_a_gateway_is_never_written_or_printed(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error bodies that repeat the authorization header leave no key in any output."""
    sim.configure(api_subscription_tokens=3000, faults={"echo_authorization": True})
    out = folder / "out"
    argv = ["-v", "batch", str(jobs_of(folder, 3)), "--out", str(out), *FAST_POLL]
    assert await anyio.to_thread.run_sync(main, argv) == 1
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err
    errors = [line["error"] for line in results(out) if line["status"] != "COMPLETE"]
    assert errors
    assert all("[redacted]" in error for error in errors), errors
    for path in out.rglob("*"):  # the report's frames/ folder included
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "extra",
    [
        ("--concurrency", "0"),
        ("--spm", "-5"),
        ("--max-credits", "plenty"),
        ("--timeout", "0"),
        ("--poll-initial", "-1"),
    ],
)
async def test_bad_options_exit_2_and_send_nothing(
    sim: Simulator, folder: Path, extra: tuple[str, str]
) -> None:
    """Invalid numeric options exit 2 before anything is sent."""
    assert await batch(jobs_of(folder, 1), folder / "out", *extra) == 2
    assert requests_seen(sim) == 0


# --- planning and money --------------------------------------------------------------------


async def test_dry_run_prints_the_plan_and_sends_nothing(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints items, uploads and estimated credits; the simulator sees no request."""
    (folder / "end.png").write_bytes(png_bytes(rgb=(9, 9, 9)))
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "a", "image": "start.png", "end_image": "end.png"},
        {"prompt": "b", "image": "start.png", "duration": 4},
        {"prompt": "c", "image": "start.png", "model": "VEO3_1FAST", "duration": 4},
        "{broken",
    )
    out = folder / "out"
    assert await batch(jobs, out, "--dry-run") == 2  # a validator: a bad line fails it
    printed = capsys.readouterr().out
    assert "items:            3 to run (1 bad lines)" in printed
    assert "frames to upload: 2" in printed
    assert f"estimated cost:   {2140 + 1070 + 535} CREDITS" in printed
    assert re.search(r"^estimate source:  \S", printed, re.MULTILINE)  # says where from
    assert "nothing was submitted" in printed
    assert requests_seen(sim) == 0
    assert not out.exists()


async def test_max_credits_stops_submitting_and_a_resume_finishes(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-credits leaves the rest unsubmitted (exit 1); a dry run then prices only those;
    --resume without it completes them, and a dry run after that has nothing to price."""
    jobs = jobs_of(folder, 4)
    out = folder / "out"
    assert await batch(jobs, out, "--max-credits", "4500", "--concurrency", "2") == 1
    first = results(out)
    assert sorted(line["status"] for line in first) == ["COMPLETE"] * 2 + ["ERROR"] * 2
    assert all("budget of" in line["error"] for line in first if line["status"] == "ERROR")
    assert sim.statistics().credits_spent == 4280
    assert await batch(jobs, out, "--resume", "--dry-run") == 0  # only what is left
    printed = capsys.readouterr().out
    assert "items:            2 to run (0 bad lines)" in printed
    assert "estimated cost:   4280 CREDITS" in printed
    assert "2 item(s) already done or paid for" in printed
    assert await batch(jobs, out, "--resume") == 0
    lines = results(out)
    assert [line["status"] for line in lines] == ["COMPLETE"] * 4
    assert sim.statistics().generations_created == 4
    assert sim.statistics().duplicate_submissions == 0
    assert_videos_exact(sim, out, lines)
    capsys.readouterr()
    assert await batch(jobs, out, "--resume", "--dry-run") == 0  # nothing left to price
    printed = capsys.readouterr().out
    assert "items:            0 to run (0 bad lines)" in printed
    assert "estimated cost:   nothing: no item is left to pay for" in printed
    assert "estimate source:" not in printed  # not a label with nothing after it


async def test_no_download_leaves_videos_on_the_cdn(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-download completes lines with no video file and no CDN request, and records
    each video's URL in results.jsonl, also after a resume that had nothing to do."""
    out = folder / "out"
    jobs = jobs_of(folder, 2)
    assert await batch(jobs, out, "--no-download") == 0
    urls = {g.id: g.video_url for g in sim.generations}
    for _ in range(2):  # the run, then a no-op --resume: same URLs, nothing spent again
        lines = results(out)
        assert all(line["video"] is None for line in lines)
        assert [line["video_url"] for line in lines] == [urls[ln["generation_id"]] for ln in lines]
        assert sim.statistics().downloads == 0
        assert not [name for name in files_in(out) if name.endswith(".mp4")]
        assert await batch(jobs, out, "--no-download", "--resume") == 0
    assert "credits this run 0 (batch total 4280 CREDITS)" in capsys.readouterr().out
    assert sim.statistics().generations_created == 2


async def test_retry_failed_resubmits_only_on_request(sim: Simulator, folder: Path) -> None:
    """--resume keeps FAILED lines; --resume --retry-failed submits them once more."""
    jobs = jobs_of(folder, 2)
    out = folder / "out"
    sim.configure(failure_rate=1.0)
    assert await batch(jobs, out) == 1
    sim.configure(failure_rate=0.0)
    assert await batch(jobs, out, "--resume") == 1
    assert sim.statistics().generations_created == 2
    assert await batch(jobs, out, "--resume", "--retry-failed") == 0
    assert sim.statistics().generations_created == 4
    assert_videos_exact(sim, out, results(out))


# --- the output folder -------------------------------------------------------------------


async def test_reusing_out_without_resume_exits_2_and_submits_nothing(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into a folder holding a batch needs --resume; without it nothing is sent."""
    jobs = jobs_of(folder, 2)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    before = (out / "results.jsonl").read_bytes()
    sim.reset_stats()
    assert await batch(jobs, out) == 2
    assert "--resume" in capsys.readouterr().err
    assert requests_seen(sim) == 0
    assert (out / "results.jsonl").read_bytes() == before
    assert await batch(jobs, out, "--resume") == 0  # all complete, videos present
    stats = sim.statistics()
    assert stats.requests.get(SUBMIT, 0) == 0
    assert stats.storage_requests == {}


async def test_resume_with_another_input_exits_2_unless_forced(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume with a changed file exits 2 and sends nothing; --force runs only the new line."""
    jobs = jobs_of(folder, 2)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    with jobs.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"prompt": "added later", "image": "start.png"}) + "\n")
    sim.reset_stats()
    assert await batch(jobs, out, "--resume") == 2
    assert "different input file" in capsys.readouterr().err
    assert requests_seen(sim) == 0
    assert await batch(jobs, out, "--resume", "--force") == 0
    assert sim.statistics().requests.get(SUBMIT) == 1
    assert [line["status"] for line in results(out)] == ["COMPLETE"] * 3


async def test_an_unwritable_out_exits_2(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out under a regular file cannot be a folder: exit 2, nothing sent."""
    blocker = folder / "a-file"
    blocker.write_text("not a folder")
    assert await batch(jobs_of(folder, 1), blocker / "out") == 2
    assert "not a writable folder" in capsys.readouterr().err
    assert requests_seen(sim) == 0


HOSTILE_PROMPTS = [
    "../../etc/passwd",
    "/etc/shadow",
    "..",
    "C:\\Windows\\System32\\evil",
    "動画: 海の波 🌊",
    "nul\x00byte and \n newline",
    "w" * 1000,
    "-",
]


async def test_video_names_never_escape_out(sim: Simulator, folder: Path) -> None:
    """Prompts shaped like paths, unicode or 1000 characters still name files inside --out."""
    jobs = write_jobs(
        folder / "jobs.jsonl", *({"prompt": p, "image": "start.png"} for p in HOSTILE_PROMPTS)
    )
    out = folder / "out"
    assert await batch(jobs, out) == 0
    lines = results(out)
    assert len(lines) == len(HOSTILE_PROMPTS)
    for line in lines:
        video = Path(line["video"])
        assert video.parent == out
        assert inside(video, out)
        assert NAME.match(video.name), video.name
    assert_videos_exact(sim, out, lines)
    assert len({line["video"] for line in lines}) == len(lines)


@given(
    index=st.integers(0, 99_999),
    prompt=st.text(max_size=300),
    generation_id=st.text(max_size=60),
)
def test_video_name_is_always_one_safe_file_name(
    index: int, prompt: str, generation_id: str
) -> None:
    """Any prompt and id give one '[a-z0-9-]' file name: no separator, no dot-dot, no escape."""
    name = video_name(index, prompt, generation_id)
    assert NAME.match(name), name
    assert set(name) <= set(string.ascii_lowercase + string.digits + "-.")
    assert Path(name).name == name
    assert name.startswith(f"{index:05d}-")


async def test_the_key_is_never_written_or_printed(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither output, error stream, results, journal nor videos hold the API key (with -v)."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "fine", "image": "start.png"},
        {"prompt": "refused", "image": "no-such-image-id"},
    )
    out = folder / "out"
    argv = ["-v", "batch", str(jobs), "--out", str(out), *FAST_POLL]
    assert await anyio.to_thread.run_sync(main, argv) == 1
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err
    assert "400" in results(out)[1]["error"]
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes(), path


async def test_a_typo_in_a_line_is_refused_and_never_reaches_the_server(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "durration": 4 is a line error naming duration; --dry-run exits 2; the run submits
    only the good line, and nothing of the bad one is sent."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "good", "image": "start.png", "duration": 4},
        {"prompt": "typo", "image": "start.png", "durration": 4},
    )
    assert await batch(jobs, folder / "out", "--dry-run") == 2
    assert 'line 2: invalid durration=4: not a field: did you mean "duration"?' in (
        capsys.readouterr().err
    )
    assert requests_seen(sim) == 0
    assert await batch(jobs, folder / "out") == 2
    assert [g.body["prompt"] for g in sim.generations] == ["good"]
    assert [line["status"] for line in results(folder / "out")] == ["COMPLETE", "ERROR"]


async def test_categories_summary_results_and_exit_code_agree(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line, a budget skip and complete lines: results.jsonl's categories, the
    summary's counts and the exit code say the same."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "a", "image": "start.png"},
        "{broken",
        {"prompt": "b", "image": "start.png"},
        {"prompt": "c", "image": "start.png"},
    )
    code = await batch(jobs, folder / "out", "--max-credits", "4500", "--concurrency", "1")
    lines = results(folder / "out")
    categories = [line["category"] for line in lines]
    assert categories == ["complete", "bad_line", "complete", "skipped_budget"]
    assert code == 2  # a bad line outranks the lines not made (1): the input is to fix
    out = capsys.readouterr().out
    assert "2 complete, 0 failed, 1 skipped budget, 1 bad line in " in out


async def test_ctrl_c_reports_finished_running_and_the_resume_command(
    sim: Simulator, folder: Path
) -> None:
    """SIGINT mid-batch exits 130 saying how many are still running on the server (results
    RUNNING with their ids, not ERROR), how many never started, and the exact --resume."""
    sim.configure(durations=JobDurations.fixed(600))
    jobs = jobs_of(folder, 3)
    out = folder / "out"
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out),
            *FAST_POLL, "--concurrency", "2"]  # fmt: skip
    async with await anyio.open_process(argv, stdin=subprocess.DEVNULL) as process:
        try:
            with anyio.fail_after(60):
                while len(sim.generations) < 2:  # noqa: ASYNC110 - another process's work
                    await anyio.sleep(0.05)
                process.send_signal(signal.SIGINT)
                assert process.stdout is not None
                printed = ""
                with contextlib.suppress(anyio.EndOfStream):
                    while True:  # to the end of its output
                        printed += (await process.stdout.receive()).decode()
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
    assert code == 130
    assert "2 still running on the server" in printed
    assert "1 not started" in printed
    resume = f"leonardo-async batch {jobs} --out {out} --resume"
    assert resume in printed
    lines = results(out)
    assert sorted(line["status"] for line in lines) == ["PENDING", "RUNNING", "RUNNING"]
    running = {line["generation_id"] for line in lines if line["status"] == "RUNNING"}
    assert running == {g.id for g in sim.generations}


async def test_video_files_are_numbered_by_input_line(sim: Simulator, folder: Path) -> None:
    """00003-... is line 3, whatever the lines before it: a bad line or a comment shifts
    nothing, and a --force resume after a line was fixed keeps the other names."""
    jobs = write_jobs(
        folder / "jobs.jsonl",
        "# a comment",
        {"prompt": "two", "image": "start.png"},
        "{broken",
        {"prompt": "four", "image": "start.png"},
    )
    out = folder / "out"
    assert await batch(jobs, out) == 2
    names = {line["line"]: Path(line["video"]).name for line in results(out) if line["video"]}
    assert sorted(names) == [2, 4]
    assert all(name.startswith(f"{number:05d}-") for number, name in names.items())
    write_jobs(
        jobs,
        "# a comment",
        {"prompt": "two", "image": "start.png"},
        {"prompt": "three", "image": "start.png"},
        {"prompt": "four", "image": "start.png"},
    )
    assert await batch(jobs, out, "--resume", "--force") == 0
    after = {line["line"]: Path(line["video"]).name for line in results(out)}
    assert after[2] == names[2]
    assert after[4] == names[4]
    assert after[3].startswith("00003-three-")
    assert sim.statistics().generations_created == 3


async def test_listing_lag_sets_the_window_and_a_negative_one_exits_2(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--listing-lag widens the window a lost submit is looked for in; a negative one is
    refused before anything is sent, naming the flag."""
    jobs = write_jobs(folder / "jobs.jsonl", {"prompt": "lagged", "image": "start.png"})
    assert await batch(jobs, folder / "refused", "--listing-lag", "-1") == 2
    assert "--listing-lag" in capsys.readouterr().err
    assert sim.statistics().requests == {}
    assert await batch(jobs, folder / "out", "--listing-lag", "45") == 0
    assert [line["status"] for line in results(folder / "out")] == ["COMPLETE"]


async def test_a_lost_submit_the_listing_has_not_shown_is_maybe_submitted(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The submit made the job but its answer was lost, and the listing shows it too late:
    the line is 'maybe_submitted' (perhaps paid), never 'error_before_submit', and it is
    not sent again."""
    sim.configure(
        listing_lag=3600.0,
        faults={"reset_after_submit_rate": 1.0, "routes": [SUBMIT]},
    )
    jobs = write_jobs(folder / "jobs.jsonl", {"prompt": "lost", "image": "start.png"})
    assert await batch(jobs, folder / "out", "--listing-lag", "0.2") == 1
    [line] = results(folder / "out")
    assert line["category"] == "maybe_submitted"
    assert line["generation_id"] is None
    assert sim.statistics().generations_created == 1
    assert "1 maybe submitted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "faults",
    [
        {"null_cost_rate": 1.0},
        {"gateway_error_after_submit_rate": 1.0, "routes": [SUBMIT]},
    ],
    ids=["null cost", "504 after create"],
)
async def test_a_paid_job_whose_answer_named_no_cost_is_counted(
    sim: Simulator, folder: Path, capsys: pytest.CaptureFixture[str], faults: dict[str, Any]
) -> None:
    """A job answered with a null cost, or found in the listing after a 504: its cost is
    the estimate, marked as such, and the summary's credits are what the server charged."""
    sim.configure(faults=faults)
    jobs = write_jobs(
        folder / "jobs.jsonl",
        {"prompt": "first", "image": "start.png"},
        {"prompt": "second", "image": "start.png"},
    )
    assert await batch(jobs, folder / "out", "--listing-lag", "0.5") == 0
    lines = results(folder / "out")
    assert [line["cost_estimated"] for line in lines] == [True, True]
    charged = sim.statistics().credits_spent
    assert sum(int(line["cost"]) for line in lines) == charged
    assert f"credits this run {charged}" in capsys.readouterr().out
    assert f"spent <b>{charged} CREDITS" in (folder / "out" / "index.html").read_text()
    assert sim.statistics().generations_created == 2


async def test_a_line_inserted_at_the_top_is_the_only_one_made_on_resume(
    sim: Simulator, folder: Path
) -> None:
    """Lines are named by their content, not their place: after a finished batch, a line
    inserted at the top, the rest reversed and one edited, ``--resume --force`` makes the
    new and the edited lines only, and every results line holds its own prompt's video."""
    lines = [{"prompt": f"scene {n}", "image": "start.png"} for n in range(4)]
    jobs = write_jobs(folder / "jobs.jsonl", *lines)
    out = folder / "out"
    assert await batch(jobs, out) == 0
    assert sim.statistics().generations_created == 4
    edited = [
        {"prompt": "a new first scene", "image": "start.png"},
        *reversed(lines[1:]),
        {"prompt": "scene 0, edited", "image": "start.png"},
    ]
    write_jobs(jobs, *edited)
    assert await batch(jobs, out, "--resume", "--force") == 0
    assert sim.statistics().generations_created == 6
    assert sim.statistics().duplicate_submissions == 0
    prompts = {g.id: g.body["prompt"] for g in sim.generations}
    after = results(out)
    assert [line["prompt"] for line in after] == [line["prompt"] for line in edited]
    assert all(prompts[line["generation_id"]] == line["prompt"] for line in after)
