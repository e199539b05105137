"""The simulator's memory: init images, generations, balances and who is running what.

Status is never updated by a timer: a generation stores its finish time (loop clock) and
:meth:`GenerationRow.status` works the status out when asked, so ten thousand jobs cost ten
thousand small records and nothing else. Each key's jobs in flight sit in heaps of finish
and start times, pruned lazily when a count is needed; a job submitted while every slot is
busy starts when the first slot frees (first come, first served), which is worked out once,
at submit, from when each slot is next free. The store outlives server restarts.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs

__all__ = ["GenerationRecord", "GenerationRow", "InitImage", "Store", "new_id"]


def new_id(rng: random.Random) -> str:
    """Draw a UUIDv4-shaped id from *rng*, so seeded runs repeat their ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@attrs.define
class InitImage:
    """One ``POST /init-image``: its presigned form, and the upload once it arrived."""

    id: str
    key: str
    extension: str
    fields: dict[str, str]
    created_wall: datetime
    expires_at: float
    uploaded: bool = False
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    #: The uploaded bytes, kept only when ``video="frames"`` will draw from them.
    data: bytes | None = None


@attrs.frozen
class GenerationRecord:
    """A read-only view of one stored generation, for tests.

    :param id: the generation id.
    :param body: the submit body exactly as received (parsed JSON).
    :param endpoint: ``"image-to-video"`` or ``"text-to-video"``.
    :param status: ``PENDING``, ``COMPLETE`` or ``FAILED``, as of the snapshot.
    :param created_at: wall-clock creation time (UTC).
    :param started_at: loop-clock time the job took a slot (later than its submit when it
        queued behind busy slots).
    :param finish_at: loop-clock time (``asyncio`` loop ``time()``) the job finishes.
    :param seed: the seed echoed or drawn.
    :param model: the model after defaults.
    :param duration: the duration in seconds after defaults.
    :param width: the width after defaults.
    :param height: the height after defaults.
    :param cost: credits charged.
    :param video_url: where the CDN serves the MP4 (once ``COMPLETE``).
    :param poster_url: where the CDN serves the JPG poster (once ``COMPLETE``).
    :param generated_image_id: the id of the generated image (usable as ``GENERATED``).
    :param api_key: the key that created it.
    :param deleted: whether ``DELETE /generations/{id}`` removed it.
    :param vanished: whether the ``vanish_rate`` fault hides it from its finish time on.
    :param seen_at: loop-clock time an answer (``GET /generations/{id}`` or a listing page)
        first showed it finished, ``None`` if none has: how soon a client could learn of
        its end.
    """

    id: str
    body: Mapping[str, Any]
    endpoint: str
    status: str
    created_at: datetime
    started_at: float
    finish_at: float
    seed: int
    model: str
    duration: int
    width: int
    height: int
    cost: int
    video_url: str
    poster_url: str
    generated_image_id: str
    api_key: str
    deleted: bool
    vanished: bool
    seen_at: float | None


@attrs.define
class GenerationRow:
    """One generation as stored; mutable only through deletion."""

    id: str
    api_key: str
    endpoint: str
    body: dict[str, Any]
    prompt: str
    negative_prompt: str | None
    model: str
    duration: int
    resolution: str
    width: int
    height: int
    public: bool
    seed: int
    cost: int
    created_wall: datetime
    created_at: float
    started_at: float
    finish_at: float
    outcome: str
    image_id: str
    vanish: bool
    #: The start and end frames as (id, ``UPLOADED``/``GENERATED``), for rendered videos.
    start_frame: tuple[str, str] | None = None
    end_frame: tuple[str, str] | None = None
    deleted: bool = False
    seen_at: float | None = None

    def status(self, now: float) -> str:
        """Return the status at loop time *now*."""
        return "PENDING" if now < self.finish_at else self.outcome

    def visible(self, now: float) -> bool:
        """Return whether the API shows this generation at loop time *now*."""
        return not self.deleted and not (self.vanish and now >= self.finish_at)

    def shown(self, now: float) -> None:
        """An answer shows this generation at *now*: note when one first showed its end."""
        if self.seen_at is None and self.status(now) != "PENDING":
            self.seen_at = now

    def record(self, now: float, cdn_base: str) -> GenerationRecord:
        """Freeze this row into the public view."""
        return GenerationRecord(
            id=self.id,
            body=self.body,
            endpoint=self.endpoint,
            status=self.status(now),
            created_at=self.created_wall,
            started_at=self.started_at,
            finish_at=self.finish_at,
            seed=self.seed,
            model=self.model,
            duration=self.duration,
            width=self.width,
            height=self.height,
            cost=self.cost,
            video_url=f"{cdn_base}/{self.id}.mp4",
            poster_url=f"{cdn_base}/{self.id}.jpg",
            generated_image_id=self.image_id,
            api_key=self.api_key,
            deleted=self.deleted,
            vanished=self.vanish,
            seen_at=self.seen_at,
        )


