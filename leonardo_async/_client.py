"""LeonardoClient: one coroutine per endpoint, models in and models out.

The client owns what one API key needs for its lifetime (the aiohttp session, the key's
limits, the job tracker) and is therefore an async context manager::

    async with LeonardoClient() as client:          # LEONARDO_API_KEY from the environment
        job = await client.image_to_video(prompt="...", image=Path("start.png"))
        video = await client.wait(job.id)
        await client.download(video, "out.mp4")

The environment is read when a client is made, never at import. Submits are safe to
repeat from the caller's point of view: a submit whose answer is lost is looked up in the
generation listing before anything is sent again (see :mod:`._reconcile`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from ._connection import DEFAULT_BASE_URL, Connection, Timeouts
from ._endpoints import Endpoints
from ._errors import (
    ClientStateError,
    ValidationError,
)
from ._http import Transport
from ._limits import ClientStatistics, KeyLimiter, Limits
from ._listing import Listing
from ._reconcile import LISTING_LAG, Reconciler
from ._retry import RetryPolicy
from ._schedule import PollSchedule
from ._submits import SUBMIT_PATH, Submits
from ._tracker import JobTracker, ProgressCallback, TrackedJob, TrackerStatistics
from ._transfers import Transfers
from ._uploads import check_target, read_image, remote_frame
from .models import (
    Account,
    FrameRef,
    Generation,
    GenerationJob,
    ImageToVideoRequest,
    Model,
    Orientation,
    Resolution,
    UploadedImage,
    VideoSpec,
)

__all__ = ["ImageSource", "LeonardoClient"]

logger = logging.getLogger("leonardo_async")

#: What ``image=`` and ``end_image=`` accept: an upload, a frame, an id (``str``), a file
#: (``os.PathLike``) or its bytes.
ImageSource = UploadedImage | FrameRef | str | os.PathLike[str] | bytes


class LeonardoClient(Submits, Endpoints):
    """An async client for Leonardo.AI image-to-video. Use it with ``async with``.

    :param api_key: the API key; defaults to ``LEONARDO_API_KEY``
    :param base_url: the API root; defaults to ``LEONARDO_BASE_URL``, else Leonardo's
    :param limits: client-side limits for the key (default: Leonardo's documented ones)
    :param poll_schedule: how often to check running jobs (default: sized for Veo)
    :param retry: retries of requests that are safe to repeat (downloads too)
    :param timeouts: bounds on every request, in seconds
    :param batched_status: check many running jobs with one listing page
    :param auto_seed: send a random seed when the caller gives none, so a submit whose
        answer is lost can be matched exactly
    :param listing_lag: seconds the generation listing may take to show a new job; a
        submit whose answer is lost is looked for that long before it is sent again
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
        key = api_key if api_key is not None else os.environ.get("LEONARDO_API_KEY")
        key = key.strip() if isinstance(key, str) else key
        if not key:
            raise ValidationError("api_key", "<missing>", "pass api_key= or set LEONARDO_API_KEY")
        if not key.isprintable() or any(c.isspace() for c in key):
            # Never shown: it is the secret, and its bad character could be a line break
            # that would split a header or a log line.
            raise ValidationError(
                "api_key",
                "<not shown>",
                "one line of visible characters: api_key (or LEONARDO_API_KEY) holds a "
                "space, a line break or a control character inside it",
            )
        url = base_url or os.environ.get("LEONARDO_BASE_URL") or DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise ValidationError("base_url", url, "an http:// or https:// URL")
        self.limits = limits if limits is not None else Limits()
        self.poll_schedule = poll_schedule if poll_schedule is not None else PollSchedule()
        self._limiter = KeyLimiter(self.limits, account_slots=self._account_slots)
        if transport is not None and session is not None:
            raise ValidationError("session", "<session>", "no session when a transport is given")
        self._transport = Connection(
            key,
            url,
            limiter=self._limiter,
            retry=retry if retry is not None else RetryPolicy(),
            timeouts=timeouts if timeouts is not None else Timeouts(),
            transport=transport,
            session=session,
            max_connections=max_connections,
        )
        self._transfers = Transfers(self._transport)
        self.listing = Listing(self._transport, self.user_id)
        self._reconciler = Reconciler(
            self.listing,
            submit_url=self._transport.base_url + SUBMIT_PATH,
            auto_seed=auto_seed,
            listing_lag=listing_lag,
            listing_shows_videos=listing_shows_videos,
        )
        self.listing.on_generation = self._reconciler.listed
        self._tracker = JobTracker(
            self,
            schedule=self.poll_schedule,
            batched=batched_status,
            polls_in_flight=polls_in_flight,
        )
        self._tracker.on_end = self._limiter.ended
        self._account: Account | None = None
        self._account_lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"<LeonardoClient {self._transport.base_url}>"

    @property
    def timeouts(self) -> Timeouts:
        """The client's request timeouts (seconds)."""
        return self._transport.timeouts

    @property
    def batched_status(self) -> bool:
        """Whether many running jobs are checked with one listing page (settable)."""
        return self._tracker.batched

    @batched_status.setter
    def batched_status(self, value: bool) -> None:
        self._tracker.batched = value

    @property
    def vanish_grace(self) -> float:
        """Seconds a tracked job may be unknown to the server before it is an error."""
        return self._tracker.vanish_grace

    @vanish_grace.setter
    def vanish_grace(self, value: float) -> None:
        self._tracker.vanish_grace = value

    @property
    def on_progress(self) -> ProgressCallback | None:
        """Called with a :class:`TrackerStatistics` after each change in tracking."""
        return self._tracker.on_progress

    @on_progress.setter
    def on_progress(self, value: ProgressCallback | None) -> None:
        self._tracker.on_progress = value

    def tracker_statistics(self) -> TrackerStatistics:
        """A snapshot of the jobs being watched and the looks spent on them."""
        return self._tracker.statistics()

    @property
    def auto_seed(self) -> bool:
        """Whether a random seed is sent when the caller gives none."""
        return self._reconciler.auto_seed

    @auto_seed.setter
    def auto_seed(self, value: bool) -> None:
        self._reconciler.auto_seed = value

    @property
    def listing_shows_videos(self) -> bool:
        """Whether the listing is known to show video jobs, so that a lost submit it does
        not show after the lag window may be sent again (learnt, or set)."""
        return self._reconciler.listing_shows_videos

    @listing_shows_videos.setter
    def listing_shows_videos(self, value: bool) -> None:
        self._reconciler.assume_listing(value)

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent to the API host so far."""
        return self._transport.requests_sent

    def statistics(self) -> ClientStatistics:
        """A snapshot of the requests sent, the 429s met and the key's limits in force."""
        return self._limiter.statistics(self._transport.requests_sent)

    async def in_flight_bound(self) -> int | None:
        """The most generations this client keeps in flight (submitted, not finished),
        asking ``/me`` for the key's slots if the limits say ``"account"``."""
        return (await self._limiter.in_flight_slots()).total

    async def __aenter__(self) -> LeonardoClient:
        if self._stack is not None:
            # Refused before anything changes: a second tracker task group would be
            # opened inside the caller's scopes and break them when either block ends.
            raise ClientStateError("the client is already open: enter it once")
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._transport)
            await stack.enter_async_context(self._tracker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(*exc_info)

    async def aclose(self) -> None:
        """Stop tracking and close the session."""
        await self.__aexit__(None, None, None)

    # --- account ------------------------------------------------------------------------

    # --- images -------------------------------------------------------------------------

    async def upload_image(
        self, source: str | os.PathLike[str] | bytes, *, name: str = "image"
    ) -> UploadedImage:
        """Upload a start or end frame; returns the init image to refer to.

        Two steps: ``POST /init-image`` for a presigned form, then the file to that URL
        with no authorization header. A refused or expired upload URL is asked for anew.

        :param source: a path to a PNG, JPEG or WebP file, or its bytes
        :raises ValidationError: the file is unreadable or not such an image
        :raises UploadError: the upload failed even with fresh URLs
        """
        return await self._transfers.upload(source, name=name)

    async def _frame(self, source: ImageSource, name: str) -> FrameRef:
        remote = None if isinstance(source, bytes) else remote_frame(source, name)
        if remote is not None:
            return remote
        assert not isinstance(source, (FrameRef, UploadedImage))  # remote_frame took those
        return (await self.upload_image(source, name=name)).as_frame()

    # --- generations --------------------------------------------------------------------

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
    ) -> GenerationJob:
        """Submit an image-to-video generation; returns the job with its id and cost.

        ``image`` and ``end_image`` may be an :class:`UploadedImage`, a :class:`FrameRef`,
        an image id as a ``str``, or a local file as a :class:`~pathlib.Path` (or bytes),
        uploaded first. The type decides, never the disk: a ``str`` is always an id, and
        one shaped like a path (``"start.png"``, ``"frames/a"``) is refused so that it is
        not sent as an id by mistake. Everything is validated before any
        request is made; see :class:`VideoSpec` for the rules.

        :raises ValidationError: a parameter breaks the Veo 3.1 rules
        """
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
        for name, source in (("image", image), ("end_image", end_image)):
            if isinstance(source, (bytes, os.PathLike)):
                read_image(source, name=name)  # fail on bad image data before uploading any
        start = await self._frame(image, "image")
        end = None if end_image is None else await self._frame(end_image, "end_image")
        return await self.submit(ImageToVideoRequest.of(spec, start, end))

    # --- waiting and downloading -------------------------------------------------------

    def track(
        self,
        generation_id: str,
        *,
        deadline: float | None = None,
        schedule: PollSchedule | None = None,
    ) -> TrackedJob:
        """Start watching a generation; await the returned handle for the result."""
        return self._tracker.track(generation_id, deadline=deadline, schedule=schedule)

    def as_completed(self) -> AsyncIterator[Generation]:
        """The tracked generations as they finish (a failed one too), until none is left."""
        return self._tracker.as_completed()

    def notify(self, generation: Generation) -> bool:
        """Feed news of a generation heard of elsewhere (a webhook); ``True`` if it ended
        a tracked job."""
        return self._tracker.notify(generation)

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = None,
        schedule: PollSchedule | None = None,
    ) -> Generation:
        """Wait for a generation to finish and return it.

        :param timeout: seconds before :class:`WaitTimeoutError` (the job keeps running)
        :raises GenerationFailedError: the job ended ``FAILED``
        :raises WaitTimeoutError: ``timeout`` passed first
        """
        return await self._tracker.wait(generation_id, timeout=timeout, schedule=schedule)

    async def download(self, source: Generation | str, path: str | os.PathLike[str]) -> Path:
        """Download a finished video to ``path``; returns the path.

        Streams to a hidden temporary file beside ``path`` and renames it only when the
        byte count matches ``Content-Length``; a short or failed transfer is retried and
        never leaves a file at ``path``.

        :raises ValidationError: ``path`` is a directory, a device or another non-file
        :raises DownloadError: the video could not be fetched whole
        """
        check_target(Path(path))  # before anything is fetched
        return await self._transfers.download(source, path)
