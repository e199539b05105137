"""Several worker processes drain one jobs file through one PostgreSQL journal; one dies.

Three ``leonardo-async batch --journal postgresql://...`` processes share a batch against
one simulator (in this process). One of them is ``kill -9``'d while it holds an item the
server is making (paid for): the others take its items over once their leases run out,
reconcile them through the listing, and finish the batch. Counted on the simulator's own
records, not the client's: every prompt was made exactly once, and every line ends in
exactly one terminal state in the journal and in the report written from it. No timing
is asserted: the kill waits for the state it must land in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest
from _cli import START_FRAME
from _postgres import pg_url, sql

from leonardo_async import PostgresJournal
from leonardo_async._batch._journal import ItemState
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

__all__ = ["pg_url"]  # the fixture, imported for the tests here

KEY = "sk-pg-fleet-CANARY-6d1e"
LINES = 30
WORKERS = 3
LEASE = "1.5"


@pytest.fixture
def leonardo_simulator_config() -> SimulatorConfig:
    return SimulatorConfig(api_key=KEY, durations=JobDurations.fixed(0.5))


def _command(jobs: Path, out: Path, url: str, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out)]
    argv += ["--journal", url, "--journal-lease", LEASE, "--concurrency", "2"]
    argv += ["--spm", "6000", "--rpm", "60000", "--poll-initial", "0.05", "--poll-max", "0.2"]
    return [*argv, "--listing-lag", "1", *extra]


async def _held_paid_items(schema: str, pid: int) -> list[dict[str, Any]]:
    """The items worker ``pid`` holds that the server may be making (paid for)."""
    return await anyio.to_thread.run_sync(
        lambda: sql(
            f'SELECT key, state FROM "{schema}".items WHERE lease_owner LIKE $1 '
            "AND lease_until > now() AND state IN ('submitting', 'submitted')",
            f"%:{pid}:%",
        )
    )


async def test_workers_drain_one_batch_once_while_one_is_killed(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    """Three workers, one SIGKILLed holding paid items: each prompt made once, every
    line ends once, and the report from the journal agrees with the simulator."""
    prompts = [f"fleet line {n}" for n in range(LINES)]
    jobs = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"prompt": p, "image": str(START_FRAME), "duration": 4}) for p in prompts]
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    env |= {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    schema = pg_url.rsplit("schema=", 1)[1]
    PostgresJournal(pg_url).close()  # its tables, for the watch below to read from the start
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    codes: dict[int, int] = {}
    held_at_kill: list[dict[str, Any]] = []

    async def work(n: int, process: anyio.abc.Process) -> None:
        codes[n] = await process.wait()

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            processes = []
            for n, log in enumerate(logs):
                with log.open("wb") as output:
                    command = _command(jobs, tmp_path / f"out-{n}", pg_url)
                    processes.append(
                        await anyio.open_process(
                            command, env=env, stdout=output, stderr=subprocess.STDOUT
                        )
                    )
            victim = processes[0]
            for n, process in enumerate(processes[1:], start=1):
                tg.start_soon(work, n, process)
            # Another process's rows: nothing to wait on but the database itself.
            while not held_at_kill and victim.returncode is None:
                held_at_kill = await _held_paid_items(schema, victim.pid)
                if not held_at_kill:
                    await anyio.sleep(0.02)
            victim.send_signal(signal.SIGKILL)
            assert await victim.wait() == -signal.SIGKILL, logs[0].read_text()
    assert held_at_kill, "the victim ended before it held a paid item; make the batch longer"
    for n in range(1, WORKERS):
        assert codes[n] == 0, logs[n].read_text()

    # Every prompt made exactly once, by the simulator's own count.
    made = Counter(g.body["prompt"] for g in sim.generations)
    assert made == Counter(prompts)
    stats = sim.statistics()
    assert stats.duplicate_submissions == 0
    assert stats.generations_created == LINES

    # Every line ends once in the journal, holding one of the server's generations.
    with PostgresJournal(pg_url) as journal:
        entries = list(journal.entries())
    assert len(entries) == LINES
    assert {e.state for e in entries} == {ItemState.COMPLETE}
    assert sorted(e.generation_id for e in entries) == sorted(g.id for g in sim.generations)
    # The victim's paid items were finished by the others, with the jobs it had made.
    taken = [row["key"] for row in held_at_kill]
    last = sql(f'SELECT updated_by FROM "{schema}".items WHERE key = ANY($1)', taken)
    assert len(last) == len(taken)
    assert not [r for r in last if f":{victim.pid}:" in r["updated_by"]]

    # The report, from any folder, says the same and sends nothing.
    sent = dict(sim.statistics().requests)
    report = tmp_path / "report"
    result = await anyio.run_process(
        _command(jobs, report, pg_url, "--report"), env=env, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert dict(sim.statistics().requests) == sent
    text = (report / "results.jsonl").read_text(encoding="utf-8")
    results = [json.loads(line) for line in text.splitlines()]
    assert [r["status"] for r in results] == ["COMPLETE"] * LINES
    assert [r["prompt"] for r in results] == prompts
    assert {r["generation_id"] for r in results} == {g.id for g in sim.generations}
    for r in results:
        assert await anyio.Path(r["video"]).read_bytes() == sim.video_bytes(r["generation_id"])
    assert all(KEY not in log.read_text() for log in logs)


class _Relay:
    """A TCP relay to the real PostgreSQL, which the test can cut: the database going
    away, as a worker sees it (connections reset, new ones refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.scope = anyio.CancelScope()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with self.scope:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            async with listener:  # cut: closed, so that new connections are refused
                self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
                task_status.started()
                await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        server = await anyio.connect_tcp(*self.target)
        async with client, server, anyio.create_task_group() as tg:
            tg.start_soon(self._pump, client, server, tg.cancel_scope)
            tg.start_soon(self._pump, server, client, tg.cancel_scope)

    @staticmethod
    async def _pump(
        source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()


async def test_a_worker_that_loses_its_database_stops_and_pays_nothing_unrecorded(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    """The database gone mid-run: the worker stops with one line and exit 3; every job
    the server made has its journal row (written before the submit), and a worker that
    can reach the database finishes the batch without making any prompt twice."""
    prompts = [f"cut line {n}" for n in range(LINES)]
    jobs = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"prompt": p, "image": str(START_FRAME), "duration": 4}) for p in prompts]
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    env |= {"LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}
    schema = pg_url.rsplit("schema=", 1)[1]
    parts = urlsplit(pg_url)
    relay = _Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    log = tmp_path / "cut.log"
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            await tg.start(relay.serve)
            cut_url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
            with log.open("wb") as output:
                process = await anyio.open_process(
                    _command(jobs, tmp_path / "cut", cut_url),
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            # The simulator's own count: nothing to wait on but it.
            while sim.statistics().generations_created < 4:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            relay.scope.cancel()
            code = await process.wait()
    text = log.read_text()
    assert code == 3, text
    assert "Traceback" not in text
    assert "cannot be reached" in text
    # No submit without its row: each job made has its seed journaled, at least submitting.
    rows = sql(f'SELECT key, state, seed FROM "{schema}".items')
    journaled = {r["seed"] for r in rows if r["state"] != "pending" and r["seed"] is not None}
    made = list(sim.generations)
    assert made
    assert {g.seed for g in made} <= journaled

    rest = await anyio.run_process(_command(jobs, tmp_path / "rest", pg_url), env=env, check=False)
    assert rest.returncode == 0, rest.stdout.decode()
    assert Counter(g.body["prompt"] for g in sim.generations) == Counter(prompts)
    assert sim.statistics().duplicate_submissions == 0
