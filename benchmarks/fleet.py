"""A fleet on one key: W batch processes with and without ``--redis``, against one simulator.

Each repetition starts a fresh simulator process (``_simproc.py``) whose key refuses a
submit past its P running slots (``refuse_at_concurrency``, ``/me`` reporting P) and
counts R requests a second over all API requests (a sliding window), with jobs of D
seconds. N lines are split evenly over W worker processes, each a real
``leonardo-async batch`` (its own client, limiter, journal and ``--out``), told the
key's real request rate (``--rpm 60R``) and started together. With ``--redis`` they share
the key's limits through the Redis at ``--redis-url``; the key's Redis state is deleted
before and after each run, so no run inherits another's pause, lease or learnt fact.

What is measured, by the simulator (client bookkeeping cannot flatter it):

* ``429s``: every 429 the simulator answered (``rate_limited``), and the submits among
  them refused for busy slots (``refused_in_flight``);
* ``peak running`` / ``peak attempted``: the most jobs the key ran at once, and the most
  it would have had in flight had every submit been accepted (slots plus one probe is
  the most the client means to try);
* ``duplicates``: creations with the same fingerprint as an earlier one (must be 0);
* ``wall``: from starting the workers to the last one's exit, and ``wall / physical``,
  over N x D / P, the least time the key's slots allow;
* where it went: ``first`` (to the first job's start: processes starting, ``/me``, the
  frame's upload), ``busy`` (how full the slots were from then to the last end), ``tail``
  (the last end to the last exit), and each slot's handoff from one job's end to the next
  job's start (``hand``, the median), in two parts: ``seen``, until an answer first showed
  the end, and ``refill``, from there to the next start (the slot given back, the next
  submit's turn).

Usage::

    python benchmarks/fleet.py                         # W = 1, 4, 10; with and without Redis
    python benchmarks/fleet.py --workers 10 --reps 3 --modes redis

A table goes to stdout, then one JSON line per run.

The package is compiled to bytecode first, as an installed one is: where
``PYTHONDONTWRITEBYTECODE`` is set, every worker would otherwise compile it from source as
it starts (about 0.13 s of CPU each, ten at once on two cores).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _simproc import SimProcess

ROOT = Path(__file__).resolve().parents[1]
START_FRAME = ROOT / "examples" / "start-frame.png"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _delete_key_state(url: str, api_key: str) -> None:
    import redis

    from leonardo_async._limits._redis import key_prefix

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix('leonardo-async', api_key)}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (the nearest rank), ``None`` if empty."""
    return round(values[min(len(values) - 1, int(len(values) * q))], 3) if values else None


