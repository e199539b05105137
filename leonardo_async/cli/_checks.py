"""What ``doctor`` checks without spending anything, as async functions over the client.

Each check returns :class:`Finding` values: a statement about the account or the API, and
whether it held, did not hold, or could not be told here. The statements tagged ``[?]``
in the wire notes are assumptions the client is built to survive either way; the
findings say which way this server goes, so a user can act on it (see the README) and
the CLI can adapt (see :mod:`._findings`). The checks use only the client's public
methods (the listing's raw pages through the one meant for diagnosis,
``raw_listing_page``); what they need from the HTTP itself (the server's ``Date``, a
429's headers, a refused submit's text) they read from the
:class:`~._transcript.Transcript` of the client's session.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable
from typing import Any, Final

import attrs

from .._client import LeonardoClient
from .._errors import LeonardoError, ResponseShapeError
from .._limits import ClientStatistics
from .._listing import CLOCK_SKEW, LISTING_LAG, read_entry
from .._wire import parse_timestamp
from ..models import Account
from ._frames import draw_frame, png_bytes
from ._transcript import Exchange, Transcript

__all__ = [
    "Finding",
    "Status",
    "check_account",
    "check_clock",
    "check_listing",
    "check_upload",
    "not_checkable",
]

#: The page size the client asks the listing for (servers may cap it).
PAGE: Final = 50


class Status(str, enum.Enum):
    """How a statement fared against this server."""

    HELD = "held"
    NOT_HELD = "not held"
    UNKNOWN = "unknown"


@attrs.frozen
class Finding:
    """One statement about the server, and how it fared.

    :param id: a stable name (``listing.video``), the key in ``--json`` and the store
    :param statement: what the client expects, in words
    :param status: held, not held, or unknown
    :param detail: what was seen (figures, ids), or why it could not be told
    :param assumption: tagged ``[?]`` in the wire notes: the client copes either way
    """

    id: str
    statement: str
    status: Status
    detail: str
    assumption: bool = False


#: The statements, by id: what each finding claims.
STATEMENTS: Final = {
    "key": ("the API key is accepted", False),
    "account": ("/me reports the concurrency slots and the balance", False),
    "listing.readable": ("every entry of the generation listing is readable", False),
    "timestamps": ("every createdAt in the listing parses", False),
    "clock": (f"the server's clock is within {CLOCK_SKEW.seconds} s of this machine's", False),
    "upload": ("an init image uploads (presigned POST, no key) and deletes", False),
    "listing.video": ("the generation listing shows video generations", True),
    "listing.lag": (f"the listing shows a new job within {LISTING_LAG:g} s", True),
    "listing.order": ("the listing is newest first", True),
    "listing.page": (f"the listing returns pages of {PAGE} when asked", True),
    "submit.cost": ("the submit answer states the job's cost", True),
    "job.finishes": ("a VEO3_1FAST 720p 4 s job finishes COMPLETE", False),
    "private": ("a job sent with isPublic false is private", False),
    "seed": ("Veo 3.1 keeps the seed it is sent", True),
    "video.no_auth": ("motionMP4URL downloads without the API key", True),
    "queue": ("a submit past the concurrency slots is queued, not refused", True),
    "over_limit": ("a submit over a limit is refused with 429, not another status", True),
    "retry_after": ("a 429 answer carries Retry-After", True),
    "submit_rate": ("the video endpoint allows 100 submits a minute, as image ones do", True),
    "webhook.video": ("webhooks fire for video generations", True),
}


def finding(id: str, status: Status, detail: str) -> Finding:
    """The finding ``id`` (one of :data:`STATEMENTS`) with its status and detail."""
    statement, assumption = STATEMENTS[id]
    return Finding(id, statement, status, detail, assumption)


def not_checkable(ids: Iterable[str], why: str) -> list[Finding]:
    """``unknown`` findings for statements this run does not check, saying why."""
    return [finding(i, Status.UNKNOWN, why) for i in ids]


def check_account(account: Account) -> Finding:
    """The account's slots and balance, as ``/me`` gave them."""
    if account.concurrency_slots is None:
        return finding("account", Status.NOT_HELD, "apiConcurrencySlots is missing or null")
    if account.subscription_tokens is None and account.paid_tokens is None:
        return finding("account", Status.NOT_HELD, "neither token balance field is a number")
    return finding(
        "account",
        Status.HELD,
        f"{account.concurrency_slots} concurrency slots; balance {account.token_balance} "
        f"(subscription {account.subscription_tokens}, paid {account.paid_tokens})",
    )


