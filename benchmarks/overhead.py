"""Client CPU per job: this client against a plain aiohttp loop and the official SDK.

Each job is one submit and polls until ``COMPLETE``; the simulator finishes jobs at once
(durations fixed at 0), so the work measured is the client's per-request path, nothing
else. Three drivers run the same jobs at the same concurrency against one simulator
process, and only this process's CPU is counted (``getrusage(RUSAGE_SELF)``, user + sys):

* ``raw``: one aiohttp session, ``POST /generations-image-to-video`` then
  ``GET /generations/{id}`` until ``COMPLETE``, ``json.loads`` on the bodies; the floor;
* ``client``: :class:`LeonardoClient` as users call it (``submit`` then ``wait``), with
  ``Limits.off()`` and an instant-job :class:`PollSchedule`; batched status on (the
  default) and, as ``client-nobatch``, off;
* ``sdk``: the official ``leonardo-ai-sdk`` (httpx + pydantic),
  ``motion.create_image_to_video_generation_async`` then
  ``image.get_generation_by_id_async``. Its model enum has no ``VEO3_1`` and the simulator
  refuses the retired ``VEO3``, so it submits ``MOTION2``.

All drivers sleep the same initial delay before the first poll.

Usage::

    python benchmarks/overhead.py                         # all drivers, own simulator
    python benchmarks/overhead.py --base-url URL --image-id ID --jobs 200 --concurrency 20

With ``--base-url`` only the ``client`` driver runs (key from ``LEONARDO_API_KEY``) and one
JSON line is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import attrs
from _common import cpu_seconds, machine, summary, worker_pool
from _simproc import SimProcess, api_requests

from leonardo_async import (
    FrameRef,
    ImageToVideoRequest,
    LeonardoClient,
    Limits,
    Model,
    PollSchedule,
)

PROMPT = "a lighthouse at dusk, waves rolling in, slow dolly forward"


@attrs.frozen
class Setup:
    base_url: str
    api_key: str
    image_id: str
    jobs: int
    concurrency: int
    initial: float
    max_interval: float


@attrs.define
class Run:
    driver: str
    jobs: int
    done: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    requests: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "jobs": self.jobs,
            "done": self.done,
            "cpu_s": round(self.cpu_s, 4),
            "wall_s": round(self.wall_s, 4),
            "requests": self.requests,
            "cpu_s_per_1000": round(self.cpu_s * 1000 / max(1, self.done), 4),
        }


async def _measure(run: Run, body: Callable[[], Awaitable[None]]) -> None:
    gc.collect()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    await body()
    run.wall_s = time.perf_counter() - wall0
    run.cpu_s = cpu_seconds() - cpu0


# --- (a) plain aiohttp -------------------------------------------------------------------


async def drive_raw(setup: Setup) -> Run:
    run = Run("raw", setup.jobs)
    headers = {"authorization": f"Bearer {setup.api_key}", "accept": "application/json"}
    submit_url = setup.base_url + "/generations-image-to-video"
    body = {
        "prompt": PROMPT,
        "imageId": setup.image_id,
        "imageType": "UPLOADED",
        "model": "VEO3_1",
        "duration": 8,
        "resolution": "RESOLUTION_720",
    }
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(_: int) -> None:
            async with session.post(submit_url, json=body) as resp:
                data = json.loads(await resp.read())
            run.requests += 1
            gid = data["motionVideoGenerationJob"]["generationId"]
            url = f"{setup.base_url}/generations/{gid}"
            await anyio.sleep(setup.initial)
            while True:
                async with session.get(url) as resp:
                    data = json.loads(await resp.read())
                run.requests += 1
                if data["generations_by_pk"]["status"] in ("COMPLETE", "FAILED"):
                    run.done += 1
                    return
                await anyio.sleep(setup.max_interval)

        await _measure(run, lambda: worker_pool(setup.jobs, setup.concurrency, one))
    return run


# --- (b) this client ---------------------------------------------------------------------


async def drive_client(setup: Setup, *, batched: bool = True) -> Run:
    run = Run("client" if batched else "client-nobatch", setup.jobs)
    schedule = PollSchedule(initial=setup.initial, max_interval=setup.max_interval)
    request = ImageToVideoRequest(
        prompt=PROMPT, image=FrameRef(setup.image_id), model=Model.VEO3_1, duration=8
    )
    async with LeonardoClient(
        setup.api_key,
        base_url=setup.base_url,
        limits=Limits.off(),
        poll_schedule=schedule,
        batched_status=batched,
    ) as client:

        async def one(_: int) -> None:
            job = await client.submit(request)
            await client.wait(job.id)
            run.done += 1

        sent = client.requests_sent
        await _measure(run, lambda: worker_pool(setup.jobs, setup.concurrency, one))
        run.requests = client.requests_sent - sent
    return run


# --- (c) the official SDK ----------------------------------------------------------------


async def drive_sdk(setup: Setup) -> Run:
    from leonardo_ai_sdk import LeonardoAiSDK

    run = Run("sdk", setup.jobs)
    body = {
        "prompt": PROMPT,
        "imageId": setup.image_id,
        "imageType": "UPLOADED",
        "model": "MOTION2",  # no VEO3_1 in the SDK's enum; the simulator refuses retired VEO3
        "resolution": "RESOLUTION_720",
    }
    async with LeonardoAiSDK(bearer_auth=setup.api_key, server_url=setup.base_url) as sdk:

        async def one(_: int) -> None:
            created = await sdk.motion.create_image_to_video_generation_async(request=body)
            run.requests += 1
            assert created.object is not None
            job = created.object.motion_video_generation_job
            assert job is not None
            assert job.generation_id is not None
            await anyio.sleep(setup.initial)
            while True:
                got = await sdk.image.get_generation_by_id_async(id=job.generation_id)
                run.requests += 1
                generation = got.object.generations_by_pk if got.object else None
                status = getattr(generation, "status", None)
                if status is not None and status.value in ("COMPLETE", "FAILED"):
                    run.done += 1
                    return
                await anyio.sleep(setup.max_interval)

        await _measure(run, lambda: worker_pool(setup.jobs, setup.concurrency, one))
    return run


DRIVERS: dict[str, Callable[[Setup], Awaitable[Run]]] = {
    "raw": drive_raw,
    "client": drive_client,
    "client-nobatch": lambda s: drive_client(s, batched=False),
    "sdk": drive_sdk,
}


def run_driver(name: str, setup: Setup) -> Run:
    return anyio.run(DRIVERS[name], setup, backend="asyncio")


# --- main --------------------------------------------------------------------------------


def _fmt(s: dict[str, float]) -> str:
    return f"{s['median']:7.3f}  [{s['min']:.3f}-{s['max']:.3f}]  IQR {s['q1']:.3f}-{s['q3']:.3f}"


def compare(args: argparse.Namespace) -> None:
    config = {
        "durations": {"kind": "fixed", "median": 0.0, "spread": 0.0},
        "max_running": None,
        "api_subscription_tokens": 10**15,
    }
    names = [n.strip() for n in args.drivers.split(",") if n.strip()]
    results: dict[str, list[Run]] = {n: [] for n in names}
    requests_seen: dict[str, list[dict[str, int]]] = {n: [] for n in names}
    with SimProcess(config) as sim:
        setup = Setup(
            base_url=sim.base_url,
            api_key=sim.api_key,
            image_id=sim.upload_image(),
            jobs=args.jobs,
            concurrency=args.concurrency,
            initial=args.initial,
            max_interval=args.max_interval,
        )
        run_driver(names[0], attrs.evolve(setup, jobs=min(200, args.jobs)))  # warm-up
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                sim.reset()
                run = run_driver(name, setup)
                results[name].append(run)
                requests_seen[name].append(api_requests(sim.stats()))
                print(f"rep {rep + 1} {name:15s} {json.dumps(run.as_json())}", file=sys.stderr)
    per_1000 = {
        n: summary([r.cpu_s * 1000 / max(1, r.done) for r in runs]) for n, runs in results.items()
    }
    base = per_1000.get("raw", {}).get("median")
    print(
        f"\njobs={args.jobs} concurrency={args.concurrency} reps={args.reps} "
        f"initial={args.initial}s; client CPU seconds per 1000 jobs (median [min-max] IQR)"
    )
    out: dict[str, Any] = {
        "benchmark": "overhead",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "reps": args.reps,
        "initial": args.initial,
        "machine": machine(),
        "sdk_model": "MOTION2",
        "drivers": {},
    }
    for name, runs in results.items():
        s = per_1000[name]
        requests = summary([r.requests / max(1, r.done) for r in runs])["median"]
        server = requests_seen[name][-1]
        ratio = s["median"] / base if base else float("nan")
        paired = (
            summary([r.cpu_s / a.cpu_s for r, a in zip(runs, results["raw"], strict=True)])
            if "raw" in results and name != "raw"
            else None
        )
        ratio_text = (
            f"  x{ratio:.2f} of raw (paired by rep: {paired['median']:.2f}, "
            f"{paired['min']:.2f}-{paired['max']:.2f})"
            if paired is not None
            else ""
        )
        wall = summary([r.wall_s for r in runs])["median"]
        print(f"  {name:15s} {_fmt(s)}  req/job {requests:.2f}  wall {wall:.2f}s{ratio_text}")
        out["drivers"][name] = {
            "cpu_s_per_1000": s,
            "ratio_to_raw": None if name == "raw" or not base else round(ratio, 3),
            "ratio_to_raw_paired_by_rep": paired,
            "requests_per_job": round(requests, 3),
            "server_requests_last_rep": server,
            "wall_s_median": round(wall, 3),
            "done": [r.done for r in runs],
        }
    print(json.dumps(out))


def single(args: argparse.Namespace) -> None:
    key = os.environ.get("LEONARDO_API_KEY")
    if not key:
        sys.exit("set LEONARDO_API_KEY")
    if not args.image_id:
        sys.exit("--image-id is required with --base-url")
    setup = Setup(
        base_url=args.base_url,
        api_key=key,
        image_id=args.image_id,
        jobs=args.jobs,
        concurrency=args.concurrency,
        initial=args.initial,
        max_interval=args.max_interval,
    )
    print(json.dumps(run_driver("client", setup).as_json()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="run only the client driver against this API root")
    parser.add_argument("--image-id", help="an uploaded init image id (with --base-url)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--initial", type=float, default=0.01, help="first-poll delay, s")
    parser.add_argument("--max-interval", type=float, default=0.05, help="later polls, s")
    parser.add_argument("--drivers", default="raw,client,client-nobatch,sdk")
    args = parser.parse_args()
    if args.base_url:
        single(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
