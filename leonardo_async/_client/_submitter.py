"""Submitting a generation without ever paying twice for it.

A submit takes one of the key's in-flight slots, sends the request once and, when the
answer is lost (reset, timeout, 5xx, unreadable body), looks for the job in the generation
listing over the listing-lag window before anything is sent again (:mod:`._listing._reconciler`
decides what counts as the same job, and when a seed may be sent). The job then holds its
slot until the tracker sees it end.

:class:`Submitter` is the one place these four meet (the key's connection, its limiter,
the reconciler and the tracker), so that no step of a paid request is spread over the
client. :attr:`LeonardoClient.submitter <._client.LeonardoClient.submitter>` is the public
face of it for a resumable batch runner, which must write each step to its journal before
the step is taken: take a slot, fix the seed, submit, and on a later run find the job a
lost submit made or adopt the one it recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Final

from .. import _wire as wire
from .._errors import APIError, ResponseShapeError, SubmitUncertainError
from .._limits import KeyLimiter, RequestKind, SubmitSlot
from .._listing import Reconciler
from .._tracking import JobTracker
from .._transport import Connection
from ..models import Generation, GenerationJob, ImageToVideoRequest, VideoSpec

__all__ = ["SUBMIT_PATH", "Submitter"]

logger = logging.getLogger("leonardo_async")

SUBMIT_PATH: Final = "/generations-image-to-video"
_SUBMIT_ATTEMPTS: Final = 3


class Submitter:
    """The never-pay-twice submit of one API key, in the steps a batch runner journals.

    :meth:`LeonardoClient.submit <._client.LeonardoClient.submit>` is all a caller with
    no journal needs. A runner that must survive ``kill -9`` without paying twice writes
    each step down before taking it, so it needs the steps apart: :meth:`take_slot`
    (to check a budget with the slot in hand), :meth:`with_seed` (the seed to journal, so
    that a resumed run can match its job), :meth:`submit` with the slot and the ids
    already claimed, then :meth:`find_submitted` for a submit the last run did not see
    answered and :meth:`adopt` for a job it did.

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

    async def take_slot(self) -> SubmitSlot:
        """Wait for one of the key's in-flight slots (``Limits.max_running`` plus the
        queue allowance), for a :meth:`submit` to use; ``release()`` it if no submit
        follows. A batch takes it first so that its budget is checked with it in hand."""
        return await self._limiter.take()

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` as it will be sent: a random seed added when it has none and
        ``auto_seed`` is on, and no seed once the server has refused one."""
        return self._reconciler.with_seed(request)

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str] = (),
        retry_refused: bool = True,
        slot: SubmitSlot | None = None,
        on_resend: Callable[[], None] | None = None,
    ) -> GenerationJob:
        """Submit ``request``, never paying twice for it, as
        :meth:`LeonardoClient.submit <._client.LeonardoClient.submit>` does; the job
        holds its slot until the tracker sees it end.

        :param claimed: generation ids that belong to other submits and must not be
            taken for this one (a batch passes the ids it already holds)
        :param retry_refused: wait out 429s here (after the shared pause); ``False``
            raises :class:`RateLimitError` at once, for callers that queue again
        :param slot: a slot from :meth:`take_slot` (the caller releases it if this
            raises); by default the submit takes its own
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
                answered = datetime.now(timezone.utc)
                self._reconciler.submitted(job.id, request, sent=since, answered=answered)
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
        """Look for the generation a submit of ``request`` at ``since`` may have created.

        :param claimed: generation ids that belong to other submits
        :param failed_at: when the submit failed (default: now); the listing is watched
            until the listing lag has passed since then
        :raises SubmitUncertainError: the listing could not be read whole
        """
        settled_by = self._reconciler.settled(failed_at or datetime.now(timezone.utc))
        return await self._reconciler.find(
            request, since=since, settled_by=settled_by, claimed=claimed
        )
