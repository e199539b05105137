"""The ``leonardo-async`` command line, run in-process (``main([...])`` in a worker thread,
since it calls ``anyio.run``) or as a subprocess, against a simulator over loopback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest
from _cli import END_FRAME, FAST_POLL, START_FRAME, cli, cli_config, generate_args
from _video import decode, top_level_boxes
from anyio.abc import ByteReceiveStream
from hypothesis import given, settings
from hypothesis import strategies as st

from leonardo_async import LeonardoClient
from leonardo_async.cli import build_parser, main
from leonardo_async.cli._common import CommandParser, Commands
from leonardo_async.cli._frames import END, START, draw_frame
from leonardo_async.cli._progress import LogHandler, Progress, format_duration
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

#: A distinctive key: it must never be printed or logged.
KEY = "sk-cli-CANARY-5b2e9d41-never-print"
DEADLINE = 60.0


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    """Short jobs and this module's key, for the shipped ``leonardo_simulator`` fixture."""
    return cli_config(KEY)


def requests_seen(sim: Simulator) -> int:
    """Every request the simulator saw, on the API and the storage host."""
    stats = sim.statistics()
    return sum(stats.requests.values()) + sum(stats.storage_requests.values())


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A loopback base URL nothing listens on, for the test's whole length: the port
    stays bound (never listening) so a server another test starts cannot take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}/api/rest/v1"


# --- generate ---------------------------------------------------------------------------


