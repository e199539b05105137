"""``leonardo_async.sync``: the blocking client over the async one, against the simulator.

The blocking client runs its own event loop in a thread, and blocks its caller; the
tests call it from worker threads (``anyio.to_thread``) while the simulator serves on the
test's loop, over real loopback HTTP.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from _helpers import DEADLINE, FAST, KEY, NO_LIMITS, QUICK_LAG, QUICK_RETRY, total_requests
from _images import png_bytes

from leonardo_async import (
    ClientStateError,
    GeneratedVideo,
    GenerationFailedError,
    GenerationStatus,
    ValidationError,
)
from leonardo_async.simulator import JobDurations, Simulator
from leonardo_async.sync import LeonardoClient

T = TypeVar("T")


def blocking(sim: Simulator) -> LeonardoClient:
    """A blocking client on ``sim`` with the test settings."""
    return LeonardoClient(
        KEY,
        base_url=sim.base_url,
        limits=NO_LIMITS,
        poll_schedule=FAST,
        retry=QUICK_RETRY,
        listing_lag=QUICK_LAG,
    )


async def in_thread(work: Callable[[], T]) -> T:
    """Run blocking ``work`` in a worker thread while the simulator serves."""
    with anyio.fail_after(DEADLINE):
        return await anyio.to_thread.run_sync(work)


def _frame(tmp_path: Path) -> Path:
    path = tmp_path / "start.png"
    path.write_bytes(png_bytes(16, 9))
    return path


async def test_generate_and_the_parts_make_the_servers_videos(
    sim: Simulator, tmp_path: Path
) -> None:
    """generate() and upload/submit/wait/download, blocking, write the MP4s served."""
    frame = _frame(tmp_path)

    def work() -> tuple[GeneratedVideo, str, Path]:
        with blocking(sim) as client:
            video = client.generate(prompt="a cat", image=frame, out=tmp_path / "one.mp4")
            start = client.upload_image(frame)
            job = client.image_to_video(prompt="a cat", image=start)
            finished = client.wait(job.id, timeout=DEADLINE)
            return video, job.id, client.download(finished, tmp_path / "parts.mp4")

    video, parts_id, parts = await in_thread(work)
    assert video.generation.status is GenerationStatus.COMPLETE
    assert video.path.read_bytes() == sim.video_bytes(video.id)
    assert parts.read_bytes() == sim.video_bytes(parts_id)
    assert sim.statistics().generations_created == 2


async def test_the_block_leaves_no_thread_loop_or_open_client(
    sim: Simulator, tmp_path: Path
) -> None:
    """After ``with``, the client's thread is gone and a call is a ClientStateError."""
    before = set(threading.enumerate())

    def work() -> tuple[set[threading.Thread], LeonardoClient]:
        with blocking(sim) as client:
            client.me()
            own = set(threading.enumerate()) - before - {threading.current_thread()}
        return own, client

    own, client = await in_thread(work)
    assert len(own) == 1  # the thread the client's loop ran in
    assert not any(thread.is_alive() for thread in own)
    with pytest.raises(ClientStateError, match="with LeonardoClient"):
        client.me()


async def test_a_client_is_entered_once(sim: Simulator) -> None:
    """Entering an open blocking client again is refused; closing it twice is harmless."""

    def work() -> None:
        client = blocking(sim)
        with client, pytest.raises(ClientStateError, match="already open"):
            client.__enter__()
        client.close()

    await in_thread(work)


async def test_bad_input_is_refused_before_any_thread_or_request(
    sim: Simulator, tmp_path: Path
) -> None:
    """A bad constructor argument or request fails on the caller's line, sending nothing."""
    before = threading.active_count()
    with pytest.raises(ValidationError, match="base_url"):
        LeonardoClient(KEY, base_url="ftp://example.test")
    with pytest.raises(ValidationError, match="session"):
        LeonardoClient(KEY, base_url=sim.base_url, session=object())  # type: ignore[arg-type]
    assert threading.active_count() == before
    frame = _frame(tmp_path)

    def work() -> None:
        with blocking(sim) as client, pytest.raises(ValidationError, match="duration"):
            client.generate(prompt="a cat", image=frame, out=tmp_path / "v.mp4", duration=5)

    await in_thread(work)
    assert total_requests(sim) == 0


@pytest.mark.leonardo_simulator(failure_rate=1.0)
async def test_errors_come_out_as_themselves(sim: Simulator, tmp_path: Path) -> None:
    """A failed job raises GenerationFailedError from the blocking call, as in async."""
    frame = _frame(tmp_path)

    def work() -> None:
        with blocking(sim) as client, pytest.raises(GenerationFailedError):
            client.generate(prompt="a cat", image=frame, out=tmp_path / "v.mp4")

    await in_thread(work)