async def check_listing(client: LeonardoClient) -> list[Finding]:
    """Read the first listing page and judge readability, timestamps, order, video, size."""
    try:
        page = await client.raw_listing_page(offset=0, limit=PAGE)
    except LeonardoError as exc:
        why = f"the listing could not be read: {exc}"
        return [
            finding("listing.readable", Status.NOT_HELD, why),
            *not_checkable(("timestamps", "listing.order", "listing.page", "listing.video"), why),
        ]
    generations, unreadable = [], []
    for index, raw in enumerate(page):
        try:
            generations.append(read_entry(raw, f"listing entry {index}"))
        except ResponseShapeError as exc:
            unreadable.append(str(exc))
    found = [
        finding(
            "listing.readable",
            Status.NOT_HELD if unreadable else Status.HELD,
            f"{len(unreadable)} of {len(page)} entries unreadable, first: {unreadable[0]}"
            if unreadable
            else f"{len(page)} entries on the first page, all readable",
        ),
        check_timestamps(page),
    ]
    stamps = [g.created_at for g in generations if g.created_at is not None]
    if len(stamps) < 2:
        found.append(
            finding("listing.order", Status.UNKNOWN, "fewer than two dated generations listed")
        )
    else:
        newest_first = stamps == sorted(stamps, reverse=True)
        found.append(
            finding(
                "listing.order",
                Status.HELD if newest_first else Status.NOT_HELD,
                f"{len(stamps)} entries "
                + ("newest first" if newest_first else "not in newest-first order"),
            )
        )
    found.append(await _page_size(client, len(page)))
    videos = [g.id for g in generations if g.video_url]
    found.append(
        finding("listing.video", Status.HELD, f"video generations listed: {len(videos)}")
        if videos
        else finding(
            "listing.video",
            Status.UNKNOWN,
            "no finished video on the first page (--spend checks with a new job)",
        )
    )
    return found


def check_timestamps(page: list[Any]) -> Finding:
    """Whether the client reads every ``createdAt`` string of a listing page."""
    texts = [
        raw["createdAt"]
        for raw in page
        if isinstance(raw, dict) and isinstance(raw.get("createdAt"), str)
    ]
    failed = [text for text in texts if not _parses(text)]
    if not texts:
        return finding("timestamps", Status.UNKNOWN, "no createdAt in the listing")
    if failed:
        return finding(
            "timestamps",
            Status.NOT_HELD,
            f"{len(failed)} of {len(texts)} unreadable, e.g. {failed[0]!r}",
        )
    return finding("timestamps", Status.HELD, f"{len(texts)} read, e.g. {texts[0]!r}")


def _parses(text: str) -> bool:
    """Whether the client's own reader turns ``text`` into a time."""
    try:
        parse_timestamp(text)
    except ValueError:
        return False
    return True


async def _page_size(client: LeonardoClient, got: int) -> Finding:
    """A full page answers; a short one followed by more shows a cap below :data:`PAGE`."""
    if got >= PAGE:
        return finding("listing.page", Status.HELD, f"a page of {got} came back")
    if got == 0:
        return finding("listing.page", Status.UNKNOWN, "the listing is empty")
    try:
        more = await client.raw_listing_page(offset=got, limit=PAGE)
    except LeonardoError as exc:
        return finding("listing.page", Status.UNKNOWN, f"the next page failed: {exc}")
    if more:
        return finding(
            "listing.page",
            Status.NOT_HELD,
            f"pages are capped at {got} (the client steps by what it gets: more requests)",
        )
    return finding("listing.page", Status.UNKNOWN, f"all {got} generations fit on one page")


