"""Requests per job against detection delay: the tracker's schedule versus fixed intervals.

300 jobs whose durations are lognormal around 1 s (median 1 s, sigma 0.35) are submitted at
once and waited for concurrently, against a simulator in its own process, with
``Limits.off()``. For each job the benchmark records when ``client.wait`` returned and reads
the job's finish time from ``GET /_sim/generations`` (the simulator's ``time.monotonic()``,
the same clock as this process's on Linux):

* detection delay = wait returned - job finished;
* job duration = job finished - submit answered (so slightly under the true duration);
* polls per job = (``GET /generations/{id}`` + listing pages) / jobs, counted by the server.

Strategies:

* ``tracker``: ``client.wait`` with the tracker's default schedule scaled to 1 s jobs,
  ``PollSchedule(initial=0.5, max_interval=1.0)``, batched status on (the default);
* ``tracker-nobatch``: the same, batched status off (one ``GET`` per look);
* ``fixed-T``: ``client.get_generation`` every ``T`` seconds after the submit;
* ``fixed@budget``: ``fixed-T`` with ``T`` chosen so that its expected polls per job equal
  those of ``tracker-nobatch`` (solved on the lognormal distribution before running).

Usage::

    python benchmarks/polling.py                 # everything, prints a table and JSON
    python benchmarks/polling.py --plot benchmarks/polling.png
    # Leonardo's operating point: 200 jobs of ~20 s in flight, looks every 5 s at most
    python benchmarks/polling.py --jobs 200 --median 20 --sigma 0.2 --initial 5 \\
        --max-interval 5 --strategies tracker
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from typing import Any

import anyio
import attrs
from _common import cpu_seconds, machine
from _simproc import SimProcess, api_requests

from leonardo_async import (
    FrameRef,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
    Model,
    PollSchedule,
)

PROMPT = "a paper boat drifting down a rain gutter, close-up"
STATUS_ROUTES = ("GET /generations/{id}", "GET /generations/user/{userId}")


@attrs.frozen
class Strategy:
    name: str
    kind: str  # "tracker" or "fixed"
    batched: bool = True
    interval: float = 0.0


@attrs.define
class Outcome:
    strategy: str
    jobs: int
    done: int
    polls_per_job: float
    status_gets: int
    listing_pages: int
    delay_median: float
    delay_p90: float
    duration_median: float
    delay_over_duration: float
    cpu_s: float
    wall_s: float
    interval: float | None = None

    def as_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in data.items()}


async def run_jobs(
    sim: SimProcess, image_id: str, strategy: Strategy, jobs: int, schedule: PollSchedule
) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Submit and wait for ``jobs`` jobs; return {id: (submit answered, resolved)}."""
    request = ImageToVideoRequest(
        prompt=PROMPT, image=FrameRef(image_id), model=Model.VEO3_1, duration=4
    )
    times: dict[str, tuple[float, float]] = {}
    async with LeonardoClient(
        sim.api_key,
        base_url=sim.base_url,
        limits=Limits.off(),
        poll_schedule=schedule,
        batched_status=strategy.batched,
    ) as client:
        if strategy.batched:
            await client.account()  # the listing needs the user id: ask before the clock

        async def one() -> None:
            job = await client.submit(request)
            submitted = time.monotonic()
            if strategy.kind == "tracker":
                await client.wait(job.id)
            else:
                while True:
                    await anyio.sleep(strategy.interval)
                    generation = await client.get_generation(job.id)
                    if generation is not None and generation.is_finished:
                        break
            times[job.id] = (submitted, time.monotonic())

        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(jobs):
                tg.start_soon(one)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    return times, cpu, wall


