"""Many jobs tracked at once: peak memory over baseline and CPU per job, by job count.

For each job count N a fresh simulator process is started and a fresh client process
(this script with ``--child``) submits N jobs (64 submits in flight) and tracks each right
after its submit, then waits for all of them. Jobs last a few seconds (lognormal, median
``--median`` s), long enough that by the last submit nearly every job is still running, so
the tracker holds about N jobs at once (the peak is measured and reported). The client
runs with ``Limits.off()``: the default 100 submits a minute would stretch 10,000 submits to
100 minutes. The simulator's ``max_running`` is off as well.

Measured in the client process:

* baseline RSS (``VmRSS`` after imports, client set-up and a warm-up of 50 jobs), then
  ``VmHWM`` is reset and read at the end: peak RSS over baseline;
* CPU seconds (``getrusage(RUSAGE_SELF)``, user + sys) for the whole submit-and-track run,
  per job;
* the tracker's peak pending count, and the requests the server saw.

Usage::

    python benchmarks/scale.py                          # N = 1000, 2500, 5000, 10000
    python benchmarks/scale.py --counts 1000,10000 --modes batched,per-job --plot scale.png
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
from _common import cpu_seconds, machine, proc_status_kib, reset_peak_rss, worker_pool
from _simproc import SimProcess, api_requests

from leonardo_async import (
    FrameRef,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
    Model,
    PollSchedule,
    TrackedJob,
)

PROMPT = "time-lapse of clouds over a mountain ridge"


async def child_run(args: argparse.Namespace) -> dict[str, Any]:
    schedule = PollSchedule(initial=args.initial, max_interval=args.max_interval)
    request = ImageToVideoRequest(
        prompt=PROMPT, image=FrameRef(args.image_id), model=Model.VEO3_1, duration=4
    )
    async with LeonardoClient(
        args.api_key,
        base_url=args.base_url,
        limits=Limits.off(),
        poll_schedule=schedule,
        batched_status=not args.no_batch,
    ) as client:
        await client.account()
        fast = PollSchedule(initial=0.05, max_interval=0.05)
        warm = [await client.submit(request) for _ in range(50)]
        for job in warm:
            await client.wait(job.id, schedule=fast)
        # The warm-up ran on instant jobs; now the real durations.
        admin = args.base_url.split("/api/")[0] + "/_sim/config"
        body = json.dumps({"durations": json.loads(args.durations)}).encode()
        post = urllib.request.Request(
            admin, data=body, method="POST", headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(post, timeout=30) as answer:  # noqa: ASYNC210 - set-up
            answer.read()
        reset_url = admin.replace("/config", "/reset")
        reset = urllib.request.Request(reset_url, data=b"{}", method="POST")
        with urllib.request.urlopen(reset, timeout=30) as answer:  # noqa: ASYNC210 - set-up
            answer.read()  # the server's counters start after the warm-up
        gc.collect()
        baseline = proc_status_kib("VmRSS") or 0
        peak_reset = reset_peak_rss()
        handles: list[TrackedJob] = []
        peak_pending = 0
        sampling = True

        async def sampler() -> None:
            nonlocal peak_pending
            while sampling:
                peak_pending = max(peak_pending, client.tracker_statistics().pending)
                await anyio.sleep(0.05)

        async def one(_: int) -> None:
            job = await client.submit(request)
            handles.append(client.track(job.id))

        sent0 = client.requests_sent
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler)
            await worker_pool(args.jobs, args.submit_concurrency, one)
            submitted_at = time.perf_counter() - wall0
            done = 0
            for handle in handles:
                await handle
                done += 1
            sampling = False
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        stats = client.tracker_statistics()
        peak = proc_status_kib("VmHWM") or 0
        return {
            "jobs": args.jobs,
            "done": done,
            "batched": not args.no_batch,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_job": round(cpu * 1000 / max(1, done), 4),
            "wall_s": round(wall, 2),
            "submit_phase_s": round(submitted_at, 2),
            "peak_pending": peak_pending,
            "rss_baseline_mb": round(baseline / 1024, 1),
            "rss_peak_mb": round(peak / 1024, 1),
            "rss_over_baseline_mb": round((peak - baseline) / 1024, 1),
            "peak_reset": peak_reset,
            "client_requests": client.requests_sent - sent0,
            "cpu_us_per_request": round(cpu * 1e6 / max(1, client.requests_sent - sent0), 1),
            "tracker_polls": stats.polls,
            "tracker_listing_pages": stats.listing_pages,
        }


def durations(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": "lognormal", "median": args.median, "spread": args.sigma}


def run_child(
    sim: SimProcess, image_id: str, n: int, per_job: bool, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--base-url",
        sim.base_url,
        "--api-key",
        sim.api_key,
        "--image-id",
        image_id,
        "--jobs",
        str(n),
        "--initial",
        str(args.initial),
        "--max-interval",
        str(args.max_interval),
        "--submit-concurrency",
        str(args.submit_concurrency),
        "--durations",
        json.dumps(durations(args)),
    ]
    if per_job:
        cmd.append("--no-batch")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    seen = api_requests(sim.stats())
    result["server_requests"] = seen
    result["requests_per_job"] = round(
        sum(v for k, v in seen.items() if k != "POST /generations-image-to-video")
        / max(1, result["done"]),
        3,
    )
    return result


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    for batched, color, label in ((True, "tab:green", "batched"), (False, "tab:blue", "per-job")):
        points = sorted((r for r in rows if r["batched"] is batched), key=lambda r: r["jobs"])
        if not points:
            continue
        x = [r["peak_pending"] for r in points]
        left.plot(x, [r["cpu_ms_per_job"] for r in points], "o", color=color, label=label)
        middle.plot(x, [r["cpu_us_per_request"] for r in points], "o", color=color, label=label)
        right.plot(x, [r["rss_over_baseline_mb"] for r in points], "o", color=color, label=label)
    left.set_ylabel("client CPU ms per job (submit + track)")
    middle.set_ylabel("client CPU us per request")
    right.set_ylabel("peak RSS over baseline (MB)")
    for ax in (left, middle, right):
        ax.set_xlabel("jobs tracked at once (peak)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,2500,5000,10000")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--median", type=float, default=6.0, help="median job duration, s")
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--initial", type=float, default=3.0)
    parser.add_argument("--max-interval", type=float, default=1.0)
    parser.add_argument("--submit-concurrency", type=int, default=64)
    parser.add_argument(
        "--modes", default="batched", help="status modes to run: batched, per-job or both"
    )
    parser.add_argument("--no-batch", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plot", help="write the CPU/RSS-vs-jobs plot to this PNG")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    parser.add_argument("--image-id", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--durations", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(anyio.run(child_run, args)))
        return
    config = {
        "durations": {"kind": "fixed", "median": 0.0, "spread": 0.0},  # warm-up; then real
        "max_running": None,
        "api_subscription_tokens": 10**15,
    }
    rows: list[dict[str, Any]] = []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        for n in (int(x) for x in args.counts.split(",")):
            for _ in range(args.reps):
                with SimProcess(config) as sim:
                    row = run_child(sim, sim.upload_image(), n, mode == "per-job", args)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(
        f"\njobs lognormal median {args.median}s sigma {args.sigma}; schedule initial="
        f"{args.initial}s max_interval={args.max_interval}s; Limits.off(); "
        f"{args.submit_concurrency} submits in flight"
    )
    summary: dict[str, Any] = {}
    for mode in modes:
        mine = [r for r in rows if r["batched"] is (mode != "per-job")]
        counts = sorted({r["jobs"] for r in mine})

        def med(field: str, n: int, mine: list[dict[str, Any]] = mine) -> float:
            return float(statistics.median(r[field] for r in mine if r["jobs"] == n))

        by_n = {
            n: {
                field: med(field, n)
                for field in (
                    "cpu_ms_per_job",
                    "rss_over_baseline_mb",
                    "peak_pending",
                    "requests_per_job",
                    "cpu_us_per_request",
                    "wall_s",
                )
            }
            for n in counts
        }
        small = by_n[counts[0]]["cpu_ms_per_job"]
        for row in by_n.values():
            row["cpu_vs_smallest"] = round(row["cpu_ms_per_job"] / small, 3)
        summary[mode] = by_n
        print(f"  status: {mode}")
        print(
            f"  {'jobs':>6s} {'peak tracked':>12s} {'CPU ms/job':>10s} {'vs smallest':>11s} "
            f"{'RSS over base':>13s} {'req/job':>8s} {'CPU us/req':>10s} {'wall':>7s}"
        )
        for n in counts:
            row = by_n[n]
            print(
                f"  {n:6d} {row['peak_pending']:12.0f} {row['cpu_ms_per_job']:10.3f} "
                f"{row['cpu_vs_smallest']:10.2f}x {row['rss_over_baseline_mb']:10.1f} MB "
                f"{row['requests_per_job']:8.2f} {row['cpu_us_per_request']:10.0f} "
                f"{row['wall_s']:6.1f}s"
            )
    out = {
        "benchmark": "scale",
        "durations": {"kind": "lognormal", "median": args.median, "sigma": args.sigma},
        "schedule": {"initial": args.initial, "max_interval": args.max_interval},
        "submit_concurrency": args.submit_concurrency,
        "machine": machine(),
        "summary": summary,
        "runs": rows,
    }
    print(json.dumps(out))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
