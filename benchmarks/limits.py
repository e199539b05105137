"""Client-side limits and the batch submitter, against the simulator's real limits.

Each repetition of each scenario starts a fresh simulator process (``_simproc.py``, so its
sliding windows start empty), uploads one tiny image, and runs a :class:`BatchSubmitter`
of N items that all use that image id (no upload in the hot path), ``out_dir=None`` (no
downloads), distinct prompts (so ``duplicate_submissions`` stays meaningful), an in-memory
journal and a poll schedule scaled to the simulator's short jobs. Each generation's time
on a slot is from its ``started_at`` (its admission, or later if it queued behind busy
slots) to its ``finish_at``, on the simulator's monotonic clock (``GET /_sim/generations``);
the rate scenarios have slots to spare, so there a start is the admission.

Scenarios (``--scenarios``, all by default):

* ``submits-1x``: the simulator allows S submits per minute (sliding 60 s window, default
  S = 600, that is 10/s); the client is configured with ``submits_per_minute=S``.
  Nothing else binds: the simulator has no request limit and 100 running slots, the
  client 60,000 requests a minute, and jobs last 0.2 s.
* ``submits-2x``: the same server; the client is configured with ``2S``, so only the
  adaptive path (429 -> shared pause, lower rate, learn, creep back) protects it.
* ``requests-1x`` / ``requests-2x``: the simulator allows R requests per second over all
  API requests (default R = 20, a sliding window of ``ceil(R)/R`` s); the client is
  configured with ``requests_per_minute = 60R`` / ``120R`` and no submit limit. Submits
  and polls share the budget.
* ``running`` / ``running-2x``: the simulator runs at most M generations at once (default
  8) and refuses a submit past them (``refuse_at_concurrency``), and jobs last D s
  (default 2); ``/me`` reports M (``running``) or 2M slots (``running-2x``, the adaptive
  running bound); the client uses ``max_running="account"`` (so one probe past the slots
  asks whether the server queues) and no rate limit that binds.
* ``queue-qN``: Leonardo's documented behaviour: Q slots (default 4) with a queue behind
  them, ``/me`` reports Q, jobs last J s (default 6), I items (default 40); the client
  keeps N jobs queued (``max_queued=N``, one scenario per ``--queue-allowances`` entry;
  ``queue-q0`` is the client that never submits past the slots).
* ``refuse``: the same slots, jobs and items on a server that refuses past its slots
  (``refuse_at_concurrency``), with the client's default allowance: what the probe for a
  queue costs there.

What is measured (the simulator's view, so client bookkeeping cannot flatter it):

* submit scenarios: the accepted submits in each full 60 s window counted from the first
  accepted one, as a fraction of S. The server admits at most S in any 60 s, so a window
  can hold at most 100 %. The headline is the windows after the first ("steady"): in the
  first one a client can burst into an empty window, which says nothing about pacing.
* request scenarios: requests admitted (all routes, 429s excluded) per second from one
  second after the first accepted submit to the last accepted submit, sampled from
  ``GET /_sim/stats`` in a thread, as a fraction of R. While submits remain the batch
  always has a request waiting, so the budget is the bound.
* running scenarios: mean generations running (sum of durations over the time from the
  first admission to the last finish) as a fraction of M (the slot utilisation), the
  simulator's ``peak_running``, ``peak_queued``, ``peak_attempted`` (most in flight had
  every submit been accepted) and ``refused_in_flight`` (submits refused for busy slots
  or a full queue), and ``end_ratio``: when the server's last job ended, from the
  batch's start, over total job time / slots.
* 429s: the simulator's ``rate_limited``, as a fraction of all API requests it saw.

The client's limiter decisions at each 429 (the gate's rate and learned limit before and
after, the pause chosen, the rate measured at refusal), which the client logs at DEBUG on
``leonardo_async.limits``, are collected by a logging handler and printed with
``--trace``; their count and the final rates are in the JSON.

Usage::

    python benchmarks/limits.py                                # all scenarios, 3 reps
    python benchmarks/limits.py --scenarios submits-1x --reps 5
    python benchmarks/limits.py --scenarios requests-2x --reps 1 --trace
    python benchmarks/limits.py --scenarios queue-q0,queue-q2,refuse --reps 3

A table goes to stdout, then one line of JSON; one JSON line per run goes to stderr.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import anyio
import attrs
from _common import machine, summary
from _simproc import SimProcess

from leonardo_async import (
    BatchItem,
    BatchSubmitter,
    FrameRef,
    LeonardoClient,
    Limits,
    PollSchedule,
)
from leonardo_async._limits._config import DEFAULT_MAX_QUEUED

PROMPT = "a lighthouse at dusk, waves rolling in, slow dolly forward"
SUBMIT_ROUTE = "POST /generations-image-to-video"
#: A limit no scenario gets near: the gate is in the path but never binds.
HIGH_RPM = 60_000.0

Measure = Literal["submits", "requests", "running"]


@attrs.frozen
class Scenario:
    name: str
    measure: Measure
    #: the simulator's knobs (``config_from_mapping``)
    sim: Mapping[str, Any]
    limits: Limits
    items: int
    job_seconds: float
    schedule: PollSchedule
    #: the true limit: per second (rate scenarios) or generations (running)
    limit: float
    #: the server's counting window, seconds (rate scenarios)
    window: float
    #: what the client was told, for the table
    configured: str
    true_limit: str


def build_scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    s = args.submits_per_minute
    r = args.requests_per_second
    m = args.max_running
    money = {"api_subscription_tokens": 10**12}
    short = {"kind": "fixed", "median": args.job_seconds, "spread": 0.0}
    fast = PollSchedule(initial=args.job_seconds, max_interval=0.5, first_interval=0.1)
    roomy = {"max_running": 100, "concurrency_slots": 100}
    # Enough items to fill the first window and ``--minutes`` steady ones, with room.
    submit_items = math.ceil(s * (args.minutes + 1) * 1.1)
    request_items = math.ceil(r * args.request_seconds)
    running_items = math.ceil(args.running_seconds * m / args.running_job_seconds)
    style = {"retry_after_style": args.retry_after_style}
    out: dict[str, Scenario] = {}
    for factor in (1, 2):
        tag = "1x" if factor == 1 else "2x"
        out[f"submits-{tag}"] = Scenario(
            name=f"submits-{tag}",
            measure="submits",
            sim={**money, **roomy, **style, "durations": short, "submits_per_minute": s},
            limits=Limits(
                requests_per_minute=HIGH_RPM,
                submits_per_minute=factor * s,
                max_running="account",
            ),
            items=submit_items,
            job_seconds=args.job_seconds,
            schedule=fast,
            limit=s / 60.0,
            window=60.0,
            configured=f"submits_per_minute={factor * s:g}",
            true_limit=f"{s:g} submits/min",
        )
        out[f"requests-{tag}"] = Scenario(
            name=f"requests-{tag}",
            measure="requests",
            sim={**money, **roomy, **style, "durations": short, "requests_per_second": r},
            limits=Limits(
                requests_per_minute=factor * 60 * r,
                submits_per_minute=None,
                max_running="account",
            ),
            items=request_items,
            job_seconds=args.job_seconds,
            schedule=fast,
            limit=r,
            window=math.ceil(r) / r,
            configured=f"requests_per_minute={factor * 60 * r:g}",
            true_limit=f"{r:g} requests/s",
        )
        run_name = "running" if factor == 1 else "running-2x"
        out[run_name] = Scenario(
            name=run_name,
            measure="running",
            sim={
                **money,
                **style,
                "durations": {"kind": "fixed", "median": args.running_job_seconds, "spread": 0.0},
                "max_running": m,
                "refuse_at_concurrency": True,
                "concurrency_slots": factor * m,
            },
            limits=Limits(
                requests_per_minute=HIGH_RPM, submits_per_minute=None, max_running="account"
            ),
            items=running_items,
            job_seconds=args.running_job_seconds,
            schedule=PollSchedule(
                initial=args.running_job_seconds, max_interval=0.25, first_interval=0.1
            ),
            limit=float(m),
            window=0.0,
            configured=f'max_running="account" (/me: {factor * m})',
            true_limit=f"{m} running",
        )
    q = args.queue_slots
    queue_sim = {
        **money,
        **style,
        "durations": {"kind": "fixed", "median": args.queue_job_seconds, "spread": 0.0},
        "max_running": q,
        "concurrency_slots": q,
    }
    # The default schedule (20 s, then at most 10 s apart, for Veo's ~75 s) scaled to J.
    scale = args.queue_job_seconds / 75.0
    queue_schedule = PollSchedule(initial=20.0 * scale, max_interval=10.0 * scale)
    allowances = [int(n) for n in args.queue_allowances.split(",") if n.strip()]
    for refuse, allowance in [(False, n) for n in allowances] + [(True, DEFAULT_MAX_QUEUED)]:
        name = "refuse" if refuse else f"queue-q{allowance}"
        out[name] = Scenario(
            name=name,
            measure="running",
            sim={**queue_sim, "refuse_at_concurrency": refuse},
            limits=Limits(
                requests_per_minute=HIGH_RPM,
                submits_per_minute=None,
                max_running="account",
                max_queued=allowance,
            ),
            items=args.queue_items,
            job_seconds=args.queue_job_seconds,
            schedule=queue_schedule,
            limit=float(q),
            window=0.0,
            configured=f'max_running="account", max_queued={allowance}',
            true_limit=f"{q} running, " + ("refused past" if refuse else "queue behind"),
        )
    return out


# --- one run -------------------------------------------------------------------------------


@attrs.define
class Drive:
    """What one batch run saw from the client's side."""

    wall_s: float = 0.0
    started: float = 0.0
    results: dict[str, int] = attrs.Factory(dict)
    events: list[dict[str, Any]] = attrs.Factory(list)
    samples: list[dict[str, Any]] = attrs.Factory(list)
    server: list[tuple[float, int, int]] = attrs.Factory(list)  # (t, admitted, 429s)
    client_requests: int = 0


