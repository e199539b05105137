"""Lost submits against a lagging listing: duplicates and time to decide, by listing lag.

For each listing lag (the simulator's ``listing_lag`` knob: seconds before a new job shows
in ``GET /generations/user/{id}``), ``--items`` submits are made at once, every one
answered 504 by a gateway after the job was created (``gateway_error_after_submit_rate``
1.0). The client looks for each over its listing-lag window (``--window``, the client's
``listing_lag``). Reported per lag: jobs created, duplicates (a second job for one item),
submits left uncertain, and the median and longest time from submit to decision.

Usage::

    python benchmarks/reconcile.py                         # lags 0, 2, 5, 10, 30 s
    python benchmarks/reconcile.py --lags 2,3 --window 20 --items 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import anyio

from leonardo_async import FrameRef, LeonardoClient, Limits, SubmitUncertainError
from leonardo_async.cli._frames import frame_png
from leonardo_async.simulator import JobDurations, Simulator, SimulatorConfig

KEY = "bench-reconcile-key"


async def one_lag(lag: float, items: int, window: float) -> dict[str, Any]:
    config = SimulatorConfig(
        api_key=KEY, durations=JobDurations.fixed(1.0), max_running=None, listing_lag=lag
    )
    async with Simulator(config) as sim:
        async with LeonardoClient(
            KEY, base_url=sim.base_url, limits=Limits.off(), listing_lag=window
        ) as client:
            image = FrameRef((await client.upload_image(frame_png(0.0))).id)
            sim.configure(
                faults={
                    "gateway_error_after_submit_rate": 1.0,
                    "routes": ["POST /generations-image-to-video"],
                }
            )
            took: list[float] = []
            uncertain = 0

            async def submit(index: int) -> None:
                nonlocal uncertain
                started = time.monotonic()
                try:
                    await client.image_to_video(prompt=f"lagging {index}", image=image)
                except SubmitUncertainError:
                    uncertain += 1
                took.append(time.monotonic() - started)

            async with anyio.create_task_group() as tg:
                for index in range(items):
                    tg.start_soon(submit, index)
        stats = sim.statistics()
    return {
        "lag_s": lag,
        "window_s": window,
        "items": items,
        "created": stats.generations_created,
        "duplicates": stats.duplicate_submissions,
        "uncertain": uncertain,
        "decided_median_s": round(statistics.median(took), 2),
        "decided_max_s": round(max(took), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lags", default="0,2,5,10,30")
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--window", type=float, default=20.0, help="the client's listing_lag")
    args = parser.parse_args()
    rows = [anyio.run(one_lag, float(lag), args.items, args.window) for lag in args.lags.split(",")]
    print(f"{args.items} submits each answered 504 after the job was made; window {args.window} s")
    print(
        f"  {'lag':>5s} {'created':>8s} {'dupes':>6s} {'uncertain':>9s} {'median':>7s} {'max':>6s}"
    )
    for r in rows:
        print(
            f"  {r['lag_s']:>4g}s {r['created']:>8d} {r['duplicates']:>6d} {r['uncertain']:>9d} "
            f"{r['decided_median_s']:>6.2f}s {r['decided_max_s']:>5.2f}s"
        )
    print(json.dumps({"benchmark": "reconcile", "rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