@pytest.mark.leonardo_simulator(durations=JobDurations.fixed(1.0))  # running when tracked
async def test_iterators_block_and_close_when_left_early(sim: Simulator, tmp_path: Path) -> None:
    """as_completed yields each tracked job once; iter_generations can be left early;
    the statistics are the async client's."""
    frame = _frame(tmp_path)

    def work() -> tuple[set[str], set[str], list[Any]]:
        with blocking(sim) as client:
            start = client.upload_image(frame)
            ids = {client.image_to_video(prompt=f"shot {i}", image=start).id for i in range(3)}
            for generation_id in ids:
                client.track(generation_id)
            done = {generation.id for generation in client.as_completed()}
            first = []
            for generation in client.iter_generations():
                first.append(generation)
                break
            assert client.tracker_statistics().complete == 3
            assert client.statistics().requests_sent == client.aio.requests_sent
            return ids, done, first

    ids, done, first = await in_thread(work)
    assert done == ids
    assert len(first) == 1
    assert first[0].id in ids


async def test_calls_from_many_threads_share_one_client(sim: Simulator, tmp_path: Path) -> None:
    """Several threads generate through one blocking client at once, each its own video."""
    frame = _frame(tmp_path)
    with blocking(sim) as client:  # entered here: the test's thread only waits on it
        videos: list[GeneratedVideo] = []

        async def one(index: int) -> None:
            video = await in_thread(
                lambda: client.generate(
                    prompt=f"shot {index}", image=frame, out=tmp_path / f"{index}.mp4"
                )
            )
            videos.append(video)

        async with anyio.create_task_group() as tg:
            for index in range(3):
                tg.start_soon(one, index)
    assert len({video.id for video in videos}) == 3
    for video in videos:
        assert video.path.read_bytes() == sim.video_bytes(video.id)


def test_every_async_method_has_its_blocking_twin() -> None:
    """Each public method of the async client is on the blocking one, same name and
    docstring (``close`` stands for ``aclose``); the module exports only the client."""
    import inspect

    import leonardo_async
    import leonardo_async.sync

    assert leonardo_async.sync.__all__ == ["LeonardoClient"]
    methods = [
        name
        for name, value in vars(leonardo_async.LeonardoClient).items()
        if not name.startswith("_") and inspect.isfunction(value)
    ]
    assert "generate" in methods
    for name in methods:
        twin = "close" if name == "aclose" else name
        assert hasattr(LeonardoClient, twin), name
        if name != "aclose":
            assert (
                getattr(LeonardoClient, twin).__doc__
                == getattr(leonardo_async.LeonardoClient, name).__doc__
            )


_INTERRUPTED_SCRIPT = """
import sys
from pathlib import Path
from leonardo_async import PollSchedule
from leonardo_async.sync import LeonardoClient

key, base_url, frame, out = sys.argv[1:]
quick = PollSchedule(initial=0.05, max_interval=0.2)
with LeonardoClient(key, base_url=base_url, poll_schedule=quick) as client:
    def progress(stats):
        if stats.pending:
            print("watching", flush=True, file=sys.stderr)
    client.aio.on_progress = progress
    client.generate(prompt="a cat", image=Path(frame), out=out)
"""


async def test_ctrl_c_in_a_blocking_call_ends_it_naming_the_paid_job(
    sim: Simulator, tmp_path: Path
) -> None:
    """SIGINT during a blocking generate ends the script at once, the client closed in
    its loop, with a WARNING naming the submitted job, and nothing bought twice."""
    from test_cli import interrupt  # the CLI tests' SIGINT helper

    sim.configure(durations=JobDurations.fixed(600))
    script = tmp_path / "script.py"
    script.write_text(_INTERRUPTED_SCRIPT, encoding="utf-8")
    command = [
        sys.executable,
        str(script),
        KEY,
        sim.base_url,
        str(_frame(tmp_path)),
        str(tmp_path / "v.mp4"),
    ]
    code, err, _ = await interrupt(command, "watching")
    (generation,) = sim.generations
    assert code != 0
    assert "KeyboardInterrupt" in err
    assert f"generation {generation.id} was submitted (and is paid for)" in err
    assert "Unclosed" not in err  # the session was closed in the client's loop
    assert KEY not in err
    assert not (tmp_path / "v.mp4").exists()


async def test_a_blocking_wait_reports_its_looks_to_on_update(
    sim: Simulator, tmp_path: Path
) -> None:
    """The callback is called (from the client's own loop thread) with each state seen,
    the finished one last, before the blocking wait returns it."""
    frame = _frame(tmp_path)
    seen: list[tuple[object, str]] = []

    def work() -> tuple[object, str]:
        with blocking(sim) as client:
            job = client.image_to_video(prompt="a cat", image=frame)
            finished = client.wait(
                job.id,
                timeout=DEADLINE,
                on_update=lambda g: seen.append((g.status, threading.current_thread().name)),
            )
            return finished.status, threading.current_thread().name

    status, caller = await in_thread(work)
    assert status is GenerationStatus.COMPLETE
    assert seen[-1][0] is GenerationStatus.COMPLETE
    assert caller not in {name for _, name in seen}