class _Decisions(logging.Handler):
    """Collects the client's limiter decision at each 429 (``record.decision``)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        decision = getattr(record, "decision", None)
        if decision is not None:
            self.events.append({"t": time.monotonic(), **decision})


@contextmanager
def _logged_decisions(events: list[dict[str, Any]]) -> Iterator[None]:
    """The ``leonardo_async.limits`` logger at DEBUG, into ``events``, for the block."""
    logger = logging.getLogger("leonardo_async.limits")
    handler, level = _Decisions(events), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _sample_client(client: LeonardoClient, out: list[dict[str, Any]]) -> None:
    while True:
        stats = client.statistics()
        out.append(
            {
                "t": time.monotonic(),
                "submits": {"rate": stats.submit_rate},
                "requests": {"rate": stats.request_rate},
                "rate_limited": stats.rate_limited,
                "running_total": stats.in_flight_bound,
                "running_in_use": stats.in_flight,
            }
        )
        await anyio.sleep(0.25)


async def _sample_server(sim: SimProcess, out: list[tuple[float, int, int]]) -> None:
    """``/_sim/stats`` every half second, in a thread (the admin API is not counted)."""
    while True:
        before = time.monotonic()
        stats = await anyio.to_thread.run_sync(sim.stats)
        at = (before + time.monotonic()) / 2
        refused = int(stats["rate_limited"])
        out.append((at, sum(stats["requests"].values()) - refused, refused))
        await anyio.sleep(0.5)


async def drive(sc: Scenario, sim: SimProcess, image_id: str) -> Drive:
    run = Drive()
    items = [
        BatchItem.create(prompt=f"{PROMPT} #{i}", image=FrameRef(image_id)) for i in range(sc.items)
    ]
    with _logged_decisions(run.events):
        async with LeonardoClient(
            sim.api_key, base_url=sim.base_url, limits=sc.limits, poll_schedule=sc.schedule
        ) as client:
            sent = client.statistics().requests_sent
            async with (
                BatchSubmitter(client, out_dir=None) as batch,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(_sample_client, client, run.samples)
                tg.start_soon(_sample_server, sim, run.server)
                run.started = started = time.monotonic()
                summary_ = await batch.run(items)
                run.wall_s = time.monotonic() - started
                tg.cancel_scope.cancel()
            run.client_requests = client.statistics().requests_sent - sent
    run.results = {
        "complete": summary_.complete,
        "failed": summary_.failed,
        "errors": summary_.errors,
    }
    return run


# --- analysis ------------------------------------------------------------------------------


def _windows(times: list[float], length: float) -> list[int]:
    """Counts in consecutive full windows of ``length`` from the first time to the last."""
    t0, last = times[0], times[-1]
    full = int((last - t0) // length)
    return [
        bisect.bisect_left(times, t0 + (j + 1) * length)
        - bisect.bisect_left(times, t0 + j * length)
        for j in range(full)
    ]


def _rate_between(samples: list[tuple[float, int, int]], start: float, end: float) -> float | None:
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return None
    (ta, a, _), (tb, b, _) = inside[0], inside[-1]
    return (b - a) / (tb - ta)


def analyse(
    sc: Scenario, run: Drive, stats: Mapping[str, Any], gens: list[dict[str, Any]]
) -> dict[str, Any]:
    requests = {str(k): int(v) for k, v in stats["requests"].items()}
    total = sum(requests.values())
    refused = int(stats["rate_limited"])
    starts = sorted(float(g["started_at"]) for g in gens)
    out: dict[str, Any] = {
        "scenario": sc.name,
        "items": sc.items,
        "results": run.results,
        "created": int(stats["generations_created"]),
        "duplicates": int(stats["duplicate_submissions"]),
        "requests": total,
        "submit_requests": requests.get(SUBMIT_ROUTE, 0),
        "client_requests": run.client_requests,
        "rate_limited": refused,
        "rate_limited_share": refused / total if total else 0.0,
        "peak_running": int(stats["peak_running"]),
        "peak_queued": int(stats["peak_queued"]),
        "peak_attempted": int(stats["peak_attempted"]),
        "refused_in_flight": int(stats["refused_in_flight"]),
        "wall_s": round(run.wall_s, 2),
        "client_429s_seen": len(run.events),
        "final_gates": (
            {k: v for k, v in run.samples[-1].items() if k != "t"} if run.samples else None
        ),
    }
    submit_rates = [s["submits"]["rate"] for s in run.samples if s["submits"]["rate"] is not None]
    request_rates = [
        s["requests"]["rate"] for s in run.samples if s["requests"]["rate"] is not None
    ]
    out["submit_gate_rate_min"] = min(submit_rates) if submit_rates else None
    out["request_gate_rate_min"] = min(request_rates) if request_rates else None
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    out["naive_rate_fraction"] = (
        (len(starts) - 1) / span / sc.limit if span and sc.measure != "running" else None
    )
    if sc.measure == "submits":
        per_window = _windows(starts, sc.window)
        allowed = sc.limit * sc.window
        out["window_counts"] = per_window
        out["first_window_fraction"] = per_window[0] / allowed if per_window else None
        steady = per_window[1:]
        out["steady_windows"] = len(steady)
        out["achieved"] = sum(steady) / (allowed * len(steady)) if steady else None
    elif sc.measure == "requests":
        start, end = starts[0] + 1.0, starts[-1]
        rate = _rate_between(run.server, start, end)
        out["steady_seconds"] = round(end - start, 1)
        out["admitted_per_s"] = rate
        out["achieved"] = None if rate is None else rate / sc.limit
        out["submits_per_s"] = (len(starts) - 1) / span if span else None
    else:
        finishes = [float(g["finish_at"]) for g in gens]
        busy = max(finishes) - starts[0]
        mean_running = len(starts) * sc.job_seconds / busy
        out["mean_running"] = mean_running
        out["achieved"] = mean_running / sc.limit
        out["ideal_s"] = len(starts) * sc.job_seconds / sc.limit
        out["busy_s"] = round(busy, 2)
        out["end_ratio"] = (max(finishes) - run.started) / out["ideal_s"]
        out["client_running_peak"] = max((s["running_in_use"] for s in run.samples), default=0)
        out["client_running_total_min"] = min(
            (s["running_total"] for s in run.samples if s["running_total"] is not None),
            default=None,
        )
    return out


def run_once(sc: Scenario, trace: bool) -> dict[str, Any]:
    with SimProcess(sc.sim) as sim:
        image_id = sim.upload_image()
        time.sleep(1.5)  # the upload's requests leave any per-second window
        sim.reset()
        run = anyio.run(drive, sc, sim, image_id, backend="asyncio")
        stats = sim.stats()
        gens = sim.generations()
    result = analyse(sc, run, stats, gens)
    if trace:
        t0 = run.samples[0]["t"] if run.samples else 0.0
        for event in run.events:
            print(f"  429 {json.dumps({**event, 't': round(event['t'] - t0, 3)})}", file=sys.stderr)
        last = None
        for sample in run.samples:
            state = (sample["submits"], sample["requests"], sample["running_total"])
            if state != last:
                shown = {**sample, "t": round(sample["t"] - t0, 2)}
                print(f"  gate {json.dumps(shown)}", file=sys.stderr)
                last = state
        in_use = [(s["t"], s["running_in_use"]) for s in run.samples]
        for (ta, a, _), (tb, b, refused) in itertools.pairwise(run.server):
            held = next((n for t, n in in_use if t >= tb), None)
            print(
                f"  load t={tb - t0:7.2f} admitted/s={(b - a) / (tb - ta):6.2f} "
                f"429s={refused} running_slots_held={held}",
                file=sys.stderr,
            )
    return result


# --- main ----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _range(values: list[float], fmt: Callable[[float], str]) -> str:
    s = summary(values)
    return f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]"


def report(scenarios: dict[str, Scenario], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    headers = (
        "scenario",
        "true limit",
        "client configured",
        "achieved",
        "429s",
        "429 share",
        "end ratio",
        "peak attempted",
    )
    rows = []
    out: dict[str, Any] = {}
    for name, results in runs.items():
        sc = scenarios[name]
        achieved = [r["achieved"] for r in results if r["achieved"] is not None]
        refused = [float(r["rate_limited"]) for r in results]
        share = [r["rate_limited_share"] for r in results]
        ends = [r["end_ratio"] for r in results if "end_ratio" in r]
        attempted = [float(r["peak_attempted"]) for r in results]
        rows.append(
            (
                name,
                sc.true_limit,
                sc.configured,
                _range(achieved, _pct) if achieved else "-",
                _range(refused, lambda v: f"{v:g}"),
                _range(share, lambda v: f"{100 * v:.2f}%"),
                _range(ends, lambda v: f"{v:.3f}x") if ends else "-",
                _range(attempted, lambda v: f"{v:g}"),
            )
        )
        out[name] = {
            "achieved": summary(achieved) if achieved else None,
            "rate_limited": summary(refused),
            "rate_limited_share": summary(share),
            "runs": results,
        }
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=None, help="comma-separated (default: all)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--submits-per-minute", type=int, default=600, help="S")
    parser.add_argument("--minutes", type=int, default=2, help="steady 60 s windows wanted")
    parser.add_argument("--requests-per-second", type=float, default=20.0, help="R")
    parser.add_argument("--request-seconds", type=float, default=40.0)
    parser.add_argument("--job-seconds", type=float, default=0.2, help="rate scenarios")
    parser.add_argument("--max-running", type=int, default=8, help="M")
    parser.add_argument("--running-job-seconds", type=float, default=2.0, help="D")
    parser.add_argument("--running-seconds", type=float, default=40.0, help="ideal busy time")
    parser.add_argument("--queue-slots", type=int, default=4, help="Q")
    parser.add_argument("--queue-job-seconds", type=float, default=6.0, help="J")
    parser.add_argument("--queue-items", type=int, default=40, help="I")
    parser.add_argument(
        "--queue-allowances", default="0,1,2,4", help="N for each queue-qN scenario"
    )
    parser.add_argument(
        "--retry-after-style", default="seconds", choices=("seconds", "http-date", "none")
    )
    parser.add_argument("--trace", action="store_true", help="log limiter decisions to stderr")
    args = parser.parse_args()
    scenarios = build_scenarios(args)
    chosen = args.scenarios or ",".join(scenarios)
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {sorted(scenarios)}")
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rep in range(args.reps):
        for name in names:
            print(f"rep {rep + 1} {name} ...", file=sys.stderr, flush=True)
            result = run_once(scenarios[name], args.trace)
            runs[name].append(result)
            print(f"rep {rep + 1} {json.dumps(result)}", file=sys.stderr, flush=True)
    print(
        f"\nreps={args.reps}; S={args.submits_per_minute}/min, R={args.requests_per_second:g}/s, "
        f"M={args.max_running}; achieved = median [min-max] of the fraction of the true limit"
    )
    out = {
        "benchmark": "limits",
        "machine": machine(),
        "args": vars(args),
        "scenarios": report(scenarios, runs),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