async def test_generate_writes_the_simulators_video(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate exits 0, writes the served MP4 byte for byte, and prints path, id and cost."""
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out)) == 0
    (generation,) = sim.generations
    assert out.read_bytes() == sim.video_bytes(generation.id)
    printed = capsys.readouterr()
    assert f"video: {out}" in printed.out
    assert f"generation: {generation.id}" in printed.out
    assert f"cost: {generation.cost} CREDITS" in printed.out
    assert generation.id in printed.err  # the progress says what was submitted
    left = [path async for path in anyio.Path(tmp_path).iterdir()]
    assert left == [anyio.Path(out)]  # no temporary file left over


@pytest.mark.parametrize(("flag", "public"), [((), False), (("--public",), True)])
async def test_generate_is_private_unless_asked(
    sim: Simulator, tmp_path: Path, flag: tuple[str, ...], public: bool
) -> None:
    """The submit body always carries ``isPublic``: false, or true with ``--public``."""
    assert await cli(*generate_args(tmp_path / "video.mp4", *flag)) == 0
    (generation,) = sim.generations
    assert generation.body["isPublic"] is public


async def test_generate_uploads_an_end_frame_too(sim: Simulator, tmp_path: Path) -> None:
    """--end-image uploads the second frame and sends it as endFrameImage."""
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out, "--end-image", END_FRAME, "--duration", "4")) == 0
    (generation,) = sim.generations
    assert sim.statistics().uploads_completed == 2
    assert generation.body["endFrameImage"]["type"] == "UPLOADED"
    assert generation.duration == 4


async def test_a_size_alone_picks_its_resolution(sim: Simulator, tmp_path: Path) -> None:
    """--width 1080 --height 1920 without --resolution submits 1080p portrait."""
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out, "--width", "1080", "--height", "1920")) == 0
    (generation,) = sim.generations
    assert (generation.width, generation.height) == (1080, 1920)
    assert generation.body["resolution"] == "RESOLUTION_1080"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--duration", "5"], "--duration"),
        (["--width", "1920", "--height", "1080", "--resolution", "RESOLUTION_720"],
         "--width/--height"),
        (["--prompt", ""], "--prompt"),
        (["--prompt", "   "], "--prompt"),
        (["--image", "no-such-frame.png"], "--image"),
        (["--end-image", "no-such-end.png"], "--end-image"),
        (["--model", "VEO2"], "--model"),
        (["--orientation", "diagonal"], "--orientation"),
        (["--resolution", "RESOLUTION_4K"], "--resolution"),
        (["--seed", "-1"], "--seed"),
        (["--duration", "five"], "--duration"),
        (["--timeout", "0"], "--timeout"),
        (["--poll-initial", "-1"], "--poll-initial"),
    ],
)  # fmt: skip
async def test_bad_input_exits_2_naming_the_option_and_sends_nothing(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    named: str,
) -> None:
    """Invalid options exit 2 with a message naming the option; nothing reaches the API."""
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out, *extra)) == 2
    assert named in capsys.readouterr().err
    assert requests_seen(sim) == 0
    assert not out.exists()


async def test_an_output_path_that_is_a_directory_exits_2(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a directory exits 2 before anything is sent."""
    assert await cli(*generate_args(tmp_path)) == 2
    assert "--out" in capsys.readouterr().err
    assert requests_seen(sim) == 0


async def test_a_missing_key_exits_2_and_sends_nothing(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without LEONARDO_API_KEY, generate exits 2 naming the variable."""
    monkeypatch.delenv("LEONARDO_API_KEY")
    assert await cli(*generate_args(tmp_path / "video.mp4")) == 2
    assert "LEONARDO_API_KEY" in capsys.readouterr().err
    assert requests_seen(sim) == 0


@pytest.mark.parametrize(
    "key", ["sk-not-a-uuid-CANARY-3e9d", "9d2f4e6a-1b3c-4d5e-8f70-a1b2c3d4e5f6"]
)
async def test_a_refused_key_exits_3_at_once_naming_the_variable(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
) -> None:
    """A malformed key (hook 500) or an unknown one (access-denied): exit 3, no retries."""
    monkeypatch.setenv("LEONARDO_API_KEY", key)
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out)) == 3
    printed = capsys.readouterr()
    assert "LEONARDO_API_KEY" in printed.err
    assert key not in printed.out + printed.err
    assert requests_seen(sim) <= 2
    assert sim.statistics().generations_created == 0
    assert not out.exists()


@settings(max_examples=25, deadline=None)
@given(duration=st.integers(-10_000, 10_000).filter(lambda d: d not in (4, 6, 8)))
def test_any_duration_but_4_6_8_exits_2(duration: int) -> None:
    """Every duration other than 4, 6 or 8 is refused locally (the URL is not even open)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        patch.setenv("LEONARDO_API_KEY", KEY)
        patch.setenv("LEONARDO_BASE_URL", "http://127.0.0.1:1/api/rest/v1")  # never opened
        code = main(
            [str(a) for a in generate_args(Path("unused.mp4"), "--duration", str(duration))]
        )
    assert code == 2
    assert "--duration" in err.getvalue()


async def test_a_failed_generation_exits_1(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job that ends FAILED exits 1, says so, and writes no file."""
    sim.configure(failure_rate=1.0)
    out = tmp_path / "video.mp4"
    assert await cli(*generate_args(out)) == 1
    (generation,) = sim.generations
    assert f"generation {generation.id} failed" in capsys.readouterr().err
    assert not out.exists()


async def test_an_unreachable_base_url_exits_3(
    closed_port_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When nothing answers at LEONARDO_BASE_URL, generate exits 3 with the error."""
    monkeypatch.setenv("LEONARDO_API_KEY", KEY)
    monkeypatch.setenv("LEONARDO_BASE_URL", closed_port_url)
    assert await cli(*generate_args(tmp_path / "video.mp4")) == 3
    err = capsys.readouterr().err
    assert "Cannot connect" in err or "connect" in err.lower()
    assert KEY not in err


async def test_a_wait_timeout_exits_3_and_names_the_running_job(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeout passing first exits 3 and says the job keeps running."""
    sim.configure(durations=JobDurations.fixed(600))
    assert await cli(*generate_args(tmp_path / "video.mp4", "--timeout", "0.3")) == 3
    (generation,) = sim.generations
    err = capsys.readouterr().err
    assert generation.id in err
    assert "keeps running" in err


async def test_verbose_logs_requests_but_never_the_key(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-v logs the client's requests at DEBUG on stderr; the key appears nowhere."""
    assert await cli(*generate_args(tmp_path / "video.mp4", "-v")) == 0
    printed = capsys.readouterr()
    assert "DEBUG" in printed.err
    assert "/generations-image-to-video" in printed.err
    assert KEY not in printed.err + printed.out


async def test_ctrl_c_exits_130_and_says_the_job_runs_on(sim: Simulator, tmp_path: Path) -> None:
    """SIGINT while waiting exits 130 and names the submitted generation."""
    sim.configure(durations=JobDurations.fixed(600))
    command = [sys.executable, "-m", "leonardo_async",
               *map(str, generate_args(tmp_path / "video.mp4"))]  # fmt: skip
    code, err, _ = await interrupt(command, "submitted generation")
    (generation,) = sim.generations
    assert code == 130
    assert f"generation {generation.id} was submitted and keeps running" in err
    assert f"leonardo-async wait {generation.id} --out {tmp_path / 'video.mp4'}" in err


@pytest.mark.parametrize("command", ["generate", "batch", "demo", "wait"])
async def test_ctrl_c_exits_130_with_one_line_and_no_traceback(
    sim: Simulator, tmp_path: Path, command: str
) -> None:
    """Ctrl-C in any command ends in one line and 130, on every Python.

    Python 3.10 lets the interrupt out of the event loop as a ``CancelledError``, not a
    ``KeyboardInterrupt``: that used to print a traceback and exit 1.
    """
    sim.configure(durations=JobDurations.fixed(600))
    (tmp_path / "jobs.jsonl").write_text(f'{{"prompt": "p", "image": "{START_FRAME}"}}\n')
    async with LeonardoClient(KEY, base_url=sim.base_url) as client:
        running = await client.image_to_video(prompt="p", image=START_FRAME)
    argv, submitted = {
        "generate": (generate_args(tmp_path / "video.mp4"), "submitted generation"),
        "batch": (
            ["batch", tmp_path / "jobs.jsonl", "--out", tmp_path / "out", *FAST_POLL],
            "submitted 1",
        ),
        "demo": (
            ["demo", "--out", tmp_path / "demo", "--job-seconds", "600"],
            "submitted generation",
        ),
        "wait": (["wait", running.id, *FAST_POLL], "PENDING"),
    }[command]
    command_line = [sys.executable, "-m", "leonardo_async", *map(str, argv)]
    code, err, out = await interrupt(command_line, submitted)
    assert code == 130, err
    assert "Traceback" not in err + out
    assert [line for line in (err + out).splitlines() if line.startswith("interrupted")]


async def interrupt(command: list[str], marker: str) -> tuple[int, str, str]:
    """Run ``command``, send it SIGINT once ``marker`` is on its stderr.

    Returns its exit code, stderr and stdout (read after it, being short).

    The deadline covers the process's whole life: a child that does not stop (one that
    ignores SIGINT) is killed when it passes, failing the test instead of hanging it.
    """
    with anyio.fail_after(DEADLINE):
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
            assert process.stderr is not None
            assert process.stdout is not None
            err = await read_until(process.stderr, marker)
            process.send_signal(signal.SIGINT)
            err += await read_until(process.stderr, None)
            out = await read_until(process.stdout, None)
            return await process.wait(), err, out


async def read_until(stream: ByteReceiveStream, marker: str | None) -> str:
    """Read ``stream`` until ``marker`` shows up (or to its end if ``None``)."""
    text = ""
    while marker is None or marker not in text:
        try:
            text += (await stream.receive()).decode()
        except anyio.EndOfStream:
            break
    return text


# --- demo and sim -----------------------------------------------------------------------


def test_demo_exits_0_and_writes_an_mp4(tmp_path: Path) -> None:
    """demo needs no key or network: it exits 0 and leaves an MP4 where it says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    out = tmp_path / "demo-out"
    result = subprocess.run(
        [sys.executable, "-m", "leonardo_async", "demo", "--out", str(out), "--job-seconds", "0.2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    video = out / "demo.mp4"
    assert top_level_boxes(video.read_bytes())[:2] == ["ftyp", "moov"]
    decoded = decode(video)  # PyAV comes with the test extra: the demo draws from the frame
    assert (decoded.codec, decoded.width, decoded.height) == ("h264", 1280, 720)
    assert decoded.last_rgb == pytest.approx((0, 0, 0), abs=12)
    assert decoded.first_rgb != pytest.approx((0, 0, 0), abs=12)
    assert str(video) in result.stdout
    assert "fading to black" in result.stdout


async def test_sim_prints_where_it_runs_and_stops_on_ctrl_c() -> None:
    """sim prints the URL and key to export, an admin URL that answers with its routes, and
    poll settings for its short jobs; it serves the API, and exits 0 on SIGINT."""
    command = [sys.executable, "-m", "leonardo_async", "sim", "--slots", "3", "--api-key", KEY]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(DEADLINE):
                out = await read_until(process.stdout, "--poll-max 2\n")
                url = re.search(r"export LEONARDO_BASE_URL=(\S+)", out)
                admin = re.search(r"admin: +(\S+)", out)
                assert url is not None
                assert admin is not None
                async with LeonardoClient(KEY, base_url=url.group(1)) as client:
                    account = await client.me()
                async with aiohttp.ClientSession() as session:
                    async with session.get(admin.group(1)) as response:
                        routes = (await response.json())["admin routes"]
                    for route in routes:
                        method, path = route.split()
                        if method == "GET":
                            async with session.get(url.group(1).split("/api/")[0] + path) as got:
                                assert got.status == 200, route
                process.send_signal(signal.SIGINT)
                code = await process.wait()
        finally:  # a failed step: do not wait for ever for the process to exit
            if process.returncode is None:
                process.kill()
    assert account.concurrency_slots == 3
    assert "--poll-initial 1" in out
    assert set(routes) >= {"GET /_sim/stats", "POST /_sim/config", "GET /_sim/generations"}
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["sim", "--config", '{"no_such_knob": 1}'], "no_such_knob"),
        (["sim", "--config", "{not json"], "--config"),
        (["sim", "--config", "@/no/such/file.json"], "--config"),
        (["sim", "--failure-rate", "2"], "--failure-rate"),
        (["sim", "--rps", "-1"], "--rps"),
        (["sim", "--job-seconds", "-1"], "--job-seconds"),
        (["sim", "--config", '{"faults": {"server_error_rate": "x"}}'], "server_error_rate"),
    ],
)
def test_sim_refuses_bad_knobs_naming_them(argv: list[str], named: str) -> None:
    """A bad --config or knob exits 2 naming the flag or knob, before anything listens."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 2
    assert named in err.getvalue()
    assert_no_internals(err.getvalue())


#: What a message must never show: Python reprs and cattrs' path notation.
INTERNALS = re.compile(r"None|@ \$|'account'|\(-?\d|Error:|Traceback|<class")


def assert_no_internals(text: str) -> None:
    """The message has none of the Python internals of :data:`INTERNALS`."""
    assert not INTERNALS.search(text), text


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--width", "1000"], "--width/--height"),
        (["--width", "1000", "--height", "3"], "--width/--height"),
        (["--poll-initial", "-1"], "--poll-initial"),
        (["--poll-max", "0"], "--poll-max"),
        (["--duration", "5"], "--duration"),
        (["--resolution", "RESOLUTION_1081"], "--resolution"),
        (["--model", "veo4"], "--model"),
        (["--seed", "-5"], "--seed"),
        (["--timeout", "0"], "--timeout"),
    ],
)
async def test_bad_generate_options_name_option_value_and_allowed(
    extra: list[str], named: str, sim: Simulator, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Each bad option exits 2 with one line naming it and its value, nothing sent, and no
    Python internals in the text."""
    assert await cli(*generate_args(tmp_path / "v.mp4", *extra)) == 2
    err = capsys.readouterr().err
    assert f"error: {named}: " in err
    assert_no_internals(err)
    assert requests_seen(sim) == 0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--rpm", "-1"], "--rpm"),
        (["--spm", "0"], "--spm"),
        (["--poll-initial", "-1"], "--poll-initial"),
        (["--max-credits", "lots"], "--max-credits"),
    ],
)
async def test_bad_batch_options_name_the_option(
    extra: list[str], named: str, sim: Simulator, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Each bad batch option exits 2 naming it, with no Python internals; nothing is sent."""
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "p", "image": str(START_FRAME)}) + "\n")
    assert await cli("batch", jobs, "--out", tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert f"error: {named}: " in err
    assert_no_internals(err)
    assert requests_seen(sim) == 0


# --- the parser -------------------------------------------------------------------------


async def test_verbose_before_the_subcommand_counts_too(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-v written before the subcommand gives the same debug log as after it."""
    assert await cli("-v", *generate_args(tmp_path / "video.mp4")) == 0
    assert "/generations-image-to-video" in capsys.readouterr().err
    assert await cli("-v", "account") == 0
    assert "DEBUG" in capsys.readouterr().err


def test_bare_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """leonardo-async with no arguments prints the help, listing the commands."""
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: leonardo-async")
    for command in ("generate", "wait", "batch"):
        assert command in printed


async def test_a_mistyped_option_gets_a_suggestion(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--durration is a usage error (exit 2) suggesting --duration; nothing is sent."""
    assert await cli(*generate_args(tmp_path / "v.mp4", "--durration", "4")) == 2
    assert "--durration: did you mean --duration?" in capsys.readouterr().err
    assert requests_seen(sim) == 0


@pytest.mark.parametrize("image", ["missing-frame.png", "frames/start", "{dir}"])
async def test_a_frame_that_is_not_a_file_is_said_so_before_any_request(
    image: str, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--image with a / or an image extension, or a directory, must be a file: exit 2, not a
    submit answered by a 400."""
    value = image.format(dir=tmp_path)
    argv = ["generate", "--image", value, "--prompt", "p", "--out", tmp_path / "v.mp4"]
    assert await cli(*argv) == 2
    err = capsys.readouterr().err
    assert "--image" in err
    assert "not a file" in err
    assert requests_seen(sim) == 0


async def test_generate_reads_enum_values_forgivingly(sim: Simulator, tmp_path: Path) -> None:
    """--resolution 1080p --model veo3_1fast are sent as RESOLUTION_1080 and VEO3_1FAST."""
    extra = ("--resolution", "1080p", "--model", "veo3_1fast", "--duration", "4")
    assert await cli(*generate_args(tmp_path / "v.mp4", *extra)) == 0
    (generation,) = sim.generations
    assert generation.body["resolution"] == "RESOLUTION_1080"
    assert generation.body["model"] == "VEO3_1FAST"
    assert (generation.body["width"], generation.body["height"]) == (1920, 1080)


def test_help_and_usage_errors_have_their_exit_codes() -> None:
    """--help exits 0; no command or a missing required option exits 2."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--help"]) == 0
        for command in ("generate", "sim", "demo"):
            assert main([command, "--help"]) == 0
        assert main(["-v"]) == 2
        assert main(["generate", "--prompt", "x"]) == 2
        assert main(["no-such-command"]) == 2


def test_a_subcommand_is_one_register_call() -> None:
    """Commands.add gives a parser with the common options and the handler wired in."""
    parser = CommandParser()
    commands = Commands(parser.add_subparsers(required=True, parser_class=CommandParser))
    extra = commands.add("extra", lambda args: 7, help="h", description="d")
    extra.add_argument("--n", type=int)
    args = parser.parse_args(["extra", "--n", "3", "-v"])
    assert (args.handler(args), args.n, args.verbose) == (7, 3, 1)
    assert extra.long_options == ["--help", "--verbose", "--n"]


def test_verbose_counts_on_either_side_of_the_subcommand() -> None:
    """-v before the subcommand is not undone by the subcommand's own -v left out."""
    parser = build_parser()
    assert parser.parse_args(["-v", "account"]).verbose == 1
    assert parser.parse_args(["account", "-v"]).verbose == 1
    assert parser.parse_args(["account"]).verbose == 0


def test_did_you_mean_knows_every_long_option_of_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hint comes from the options each parser was given, the common ones included."""
    assert main(["account", "--verbsoe"]) == 2
    assert "--verbsoe: did you mean --verbose?" in capsys.readouterr().err
    assert main(["list", "--limt", "3"]) == 2
    err = capsys.readouterr().err
    assert "--limt: did you mean --limit?" in err
    assert err.startswith("usage: leonardo-async list")


# --- progress ---------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_one_line_per_change_at_most_every_interval() -> None:
    """Off a terminal, unchanged fields write nothing, changes are rate-limited, close flushes."""
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream, label="job", interval=2.0, tty=False, clock=clock)
    progress.update(status="PENDING", looks=0)
    progress.update(status="PENDING", looks=0)
    clock.now += 0.5
    progress.update(looks=1)  # a change, but too soon
    clock.now += 3
    progress.update(looks=1)  # now due: the pending change is written
    clock.now += 3
    progress.update(looks=1)  # nothing new
    progress.update(status="COMPLETE")  # too soon after the last line, held back
    progress.close()
    progress.update(status="ignored after close")
    assert stream.getvalue().splitlines() == [
        "job  0s  status PENDING  looks 0",
        "job  3s  status PENDING  looks 1",
        "job  6s  status COMPLETE  looks 1",
    ]


def test_progress_redraws_one_line_on_a_terminal() -> None:
    """On a terminal the line is redrawn with a carriage return and ended on close."""
    stream, clock = io.StringIO(), FakeClock()
    with Progress(stream, interval=0.1, tty=True, clock=clock) as progress:
        progress.update(status="submitting")
        clock.now += 1
        progress.update(status="PENDING")
        progress.message("submitted generation g-1")
        clock.now += 1
        progress.update(status="x")
    text = stream.getvalue()
    assert "\n" not in text.split("submitted generation g-1\n")[1][:-1]
    assert text.endswith("2s  status x\n")
    assert text.count("\r") >= 3


def test_progress_shows_done_of_total_and_an_eta() -> None:
    """With a total, done shows as done/total and an ETA from the rate so far."""
    clock = FakeClock()
    progress = Progress(io.StringIO(), total=10, tty=False, clock=clock)
    clock.now += 20
    progress.update(submitted=6, done=4, failed=0, credits=12.5, skipped=None)
    assert progress.render() == "20s  submitted 6  done 4/10  failed 0  credits 12.5  ETA 30s"
    progress.update(eta="soon")
    assert progress.render().endswith("ETA soon")
    progress.close()


@given(st.floats(0, 10**7))
def test_durations_render_compactly(seconds: float) -> None:
    """Durations render as s, m+s or h+m, never longer than 7 characters below 1000 h."""
    text = format_duration(seconds)
    assert re.fullmatch(r"\d+s|\d+m\d\ds|\d+h\d\dm", text)


def test_log_records_go_above_the_status_line() -> None:
    """LogHandler writes through the active display, so the status line is redrawn after."""
    import logging

    stream = io.StringIO()
    handler = LogHandler(stream)
    record = logging.LogRecord("leonardo_async", logging.INFO, __file__, 1, "hello", None, None)
    with Progress(stream, tty=True, interval=0) as progress:
        progress.update(status="PENDING")
        handler.emit(record)
    assert "hello\n" in stream.getvalue()
    assert stream.getvalue().rstrip("\n").endswith("status PENDING")
    handler.emit(record)  # no active display: a plain line
    assert stream.getvalue().endswith("hello\n")


# --- the example frames -----------------------------------------------------------------


def _pixels(png: bytes) -> bytes:
    """The decompressed image data of a PNG (its IDAT chunks)."""
    data, pos = b"", 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(data)


@pytest.mark.parametrize(("path", "t"), [(START_FRAME, START), (END_FRAME, END)])
def test_the_committed_frames_are_the_drawn_ones(path: Path, t: float) -> None:
    """examples/*.png are 1280x720, under 100 KB, with exactly the pixels the demo draws."""
    png = path.read_bytes()
    assert len(png) < 100_000
    assert png[16:24] == (1280).to_bytes(4, "big") + (720).to_bytes(4, "big")
    assert _pixels(png) == b"".join(b"\x00" + row for row in draw_frame(t))


@pytest.mark.parametrize("flag", ["--port", "--storage-port"])
def test_sim_refuses_a_port_out_of_range(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A port past 65535 is bad input (exit 2) in one line, not an OverflowError traceback."""
    assert main(["sim", flag, "99999"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be 0-65535" in err
    assert "Traceback" not in err
