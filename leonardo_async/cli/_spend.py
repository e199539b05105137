"""What ``doctor --spend`` learns from one paid job, and from a queue probe if confirmed.

The job is the cheapest there is (``VEO3_1FAST``, 720p, 4 s, private), submitted with a
seed and watched end to end: its stated cost and the balance change, how long it took,
whether the listing showed it (and how soon), whether the seed came back, and whether its
video downloads without the key. Telling a queueing server from a refusing one needs a
submit past the concurrency slots, which costs one more job per slot: that is asked for
separately, with the price the first job's answer stated.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

import anyio
import attrs

from .._client import LeonardoClient
from .._errors import (
    APIError,
    GenerationFailedError,
    LeonardoError,
    RateLimitError,
    hasura_error,
)
from .._schedule import PollSchedule
from ..models import (
    MAX_SEED,
    Account,
    Generation,
    GenerationJob,
    ImageToVideoRequest,
    Model,
    Resolution,
)
from ..webhook import WebhookReceiver, WebhookStatistics
from ._checks import Finding, Status, finding, not_checkable
from ._frames import START, frame_png
from ._remote import cost_text
from ._transcript import Transcript

__all__ = ["SpendOptions", "SpendResult", "check_with_job"]

PROMPT: Final = "Gentle waves under a setting sun (leonardo-async doctor check)"
#: Seconds between two looks for the new job in the listing, once it finished.
LISTING_LOOK_EVERY: Final = 2.0
#: Seconds between two looks at the webhook receiver, once the job finished.
CALLBACK_LOOK_EVERY: Final = 0.25
#: Statements only the paid job can settle.
SPEND_IDS: Final = ("submit.cost", "job.finishes", "private", "seed", "video.no_auth", "queue")


@attrs.frozen
class SpendOptions:
    """How the paid checks run.

    :param confirm: asked (in a worker thread) before spending more than one job's worth
    :param schedule: how often to look at the job (``None``: the client's)
    :param timeout: seconds to wait for the job before reporting it unfinished
    :param listing_wait: seconds to keep looking for the finished job in the listing (and
        for its webhook callback)
    :param webhook: ``(host, port)`` to receive Leonardo's callbacks on, if any
    :param callback_key: the callback key set with the API key's webhook
    """

    confirm: Callable[[str], bool]
    schedule: PollSchedule | None = None
    timeout: float = 900.0
    listing_wait: float = 20.0
    webhook: tuple[str, int] | None = None
    callback_key: str | None = None


@attrs.frozen
class SpendResult:
    """The findings, and the new job's ``createdAt`` against the local submit time."""

    findings: list[Finding]
    created_skew: float | None = None


async def check_with_job(
    client: LeonardoClient, account: Account, transcript: Transcript, options: SpendOptions
) -> SpendResult:
    """Run one cheap job end to end (and the queue probe, if confirmed).

    With ``options.webhook``, a :class:`WebhookReceiver` listens there meanwhile, and
    whether Leonardo called it back for the job becomes a finding.
    """
    if options.webhook is None:
        return await _run_job(client, account, transcript, options)
    receiver = WebhookReceiver(client, callback_key=options.callback_key)
    async with receiver.serve(*options.webhook):
        result = await _run_job(client, account, transcript, options)
        for _ in range(math.ceil(options.listing_wait / CALLBACK_LOOK_EVERY)):
            if _called_back(receiver.statistics()):
                break
            await anyio.sleep(CALLBACK_LOOK_EVERY)
    heard = _webhook(receiver.statistics(), options)
    return attrs.evolve(result, findings=[*result.findings, heard])


def _called_back(stats: WebhookStatistics) -> bool:
    return bool(stats.accepted or stats.ignored or stats.rejected)


def _webhook(stats: WebhookStatistics, options: SpendOptions) -> Finding:
    """What the receiver heard while the job ran (and ``listing_wait`` after)."""
    if stats.accepted:
        return finding("webhook.video", Status.HELD, f"{stats.accepted} callbacks received")
    if stats.ignored:
        return finding(
            "webhook.video",
            Status.NOT_HELD,
            f"{stats.ignored} callbacks of an event type other than image_generation.complete",
        )
    refused = ", ".join(f"{n} {why}" for why, n in stats.rejected.items())
    where = f"{options.webhook[0]}:{options.webhook[1]}" if options.webhook else "?"
    return finding(
        "webhook.video",
        Status.UNKNOWN if refused else Status.NOT_HELD,
        f"requests refused ({refused}): check LEONARDO_CALLBACK_KEY"
        if refused
        else f"no callback reached {where} (is the key's webhook URL forwarded here?)",
    )


async def _run_job(
    client: LeonardoClient, account: Account, transcript: Transcript, options: SpendOptions
) -> SpendResult:
    seed = random.randint(0, MAX_SEED)
    submitted_at = datetime.now(timezone.utc)
    started = time.monotonic()
    try:
        image = await client.upload_image(frame_png(START), name="doctor-frame.png")
        request = ImageToVideoRequest(
            prompt=PROMPT,
            image=image.as_frame(),
            model=Model.VEO3_1FAST,
            resolution=Resolution.RESOLUTION_720,
            duration=4,
            seed=seed,
            is_public=False,
        )
        submitted_at = datetime.now(timezone.utc)
        started = time.monotonic()
        job = await client.submit(request)
    except LeonardoError as exc:
        return SpendResult(not_checkable(SPEND_IDS, f"no job was made: {exc}"))
    listed_at = time.monotonic() - started if await _listed(client, job.id, submitted_at) else None
    found = [await _cost(client, account, job)]
    found += await _probe_queue(client, request, account, job, options)
    try:
        generation = await client.wait(job.id, timeout=options.timeout, schedule=options.schedule)
    except LeonardoError as exc:  # failed, timed out, vanished, unreachable
        failed = isinstance(exc, GenerationFailedError)
        found.append(
            finding("job.finishes", Status.NOT_HELD if failed else Status.UNKNOWN, str(exc))
        )
        found += not_checkable(("private", "seed", "video.no_auth"), f"job {job.id} did not finish")
        return SpendResult(found)
    took = time.monotonic() - started
    found.append(
        finding("job.finishes", Status.HELD, f"job {job.id} COMPLETE {took:.0f} s after submit")
    )
    if listed_at is None:
        listed_at = await _listed_within(
            client, job.id, submitted_at, options.listing_wait, started
        )
    found.append(_listing_video(job.id, listed_at, options.listing_wait))
    refusal = _seed_refusal(transcript) if client.seeds_refused else None
    found.append(_seed(seed, generation, refusal))
    found.append(await _download(client, generation))
    found.append(_private(transcript, job.id))
    created = generation.created_at
    skew = None if created is None else (created - submitted_at).total_seconds()
    return SpendResult(found, skew)


async def _listed(client: LeonardoClient, generation_id: str, since: datetime) -> bool:
    """Whether the listing shows the generation (a listing that fails shows nothing)."""
    try:
        async for generation in client.iter_generations(created_after=since):
            if generation.id == generation_id:
                return True
    except LeonardoError:
        pass
    return False


async def _listed_within(
    client: LeonardoClient, generation_id: str, since: datetime, wait: float, started: float
) -> float | None:
    """Seconds from submit to the job showing in the listing, looking for ``wait`` s."""
    give_up = time.monotonic() + wait
    while True:
        if await _listed(client, generation_id, since):
            return time.monotonic() - started
        if time.monotonic() >= give_up:
            return None
        await anyio.sleep(min(LISTING_LOOK_EVERY, max(0.0, give_up - time.monotonic())))


def _listing_video(generation_id: str, listed_at: float | None, wait: float) -> Finding:
    if listed_at is None:
        return finding(
            "listing.video",
            Status.NOT_HELD,
            f"job {generation_id} was not listed within {wait:g} s of finishing: "
            "status is polled per job for this account",
        )
    return finding(
        "listing.video", Status.HELD, f"job {generation_id} listed {listed_at:.0f} s after submit"
    )


async def _cost(client: LeonardoClient, before: Account, job: GenerationJob) -> Finding:
    try:
        after = (await client.me()).token_balance
        change = f"; balance {before.token_balance} -> {after}"
    except LeonardoError:
        change = ""
    if job.cost is None and job.api_credit_cost is None:
        return finding("submit.cost", Status.NOT_HELD, "the answer's cost is null" + change)
    return finding("submit.cost", Status.HELD, cost_text(job) + change)


def _private(transcript: Transcript, generation_id: str) -> Finding:
    """Whether the job, sent with ``isPublic: false``, came back with ``public: false``."""
    flags = [
        body["generations_by_pk"].get("public")
        for exchange in transcript.exchanges
        if exchange.url.endswith(f"/generations/{generation_id}")
        and isinstance(body := exchange.json_body(), dict)
        and isinstance(body.get("generations_by_pk"), dict)
    ]
    if not flags or not isinstance(flags[-1], bool):
        return finding(
            "private", Status.UNKNOWN, "the generation does not say whether it is public"
        )
    if flags[-1]:
        return finding("private", Status.NOT_HELD, f"job {generation_id} is public")
    return finding("private", Status.HELD, f"job {generation_id} reports public: false")


def _seed_refusal(transcript: Transcript) -> str:
    """The server's text refusing a submit's seed (the client sent it again without)."""
    for exchange in transcript.exchanges:
        if exchange.method == "POST" and exchange.url.endswith("-to-video"):
            text = hasura_error(exchange.json_body())[0] or ""
            if exchange.status == 400 and "seed" in text.lower():
                return text
    return "a 400"


def _seed(sent: int | None, generation: Generation, refusal: str | None) -> Finding:
    if refusal is not None:
        return finding(
            "seed", Status.NOT_HELD, f"a submit with a seed was refused ({refusal}); sent without"
        )
    if generation.seed is None:
        return finding("seed", Status.NOT_HELD, f"sent {sent}; the generation reports no seed")
    if generation.seed != sent:
        return finding("seed", Status.NOT_HELD, f"sent {sent}; came back as {generation.seed}")
    return finding("seed", Status.HELD, f"sent {sent}; came back unchanged")


async def _download(client: LeonardoClient, generation: Generation) -> Finding:
    with tempfile.TemporaryDirectory(prefix="leonardo-doctor-") as folder:
        try:
            path = await client.download(generation, Path(folder) / "doctor.mp4")
        except LeonardoError as exc:
            return finding("video.no_auth", Status.NOT_HELD, str(exc))
        size = path.stat().st_size
    return finding("video.no_auth", Status.HELD, f"{size} bytes downloaded with no key")


async def _probe_queue(
    client: LeonardoClient,
    request: ImageToVideoRequest,
    account: Account,
    job: GenerationJob,
    options: SpendOptions,
) -> list[Finding]:
    """Submit one job per slot more, so the last goes past the slots; stop at a refusal.

    A refusal also shows how the server refuses: with 429, or with another status that
    the client would take for bad input.
    """
    slots = account.concurrency_slots
    if not slots:
        return [finding("queue", Status.UNKNOWN, "/me reports no concurrency slots")]
    question = (
        f"The queue check submits {slots} more jobs like the first ({cost_text(job)} "
        f"each), so that one goes past your {slots} slots; all of them are charged."
    )
    if not await anyio.to_thread.run_sync(options.confirm, question):
        return [finding("queue", Status.UNKNOWN, "skipped: not confirmed (--yes confirms)")]
    accepted = [job.id]
    for number in range(2, slots + 2):
        extra = attrs.evolve(request, prompt=f"{PROMPT} #{number}")
        try:
            accepted.append((await client.submit(extra, retry_refused=False)).id)
        except RateLimitError as exc:
            refused = (
                f"submit {number} refused with 429 ({exc.error}) after {len(accepted)} accepted"
            )
            return [
                finding("queue", Status.NOT_HELD, refused + ": the client holds at the slots"),
                finding("over_limit", Status.HELD, refused),
            ]
        except APIError as exc:
            refused = f"submit {number} refused: {exc}"
            return [
                finding("queue", Status.NOT_HELD, refused),
                finding(
                    "over_limit", Status.NOT_HELD, refused + " (the client takes it for bad input)"
                ),
            ]
        except LeonardoError as exc:
            return [finding("queue", Status.UNKNOWN, f"submit {number} failed: {exc}")]
    try:
        first = await client.get_generation(job.id)
    except LeonardoError as exc:
        return [finding("queue", Status.UNKNOWN, f"the first job could not be looked at: {exc}")]
    if first is None or first.is_finished:
        detail = f"all {len(accepted)} submits accepted, but the first job had finished first"
        return [finding("queue", Status.UNKNOWN, detail)]
    detail = (
        f"all {len(accepted)} submits accepted with {slots} slots; the extra jobs "
        f"({', '.join(accepted[1:])}) keep running and are charged"
    )
    return [finding("queue", Status.HELD, detail)]
