"""Submitting a generation without ever paying twice for it.

A submit takes one of the key's in-flight slots, sends the request once and, when the
answer is lost (reset, timeout, 5xx, unreadable body), looks for the job in the generation
listing over the listing-lag window before anything is sent again (:mod:`._reconcile`
decides what counts as the same job, and when a seed may be sent). The job then holds its
slot until the tracker sees it end.

:class:`Submits` is a part of :class:`~._client.LeonardoClient` (a mixin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Final

from . import _convert as wire
from ._connection import Connection
from ._errors import APIError, ResponseShapeError, SubmitUncertainError
from ._limits import KeyLimiter, RequestKind, SubmitSlot
from ._reconcile import Reconciler
from ._tracker import JobTracker
from .models import Generation, GenerationJob, ImageToVideoRequest, VideoSpec

__all__ = ["SUBMIT_PATH", "Submits"]

logger = logging.getLogger("leonardo_async")

SUBMIT_PATH: Final = "/generations-image-to-video"
_SUBMIT_ATTEMPTS: Final = 3


class Submits:
    """The client's submit path (see the module docstring)."""

    _transport: Connection
    _limiter: KeyLimiter
    _reconciler: Reconciler
    _tracker: JobTracker

    @property
    def base_url(self) -> str:
        """The API root this client talks to."""
        return self._transport.base_url

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
            self._tracker.track(generation_id, background=True)

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
                SUBMIT_PATH,
                body=wire.dumps_request(request),
                kind=RequestKind.SUBMIT,
                retry_refused=retry_refused,
            )
            envelope = wire.structure(data, wire.SubmitEnvelope, SUBMIT_PATH)
        except ResponseShapeError as exc:
            raise SubmitUncertainError(
                "POST", exc.url, f"unreadable answer: {exc}", answered=True
            ) from None
        if envelope.motion_video_generation_job is None:
            raise SubmitUncertainError(
                "POST", self.base_url + SUBMIT_PATH, "the answer held no job", answered=True
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