async def check_upload(client: LeonardoClient) -> Finding:
    """Upload a 16x9-pixel frame through the presigned form, then delete it."""
    tiny = png_bytes(draw_frame(0.0, 16, 9), 16, 9)
    try:
        image = await client.upload_image(tiny, name="doctor-probe.png")
    except LeonardoError as exc:
        return finding("upload", Status.NOT_HELD, str(exc))
    try:
        deleted = await client.delete_image(image.id)
    except LeonardoError as exc:
        return finding("upload", Status.NOT_HELD, f"uploaded {image.id}; delete failed: {exc}")
    if not deleted:
        return finding("upload", Status.NOT_HELD, f"uploaded {image.id}; delete found nothing")
    return finding("upload", Status.HELD, f"uploaded and deleted init image {image.id}")


def clock_skew(exchanges: Iterable[Exchange]) -> float | None:
    """Median seconds the server's ``Date`` runs ahead of this machine (negative: behind).

    ``Date`` has whole seconds, so each reading is taken half a second into its second.
    """
    readings = []
    for exchange in exchanges:
        date, local = exchange.server_date(), exchange.local_midpoint()
        if date is not None and local is not None:
            readings.append((date - local).total_seconds() + 0.5)
    return statistics.median(readings) if readings else None


def check_clock(transcript: Transcript, created_skew: float | None = None) -> Finding:
    """Compare the server's clock with this machine's.

    :param created_skew: seconds from the local submit time to a new job's ``createdAt``
        (the clock that matters when a lost submit is looked for), if a job was made
    """
    readings = []
    skew = clock_skew(transcript.exchanges)
    if skew is not None:
        readings.append((skew, f"Date header {_ahead(skew)}"))
    if created_skew is not None:
        readings.append((created_skew, f"new job's createdAt {_ahead(created_skew)}"))
    if not readings:
        return finding("clock", Status.UNKNOWN, "no Date header and no new job to compare")
    margin = CLOCK_SKEW.total_seconds()
    detail = "; ".join(text for _, text in readings) + f" (margin {margin:.0f} s)"
    if all(abs(value) < margin for value, _ in readings):
        return finding("clock", Status.HELD, detail)
    return finding(
        "clock",
        Status.NOT_HELD,
        detail + ": a lost submit could be missed in the listing; fix this machine's clock",
    )


def check_listing_lag(stats: ClientStatistics) -> Finding:
    """How late the listing showed the jobs this run made, as the client measured it."""
    seen, window = stats.listing_lag_seen, stats.listing_lag
    if seen is None:
        return finding(
            "listing.lag", Status.UNKNOWN, "no job of this run was watched into the listing"
        )
    detail = f"a new job was listed within {seen:.1f} s of its submit"
    if seen <= LISTING_LAG:
        return finding("listing.lag", Status.HELD, detail)
    return finding(
        "listing.lag",
        Status.NOT_HELD,
        f"{detail}: the client learns this and waits {window or 0:.0f} s before it takes a "
        "lost submit for not made (slower, never paid twice)",
    )


def _ahead(seconds: float) -> str:
    return f"{abs(seconds):.0f} s {'ahead' if seconds >= 0 else 'behind'}"


def check_retry_after(transcript: Transcript) -> Finding:
    """Whether the 429s seen this run (if any) said when to come back."""
    refusals = [e for e in transcript.exchanges if e.status == 429]
    if not refusals:
        return finding("retry_after", Status.UNKNOWN, "no 429 was seen this run")
    with_header = [e for e in refusals if "retry-after" in e.headers]
    status = Status.HELD if len(with_header) == len(refusals) else Status.NOT_HELD
    return finding(
        "retry_after",
        status,
        f"{len(with_header)} of {len(refusals)} 429s carried Retry-After "
        "(without it the client backs off with jitter)",
    )