def measure(
    sim: SimProcess, image_id: str, strategy: Strategy, jobs: int, schedule: PollSchedule
) -> Outcome:
    sim.reset()
    times, cpu, wall = anyio.run(run_jobs, sim, image_id, strategy, jobs, schedule)
    seen = api_requests(sim.stats())
    finish = {g["id"]: float(g["finish_at"]) for g in sim.generations() if g["id"] in times}
    delays = sorted(times[g][1] - finish[g] for g in times)
    durations = sorted(finish[g] - times[g][0] for g in times)
    gets, pages = seen.get(STATUS_ROUTES[0], 0), seen.get(STATUS_ROUTES[1], 0)
    d_med, t_med = statistics.median(delays), statistics.median(durations)
    return Outcome(
        strategy=strategy.name,
        jobs=jobs,
        done=len(times),
        polls_per_job=(gets + pages) / max(1, len(times)),
        status_gets=gets,
        listing_pages=pages,
        delay_median=d_med,
        delay_p90=delays[int(0.9 * (len(delays) - 1))],
        duration_median=t_med,
        delay_over_duration=d_med / t_med,
        cpu_s=cpu,
        wall_s=wall,
        interval=strategy.interval if strategy.kind == "fixed" else None,
    )


def expected_fixed_polls(interval: float, median: float, sigma: float, n: int = 20000) -> float:
    """Expected polls per job of a poller that looks every ``interval`` from the submit."""
    rng = random.Random(1)
    total = 0
    for _ in range(n):
        duration = median * math.exp(rng.gauss(0.0, sigma))
        total += max(1, math.ceil(duration / interval))
    return total / n


