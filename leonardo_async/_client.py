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
import random
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import attrs

from . import _convert as wire
from ._errors import (
    APIError,
    DownloadError,
    LeonardoError,
    ResponseShapeError,
    SubmitUncertainError,
    TransportError,
    UploadError,
    ValidationError,
)
from ._limits import KeyLimiter, Limits, RequestKind
from ._reconcile import CLOCK_SKEW, is_candidate, pick
from ._retry import RetryPolicy, backoff_delay
from ._schedule import PollSchedule
from ._tracker import JobTracker, TrackedJob
from ._transport import DEFAULT_BASE_URL, Timeouts, Transport
from ._uploads import AtomicFile, is_local_image, read_image, remote_frame
from .models import (
    MAX_SEED,
    Account,
    FrameRef,
    Generation,
    GenerationJob,
    ImageToVideoRequest,
    Model,
    Orientation,
    Resolution,
    UploadedImage,
)

__all__ = ["ImageSource", "LeonardoClient"]

logger = logging.getLogger("leonardo_async")

#: What ``image=`` and ``end_image=`` accept: an upload, a frame, an id, a path or bytes.
ImageSource = UploadedImage | FrameRef | str | os.PathLike[str] | bytes

_LIST_PAGE: Final = 50
#: Entries each listing page repeats of the previous one (deletions shift pages up).
_PAGE_OVERLAP: Final = 5
#: The listing's documented default page size, used if a server refuses larger pages.
_SAFE_PAGE: Final = 10
_UPLOAD_ATTEMPTS: Final = 3
_DOWNLOAD_ATTEMPTS: Final = 4
_SUBMIT_ATTEMPTS: Final = 3
_SHAPE_ATTEMPTS: Final = 3
_RECONCILE_LOOKS: Final = (0.0, 1.5, 4.0)
_PLACEHOLDER: Final = FrameRef("validation-placeholder")


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
    :param polls_in_flight: cap on status requests in flight at once
    :param session: an aiohttp session to use (its owner closes it)
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
        polls_in_flight: int = 32,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("LEONARDO_API_KEY")
        if not key:
            raise ValidationError("api_key", "<missing>", "pass api_key= or set LEONARDO_API_KEY")
        url = base_url or os.environ.get("LEONARDO_BASE_URL") or DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise ValidationError("base_url", url, "an http:// or https:// URL")
        self.limits = limits if limits is not None else Limits()
        self.poll_schedule = poll_schedule if poll_schedule is not None else PollSchedule()
        self.auto_seed = auto_seed
        self.limiter = KeyLimiter(self.limits)
        self._transport = Transport(
            key,
            url,
            limiter=self.limiter,
            retry=retry if retry is not None else RetryPolicy(),
            timeouts=timeouts if timeouts is not None else Timeouts(),
            session=session,
            max_connections=max_connections,
        )
        self.tracker = JobTracker(
            self,
            schedule=self.poll_schedule,
            batched=batched_status,
            polls_in_flight=polls_in_flight,
        )
        self._account: Account | None = None
        self._account_lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        #: Whether the server keeps the seeds it is sent (learnt from answers).
        self.server_keeps_seeds: bool | None = None
        self._sent_seeds: dict[str, int] = {}
        self._page_limit = _LIST_PAGE

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
    def requests_sent(self) -> int:
        """HTTP requests sent to the API host so far."""
        return self._transport.requests_sent

    async def __aenter__(self) -> LeonardoClient:
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
        image = read_image(source, name=name)
        problem = "no attempt made"
        for attempt in range(1, _UPLOAD_ATTEMPTS + 1):
            data = await self._transport.call(
                "POST", "/init-image", body={"extension": image.extension}, kind=RequestKind.OTHER
            )
            try:
                target = wire.structure(data, wire.UploadEnvelope, "/init-image").upload_init_image
                if target is None:
                    raise UploadError("POST /init-image answered no upload target")
                response = await self._transport.post_form(
                    target.url,
                    target.form_fields(),
                    filename=image.filename,
                    data=image.data,
                    content_type=image.content_type,
                )
            except (TransportError, ResponseShapeError, UploadError) as exc:
                problem = str(exc)
            else:
                if 200 <= response.status < 300:
                    return UploadedImage(target.id)
                problem = f"HTTP {response.status}: {response.body[:200]!r}"
            logger.info("upload attempt %d failed (%s); asking for a new URL", attempt, problem)
        raise UploadError(f"upload of {image.filename} failed: {problem}")

    async def delete_image(self, image_id: str) -> bool:
        """Delete an uploaded init image; ``True`` if the server had it."""
        path = f"/init-image/{_segment(image_id)}"
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
        request is made; see :class:`ImageToVideoRequest` for the rules.

        :raises ValidationError: a parameter breaks the Veo 3.1 rules
        """
        request = ImageToVideoRequest(
            prompt=prompt,
            image=_PLACEHOLDER,
            end_image=None if end_image is None else _PLACEHOLDER,
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
        return await self.submit(attrs.evolve(request, image=start, end_image=end))

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` with a random seed when it has none and ``auto_seed`` is on."""
        if request.seed is not None or not self.auto_seed:
            return request
        return attrs.evolve(request, seed=random.randint(0, MAX_SEED))

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str] = (),
        retry_refused: bool = True,
    ) -> GenerationJob:
        """Submit a validated request, never paying twice for it.

        When the answer is lost (reset, timeout, 5xx, unreadable body) the generation
        listing is searched for the job before anything is resent.

        :param claimed: generation ids that belong to other submits and must not be
            taken for this one (a batch passes the ids it already holds)
        :param retry_refused: wait out 429s here (after the shared pause); ``False``
            raises :class:`RateLimitError` at once, for callers that queue again
        :raises SubmitUncertainError: the job could not be found or ruled out
        """
        request = self.with_seed(request)
        body = wire.dumps_request(request)
        last: SubmitUncertainError | None = None
        for _ in range(_SUBMIT_ATTEMPTS):
            since = datetime.now(timezone.utc)
            try:
                data = await self._transport.call(
                    "POST",
                    "/generations-image-to-video",
                    body=body,
                    kind=RequestKind.SUBMIT,
                    retry_refused=retry_refused,
                )
                job = wire.structure(
                    data, wire.SubmitEnvelope, "/generations-image-to-video"
                ).motion_video_generation_job
                if job is not None:
                    if self.server_keeps_seeds is None and request.seed is not None:
                        self._sent_seeds[job.id] = request.seed
                    return job
                last = SubmitUncertainError(
                    "POST", self.base_url, "the answer held no job", answered=True
                )
            except SubmitUncertainError as exc:
                last = exc
            except ResponseShapeError as exc:
                last = SubmitUncertainError(
                    "POST", exc.url, f"unreadable answer: {exc}", answered=True
                )
            logger.warning(
                "submit answer lost (%s); looking for the job before resending", last.cause
            )
            try:
                found = await self.find_submitted(
                    request, since=since, claimed=claimed, still_working=not last.answered
                )
            except LeonardoError as exc:  # undecided: resending could pay twice
                raise SubmitUncertainError(
                    "POST",
                    self.base_url,
                    f"{last.cause}; the generation listing could not be read ({exc})",
                ) from exc
            if found is not None:
                logger.info("lost submit found as generation %s", found.id)
                return GenerationJob(found.id)
        assert last is not None
        raise last

    async def find_submitted(
        self,
        request: ImageToVideoRequest,
        *,
        since: datetime,
        claimed: Collection[str] = (),
        still_working: bool = True,
    ) -> Generation | None:
        """Look for the generation a submit of ``request`` at ``since`` may have created.

        :param still_working: the server may still be processing the request (its answer
            never came), so look a few times, a moment apart; a server that did answer
            has finished, and one look is enough
        """
        trust_seed = self.server_keeps_seeds is not False
        for pause in _RECONCILE_LOOKS if still_working else (0.0,):
            await anyio.sleep(pause)
            candidates = []
            async for generation in self.iter_generations(created_after=since):
                if is_candidate(
                    generation, request, since=since, exclude=claimed, trust_seed=trust_seed
                ):
                    candidates.append(generation)
            found = pick(candidates, request)
            if found is not None:
                return found
        return None

    async def get_generation(self, generation_id: str) -> Generation | None:
        """The generation with this id, or ``None`` if the server does not know it."""
        path = f"/generations/{_segment(generation_id)}"
        data = await self._transport.call("GET", path)
        generation = wire.structure(data, wire.GenerationEnvelope, path).generations_by_pk
        if generation is not None and self._sent_seeds:
            self._learn_seed(generation)
        return generation

    def _learn_seed(self, generation: Generation) -> None:
        """Learn from one of our own jobs whether the server keeps the seeds it is sent."""
        sent = self._sent_seeds.pop(generation.id, None)
        if sent is not None and generation.seed is not None:
            self.server_keeps_seeds = generation.seed == sent
            self._sent_seeds.clear()

    async def list_generations(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 10
    ) -> list[Generation]:
        """One page of the user's generations (the server decides order and page cap)."""
        if offset < 0 or limit < 1:
            raise ValidationError("offset/limit", (offset, limit), "offset >= 0 and limit >= 1")
        uid = user_id if user_id is not None else await self.user_id()
        path = f"/generations/user/{_segment(uid)}"
        data = await self._transport.call("GET", path, params={"offset": offset, "limit": limit})
        return list(wire.structure(data, wire.GenerationListEnvelope, path).generations)

    async def list_generations_raw(self, *, offset: int, limit: int) -> list[Any]:
        """One listing page as raw JSON objects (read lazily by the tracker and matcher).

        The page cap is the server's; if it refuses ``limit``, the documented default of
        10 is used from then on.
        """
        path = f"/generations/user/{_segment(await self.user_id())}"
        limit = min(limit, self._page_limit)
        try:
            data = await self._transport.call(
                "GET", path, params={"offset": offset, "limit": limit}
            )
        except APIError as exc:
            if exc.status not in (400, 422) or limit <= _SAFE_PAGE:
                raise
            logger.info("listing refused limit=%d; using %d", limit, _SAFE_PAGE)
            self._page_limit = _SAFE_PAGE
            return await self.list_generations_raw(offset=offset, limit=_SAFE_PAGE)
        page = data.get("generations") if isinstance(data, dict) else None
        if not isinstance(page, list):
            raise ResponseShapeError(path, ["expected a list @ $.generations"])
        return page

    async def iter_generations(
        self, *, created_after: datetime | None = None, max_pages: int = 20
    ) -> AsyncIterator[Generation]:
        """Walk the listing page by page, newest first where the server orders it so.

        Stops at an empty page, after ``max_pages``, or, when ``created_after`` is given
        and a page is ordered newest first, at a page whose last entry is older than
        ``created_after`` (less the clock-skew margin). An entry that cannot be read (a
        kind of generation this client does not know) is skipped, not fatal.
        """
        offset, seen = 0, set()
        for _ in range(max_pages):
            raw_page = await self.list_generations_raw(offset=offset, limit=_LIST_PAGE)
            if not raw_page:
                return
            page = []
            for index, raw in enumerate(raw_page):
                try:
                    generation = self.parse_generation(raw, f"listing entry {offset + index}")
                except ResponseShapeError as exc:
                    logger.info("skipping an unreadable listing entry: %s", exc)
                    continue
                page.append(generation)
                if generation.id not in seen:
                    seen.add(generation.id)
                    yield generation
            # Pages overlap: a generation deleted while we walk shifts the later ones up
            # by one, and without the overlap the one we look for could fall between pages.
            step = (
                len(raw_page) - _PAGE_OVERLAP
                if len(raw_page) > 2 * _PAGE_OVERLAP
                else len(raw_page)
            )
            offset += step
            if created_after is not None and _older_than(page, created_after):
                return

    def parse_generation(self, raw: Any, source: str) -> Generation:
        """Read one raw generation object (from a listing page)."""
        generation = wire.structure(raw, Generation, source)
        if self._sent_seeds:
            self._learn_seed(generation)
        return generation

    async def delete_generation(self, generation_id: str) -> bool:
        """Delete a generation; ``True`` if the server had it."""
        path = f"/generations/{_segment(generation_id)}"
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

        :raises DownloadError: the video could not be fetched whole
        """
        url = source.video_url if isinstance(source, Generation) else source
        if not url:
            raise DownloadError(f"generation {getattr(source, 'id', '?')} has no video URL")
        target = Path(path)
        problem = ""
        for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
            try:
                if await self._download_once(url, target):
                    return target
                problem = "the transfer ended short of Content-Length"
            except (TransportError, DownloadError) as exc:
                problem = str(exc)
                if isinstance(exc, DownloadError) and "HTTP 4" in problem:
                    break
            logger.info("download attempt %d failed (%s)", attempt, problem)
            if attempt < _DOWNLOAD_ATTEMPTS:
                retry = self._transport.retry
                await anyio.sleep(backoff_delay(retry, attempt - 1, random.random()))
        raise DownloadError(f"download to {target} failed: {problem}")

    async def _download_once(self, url: str, target: Path) -> bool:
        async with self._transport.stream(url) as response:
            if response.status != 200:
                raise DownloadError(f"GET {url.split('?')[0]} -> HTTP {response.status}")
            expected = response.content_length
            with AtomicFile(target) as out:
                try:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        out.write(chunk)
                except (aiohttp.ClientError, TimeoutError):
                    return False
                if expected is not None and out.written != expected:
                    return False
                out.commit()
        return True


def _segment(value: str) -> str:
    """An id as one URL path segment (ids are opaque; never let one change the path)."""
    if not value or any(c in value for c in "/?#") or value in (".", ".."):
        raise ValidationError("id", value, "a non-empty id without '/', '?' or '#'")
    return value


def _older_than(page: list[Generation], moment: datetime) -> bool:
    """The page is newest first and ends before ``moment`` (less the skew margin)."""
    stamps = [g.created_at for g in page if g.created_at is not None]
    if len(stamps) < 2 or stamps != sorted(stamps, reverse=True):
        return False
    return stamps[-1] < moment - CLOCK_SKEW