def one_run(args: argparse.Namespace, workers: int, shared: bool) -> dict[str, Any]:
    config = {
        "durations": {"kind": "fixed", "median": args.job_seconds},
        "max_running": args.slots,
        "concurrency_slots": args.slots,
        "refuse_at_concurrency": True,
        "requests_per_second": args.rps,
    }
    with SimProcess(config) as sim, tempfile.TemporaryDirectory() as tmp:
        if shared:
            _delete_key_state(args.redis_url, sim.api_key)
        folder = Path(tmp)
        shutil.copy(START_FRAME, folder / "start.png")
        commands = []
        for worker in range(workers):
            lines = range(worker, args.jobs, workers)
            jobs = folder / f"jobs-{worker}.jsonl"
            jobs.write_text(
                "".join(
                    json.dumps({"prompt": f"fleet {i}", "image": "start.png"}) + "\n" for i in lines
                )
            )
            command = [
                sys.executable, "-m", "leonardo_async", "batch", str(jobs),
                "--out", str(folder / f"out-{worker}"), "--no-download",
                "--rpm", str(60 * args.rps), "--spm", "6000",
                "--poll-initial", str(args.poll), "--poll-max", str(args.poll),
            ]  # fmt: skip
            if shared:
                command += ["--redis", args.redis_url]
            commands.append(command)
        env = {
            **os.environ,
            "LEONARDO_API_KEY": sim.api_key,
            "LEONARDO_BASE_URL": sim.base_url,
        }
        env.pop("LEONARDO_REDIS_URL", None)
        cpu_before = _children_cpu()
        started = time.monotonic()
        # Each worker's stderr goes to a file: a pipe read only at the end would block a
        # worker that says more than the pipe holds.
        logs = [folder / f"stderr-{worker}.txt" for worker in range(workers)]
        procs = []
        for command, log in zip(commands, logs, strict=True):
            with log.open("wb") as sink:
                procs.append(
                    subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sink)
                )
        codes = [p.wait(timeout=args.timeout) for p in procs]
        wall = time.monotonic() - started
        cpu = _children_cpu() - cpu_before  # the workers' (the simulator is still running)
        said = [log.read_text(errors="replace") for log in logs]
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            run = f"w{workers}-{'redis' if shared else 'none'}-{int(time.time())}"
            for worker, text in enumerate(said):
                (args.logs / f"{run}-{worker}.txt").write_text(text)
        errors = [text[-300:] for text, p in zip(said, procs, strict=True) if p.returncode]
        warnings = sum(text.count("WARNING") for text in said)
        stats = sim.stats()
        records = sim.generations()
        if shared:
            _delete_key_state(args.redis_url, sim.api_key)
    physical = args.jobs * args.job_seconds / args.slots
    first = min(r["started_at"] for r in records) - started
    last = max(r["finish_at"] for r in records) - started
    running = sum(r["finish_at"] - r["started_at"] for r in records)
    # A slot's handoff: from a job's end to the start of the job that took its slot (the
    # k-th end in time frees the slot the (k + P)-th start takes).
    ends = sorted(r["finish_at"] for r in records)
    starts = sorted(r["started_at"] for r in records)[args.slots :]
    handoffs = sorted(start - end for start, end in zip(starts, ends, strict=False))
    # ... in two parts: from the end to the first answer that showed it (seeing it), and
    # from there to the next start (giving the slot back and submitting into it).
    seen = sorted(r["seen_at"] for r in records if r["seen_at"] is not None)
    sightings = sorted(r["seen_at"] - r["finish_at"] for r in records if r["seen_at"] is not None)
    refills = sorted(start - s for start, s in zip(starts, seen, strict=False))
    return {
        "workers": workers,
        "redis": shared,
        "exit_codes": codes,
        "errors": errors,
        "warnings": warnings,
        "rate_limited": stats["rate_limited"],
        "refused_in_flight": stats["refused_in_flight"],
        "peak_running": stats["peak_running"],
        "peak_attempted": stats["peak_attempted"],
        "duplicates": stats["duplicate_submissions"],
        "created": stats["generations_created"],
        "wall": round(wall, 2),
        "wall_over_physical": round(wall / physical, 3),
        # Where the wall time went: to the first job's start (processes starting, the
        # frame's upload), between the first start and the last end (how busy the slots
        # were), and from the last end to the last exit (seeing it end, closing).
        "first_start": round(first, 2),
        "last_finish": round(last, 2),
        "tail": round(wall - last, 2),
        "slots_busy": round(running / (args.slots * (last - first)), 3),
        "handoff_median": _quantile(handoffs, 0.5),
        "handoff_p90": _quantile(handoffs, 0.9),
        "seen_median": _quantile(sightings, 0.5),
        "refill_median": _quantile(refills, 0.5),
        "refill_p90": _quantile(refills, 0.9),
        "workers_cpu": round(cpu, 2),
        "requests": stats["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,10", help="comma-separated W values")
    parser.add_argument("--modes", default="none,redis", help="none, redis or both")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=80, help="N lines over all workers")
    parser.add_argument("--slots", type=int, default=8, help="P running slots")
    parser.add_argument("--rps", type=float, default=20.0, help="R requests per second")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="D")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--logs", type=Path, help="keep each worker's stderr in this folder")
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "leonardo_async", quiet=1)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        for mode in args.modes.split(","):
            for _ in range(args.reps):
                row = one_run(args, workers, mode == "redis")
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(
        f"{'W':>3} {'redis':>5} {'429s':>5} {'conc':>5} {'peak run':>8} {'peak try':>8} "
        f"{'dups':>4} {'made':>4} {'wall s':>7} {'/phys':>6} {'first':>6} {'busy':>5} "
        f"{'tail':>5} {'cpu s':>6} {'hand':>5} {'seen':>5} {'refill':>6}"
    )
    for r in rows:
        print(
            f"{r['workers']:>3} {'yes' if r['redis'] else 'no':>5} {r['rate_limited']:>5} "
            f"{r['refused_in_flight']:>5} {r['peak_running']:>8} {r['peak_attempted']:>8} "
            f"{r['duplicates']:>4} {r['created']:>4} {r['wall']:>7.2f} "
            f"{r['wall_over_physical']:>6.3f} {r['first_start']:>6.2f} {r['slots_busy']:>5.2f} "
            f"{r['tail']:>5.2f} {r['workers_cpu']:>6.1f} {r['handoff_median'] or 0:>5.2f} "
            f"{r['seen_median'] or 0:>5.2f} {r['refill_median'] or 0:>6.2f}"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
