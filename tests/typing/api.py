"""The public API as an application uses it. Type-checked by mypy, never run.

``mypy leonardo_async tests/typing`` must pass: a change that breaks a user's annotations
breaks this file first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import aiohttp
import anyio

import leonardo_async
import leonardo_async.sync
from leonardo_async import (
    Account,
    APIError,
    AuthenticationError,
    ClientStatistics,
    FrameRef,
    GeneratedVideo,
    Generation,
    GenerationFailedError,
    GenerationJob,
    GenerationStatus,
    ImageSource,
    ImageToVideoRequest,
    ImageType,
    LeonardoClient,
    LeonardoError,
    Limits,
    Model,
    Orientation,
    PollSchedule,
    ProgressCallback,
    RateLimitError,
    Resolution,
    RetryPolicy,
    SubmitUncertainError,
    Timeouts,
    TrackedJob,
    TrackerStatistics,
    UploadedImage,
    ValidationError,
    WaitTimeoutError,
)

version: str = leonardo_async.__version__


def on_progress(statistics: TrackerStatistics) -> None:
    done: int = statistics.complete + statistics.failed
    left: int = statistics.pending
    print(done, left, statistics.polls, statistics.listing_pages, statistics.errors)


progress: ProgressCallback = on_progress


def configured_client(key: str) -> LeonardoClient:
    return LeonardoClient(
        key,
        base_url="https://cloud.leonardo.ai/api/rest/v1",
        limits=Limits(
            requests_per_minute=1000, submits_per_minute=50, max_running=5, burst=4, max_queued=2
        ),
        poll_schedule=PollSchedule(initial=20.0, max_interval=10.0, multiplier=1.5, jitter=0.1),
        retry=RetryPolicy(attempts=3, base_delay=1.0, max_delay=30.0),
        timeouts=Timeouts(connect=5.0, api=30.0, upload=60.0, download_stall=30.0),
        batched_status=True,
        auto_seed=True,
    )


async def one_video(start: Path, end: ImageSource, out: Path) -> Path:
    async with LeonardoClient() as client:
        account: Account = await client.me()
        balance: int = account.token_balance
        slots: int | None = account.concurrency_slots
        print(balance, slots)
        stats: ClientStatistics = client.statistics()
        bound: int | None = stats.in_flight_bound
        print(stats.requests_sent, stats.rate_limited, stats.request_rate, bound)
        frame: UploadedImage = await client.upload_image(start)
        job: GenerationJob = await client.image_to_video(
            prompt="a lighthouse at dusk",
            image=frame,
            end_image=end,
            model=Model.VEO3_1FAST,
            resolution=Resolution.RESOLUTION_1080,
            orientation=Orientation.PORTRAIT,
            duration=6,
            seed=42,
            negative_prompt="blur",
        )
        price: Decimal | None = job.cost.amount if job.cost is not None else None
        print(price)
        try:
            video: Generation = await client.wait(job.id, timeout=600.0)
        except GenerationFailedError as exc:
            failed: Generation = exc.generation
            raise RuntimeError(f"{failed.id} failed") from exc
        except WaitTimeoutError as exc:
            waited: float = exc.timeout
            raise RuntimeError(f"{exc.generation_id} still running after {waited}") from exc
        url: str | None = video.video_url
        print(url, video.status is GenerationStatus.COMPLETE, video.is_finished)
        return await client.download(video, out)


async def one_call(client: LeonardoClient, start: Path, out: Path) -> Path:
    def show(seen: Generation) -> None:
        print(seen.status, seen.width, seen.height)

    video: GeneratedVideo = await client.generate(
        prompt="a lighthouse", image=start, out=out, duration=8, timeout=600.0, on_update=show
    )
    generation: Generation = video.generation
    print(video.id, video.cost, generation.status)
    again: Generation | None = await client.get_generation(
        video.id, timeout=5.0, extra_headers={"X-Request-Id": "r-1"}, max_retries=0
    )
    print(again)
    return video.path


def blocking(start: Path, out: Path) -> Path:
    with leonardo_async.sync.LeonardoClient(base_url="http://127.0.0.1:8000/api/rest/v1") as client:
        video: GeneratedVideo = client.generate(prompt="a lighthouse", image=start, out=out)
        again: Generation = client.wait(video.id, timeout=60.0, on_update=print)
        for generation in client.iter_generations(max_pages=1):
            print(generation.id, again.status)
        return video.path


async def many_videos(client: LeonardoClient, prompts: list[str], frame: FrameRef) -> None:
    requests = [
        ImageToVideoRequest(prompt=p, image=frame, duration=8, width=1280, height=720)
        for p in prompts
    ]
    handles: list[TrackedJob] = []
    for request in requests:
        try:
            job = await client.submit(request)
        except SubmitUncertainError as exc:
            print("may or may not exist:", exc.url, exc.cause)
            continue
        except RateLimitError as exc:
            retry_after: float | None = exc.retry_after
            print(retry_after)
            continue
        handles.append(client.track(job.id, deadline=900.0))
    client.on_progress = progress
    finished: AsyncIterator[Generation] = client.as_completed()
    async for generation in finished:
        status: GenerationStatus | str = generation.status
        print(generation.id, status)
    async for generation in client.as_completed([*handles, job, job.id]):
        print(generation.id)
    async for generation in client.as_completed(follow=True):
        print(generation.id)
    for handle in handles:
        if handle.done():
            print(handle.result().id)
    snapshot: TrackerStatistics = client.tracker_statistics()
    print(snapshot)


async def journaled(client: LeonardoClient, request: ImageToVideoRequest, held: set[str]) -> str:
    """A resumable runner's steps, each written down before it is taken."""
    runner = client.submitter
    seeded: ImageToVideoRequest = runner.with_seed(request)
    slot = await runner.take_slot()
    sends: list[None] = []
    try:
        job: GenerationJob = await runner.submit(
            seeded,
            claimed=held,
            retry_refused=False,
            slot=slot,
            on_resend=lambda: sends.append(None),
        )
    except SubmitUncertainError:
        slot.release()
        since = datetime.now(timezone.utc)
        found: Generation | None = await runner.find_submitted(seeded, since=since, claimed=held)
        return "" if found is None else found.id
    await runner.adopt(job.id)
    return job.id


async def listing(client: LeonardoClient) -> list[str]:
    page: list[Generation] = await client.list_generations(offset=0, limit=50)
    every = [g.id async for g in client.iter_generations(max_pages=3)]
    gone: bool = await client.delete_generation(page[0].id)
    maybe: Generation | None = await client.get_generation(every[0])
    print(gone, maybe)
    return every


async def errors(client: LeonardoClient) -> None:
    try:
        await client.image_to_video(prompt="", image=FrameRef("x", ImageType.GENERATED))
    except ValidationError as exc:
        field: str = exc.field
        allowed: str = exc.allowed
        print(field, exc.value, allowed)
    except AuthenticationError as exc:
        print(exc.status, exc.code)
    except APIError as exc:
        code: int = exc.status
        print(code, exc.error)
    except TimeoutError:
        pass
    except LeonardoError:
        pass


async def with_session() -> None:
    async with (
        aiohttp.ClientSession() as session,
        LeonardoClient("key", session=session, limits=Limits.off()) as client,
    ):
        await client.me()


def main() -> None:
    anyio.run(with_session)
