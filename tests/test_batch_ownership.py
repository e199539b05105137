"""A journal's uploads and jobs belong to one account on one server.

The upload cache can outlive its images (deleted, server state lost): a 400 about a
cached image uploads it again instead of failing every later item for good. A journal is
refused under another account or base URL. A frame whose upload keeps failing fails the
items waiting on it at once, instead of each retrying it in turn.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _helpers import KEY
from test_batch import client_for, frame, items_for, run_all

from leonardo_async import BatchSubmitter, JournalMismatchError
from leonardo_async.simulator import Simulator
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

UPLOAD = "POST /init-image"


async def test_a_deleted_cached_upload_is_uploaded_again(sim: Simulator, tmp_path: Path) -> None:
    """The journal's image id is gone from the server: one 400, a fresh upload, no ERROR."""
    image = frame(tmp_path)
    path = tmp_path / "journal.sqlite"
    async with client_for(sim) as client:
        async with BatchSubmitter(client, journal=path) as batch:
            first = await run_all(batch, items_for(image, 2))
        db = sqlite3.connect(path)
        try:
            (image_id,) = (row[0] for row in db.execute("SELECT image_id FROM uploads"))
        finally:
            db.close()
        assert await client.delete_image(image_id)  # the cache now names a missing image
        async with BatchSubmitter(client, journal=path) as batch:
            second = await run_all(batch, items_for(image, 4))
    assert [r.status for r in first] == ["COMPLETE"] * 2
    assert sorted(r.status for r in second) == ["COMPLETE"] * 4
    assert sim.statistics().requests[UPLOAD] == 2  # once per run: the cache, then again
    assert sim.statistics().generations_created == 4


async def test_a_journal_of_another_account_is_refused(sim: Simulator, tmp_path: Path) -> None:
    """Same server, another user id: refused (its jobs are invisible here); forced, the
    cached uploads are dropped and uploaded anew."""
    image = frame(tmp_path)
    path = tmp_path / "journal.sqlite"
    async with client_for(sim) as client, BatchSubmitter(client, journal=path) as batch:
        await run_all(batch, items_for(image, 1))
    sim.configure(user_id="someone-else")
    async with client_for(sim) as client:
        with pytest.raises(JournalMismatchError, match=r"belongs to account .* not to this key's"):
            async with BatchSubmitter(client, journal=path) as batch:
                await run_all(batch, items_for(image, 2))
        assert sim.statistics().generations_created == 1
        async with BatchSubmitter(client, journal=path, force=True) as batch:
            results = await run_all(batch, items_for(image, 2))
    assert sorted(r.status for r in results) == ["COMPLETE"] * 2
    assert sim.statistics().requests[UPLOAD] == 2


async def test_a_journal_of_another_server_is_refused(
    sim: Simulator, leonardo_simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    """Another base URL (another simulator): refused before anything is submitted."""
    image = frame(tmp_path)
    path = tmp_path / "journal.sqlite"
    async with client_for(sim) as client, BatchSubmitter(client, journal=path) as batch:
        await run_all(batch, items_for(image, 1))
    async with leonardo_simulator_factory() as other, client_for(other) as client:
        with pytest.raises(JournalMismatchError, match=f"at {sim.base_url}"):
            async with BatchSubmitter(client, journal=path) as batch:
                await run_all(batch, items_for(image, 2))
        assert other.statistics().generations_created == 0
        assert UPLOAD not in other.statistics().requests
    assert KEY  # the canary key is the one both servers accept


async def test_a_frame_whose_upload_fails_fails_its_items_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """Eight items on one frame that cannot be uploaded: one item's worth of upload
    attempts, not eight; every item ends ERROR (retryable), and nothing is submitted."""
    sim.configure(faults={"upload_expired_rate": 1.0})
    async with client_for(sim) as client:
        async with BatchSubmitter(client) as batch:
            alone = await run_all(batch, items_for(frame(tmp_path, "b.png", (1, 2, 3)), 1))
        one_item = sim.statistics().requests[UPLOAD]
        async with BatchSubmitter(client, upload_concurrency=4) as batch:
            results = await run_all(batch, items_for(frame(tmp_path), 8))
    assert [r.status for r in alone] == ["ERROR"]
    assert [r.status for r in results] == ["ERROR"] * 8
    assert all(r.retryable and "upload" in (r.error or "") for r in results)
    stats = sim.statistics()
    assert stats.requests[UPLOAD] - one_item == one_item  # one item's attempts, not eight
    assert stats.generations_created == 0
