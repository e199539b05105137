"""Submitting a generation without ever paying twice for it.

A submit takes one of the key's in-flight slots, sends the request once and, when the
answer is lost (reset, timeout, 5xx, unreadable body), looks for the job in the generation
listing over the listing-lag window before anything is sent again (:mod:`._reconcile`
decides what counts as the same job, and when a seed may be sent). The job then holds its
slot until the tracker sees it end.

:class:`Submitter` is the one place these four meet (the key's connection, its limiter,
the reconciler and the tracker), so that no step of a paid request is spread over the
client; :class:`~._client.LeonardoClient` owns one and hands it its collaborators.
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

__all__ = ["SUBMIT_PATH", "Submitter"]

logger = logging.getLogger("leonardo_async")

SUBMIT_PATH: Final = "/generations-image-to-video"
_SUBMIT_ATTEMPTS: Final = 3


class Submitter:
    """The never-pay-twice submit of one API key (see the module docstring).

    :param connection: the key's HTTP (pacing, retries, error mapping)
    :param limiter: the key's limits; every submit holds one of its in-flight slots
    :param reconciler: finds a lost submit's job and owns the seed policy
    :param tracker: watches each submitted job, so that its end frees its slot
    """

    def __init__(
        self,
        connection: Connection,
        limiter: KeyLimiter,
        reconciler: Reconciler,
        tracker: JobTracker,
    ) -> None:
        self._connection = connection
        self._limiter = limiter
        self._reconciler = reconciler
        self._tracker = tracker

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str] = (),
        retry_refused: bool = True,
        slot: SubmitSlot | None = None,
        on_resend: Callable[[], None] | None = None,
    ) -> GenerationJob:
        """Submit ``request`` once, holding a slot until the job ends
        (:meth:`LeonardoClient.submit <._client.LeonardoClient.submit>` says how)."""
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

    async def adopt(self, generation_id: str) -> None:
        """Count an earlier run's generation in the in-flight bound until it ends."""
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
        request = self._reconciler.with_seed(request)
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
                request = self._reconciler.with_seed(request)
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
            data = await self._connection.call(
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
                "POST",
                self._connection.base_url + SUBMIT_PATH,
                "the answer held no job",
                answered=True,
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
        """The generation a submit of ``request`` at ``since`` may have created (see
        :meth:`LeonardoClient.find_submitted <._client.LeonardoClient.find_submitted>`)."""
        settled_by = self._reconciler.settled(failed_at or datetime.now(timezone.utc))
        return await self._reconciler.find(
            request, since=since, settled_by=settled_by, claimed=claimed
        )
