"""Two hundred items under every fault the simulator has, at once, and a server restart.

Deterministic by the simulator's seed (the order requests arrive in still varies from run
to run, so the assertions are about invariants, never about exact counts): every item ends
exactly once, nothing the server created is lost or paid twice, every MP4 reported is the
whole file, and the journal says what the results say. Items that a fault left undecided
are finished by a resume; what cannot be finished (a job the server FAILED, or one that
vanished) is accounted for by name. The one double payment no client can avoid is counted
exactly: a submit whose answer was lost, for a job that vanished before the listing could
show it, is submitted again.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import pytest
from _helpers import FAST, KEY, eventually
from _images import png_bytes

from leonardo_async import (
    BatchItem,
    BatchResult,
    BatchSubmitter,
    Journal,
    LeonardoClient,
    Limits,
    RetryPolicy,
    Timeouts,
)
from leonardo_async._batch import ItemState
from leonardo_async.simulator import FaultConfig, JobDurations, Simulator, SimulatorConfig
from leonardo_async.simulator.pytest_plugin import SimulatorFactory

ITEMS = 200
FRAMES = 10
DEADLINE = 240.0  # four suites share two cores in CI; 40 s alone

#: Every fault at once. Rates are per request, so they are kept low enough for a batch of
#: two hundred to finish, and high enough that each kind fires (asserted below).
ALL_FAULTS = FaultConfig(
    server_error_rate=0.02,
    server_error_burst=3,
    reset_before_rate=0.01,
    reset_after_submit_rate=0.05,
    slow_rate=0.01,
    slow_seconds=1.0,
    malformed_json_rate=0.02,
    unexpected_shape_rate=0.01,
    rate_limit_storm_rate=0.002,
    rate_limit_storm_length=3,
    upload_expired_rate=0.4,
    cdn_truncate_rate=0.1,
    vanish_rate=0.04,
)
#: The faults that must have fired for the run to mean anything.
KINDS = (
    "server_error",
    "reset_before",
    "reset_after_submit",
    "slow",
    "malformed_json",
    "unexpected_shape",
    "upload_expired",
    "cdn_truncate",
    "vanish",
)
STATUS_OF = {
    ItemState.COMPLETE: "COMPLETE",
    ItemState.FAILED: "FAILED",
    ItemState.ERROR: "ERROR",
}


def make_items(folder: Path) -> list[BatchItem]:
    """Two hundred items over ten frame files; every fifth has an end frame too."""
    frames = []
    for n in range(FRAMES):
        path = folder / f"frame-{n}.png"
        path.write_bytes(png_bytes(rgb=(n * 20, 255 - n * 20, 7)))
        frames.append(path)
    return [
        BatchItem.create(
            prompt=f"chaos shot {i}",
            image=frames[i % FRAMES],
            end_image=frames[(i + 3) % FRAMES] if i % 5 == 0 else None,
            duration=(4, 6, 8)[i % 3],
        )
        for i in range(ITEMS)
    ]


def leftover_files(folder: Path) -> list[str]:
    """Temporary download files left in ``folder``."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def check_consistent(
    sim: Simulator, journal: Journal, results: list[BatchResult], out: Path, *, final: bool
) -> dict[str, BatchResult]:
    """The invariants that hold after any run, however it went; results by key.

    :param final: no item may be left undecided (after the resume)
    """
    counts = collections.Counter(r.key for r in results)
    assert sorted(counts) == sorted(str(i) for i in range(ITEMS))
    assert set(counts.values()) == {1}, "an item ended twice"
    by_key = {r.key: r for r in results}
    held = [r.generation_id for r in results if r.generation_id is not None]
    assert len(held) == len(set(held)), "one generation given to two items"
    # Every generation the server created (and charged for) is held by the item it was
    # made for, or, before a resume, by an item journaled as undecided (the resume looks
    # for it). The one exception the client cannot see: a job whose submit answer was
    # lost and that vanished before the listing could show it; only then is an item
    # submitted again, and each such second submit is one of the server's duplicates.
    # The second submit's answer may be lost too (the item is then undecided), so what
    # counts is that the vanished job was followed by another, not which one is held.
    made = collections.defaultdict(list)
    for generation in sim.generations:
        made[generation.body["prompt"]].append(generation)
    unseen_vanished = 0
    for result in results:
        entry = journal.entry(result.key)
        assert entry is not None
        mine = sorted(made.pop(result.prompt, []), key=lambda g: g.created_at)
        if result.generation_id is not None:
            assert result.generation_id in {g.id for g in mine}, "another item's generation"
        for generation in mine:
            if generation.id == result.generation_id:
                continue
            if generation.vanished and generation is not mine[-1]:
                unseen_vanished += 1
                continue
            assert not final, f"item {result.key} lost {generation}: {result} {entry} {mine}"
            undecided = (result.status, entry.uncertain, entry.generation_id)
            assert undecided == ("ERROR", True, None), f"{result} {entry} {mine}"
    assert not made, f"generations no item asked for: {made}"
    stats = sim.statistics()
    assert stats.duplicate_submissions == unseen_vanished, duplicates(sim, journal, results)
    assert stats.generations_created == len(sim.generations)
    for result in results:
        entry = journal.entry(result.key)
        assert entry is not None
        assert STATUS_OF[entry.state] == result.status
        assert entry.generation_id == result.generation_id
        # The journal keeps the video's name within out_dir (a resume from elsewhere finds it).
        assert entry.video == (None if result.video is None else result.video.name)
        if result.status == "COMPLETE":
            assert result.generation_id is not None
            assert result.video is not None
            assert result.video.read_bytes() == sim.video_bytes(result.generation_id)
        if result.status == "FAILED":
            record = sim.generation(result.generation_id or "")
            assert record is not None
            assert record.status == "FAILED"
    assert leftover_files(out) == []
    return by_key


