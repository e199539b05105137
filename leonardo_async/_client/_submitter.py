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

import functools
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from typing import Final

import anyio
import attrs

from .. import _wire as wire
from .._errors import APIError, ResponseShapeError, SubmitUncertainError
from .._limits import KeyLimiter, RequestKind, SubmitSlot
from .._listing import Reconciler
from .._tracking import JobTracker
from .._transport import CallOptions, Connection, KeyOwner, Request
from ..models import Generation, GenerationJob, ImageToVideoRequest, VideoSpec

__all__ = ["CancelledSubmit", "Submitter"]

logger = logging.getLogger("leonardo_async")

SUBMIT_PATH: Final = "/generations-image-to-video"
_SUBMIT_ATTEMPTS: Final = 3


@attrs.define
class CancelledSubmit:
    """A submit whose caller was cancelled after it left (or while its lost answer was
    looked for): the server may have made a job, and bills it, with nobody waiting.

    The client looks for it in the listing in the background, as for a lost answer.

    :ivar prompt: the request's prompt
    :ivar sent_at: when the submit was sent (our clock)
    :ivar generation_id: the job it made, once found (the client then watches it)
    :ivar settled: the search ended: ``generation_id`` is the job, or ``None`` for none
        made; ``False`` while it runs, or when it could not tell (a WARNING says so)
    """

    prompt: str
    sent_at: datetime
    generation_id: str | None = None
    settled: bool = False

    def warn(self, why: str) -> None:
        """Say that this submit may have made a paid job that is not known."""
        logger.warning(
            "a submit of %r sent at %s and then cancelled may have made a paid job: %s "
            "(look for it with 'leonardo-async list')",
            self.prompt,
            self.sent_at.isoformat(timespec="seconds"),
            why,
        )


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
    :param owner: the key's account, whose concurrency slots an ``"account"`` running
        limit is
    :param reconciler: finds a lost submit's job and owns the seed policy
    :param tracker: watches each submitted job, so that its end frees its slot
    """

    def __init__(
        self,
        connection: Connection,
        limiter: KeyLimiter,
        owner: KeyOwner,
        reconciler: Reconciler,
        tracker: JobTracker,
    ) -> None:
        self._connection = connection
        self._limiter = limiter
        self._owner = owner
        self._reconciler = reconciler
        self._tracker = tracker
        #: Submits cancelled on their way, and what became of each (newest last).
        self.cancelled: list[CancelledSubmit] = []

    async def take_slot(self) -> SubmitSlot:
        """Wait for one of the key's in-flight slots (``Limits.max_running`` plus the
        queue allowance), for a :meth:`submit` to use; ``release()`` it if no submit
        follows. A batch takes it first so that its budget is checked with it in hand."""
        return await self._limiter.take(self._owner.slots)

    def with_seed(self, request: ImageToVideoRequest) -> ImageToVideoRequest:
        """``request`` as it will be sent: a random seed added when it has none and
        ``auto_seed`` is on, and no seed once the server has rejected one."""
        return self._reconciler.with_seed(request)

    async def submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str] = (),
        retry_refused: bool = True,
        slot: SubmitSlot | None = None,
        on_resend: Callable[[], None] | None = None,
        journaled: bool = False,
        options: CallOptions | None = None,
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
            listing did not show, or a rejected seed), so that a journal counts every send
        :param journaled: a journal holds this submit, so a run cancelled while it was on
            its way settles it on resume; otherwise such a submit is looked for in the
            background and kept in :attr:`cancelled`
        :param options: the call's timeout, headers and retries, for the submit itself
            (a lost answer's search of the listing keeps the client's)
        :raises SubmitUncertainError: the job could not be found or ruled out
        """
        send = functools.partial(
            self._submit,
            request,
            claimed=claimed,
            retry_refused=retry_refused,
            on_resend=on_resend,
            options=options,
            journaled=journaled,
        )
        if slot is None:
            async with self._limiter.submitting(self._owner.slots) as own:
                return self._kept(await send(), own)
        return self._kept(await send(), slot)

    def _kept(self, job: GenerationJob, slot: SubmitSlot) -> GenerationJob:
        """The job made holds the slot its submit took, and is watched until its end."""
        slot.keep(job.id)
        self._watch(job.id, fresh=True)
        return job

    async def adopt(self, generation_id: str) -> None:
        """Count a generation submitted earlier (by an earlier run) in the key's
        in-flight bound until it ends, and watch it."""
        await self._limiter.adopt(generation_id, self._owner.slots)
        self._watch(generation_id, fresh=False)

    def _watch(self, generation_id: str, *, fresh: bool) -> None:
        """Vouch for the job to the tracker (it exists, and ``fresh`` says it was
        submitted just now), and track it if it holds an in-flight slot, so that its end
        frees the slot."""
        self._tracker.vouch(generation_id, fresh=fresh)
        if self._limiter.holds(generation_id):
            self._tracker.track(generation_id, background=True)

    async def _submit(
        self,
        request: ImageToVideoRequest,
        *,
        claimed: Collection[str],
        retry_refused: bool,
        on_resend: Callable[[], None] | None,
        options: CallOptions | None,
        journaled: bool,
    ) -> GenerationJob:
        request = self._reconciler.with_seed(request)
        last: SubmitUncertainError | None = None
        for send in range(_SUBMIT_ATTEMPTS):
            if send and on_resend is not None:
                on_resend()
            since = datetime.now(timezone.utc)
            try:
                job = await self._send_submit(
                    request,
                    retry_refused=retry_refused,
                    options=options,
                    on_cancelled=None
                    if journaled
                    else functools.partial(self._cancelled, request, since, claimed),
                )
            except SubmitUncertainError as exc:
                last = exc
            except APIError as exc:
                if not self._reconciler.rejected_seed(request, exc):
                    raise
                request = self._reconciler.with_seed(request)
                continue
            else:
                answered = datetime.now(timezone.utc)
                self._reconciler.evidence.submitted(job.id, request, sent=since, answered=answered)
                return job
            logger.warning(
                "submit answer lost (%s); looking for the job before resending", last.cause
            )
            try:
                found = await self.find_submitted(request, since=since, claimed=claimed)
            except anyio.get_cancelled_exc_class():
                if not journaled:
                    self._cancelled(request, since, claimed)
                raise
            if found is not None:
                logger.info("lost submit found as generation %s", found.id)
                return GenerationJob(found.id)
        assert last is not None  # a seed is rejected once at most, and then not sent
        raise last

    def preview(self, request: ImageToVideoRequest, options: CallOptions | None = None) -> Request:
        """The submit of ``request`` as it would leave, the key shown as ``[redacted]``;
        sends nothing. The seed a submit adds (``auto_seed``) is chosen at the submit."""
        body = wire.dumps_request(request)
        sent = self._connection.request("POST", SUBMIT_PATH, body=body, options=options)
        return self._connection.shown(sent)

    async def _send_submit(
        self,
        request: ImageToVideoRequest,
        *,
        retry_refused: bool,
        options: CallOptions | None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> GenerationJob:
        """One submit; any answer that does not name the job is uncertain."""
        try:
            data = await self._connection.call(
                "POST",
                SUBMIT_PATH,
                body=wire.dumps_request(request),
                kind=RequestKind.SUBMIT,
                retry_refused=retry_refused,
                options=options,
                on_cancelled=on_cancelled,
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

    # --- cancelled submits ----------------------------------------------------------------

    def _cancelled(
        self, request: ImageToVideoRequest, since: datetime, claimed: Collection[str]
    ) -> None:
        """The caller was cancelled while its submit was on its way or being looked for:
        the server may have made (and will bill) a job nobody will hear of. Look for it in
        the background, on the client's task group, and keep the outcome."""
        record = CancelledSubmit(request.prompt, since)
        self.cancelled.append(record)
        if not self._tracker.spawn(self._settle, record, request, claimed):
            record.warn("the client is closing, so it is not looked for")

    async def _settle(
        self, record: CancelledSubmit, request: ImageToVideoRequest, claimed: Collection[str]
    ) -> None:
        try:
            found = await self.find_submitted(request, since=record.sent_at, claimed=claimed)
        except SubmitUncertainError as exc:
            record.warn(f"the listing could not tell ({exc.cause})")
        except anyio.get_cancelled_exc_class():
            record.warn("the client closed before the listing could tell")
            raise
        else:
            record.settled = True
            if found is None:
                logger.info("a cancelled submit of %r made no job", record.prompt)
                return
            record.generation_id = found.id
            logger.warning(
                "a cancelled submit of %r made generation %s: it is paid for "
                "(client.cancelled_submits lists it); it is watched like any other",
                record.prompt,
                found.id,
            )
            await self.adopt(found.id)

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
            until the listing lag (as measured, see ``client.statistics()``) has passed
            since then
        :raises SubmitUncertainError: the listing could not be read whole
        """
        return await self._reconciler.find(
            request,
            since=since,
            failed_at=failed_at or datetime.now(timezone.utc),
            claimed=claimed,
        )

    def listing_window(self, since: datetime) -> float:
        """Seconds after a submit sent at ``since`` within which the listing should show
        its job, as measured now (see ``client.statistics()``), at most the cap past which
        the listing's silence decides nothing (300 s)."""
        evidence = self._reconciler.evidence
        return min(evidence.window(since), evidence.lag.cap)

    async def find_strays(
        self,
        requests: Mapping[str, VideoSpec],
        *,
        since: datetime,
        held: Collection[str],
        max_pages: int,
    ) -> tuple[dict[str, list[Generation]], bool]:
        """Generations made since ``since`` for one of ``requests`` (by a key of the
        caller's) that are none of ``held``, matched as a lost submit is; and whether the
        listing was read back to ``since``.

        :raises SubmitUncertainError: the listing could not be read
        """
        return await self._reconciler.strays(requests, since=since, held=held, max_pages=max_pages)
