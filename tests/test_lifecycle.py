"""The client's lifecycle and its guards against misuse, against the simulator.

Requests, tracking and waiting exist only inside ``async with LeonardoClient()``; a client
is entered once; a download never replaces anything but a regular file; a key that could
not be sent as one header line is refused when the client is made, without showing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from _helpers import DEADLINE, KEY, make_client, raises_clean
from _images import png_bytes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leonardo_async import (
    BatchItem,
    BatchSubmitter,
    ClientStateError,
    Generation,
    LeonardoClient,
    LeonardoError,
    ValidationError,
)
from leonardo_async.simulator import Simulator


def sent(sim: Simulator) -> int:
    """Every request the simulator saw, on the API and on the storage host (the CDN)."""
    stats = sim.statistics()
    return sum(stats.requests.values()) + sum(stats.storage_requests.values())


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def finished_video(client: LeonardoClient) -> Generation:
    job = await client.image_to_video(prompt="p", image=png_bytes())
    return await client.wait(job.id, timeout=DEADLINE)


# --- outside async with -----------------------------------------------------------------


async def test_waiting_and_tracking_need_an_open_client(sim: Simulator) -> None:
    """wait() and track() before entering or after closing are a LeonardoError, not RuntimeError."""
    client = LeonardoClient(KEY, base_url=sim.base_url)
    with raises_clean(ClientStateError, match="async with"):
        client.track("g")
    with raises_clean(ClientStateError, match="async with"):
        await client.wait("g")
    async with client:
        pass
    with raises_clean(ClientStateError, match="async with"):
        await client.wait("g", timeout=1)
    assert issubclass(ClientStateError, LeonardoError)
    assert sent(sim) == 0


async def test_requests_after_close_are_refused_and_open_nothing(sim: Simulator) -> None:
    """me() (or any call) after close raises at once and opens no session to leak."""
    async with make_client(sim) as client:
        await client.me()
    before = sent(sim)
    with raises_clean(ClientStateError, match="not open"):
        await client.me()
    with raises_clean(ClientStateError, match="not open"):
        await client.get_generation("g")
    unopened = LeonardoClient(KEY, base_url=sim.base_url)
    with raises_clean(ClientStateError, match="not open"):
        await unopened.me()
    assert sent(sim) == before


async def test_a_closed_client_can_be_opened_again(sim: Simulator) -> None:
    """Closing is not the end of the object: a new ``async with`` works as the first did."""
    client = LeonardoClient(KEY, base_url=sim.base_url)
    for _ in range(2):
        async with client:
            assert (await client.me()).user_id == sim.user_id


async def test_entering_twice_is_refused_and_the_first_block_goes_on(
    sim: Simulator,
) -> None:
    """A second ``async with`` on an open client is refused before it changes anything.

    It used to open a second tracker task group inside the caller's scopes, which broke
    them when either block ended.
    """
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg, make_client(sim) as client:
            with raises_clean(ClientStateError, match="already open"):
                async with client:
                    pytest.fail("entered twice")
            tg.start_soon(client.me)
            video = await finished_video(client)
    assert video.video_url is not None


# --- download targets -------------------------------------------------------------------


async def test_download_refuses_a_directory_or_a_device_and_fetches_nothing(
    client: LeonardoClient, sim: Simulator, tmp_path: Path
) -> None:
    """A download over a directory, a FIFO or a device node (through a symlink) is refused.

    The finished file is renamed over its target, which would replace a device (as root,
    ``/dev/full`` was); the symlink here points at ``/dev/null``, and a rename over the
    symlink would replace only the link, so the test cannot harm the system.
    """
    video = await finished_video(client)
    folder = tmp_path / "videos"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    device = tmp_path / "null"
    device.symlink_to("/dev/null")
    before = sent(sim)
    for target in (folder, fifo, device):
        with raises_clean(ValidationError, match="path") as info:
            await client.download(video, target)
        assert info.value.field == "path"
    assert sent(sim) == before
    assert folder.is_dir()
    assert fifo.is_fifo()
    assert device.is_symlink()
    assert names_in(tmp_path) == ["null", "pipe", "videos"]
    saved = await client.download(video, folder / "clip.mp4")
    assert saved.read_bytes()[4:8] == b"ftyp"


# --- the key ----------------------------------------------------------------------------

_visible = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=20)
#: What cannot be inside a key (NUL too, though an environment variable cannot hold one).
_breaking = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"], exclude_characters="\x00")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(head=_visible, bad=_breaking, tail=_visible, from_env=st.booleans())
@example(head="live0000", bad="\x00", tail="0123abcd", from_env=False)
@example(head="live0000", bad="\n", tail="0123abcd", from_env=True)
@example(head="Validati", bad="\x7f", tail="00000000", from_env=False)
def test_a_key_with_a_control_character_or_space_inside_is_refused_unshown(
    monkeypatch: pytest.MonkeyPatch, head: str, bad: str, tail: str, from_env: bool
) -> None:
    """A key that cannot be one header line fails when the client is made, naming the
    setting (api_key / LEONARDO_API_KEY) and never showing the key."""
    # Marked ends: a fragment like "Validati" could be in the message by chance.
    start, end = f"sk-{head}", f"{tail}-kx"
    key = start + bad + end
    if from_env:
        monkeypatch.setenv("LEONARDO_API_KEY", key)
    with pytest.raises(ValidationError) as info:
        LeonardoClient(None if from_env else key, base_url="http://127.0.0.1:9")
    error = info.value
    assert error.field == "api_key"
    assert "LEONARDO_API_KEY" in str(error)
    for text in (str(error), repr(error), repr(error.value), repr(error.args)):
        assert start not in text
        assert end not in text


async def test_a_key_with_a_trailing_newline_is_used_without_it(sim: Simulator) -> None:
    """Whitespace around the key (a key file's newline) is not part of it."""
    async with make_client(sim, api_key=f"  {KEY}\n") as client:
        assert (await client.me()).user_id == sim.user_id


# --- the batch's own lifetime -------------------------------------------------------------


async def test_a_batch_runs_only_inside_its_async_with_which_owns_its_journal(
    sim: Simulator, tmp_path: Path
) -> None:
    """A batch opens a journal given as a path on entry and closes it on exit; outside
    the block nothing runs and nothing is sent."""
    journal = tmp_path / "journal.sqlite"
    items = [BatchItem.create(prompt="p", image=png_bytes())]
    async with make_client(sim) as client:
        batch = BatchSubmitter(client, journal=journal)
        with raises_clean(ClientStateError, match="async with"):
            async with batch.stream(items):
                pytest.fail("ran outside async with")
        assert not journal.exists()
        assert sent(sim) == 0
        async with batch:
            with raises_clean(ClientStateError, match="already open"):
                async with batch:
                    pytest.fail("entered twice")
            assert (await batch.run(items)).complete == 1
            assert [e.generation_id is not None for e in batch.journal.entries()] == [True]
        with raises_clean(ClientStateError, match="async with"):
            list(batch.journal.entries())
        async with batch:  # a second block reopens the same journal: nothing runs again
            assert (await batch.run(items)).complete == 1
    assert len(sim.generations) == 1
