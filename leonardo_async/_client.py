"""LeonardoClient: one coroutine per endpoint, models in and models out.

The client owns what one API key needs for its lifetime (the aiohttp session, the key's
limits, the job tracker) and is therefore an async context manager::

    async with LeonardoClient() as client:          # LEONARDO_API_KEY from the environment
        job = await client.image_to_video(prompt="...", image="start.png")
        video = await client.wait(job.id)
        await client.download(video, "out.mp4")

The environment is read when a client is made, never at import. Submits are safe to
repeat from the caller's point of view: a submit whose answer is lost is looked up in the
generation listing before anything is sent again (see :mod:`._reconcile`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio

from . import _convert as wire
from ._connection import DEFAULT_BASE_URL, Connection, Timeouts
from ._errors import (
    APIError,
    ClientStateError,
    ResponseShapeError,
    SubmitUncertainError,
    ValidationError,
)
from ._http import Transport
from ._limits import ClientStatistics, KeyLimiter, Limits, RequestKind, SubmitSlot
from ._listing import Listing, path_segment
from ._reconcile import LISTING_LAG, Reconciler
from ._retry import RetryPolicy
from ._schedule import PollSchedule
from ._tracker import JobTracker, TrackedJob
from ._transfers import Transfers
from ._uploads import check_target, is_local_image, read_image, remote_frame
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

#: What ``image=`` and ``end_image=`` accept: an upload, a frame, an id, a path or bytes.
ImageSource = UploadedImage | FrameRef | str | os.PathLike[str] | bytes

_SUBMIT_PATH: Final = "/generations-image-to-video"
_SUBMIT_ATTEMPTS: Final = 3
_SHAPE_ATTEMPTS: Final = 3


class LeonardoClient:
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
            submit_url=self._transport.base_url + _SUBMIT_PATH,
            auto_seed=auto_seed,
            listing_lag=listing_lag,
            listing_shows_videos=listing_shows_videos,
        )
        self.listing.on_generation = self._reconciler.listed
        self.tracker = JobTracker(
            self,
            schedule=self.poll_schedule,
            batched=batched_status,
            polls_in_flight=polls_in_flight,
        )
        self.tracker.on_end = self._limiter.ended
        self._account: Account | None = None
        self._account_lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"<LeonardoClient {self._transport.base_url}>"

    @property
    def base_url(self) -> str:
        """The API root this client talks to."""
        return self._transport.base_url

    @property
    def timeouts(self) -> Timeouts:
        """The client's request timeouts (seconds)."""
        return self._transport.timeouts

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
            await stack.enter_async_context(self.tracker)
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

    async def me(self) -> Account:
        """The key owner's account: user id, concurrency slots, token balances."""
        data = await self._transport.call("GET", "/me")
        account = wire.account_from(wire.structure(data, wire.MeEnvelope, "/me"), "/me")
        self._account = account
        return account

    async def account(self) -> Account:
        """The account, asked of ``/me`` once and then remembered."""
        async with self._account_lock:
            for attempt in range(1, _SHAPE_ATTEMPTS + 1):
                if self._account is not None:
                    break
                try:
                    await self.me()
                except ResponseShapeError:  # a garbled answer: ask again, a few times
                    if attempt == _SHAPE_ATTEMPTS:
                        raise
            assert self._account is not None
            return self._account

    async def _account_slots(self) -> int | None:
        return (await self.account()).concurrency_slots

    async def user_id(self) -> str:
        """The key owner's user id (for the generation listing)."""
        return (await self.account()).user_id

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

    async def delete_image(self, image_id: str) -> bool:
        """Delete an uploaded init image; ``True`` if the server had it."""
        path = f"/init-image/{path_segment(image_id)}"
        data = await self._transport.call("DELETE", path, kind=RequestKind.OTHER)
        envelope = wire.structure(data, wire.DeletedImageEnvelope, path)
        return envelope.delete_init_images_by_pk is not None

    async def _frame(self, source: ImageSource, name: str) -> FrameRef:
        remote = None if isinstance(source, bytes) else remote_frame(source)
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
        an image id, or a local file (uploaded first). Everything is validated before any
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
            if isinstance(source, bytes) or (
                isinstance(source, (str, os.PathLike)) and is_local_image(source)
            ):
                read_image(source, name=name)  # fail on bad image data before uploading any
        start = await self._frame(image, "image")
        end = None if end_image is None else await self._frame(end_image, "end_image")
        return await self.submit(ImageToVideoRequest.of(spec, start, end))

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` as it will be sent: a random seed added when it has none and
        ``auto_seed`` is on, and no seed once the server has refused one."""
        return self._reconciler.with_seed(request)

    @property
    def seeds_refused(self) -> bool:
        """Whether the server refused a ``seed`` (no seed is sent from then on)."""
        return self._reconciler.seeds_refused

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str] = (),
        retry_refused: bool = True,
        slot: SubmitSlot | None = None,
        on_resend: Callable[[], None] | None = None,
    ) -> GenerationJob:
        """Submit a validated request, never paying twice for it.

        When the answer is lost (reset, timeout, 502/503/504 or any 5xx, unreadable
        body) the job may exist: the generation listing is searched for it over the
        listing-lag window before anything is sent again, and if the listing cannot be
        read whole the submit stays uncertain. A 400 refusing ``seed`` is sent once more
        without it (a 400 created nothing).

        Every submit takes one of the key's in-flight slots (``Limits.max_running`` plus
        the queue allowance) first, and the job keeps it until the tracker sees it end:
        the job is watched from here on, whether or not the caller waits for it.

        :param claimed: generation ids that belong to other submits and must not be
            taken for this one (a batch passes the ids it already holds)
        :param retry_refused: wait out 429s here (after the shared pause); ``False``
            raises :class:`RateLimitError` at once, for callers that queue again
        :param slot: a slot already taken with :meth:`in_flight_slot` (the caller
            releases it if this raises); by default the submit takes its own
        :param on_resend: called before each send after the first (a lost answer the
            listing did not show, or a refused seed), so that a journal counts every send
        :raises SubmitUncertainError: the job could not be found or ruled out
        """
        if slot is None:
            async with self._limiter.submitting() as own:
                return await self.submit(
                    request,
                    claimed=claimed,
                    retry_refused=retry_refused,
                    slot=own,
                    on_resend=on_resend,
                )
        job = await self._submit(
            request, claimed=claimed, retry_refused=retry_refused, on_resend=on_resend
        )
        slot.keep(job.id)
        self._watch(job.id)
        return job

    async def in_flight_slot(self) -> SubmitSlot:
        """Wait for one of the key's in-flight slots, for a :meth:`submit` to use (a
        batch takes it first so that its budget is checked with the slot in hand)."""
        return await self._limiter.take()

    async def adopt(self, generation_id: str) -> None:
        """Count a generation submitted earlier (by an earlier run) in the key's
        in-flight bound until it ends, and watch it."""
        await self._limiter.adopt(generation_id)
        self._watch(generation_id)

    def _watch(self, generation_id: str) -> None:
        """Track a job that holds an in-flight slot, so that its end frees the slot."""
        if self._limiter.holds(generation_id):
            self.tracker.track(generation_id, background=True)

    async def _submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str],
        retry_refused: bool,
        on_resend: Callable[[], None] | None,
    ) -> GenerationJob:
        request = self.with_seed(request)
        last: SubmitUncertainError | None = None
        for send in range(_SUBMIT_ATTEMPTS):
            if send and on_resend is not None:
                on_resend()
            since = datetime.now(timezone.utc)
            try:
                job = await self._send_submit(request, retry_refused=retry_refused)
            except SubmitUncertainError as exc:
                last = exc
            except APIError as exc:
                if not self._reconciler.refused_seed(request, exc):
                    raise
                request = self.with_seed(request)
                continue
            else:
                self._reconciler.submitted(job.id, request)
                return job
            logger.warning(
                "submit answer lost (%s); looking for the job before resending", last.cause
            )
            found = await self.find_submitted(request, since=since, claimed=claimed)
            if found is not None:
                logger.info("lost submit found as generation %s", found.id)
                return GenerationJob(found.id)
        assert last is not None  # a seed is refused once at most, and then not sent
        raise last

    async def _send_submit(
        self, request: ImageToVideoRequest, *, retry_refused: bool
    ) -> GenerationJob:
        """One submit; any answer that does not name the job is uncertain."""
        try:
            data = await self._transport.call(
                "POST",
                _SUBMIT_PATH,
                body=wire.dumps_request(request),
                kind=RequestKind.SUBMIT,
                retry_refused=retry_refused,
            )
            envelope = wire.structure(data, wire.SubmitEnvelope, _SUBMIT_PATH)
        except ResponseShapeError as exc:
            raise SubmitUncertainError(
                "POST", exc.url, f"unreadable answer: {exc}", answered=True
            ) from None
        if envelope.motion_video_generation_job is None:
            raise SubmitUncertainError(
                "POST", self.base_url + _SUBMIT_PATH, "the answer held no job", answered=True
            )
        return envelope.motion_video_generation_job

    async def find_submitted(
        self,
        request: VideoSpec,
        *,
        since: datetime,
        claimed: Collection[str] = (),
        failed_at: datetime | None = None,
    ) -> Generation | None:
        """Look for the generation a submit of ``request`` at ``since`` may have created.

        :param failed_at: when the submit failed (default: now); the listing is watched
            until the listing lag has passed since then
        :raises SubmitUncertainError: the listing could not be read whole
        """
        settled_by = self._reconciler.settled(failed_at or datetime.now(timezone.utc))
        return await self._reconciler.find(
            request, since=since, settled_by=settled_by, claimed=claimed
        )

    async def get_generation(self, generation_id: str) -> Generation | None:
        """The generation with this id, or ``None`` if the server does not know it."""
        path = f"/generations/{path_segment(generation_id)}"
        data = await self._transport.call("GET", path)
        generation = wire.structure(data, wire.GenerationEnvelope, path).generations_by_pk
        if generation is not None:
            self._reconciler.learn(generation)
        return generation

    async def list_generations(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 10
    ) -> list[Generation]:
        """One page of the user's generations (the server decides order and page cap)."""
        return await self.listing.generations(offset=offset, limit=limit, user_id=user_id)

    async def iter_generations(
        self, *, created_after: datetime | None = None, max_pages: int = 20
    ) -> AsyncIterator[Generation]:
        """Walk the listing page by page, newest first where the server orders it so.

        Stops at an empty page, after ``max_pages``, or, when ``created_after`` is given
        and a page is ordered newest first, at a page whose last entry is older than
        ``created_after`` (less a clock-skew margin). An entry that cannot be read (a
        kind of generation this client does not know) is skipped, not fatal.
        """
        async for page in self.listing.walk(newer_than=created_after, max_pages=max_pages):
            for entry in page:
                try:
                    yield entry.generation()
                except ResponseShapeError as exc:
                    logger.info("skipping an unreadable listing entry: %s", exc)

    async def delete_generation(self, generation_id: str) -> bool:
        """Delete a generation; ``True`` if the server had it."""
        path = f"/generations/{path_segment(generation_id)}"
        data = await self._transport.call("DELETE", path, kind=RequestKind.OTHER)
        return wire.structure(data, wire.DeletedEnvelope, path).delete_generations_by_pk is not None

    # --- waiting and downloading -------------------------------------------------------

    def track(
        self,
        generation_id: str,
        *,
        deadline: float | None = None,
        schedule: PollSchedule | None = None,
    ) -> TrackedJob:
        """Start watching a generation; await the returned handle for the result."""
        return self.tracker.track(generation_id, deadline=deadline, schedule=schedule)

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
        return await self.tracker.wait(generation_id, timeout=timeout, schedule=schedule)

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
