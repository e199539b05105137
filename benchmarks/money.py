"""Money: what a batch says it spent against what the server charged, fault by fault.

Each scenario runs ``leonardo-async batch`` in a process of its own (as a user runs it)
against a simulator in this process, with the fault knobs issue 18 names: 504s after the
job was made, answers with a null cost, ``kill -9`` at seeded random moments then
``--resume`` until done, Ctrl-C while jobs run, lost answers against a listing later than
the client's window, and a server clock 90 s behind. Reported per scenario: generations
the simulator made (and made twice), the credits the CLI's summary says (``batch
total``), the sum of ``results.jsonl``'s costs (each line's and its extra generations'),
the review page's "spent", the part the client estimated, submits it counts as maybe
paid, and what the simulator charged.

Usage::

    python benchmarks/money.py                 # every scenario, 12 lines each
    python benchmarks/money.py --lines 30 --only 504,null-cost
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs

from leonardo_async.cli._frames import frame_png
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "bench-money-key-7c41d0"
SUBMIT = "POST /generations-image-to-video"
FAST = ["--poll-initial", "0.05", "--poll-max", "0.2", "--spm", "6000", "--rpm", "60000"]


@attrs.frozen
class Scenario:
    """One way money can go missing: the simulator's knobs, the CLI's flags, and how the
    run is ended (``None``: it runs to its end; ``"kill"``: SIGKILLed at seeded moments,
    then resumed; ``"interrupt"``: SIGINT once every job runs)."""

    name: str
    knobs: Mapping[str, Any]
    flags: tuple[str, ...] = ()
    ending: str | None = None
    job_seconds: float = 0.2


SCENARIOS = (
    Scenario(
        "504",
        {"faults": {"gateway_error_after_submit_rate": 0.34, "routes": [SUBMIT]}},
        ("--listing-lag", "1"),
    ),
    Scenario("null-cost", {"faults": {"null_cost_rate": 0.5}}),
    Scenario("kill-9", {}, ("--concurrency", "3"), ending="kill", job_seconds=0.4),
    Scenario("ctrl-c", {}, ending="interrupt", job_seconds=60.0),
    Scenario(
        "lost-late-listing",
        {"listing_lag": 3.0, "faults": {"reset_after_submit_rate": 0.34, "routes": [SUBMIT]}},
        ("--listing-lag", "1"),
    ),
    Scenario(
        "lost-30s-listing",
        {"listing_lag": 30.0, "faults": {"reset_after_submit_rate": 0.34, "routes": [SUBMIT]}},
        job_seconds=2.0,
    ),
    Scenario(
        "clock-90s-behind",
        {"clock_offset": -90.0, "faults": {"reset_after_submit_rate": 0.34, "routes": [SUBMIT]}},
        ("--listing-lag", "1"),
    ),
)


def _env(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEONARDO_")}
    return {**env, "LEONARDO_API_KEY": KEY, "LEONARDO_BASE_URL": sim.base_url}


def _has_output(log: Path) -> bool:
    """Whether the process has written anything (its first progress line) yet."""
    return log.stat().st_size > 0


async def _cli(
    argv: list[str], sim: Simulator, log: Path, *, kill_after: float | None = None
) -> int | None:
    """Run the CLI; SIGKILL it ``kill_after`` seconds after its first output (``None``
    returned), or SIGINT it once the simulator has made every line's job (``-1``)."""
    with log.open("wb") as output, anyio.fail_after(300):
        process = await anyio.open_process(
            argv, env=_env(sim), stdout=output, stderr=subprocess.STDOUT
        )
        async with process:
            if kill_after is None:
                return await process.wait()
            while not _has_output(log) and process.returncode is None:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            with anyio.move_on_after(kill_after):
                return await process.wait()
            process.send_signal(signal.SIGKILL)
            await process.wait()
            return None


async def _interrupted(argv: list[str], sim: Simulator, log: Path, lines: int) -> int:
    """Run the CLI and SIGINT it once every line's job runs (a few listing looks after
    the last was made, so that its answer is written down)."""
    with log.open("wb") as output, anyio.fail_after(300):
        process = await anyio.open_process(
            argv, env=_env(sim), stdout=output, stderr=subprocess.STDOUT
        )
        async with process:
            while sim.statistics().generations_created < lines:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            route = "GET /generations/user/{userId}"
            looked = sim.statistics().requests.get(route, 0)
            while sim.statistics().requests.get(route, 0) < looked + 3:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            process.send_signal(signal.SIGINT)
            return await process.wait()


def _credits(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return None if found is None else int(found.group(1))


async def run(scenario: Scenario, lines: int, seed: int) -> dict[str, Any]:
    """Run one scenario to its end; what the client reported and the server charged."""
    config = SimulatorConfig(
        api_key=KEY, seed=seed, durations=JobDurations.fixed(scenario.job_seconds)
    )
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "start.png").write_bytes(frame_png(0.0))
        jobs = folder / "jobs.jsonl"
        jobs.write_text(
            "".join(
                json.dumps({"prompt": f"money {i}", "image": "start.png", "duration": 4}) + "\n"
                for i in range(lines)
            )
        )
        out = folder / "out"
        argv = [sys.executable, "-m", "leonardo_async", "batch", str(jobs), "--out", str(out)]
        argv += [*FAST, *scenario.flags]
        async with Simulator(config) as sim:
            sim.configure(**scenario.knobs)
            log = folder / "run.log"
            runs = 1
            if scenario.ending == "interrupt":  # every line's job running at once
                argv += ["--concurrency", str(lines)]
                code: int | None = await _interrupted(argv, sim, log, lines)
            elif scenario.ending == "kill":
                rng = random.Random(seed)
                for kill in range(3):
                    resume = ["--resume"] if kill else []
                    await _cli(argv + resume, sim, log, kill_after=rng.uniform(0.05, 1.5))
                    runs += 1
                code = await _cli([*argv, "--resume"], sim, log)
            else:
                code = await _cli(argv, sim, log)
            stats = sim.statistics()
            text = log.read_text()
            results = [
                json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
            ]
            page = (out / "index.html").read_text()
    return {
        "scenario": scenario.name,
        "lines": lines,
        "runs": runs,
        "exit": code,
        "made": stats.generations_created,
        "made_twice": stats.duplicate_submissions,
        "summary": _credits(r"batch total (\d+) CREDITS", text),
        "results": sum(
            int(paid["cost"])
            for line in results
            for paid in (line, *line.get("extra_generations", ()))
            if paid["cost"]
        ),
        "page": _credits(r"spent <b>(\d+) CREDITS", page),
        "estimated": _credits(r"(\d+) CREDITS of it estimated", text) or 0,
        "maybe_paid": _credits(r"(\d+) submit\(s\) maybe paid", text) or 0,
        "charged": stats.credits_spent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--only", help="scenario names, comma-separated")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if args.only is None or s.name in args.only.split(",")]
    rows = [anyio.run(run, scenario, args.lines, args.seed) for scenario in chosen]
    head = ("scenario", "made", "twice", "summary", "results", "page", "estim.", "maybe", "charged")
    print("  ".join(f"{h:>17s}" if i == 0 else f"{h:>7s}" for i, h in enumerate(head)))
    for r in rows:
        cells = [r["made"], r["made_twice"], r["summary"], r["results"], r["page"]]
        cells += [r["estimated"], r["maybe_paid"], r["charged"]]
        print(f"{r['scenario']:>17s}  " + "  ".join(f"{c!s:>7s}" for c in cells))
    print(json.dumps({"benchmark": "money", "rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