def interval_for_budget(polls: float, median: float, sigma: float) -> float:
    """The fixed interval whose expected polls per job equal ``polls`` (bisection)."""
    lo, hi = 0.01, 20.0
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if expected_fixed_polls(mid, median, sigma, 4000) > polls:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fixed = sorted(
        (r for r in results if r["strategy"].startswith("fixed-")), key=lambda r: r["interval"]
    )
    ax.plot(
        [r["polls_per_job"] for r in fixed],
        [r["delay_median"] * 1000 for r in fixed],
        "o-",
        color="tab:gray",
        label="fixed interval (sweep)",
    )
    for r in fixed:
        ax.annotate(
            f"{r['interval']:g}s",
            (r["polls_per_job"], r["delay_median"] * 1000),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
            color="tab:gray",
        )
    marks = {
        "tracker": ("*", "tab:green", "tracker, batched status"),
        "tracker-nobatch": ("s", "tab:blue", "tracker, per-job GET"),
        "fixed@budget": ("D", "tab:red", "fixed, same budget as per-job tracker"),
    }
    for name, (marker, color, label) in marks.items():
        points = [r for r in results if r["strategy"] == name]
        ax.scatter(
            [r["polls_per_job"] for r in points],
            [r["delay_median"] * 1000 for r in points],
            marker=marker,
            s=90,
            color=color,
            label=label,
            zorder=3,
        )
    ax.set_xlabel("status requests per job")
    ax.set_ylabel("median detection delay (ms)")
    ax.set_title("300 jobs, lognormal durations (median 1 s, sigma 0.35)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--median", type=float, default=1.0, help="median job duration, s")
    parser.add_argument("--sigma", type=float, default=0.35, help="lognormal sigma")
    parser.add_argument("--initial", type=float, default=0.5)
    parser.add_argument("--max-interval", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the main cases")
    parser.add_argument(
        "--sweep", default="0.1,0.2,0.35,0.5,0.75,1.0,1.5", help="fixed intervals, s"
    )
    parser.add_argument(
        "--strategies",
        default="tracker,tracker-nobatch,fixed@budget,sweep",
        help="which to run (comma list): tracker, tracker-nobatch, fixed@budget, sweep",
    )
    parser.add_argument("--plot", help="write the requests-vs-delay plot to this PNG")
    args = parser.parse_args()
    schedule = PollSchedule(initial=args.initial, max_interval=args.max_interval)
    config = {
        "durations": {"kind": "lognormal", "median": args.median, "spread": args.sigma},
        "max_running": None,
        "api_subscription_tokens": 10**15,
        "seed": 7,
    }
    results: list[Outcome] = []

    def record(outcome: Outcome) -> Outcome:
        results.append(outcome)
        print(json.dumps(outcome.as_json()), file=sys.stderr)
        return outcome

    wanted = set(args.strategies.split(","))
    budget = interval = math.nan
    with SimProcess(config) as sim:
        image_id = sim.upload_image()
        nobatch: list[Outcome] = []
        for _ in range(args.reps):
            if "tracker" in wanted:
                record(measure(sim, image_id, Strategy("tracker", "tracker"), args.jobs, schedule))
            if "tracker-nobatch" in wanted or "fixed@budget" in wanted:
                unbatched = Strategy("tracker-nobatch", "tracker", batched=False)
                nobatch.append(record(measure(sim, image_id, unbatched, args.jobs, schedule)))
        if "fixed@budget" in wanted:
            budget = statistics.median(o.polls_per_job for o in nobatch)
            interval = interval_for_budget(budget, args.median, args.sigma)
            for _ in range(args.reps):
                record(
                    measure(
                        sim,
                        image_id,
                        Strategy("fixed@budget", "fixed", batched=False, interval=interval),
                        args.jobs,
                        schedule,
                    )
                )
        for text in args.sweep.split(",") if "sweep" in wanted else ():
            t = float(text)
            record(
                measure(
                    sim,
                    image_id,
                    Strategy(f"fixed-{t:g}s", "fixed", batched=False, interval=t),
                    args.jobs,
                    schedule,
                )
            )

    names = list(dict.fromkeys(o.strategy for o in results))
    print(
        f"\n{args.jobs} jobs, lognormal median {args.median}s sigma {args.sigma}; "
        f"tracker schedule initial={args.initial}s max_interval={args.max_interval}s; "
        f"fixed@budget interval={interval:.3f}s (matches tracker-nobatch's {budget:.2f} polls/job)"
    )
    print(
        f"  {'strategy':16s} {'polls/job':>9s} {'delay med':>10s} {'delay p90':>10s} "
        f"{'dur med':>8s} {'delay/dur':>9s} {'cpu s':>7s}  (median of runs)"
    )
    summary: dict[str, Any] = {}
    for name in names:
        runs = [o for o in results if o.strategy == name]

        def med(field: str, runs: list[Outcome] = runs) -> float:
            return float(statistics.median(getattr(o, field) for o in runs))

        row: dict[str, Any] = {
            "runs": len(runs),
            "polls_per_job": med("polls_per_job"),
            "polls_per_job_range": [
                min(o.polls_per_job for o in runs),
                max(o.polls_per_job for o in runs),
            ],
            "delay_median_s": med("delay_median"),
            "delay_median_range_s": [
                min(o.delay_median for o in runs),
                max(o.delay_median for o in runs),
            ],
            "delay_p90_s": med("delay_p90"),
            "duration_median_s": med("duration_median"),
            "delay_over_duration": med("delay_over_duration"),
            "cpu_s": med("cpu_s"),
            "done": [o.done for o in runs],
        }
        summary[name] = row
        print(
            f"  {name:16s} {row['polls_per_job']:9.2f} {row['delay_median_s'] * 1000:8.0f}ms "
            f"{row['delay_p90_s'] * 1000:8.0f}ms {row['duration_median_s']:7.2f}s "
            f"{row['delay_over_duration'] * 100:8.1f}% {row['cpu_s']:7.3f}"
        )
    tracker = summary["tracker"]
    print(
        f"\ntargets (tracker, batched): polls/job {tracker['polls_per_job']:.2f} (<= 6: "
        f"{'met' if tracker['polls_per_job'] <= 6 else 'NOT met'}), median delay / median "
        f"duration {tracker['delay_over_duration'] * 100:.1f}% (<= 25%: "
        f"{'met' if tracker['delay_over_duration'] <= 0.25 else 'NOT met'})"
    )
    out = {
        "benchmark": "polling",
        "jobs": args.jobs,
        "durations": {"kind": "lognormal", "median": args.median, "sigma": args.sigma},
        "schedule": {"initial": args.initial, "max_interval": args.max_interval},
        "fixed_budget_interval_s": round(interval, 4),
        "machine": machine(),
        "summary": summary,
        "runs": [o.as_json() for o in results],
    }
    print(json.dumps(out))
    if args.plot:
        plot([o.as_json() for o in results], args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
