"""LeonardoClient: one coroutine per endpoint, models in and models out.

The client owns the parts one API key needs for its lifetime (the connection and its
session, the key's limits, the listing, the reconciler, the endpoints, the tracker, the
submitter: :mod:`._parts` makes each with what it depends on) and hands every call to
one of them; it is therefore an async context manager::

    async with LeonardoClient() as client:          # LEONARDO_API_KEY from the environment
        video = await client.generate(prompt="...", image=Path("start.png"), out="out.mp4")

:meth:`LeonardoClient.generate` is the parts in one await: upload the frames, submit,
wait, download; each part is a method of its own for callers that keep them apart.

The environment is read when a client is made, never at import. Submits are safe to
repeat from the caller's point of view: a submit whose answer is lost is looked up in the
generation listing before anything is sent again (see :mod:`._listing._reconciler`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from .._errors import FrameCropWarning, GenerationFailedError, warn
from .._files import ImageData, check_target, frame_misfit
from .._limits import ClientStatistics, Limits, RedisLimits
from .._listing import LISTING_LAG
from .._retry import RetryPolicy
from .._schedule import PollSchedule
from .._tracking import ProgressCallback, TrackedJob, TrackerStatistics, UpdateCallback
from .._transport import Request, Timeouts, Transport, call_options, credentials
from .._validate import MAX_SECONDS, MIN_SECONDS, number
from ..models import (
    Account,
    FrameRef,
    GeneratedVideo,
    Generation,
    GenerationJob,
    ImageToVideoRequest,
    Model,
    Orientation,
    Resolution,
    UploadedImage,
    VideoSpec,
)
from ._parts import build
from ._submitter import CancelledSubmit, Submitter

__all__ = ["ImageSource", "LeonardoClient"]

logger = logging.getLogger("leonardo_async")

#: What ``image=`` and ``end_image=`` accept: an upload, a frame, an id (``str``), a file
#: (``os.PathLike``) or its bytes.
ImageSource = UploadedImage | FrameRef | str | os.PathLike[str] | bytes


class LeonardoClient:
    """An async client for Leonardo.AI image-to-video. Use it with ``async with``.

    :param api_key: the API key; defaults to ``LEONARDO_API_KEY``
    :param base_url: the API root; defaults to ``LEONARDO_BASE_URL``, else Leonardo's
    :param limits: client-side limits for the key (default: Leonardo's documented ones)
    :param redis: share the key's limits (rates, in-flight slots, the pause after a 429,
        what was learnt of the key) with every client, in any process, that uses the same
        Redis and the same key, and the webhook callbacks their receivers accept (see
        :meth:`notify`): a ``redis://`` URL or a :class:`RedisLimits`; defaults to
        ``LEONARDO_REDIS_URL``, else not shared. Needs ``leonardo-async[redis]``
    :param poll_schedule: how often to check running jobs (default: sized for Veo)
    :param retry: retries of requests that are safe to repeat (downloads too)
    :param timeouts: bounds on every request, in seconds
    :param batched_status: check many running jobs with one listing page
    :param auto_seed: send a random seed when the caller gives none, so a submit whose
        answer is lost can be matched exactly
    :param listing_lag: the least seconds the generation listing is given to show a new
        job; a submit whose answer is lost is looked for at least that long before it is
        sent again, and longer when the client measures the listing to be later (how late
        it showed our own jobs; see :meth:`statistics`). A listing later than 300 s
        leaves the submit uncertain, never resent
    :param listing_shows_videos: whether the generation listing shows video jobs (as
        ``leonardo-async doctor`` checks); ``None`` learns it from the listing. Until it
        is known to, a lost submit not found there is left uncertain, never resent
    :param polls_in_flight: cap on status requests in flight at once
    :param transport: what sends the HTTP requests; by default aiohttp, and in unit tests
        a :class:`MockTransport` that answers from a function, with no socket
    :param session: an aiohttp session for the default transport (its owner closes it)
    :param max_connections: cap on connections of the client's own session
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        limits: Limits | None = None,
        redis: str | RedisLimits | None = None,
        poll_schedule: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        batched_status: bool = True,
        auto_seed: bool = True,
        listing_lag: float = LISTING_LAG,
        listing_shows_videos: bool | None = None,
        polls_in_flight: int = 32,
        transport: Transport | None = None,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
    ) -> None:
        key, url = credentials(api_key, base_url)
        self.limits = limits if limits is not None else Limits()
        if redis is None:
            redis = os.environ.get("LEONARDO_REDIS_URL") or None
        #: Where the key's limits are shared (``None``: this client alone).
        self.redis = RedisLimits(redis) if isinstance(redis, str) else redis
        self.poll_schedule = poll_schedule if poll_schedule is not None else PollSchedule()
        self._parts = build(
            key,
            url,
            limits=self.limits,
            redis=self.redis,
            poll_schedule=self.poll_schedule,
            retry=retry if retry is not None else RetryPolicy(),
            timeouts=timeouts if timeouts is not None else Timeouts(),
            batched_status=batched_status,
            auto_seed=auto_seed,
            listing_lag=listing_lag,
            listing_shows_videos=listing_shows_videos,
            polls_in_flight=polls_in_flight,
            transport=transport,
            session=session,
            max_connections=max_connections,
        )

    def __repr__(self) -> str:
        return f"<LeonardoClient {self._parts.connection.base_url}>"

    @property
    def timeouts(self) -> Timeouts:
        """The client's request timeouts (seconds)."""
        return self._parts.connection.timeouts

    @property
    def batched_status(self) -> bool:
        """Whether many running jobs are checked with one listing page (settable)."""
        return self._parts.tracker.batched

    @batched_status.setter
    def batched_status(self, value: bool) -> None:
        self._parts.tracker.batched = value

    @property
    def vanish_grace(self) -> float:
        """Seconds a tracked job may be unknown to the server before it is an error."""
        return self._parts.tracker.vanish_grace

    @vanish_grace.setter
    def vanish_grace(self, value: float) -> None:
        self._parts.tracker.vanish_grace = value

    @property
    def on_progress(self) -> ProgressCallback | None:
        """Called with a :class:`TrackerStatistics` after each change in tracking."""
        return self._parts.tracker.on_progress

    @on_progress.setter
    def on_progress(self, value: ProgressCallback | None) -> None:
        self._parts.tracker.on_progress = value

    def tracker_statistics(self) -> TrackerStatistics:
        """A snapshot of the jobs being watched and the looks spent on them."""
        return self._parts.tracker.statistics()

    @property
    def auto_seed(self) -> bool:
        """Whether a random seed is sent when the caller gives none."""
        return self._parts.reconciler.auto_seed

    @auto_seed.setter
    def auto_seed(self, value: bool) -> None:
        self._parts.reconciler.auto_seed = value

    @property
    def listing_shows_videos(self) -> bool:
        """Whether the listing is known to show video jobs, so that a lost submit it does
        not show after the lag window may be sent again (learnt, or set)."""
        return self._parts.evidence.listing_shows_videos

    @listing_shows_videos.setter
    def listing_shows_videos(self, value: bool) -> None:
        self._parts.evidence.assume_listing(value)

    @property
    def server_queues(self) -> bool | None:
        """Whether the server queues submits past the key's slots (learnt from the first
        submit past them, or set); ``None`` until known. Set ``False`` to hold the
        in-flight bound at the slots, as ``Limits(max_queued=0)`` would."""
        return self._parts.limiter.server_queues

    @server_queues.setter
    def server_queues(self, value: bool) -> None:
        self._parts.limiter.assume_queueing(value)

    @property
    def base_url(self) -> str:
        """The API root this client talks to."""
        return self._parts.connection.base_url

    @property
    def seeds_refused(self) -> bool:
        """Whether the server refused a ``seed`` (no seed is sent from then on)."""
        return self._parts.reconciler.seeds_rejected

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent to the API host so far."""
        return self._parts.connection.requests_sent

    def statistics(self) -> ClientStatistics:
        """A snapshot of the requests sent, the 429s met and the key's limits in force."""
        parts = self._parts
        return attrs.evolve(
            parts.limiter.statistics(parts.connection.requests_sent),
            server_clock_offset=parts.connection.clock.offset,
            listing_lag=parts.evidence.window(datetime.now(timezone.utc)),
            listing_lag_seen=parts.evidence.lag.longest,
        )

    @property
    def cancelled_submits(self) -> tuple[CancelledSubmit, ...]:
        """Submits whose caller was cancelled after the request left: each may have made a
        paid job. The client looks for it in the listing in the background (a WARNING
        names a job found, or says the listing could not tell) and watches a job found;
        see :class:`CancelledSubmit`."""
        return tuple(self._parts.submitter.cancelled)

    @property
    def submitter(self) -> Submitter:
        """The never-pay-twice submit in the steps a resumable batch runner writes to its
        journal before taking each (take a slot, fix the seed, submit with the ids it
        holds, find a lost submit's job, adopt an earlier run's): see :class:`Submitter`.
        :meth:`submit` is all a caller without a journal needs."""
        return self._parts.submitter

    async def in_flight_bound(self) -> int | None:
        """The most generations this client keeps in flight (submitted, not finished),
        asking ``/me`` for the key's slots if the limits say ``"account"``."""
        return (await self._parts.limiter.resolve_slots(self._parts.owner.slots)).total

    async def __aenter__(self) -> LeonardoClient:
        await self._parts.open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._parts.close(*exc_info)

    async def aclose(self) -> None:
        """Stop tracking and close the session."""
        await self.__aexit__(None, None, None)

    async def me(
        self,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> Account:
        """The key owner's account: user id, concurrency slots, token balances.

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.owner.me(options)

    async def account(self) -> Account:
        """The account, asked of ``/me`` once and then remembered."""
        return await self._parts.owner.account()

    async def user_id(self) -> str:
        """The key owner's user id (for the generation listing)."""
        return await self._parts.owner.user_id()

    async def upload_image(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str = "image",
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> UploadedImage:
        """Upload a start or end frame; returns the init image to refer to.

        Two steps: ``POST /init-image`` for a presigned form, then the file to that URL
        with no authorization header. A refused or expired upload URL is asked for anew.

        :param source: a path to a PNG, JPEG or WebP file, or its bytes
        :raises ValidationError: the file is unreadable or not such an image
        :raises UploadError: the upload failed even with fresh URLs

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.transfers.upload(source, name=name, options=options)

    async def delete_image(
        self,
        image_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> bool:
        """Delete an uploaded init image; ``True`` if the server had it.

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.endpoints.delete_image(image_id, options)

    async def image_to_video(
        self,
        *,
        prompt: str,
        image: ImageSource,
        end_image: ImageSource | None = None,
        model: Model | str = Model.VEO3_1,
        resolution: Resolution | str | None = None,
        duration: int | None = None,
        orientation: Orientation | str | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        is_public: bool | None = None,
        negative_prompt: str | None = None,
        allow_any_model: bool = False,
        extra: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> GenerationJob:
        """Submit an image-to-video generation; returns the job with its id and cost.

        ``image`` and ``end_image`` may be an :class:`UploadedImage`, a :class:`FrameRef`,
        an image id as a ``str``, or a local file as a :class:`~pathlib.Path` (or bytes),
        uploaded first. The type decides, never the disk: a ``str`` is always an id, and
        one shaped like a path (``"start.png"``, ``"frames/a"``) is refused so that it is
        not sent as an id by mistake. Everything is validated before any
        request is made; see :class:`VideoSpec` for the rules. A local frame of the other
        orientation than the video (a portrait photo in the default landscape video,
        which Leonardo crops to a third of it) gets a :class:`FrameCropWarning` naming
        both sizes and the ``orientation`` that fits, before anything is uploaded.

        Per-call options, for the uploads and the submit: ``timeout`` (seconds per
        request), ``extra_headers``, ``max_retries``; see :class:`CallOptions`.

        :raises ValidationError: a parameter breaks the Veo 3.1 rules
        """
        options = call_options(timeout, extra_headers, max_retries)
        spec = VideoSpec(
            prompt=prompt,
            model=model,
            duration=duration,
            resolution=resolution,
            orientation=orientation,
            width=width,
            height=height,
            seed=seed,
            is_public=is_public,
            negative_prompt=negative_prompt,
            allow_any_model=allow_any_model,
            extra=dict(extra or {}),
        )
        start, end = await self._parts.transfers.frames(
            image, end_image, options, inspect=_crop_warning(spec, sized=width is not None)
        )
        request = ImageToVideoRequest.of(spec, start, end)
        return await self._parts.submitter.submit(request, options=options)

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        retry_refused: bool = True,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> GenerationJob:
        """Submit a validated request, never paying twice for it.

        When the answer is lost (reset, timeout, 502/503/504 or any 5xx, unreadable
        body) the job may exist: the generation listing is searched for it over the
        listing-lag window before anything is sent again, and if the listing cannot be
        read whole the submit stays uncertain. A 400 rejecting ``seed`` is sent once more
        without it (a 400 created nothing).

        Every submit takes one of the key's in-flight slots (``Limits.max_running`` plus
        the queue allowance) first, and the job keeps it until the tracker sees it end:
        the job is watched from here on, whether or not the caller waits for it. The
        steps a resumable batch journals one by one are :attr:`submitter`'s.

        :param retry_refused: wait out 429s here (after the shared pause); ``False``
            raises :class:`RateLimitError` at once, for callers that queue again
        :raises SubmitUncertainError: the job could not be found or ruled out

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        The submit is never resent blindly, whatever ``max_retries`` says.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.submitter.submit(
            request, retry_refused=retry_refused, options=options
        )

    def preview_submit(
        self,
        request: ImageToVideoRequest,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> Request:
        """The HTTP request :meth:`submit` would send for ``request``, with the key shown
        as ``[redacted]``; sends nothing, and needs no open client (``generate
        --dry-run`` prints it). With ``auto_seed`` a submit adds a seed the caller did not
        give, chosen when it is sent. The per-call options are those :meth:`submit`
        takes, shown as they would apply."""
        options = call_options(timeout, extra_headers, max_retries)
        return self._parts.submitter.preview(request, options)

    async def get_generation(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> Generation | None:
        """The generation with this id, or ``None`` if the server does not know it.

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.endpoints.get_generation(generation_id, options)

    async def list_generations(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 10
    ) -> list[Generation]:
        """One page of the user's generations (the server decides order and page cap)."""
        return await self._parts.endpoints.list_generations(
            user_id=user_id, offset=offset, limit=limit
        )

    async def raw_listing_page(self, *, offset: int = 0, limit: int = 10) -> list[Any]:
        """One listing page as the server sent it (decoded JSON, unread): for diagnosing a
        server's wire format, as ``leonardo-async doctor`` does. To read generations, use
        :meth:`list_generations` or :meth:`iter_generations`."""
        return await self._parts.listing.raw_page(offset=offset, limit=limit)

    def iter_generations(
        self, *, created_after: datetime | None = None, max_pages: int = 20
    ) -> AsyncIterator[Generation]:
        """Walk the listing page by page, newest first where the server orders it so.

        Stops at an empty page, after ``max_pages``, or, when ``created_after`` is given
        and a page is ordered newest first, at a page whose last entry is older than
        ``created_after`` (less a clock-skew margin). An entry that cannot be read (a
        kind of generation this client does not know) is skipped, not fatal.
        """
        return self._parts.endpoints.iter_generations(
            created_after=created_after, max_pages=max_pages
        )

    async def delete_generation(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> bool:
        """Delete a generation; ``True`` if the server had it.

        Per-call options: ``timeout`` (seconds per request), ``extra_headers``,
        ``max_retries``; see :class:`CallOptions`.
        """
        options = call_options(timeout, extra_headers, max_retries)
        return await self._parts.endpoints.delete_generation(generation_id, options)

    def track(
        self,
        generation_id: str,
        *,
        deadline: float | None = None,
        schedule: PollSchedule | None = None,
    ) -> TrackedJob:
        """Start watching a generation; await the returned handle for the result.

        Looked at once unless this client just submitted it (see :meth:`wait`)."""
        return self._parts.tracker.track(generation_id, deadline=deadline, schedule=schedule)

    def as_completed(
        self,
        jobs: Iterable[str | GenerationJob | TrackedJob] | None = None,
        *,
        follow: bool = False,
    ) -> AsyncIterator[Generation]:
        """Generations as they finish (a failed one too): the ones tracked, until none is
        left; ``jobs`` (ids, submitted jobs or handles) until each has ended; or, with
        ``follow=True``, every one tracked now or later until the client closes. See
        :meth:`JobTracker.as_completed`.

        :raises ClientStateError: (on the first step) no job is tracked, no ``jobs`` given
            and not ``follow``: the iteration would end at once
        """
        return self._parts.tracker.as_completed(jobs, follow=follow)

    def notify(self, generation: Generation) -> bool:
        """Feed news of a generation heard of elsewhere (a webhook); ``True`` if it ended
        a job tracked here.

        With ``redis=``, the news is also passed on to every other client of the key on
        that Redis (the webhook fan-in), whose tracker takes it as its own: a callback
        that lands on one replica ends the job on the replica waiting on it. Passing it
        on never waits for Redis.
        """
        if self._parts.fanin is not None:
            self._parts.fanin.publish(generation)
        return self._parts.tracker.notify(generation)

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        schedule: PollSchedule | None = None,
        on_update: UpdateCallback | None = None,
    ) -> Generation:
        """Wait for a generation to finish and return it.

        A job this client did not just submit is looked at once, then by the schedule.

        :param timeout: seconds before :class:`WaitTimeoutError` (the job keeps running)
        :param on_update: called with the :class:`Generation` each look sees (a poll, a
            listing page, a webhook), the last included, for a progress display; one
            that raises is logged and not called again, and the wait goes on
        :raises GenerationFailedError: the job ended ``FAILED``
        :raises GenerationNotFoundError: the server does not know the id (in about a
            second)
        :raises WaitTimeoutError: ``timeout`` passed first
        """
        return await self._parts.tracker.wait(
            generation_id, timeout=timeout, schedule=schedule, on_update=on_update
        )

    async def download(
        self,
        source: Generation | str,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Path:
        """Download a finished video to ``path``; returns the path.

        Streams to a hidden temporary file beside ``path`` and renames it only when the
        byte count matches ``Content-Length``; a short or failed transfer is retried and
        never leaves a file at ``path``.

        :raises ValidationError: ``path`` is a directory, a device or another non-file
        :raises DownloadError: the video could not be fetched whole

        Per-call options: ``timeout`` (seconds for each attempt's whole transfer),
        ``max_retries``; see :class:`CallOptions` (no ``extra_headers``: they are for
        the API host, and the video comes from the CDN).
        """
        options = call_options(timeout, None, max_retries)
        return await self._parts.transfers.download(source, path, options)

    async def generate(
        self,
        *,
        prompt: str,
        image: ImageSource,
        out: str | os.PathLike[str],
        end_image: ImageSource | None = None,
        model: Model | str = Model.VEO3_1,
        resolution: Resolution | str | None = None,
        duration: int | None = None,
        orientation: Orientation | str | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        is_public: bool | None = None,
        negative_prompt: str | None = None,
        allow_any_model: bool = False,
        extra: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        schedule: PollSchedule | None = None,
        on_update: UpdateCallback | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_retries: int | None = None,
    ) -> GeneratedVideo:
        """Make one video from frames to a local MP4 in one await: upload the frames
        (local files), submit, wait, download to ``out``.

        The parts are :meth:`image_to_video`, :meth:`wait` and :meth:`download`, with
        their validation, limits and never-pay-twice; ``out`` is checked along with the
        request, before anything is uploaded or paid. Once the job is submitted it is
        paid for: if anything stops the call after that (the ``timeout``, a failed
        download, a cancellation), a WARNING names the generation id, and
        ``client.wait(id)`` then ``client.download(...)`` pick it up without paying again.

        :param out: where to write the MP4 (written whole or not at all)
        :param timeout: seconds to wait for the video once submitted; ``None`` waits
            for as long as it takes. The job keeps running past it
        :param schedule: how often to look at the job (default: the client's)
        :param on_update: called with each state a look sees while it waits (see
            :meth:`wait`)
        :param extra_headers: added to the uploads' and the submit's API requests
        :param max_retries: retries of each upload, submit and download request (see
            :class:`CallOptions`)
        :raises ValidationError: a parameter breaks the Veo 3.1 rules, a frame is not an
            image, or ``out`` is a directory or another non-file
        :raises GenerationFailedError: the job ended ``FAILED``
        :raises WaitTimeoutError: ``timeout`` passed first (its ``generation_id`` is the
            job's)
        :raises DownloadError: the video could not be fetched whole
        """
        target = Path(out)
        check_target(target, field="out")
        number("timeout", timeout, MIN_SECONDS, MAX_SECONDS, allow_none=True)
        call_options(None, extra_headers, max_retries)  # checked before anything is sent
        job = await self.image_to_video(
            prompt=prompt,
            image=image,
            end_image=end_image,
            model=model,
            resolution=resolution,
            duration=duration,
            orientation=orientation,
            width=width,
            height=height,
            seed=seed,
            is_public=is_public,
            negative_prompt=negative_prompt,
            allow_any_model=allow_any_model,
            extra=extra,
            extra_headers=extra_headers,
            max_retries=max_retries,
        )
        try:
            generation = await self.wait(
                job.id, timeout=timeout, schedule=schedule, on_update=on_update
            )
            path = await self.download(generation, target, max_retries=max_retries)
        except BaseException as exc:
            if not isinstance(exc, GenerationFailedError):  # a failed job has nothing to fetch
                logger.warning(
                    "generation %s was submitted (and is paid for) but not downloaded "
                    "(%s); client.wait(%r) then client.download() pick it up",
                    job.id,
                    type(exc).__name__,
                    job.id,
                )
            raise
        return GeneratedVideo(path, generation, job)


def _crop_warning(
    spec: VideoSpec, *, sized: bool
) -> Callable[[str, os.PathLike[str] | bytes, ImageData], None]:
    """What to do with each local frame before it is uploaded: warn if ``spec``'s video
    crops most of it (:class:`FrameCropWarning`), naming the parameter that fits it
    (``width``/``height`` when the caller gave those, else ``orientation``)."""

    def inspect(name: str, source: os.PathLike[str] | bytes, image: ImageData) -> None:
        label = f"{name} (bytes)" if isinstance(source, bytes) else f"{name} {os.fspath(source)}"
        misfit = frame_misfit(image.size, spec, label)
        if misfit is None:
            return
        fits = misfit.fits
        width, height = misfit.video[1], misfit.video[0]
        fix = f"width={width}, height={height}" if sized else f"orientation=Orientation.{fits.name}"
        warn(FrameCropWarning(misfit.text(fix)))

    return inspect