class _Lane:
    """One key's jobs in flight: heaps of finish and start times, plus the live ids.

    ``free`` holds, per slot, the time it is next free: a new job takes the earliest.
    A deleted job leaves the count at once, but the start times already given to the
    jobs queued behind it stand (a simplification: they do not move up).
    """

    def __init__(self) -> None:
        self.finishes: list[tuple[float, str]] = []
        self.starts: list[tuple[float, str]] = []
        self.ids: set[str] = set()
        self.free: list[float] = []

    def in_flight(self, now: float) -> int:
        """Jobs running or queued at *now*."""
        heap = self.finishes
        while heap and (heap[0][0] <= now or heap[0][1] not in self.ids):
            _, gid = heapq.heappop(heap)
            self.ids.discard(gid)
        return len(self.ids)

    def queued(self, now: float) -> int:
        """Jobs waiting for a slot at *now*."""
        heap = self.starts
        while heap and (heap[0][0] <= now or heap[0][1] not in self.ids):
            heapq.heappop(heap)
        return len(heap)

    def start_time(self, now: float, slots: int | None) -> float:
        """When a job submitted at *now* gets a slot (*now* itself with no slot limit)."""
        if slots is None:
            return now
        free = self.free
        while len(free) > slots:  # fewer slots since: the earliest-free ones go
            heapq.heappop(free)
        if len(free) < slots or free[0] <= now:
            return now
        return free[0]

    def add(self, row: GenerationRow, slots: int | None) -> None:
        heapq.heappush(self.finishes, (row.finish_at, row.id))
        if row.started_at > row.created_at:
            heapq.heappush(self.starts, (row.started_at, row.id))
        self.ids.add(row.id)
        if slots is not None:
            if len(self.free) >= slots:
                heapq.heappop(self.free)
            heapq.heappush(self.free, row.finish_at)


class Store:
    """Everything the simulated account holds."""

    def __init__(self, subscription_tokens: int, paid_tokens: int | None) -> None:
        self.init_images: dict[str, InitImage] = {}
        self.init_images_by_key: dict[str, InitImage] = {}
        self.generations: dict[str, GenerationRow] = {}
        self.generated_images: dict[str, str] = {}
        self.fingerprints: set[tuple[object, ...]] = set()
        self.subscription_tokens = subscription_tokens
        self.paid_tokens = paid_tokens
        self._lanes: dict[str, _Lane] = {}

    # -- init images ---------------------------------------------------------------------

    def add_init_image(self, image: InitImage) -> None:
        """Remember a presigned upload."""
        self.init_images[image.id] = image
        self.init_images_by_key[image.key] = image

    def delete_init_image(self, image_id: str) -> InitImage | None:
        """Forget an init image; return it, or ``None`` if unknown."""
        image = self.init_images.pop(image_id, None)
        if image is not None:
            self.init_images_by_key.pop(image.key, None)
        return image

    # -- generations ---------------------------------------------------------------------

    def start_time(self, api_key: str, now: float, slots: int | None) -> float:
        """When a job *api_key* submits at *now* gets one of its *slots* (``None``: no limit)."""
        return self._lane(api_key).start_time(now, slots)

    def add_generation(
        self, row: GenerationRow, fingerprint: tuple[object, ...], slots: int | None = None
    ) -> bool:
        """Store *row* (in flight on one of *slots*) and charge it; True if a duplicate."""
        self.generations[row.id] = row
        self.generated_images[row.image_id] = row.id
        self._lane(row.api_key).add(row, slots)
        self.charge(row.cost)
        duplicate = fingerprint in self.fingerprints
        self.fingerprints.add(fingerprint)
        return duplicate

    def visible_generation(self, gid: str, now: float) -> GenerationRow | None:
        """Return the generation the API would show for *gid*, if any."""
        row = self.generations.get(gid)
        if row is None or not row.visible(now):
            return None
        return row

    def delete_generation(self, gid: str, now: float) -> GenerationRow | None:
        """Delete a visible generation (which frees its running slot); return it."""
        row = self.visible_generation(gid, now)
        if row is None:
            return None
        row.deleted = True
        self._lane(row.api_key).ids.discard(gid)
        return row

    def generated_image_ready(self, image_id: str, now: float) -> bool:
        """Return whether *image_id* is the image of a visible, complete generation."""
        gid = self.generated_images.get(image_id)
        row = None if gid is None else self.visible_generation(gid, now)
        return row is not None and row.status(now) == "COMPLETE"

    def listed(
        self, now: float, *, newest_first: bool = True, lag: float = 0.0
    ) -> Iterator[GenerationRow]:
        """Yield the visible generations in creation order, newest first by default.

        :param lag: leave out generations younger than this many seconds (a listing that
            reads from a replica behind the primary).
        """
        rows = self.generations.values()
        for row in reversed(rows) if newest_first else iter(rows):
            if row.visible(now) and now - row.created_at >= lag:
                yield row

    # -- running and money ---------------------------------------------------------------

    def _lane(self, api_key: str) -> _Lane:
        return self._lanes.setdefault(api_key, _Lane())

    def running(self, api_key: str, now: float) -> int:
        """Return how many generations *api_key* has running (holding a slot) at *now*."""
        lane = self._lane(api_key)
        return lane.in_flight(now) - lane.queued(now)

    def queued(self, api_key: str, now: float) -> int:
        """Return how many generations of *api_key* wait for a slot at *now*."""
        return self._lane(api_key).queued(now)

    def next_finish(self, api_key: str) -> float:
        """Return the loop time the earliest job in flight of *api_key* finishes."""
        lane = self._lane(api_key)
        lane.in_flight(0.0)  # drop deleted ones from the top
        return lane.finishes[0][0] if lane.finishes else 0.0

    def running_total(self, now: float) -> int:
        """Return how many generations all keys have running at *now*."""
        return sum(self.running(key, now) for key in self._lanes)

    @property
    def balance(self) -> int:
        """Return the credits left (subscription plus paid tokens)."""
        return self.subscription_tokens + (self.paid_tokens or 0)

    def charge(self, credits: int) -> None:
        """Take *credits* from the subscription tokens first, then the paid ones."""
        from_subscription = min(credits, self.subscription_tokens)
        self.subscription_tokens -= from_subscription
        rest = credits - from_subscription
        if rest:
            self.paid_tokens = (self.paid_tokens or 0) - rest