def duplicates(sim: Simulator, journal: Journal, results: list[BatchResult]) -> str:
    """What the simulator created twice, and what the batch recorded for it."""
    made = collections.defaultdict(list)
    for generation in sim.generations:
        made[generation.body["prompt"]].append(generation)
    lines = []
    for prompt, generations in made.items():
        if len(generations) > 1:
            owner = next(r for r in results if r.prompt == prompt)
            lines.append(f"{prompt}: {generations} {owner} {journal.entry(owner.key)}")
    return "\n".join(lines)


def vanished(sim: Simulator, result: BatchResult) -> bool:
    """Whether the item's generation is one the server made vanish."""
    record = None if result.generation_id is None else sim.generation(result.generation_id)
    return record is not None and record.vanished


async def storm(sim: Simulator, style: str) -> None:
    """Switch the Retry-After style and raise a 429 storm for sure, then calm down again."""
    before = sim.statistics().rate_limited
    forced = attrs.evolve(ALL_FAULTS, rate_limit_storm_rate=1.0, rate_limit_storm_length=1)
    sim.configure(retry_after_style=style, faults=forced)
    await eventually(lambda: sim.statistics().rate_limited > before, DEADLINE)
    sim.configure(faults=ALL_FAULTS)


async def run(batch: BatchSubmitter, items: list[BatchItem], sim: Simulator) -> list[BatchResult]:
    """Run the batch through a 429 storm in each Retry-After style, and a server restart."""
    phases = {10: "seconds", 50: "http-date", 90: "none"}
    results: list[BatchResult] = []
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg, batch.stream(items) as stream:
            async for result in stream:
                results.append(result)
                style = phases.get(len(results))
                if style is not None:
                    tg.start_soon(storm, sim, style)
                if len(results) == ITEMS // 2:
                    await sim.restart()
    return results


@pytest.mark.parametrize("seed", [20240601])
async def test_every_fault_at_once_loses_nothing_and_pays_nothing_twice(
    leonardo_simulator_factory: SimulatorFactory, tmp_path: Path, seed: int
) -> None:
    """All faults and a restart: one end per item, nothing paid twice, whole MP4s, then resume."""
    items = make_items(tmp_path)
    out = tmp_path / "out"
    config = SimulatorConfig(
        api_key=KEY,
        seed=seed,
        durations=JobDurations(kind="uniform", median=0.15, spread=0.6),
        failure_rate=0.03,
        max_running=40,
        refuse_at_concurrency=True,
        concurrency_slots=40,
        retry_after_style="seconds",
        faults=ALL_FAULTS,
    )
    with Journal(tmp_path / "journal.sqlite") as journal:
        async with (
            leonardo_simulator_factory(config) as sim,
            LeonardoClient(
                KEY,
                base_url=sim.base_url,
                limits=Limits(requests_per_minute=None, submits_per_minute=None),
                poll_schedule=FAST,
                retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=0.5),
                timeouts=Timeouts(connect=2.0, api=0.5, upload=2.0, download_stall=2.0),
                listing_lag=3.0,  # covers the slow fault: a job made 1 s into a 0.5 s timeout
            ) as client,
        ):
            client.vanish_grace = 0.5  # a vanished job is declared so quickly
            async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
                first = await run(batch, items, sim)
            by_key = check_consistent(sim, journal, first, out, final=False)
            fired = sim.statistics().faults_injected
            assert sim.statistics().rate_limited > 0
            for kind in KINDS:
                assert fired.get(kind, 0) > 0, (kind, fired)

            # What the faults left undecided, a resume (on a healthy server) finishes.
            sim.configure(faults=FaultConfig())
            async with BatchSubmitter(client, journal=journal, out_dir=out) as batch:
                with anyio.fail_after(DEADLINE):
                    second = [r async for r in _results(batch, items)]
            by_key = check_consistent(sim, journal, second, out, final=True)

        ends = collections.Counter(r.status for r in by_key.values())
        assert ends["COMPLETE"] > ITEMS * 0.8
        for result in by_key.values():
            if result.status == "ERROR":  # only what the server itself made vanish
                assert vanished(sim, result), result
        for result in first:
            if result.status == "COMPLETE":  # a resume never undoes a finished item
                assert by_key[result.key].generation_id == result.generation_id


async def _results(batch: BatchSubmitter, items: list[BatchItem]) -> AsyncIterator[BatchResult]:
    """The batch's results, as they come."""
    async with batch.stream(items) as stream:
        async for result in stream:
            yield result
