"""The state both servers share: config, seeded RNG, store, limits, faults, counters.

The API site, the storage site and the webhook dispatcher are separate pieces that see the
same account; :class:`Core` is that account. It outlives :meth:`Simulator.restart`, which
only replaces the listening sockets. Time for jobs is :func:`time.monotonic` (the clock the
asyncio loop uses), wall time only for the timestamps shown to clients.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._config import SimulatorConfig
from ._faults import FaultInjector
from ._limits import Limiter
from ._media import CONTENT_TYPES, mp4_bytes, presigned_fields, tagged
from ._render import render_mp4
from ._rules import SubmitRequest
from ._state import GenerationRow, InitImage, Store, new_id
from ._stats import StatsRecorder

__all__ = ["BUCKET", "Core"]

BUCKET = "leonardo-sim-uploads"
#: How many rendered videos :meth:`Core.video_bytes` keeps (each is 0.1-0.5 MB).
_RENDERED_KEPT = 64


def _wall() -> datetime:
    return datetime.now(timezone.utc)


class Core:
    """One simulated Leonardo account and everything that judges its traffic."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.store = Store(config.api_subscription_tokens, config.api_paid_tokens)
        self.stats = StatsRecorder()
        self.limiter = Limiter()
        self.faults = FaultInjector(self.rng, self.stats)
        self.secret = self.rng.randbytes(32)
        self.renewal = _wall() + timedelta(days=30)
        self.api_origin = ""
        self.storage_origin = ""
        #: Called with each new generation (the webhook dispatcher schedules it).
        self.on_created: Callable[[GenerationRow], None] | None = None
        self._rendered: OrderedDict[str, bytes] = OrderedDict()

    @staticmethod
    def now() -> float:
        """Return the job clock (monotonic seconds)."""
        return time.monotonic()

    def wall(self) -> datetime:
        """Return the server's wall clock: UTC, moved by ``clock_offset``."""
        return _wall() + timedelta(seconds=self.config.clock_offset)

    @property
    def cdn_base(self) -> str:
        """Return the URL prefix of the CDN on the storage site."""
        return f"{self.storage_origin}/cdn"

    @property
    def upload_url(self) -> str:
        """Return where presigned uploads are POSTed (the bucket, as with S3)."""
        return f"{self.storage_origin}/{BUCKET}"

    def object_url(self, key: str) -> str:
        """Return the storage URL an uploaded object would live at."""
        return f"{self.storage_origin}/{BUCKET}/{key}"

    def configure(self, config: SimulatorConfig) -> None:
        """Switch to *config*; a changed seed reseeds, changed balances replace the balance."""
        old, self.config = self.config, config
        if config.seed != old.seed:
            self.rng.seed(config.seed)
        if config.api_subscription_tokens != old.api_subscription_tokens:
            self.store.subscription_tokens = config.api_subscription_tokens
        if config.api_paid_tokens != old.api_paid_tokens:
            self.store.paid_tokens = config.api_paid_tokens

    # -- init images ---------------------------------------------------------------------

    def new_init_image(self, extension: str) -> InitImage:
        """Create an init-image record with its presigned upload form."""
        image_id = new_id(self.rng)
        key = f"{self.config.user_id}/initImages/{image_id}.{extension}"
        issued = self.wall()
        fields = presigned_fields(
            bucket=BUCKET,
            key=key,
            content_type=CONTENT_TYPES[extension],
            secret=self.secret,
            issued=issued,
            ttl=self.config.upload_url_ttl,
        )
        image = InitImage(
            id=image_id,
            key=key,
            extension=extension,
            fields=fields,
            created_wall=issued,
            expires_at=self.now() + self.config.upload_url_ttl,
        )
        self.store.add_init_image(image)
        return image

    def check_image(self, image_type: str, image_id: str) -> str | None:
        """Return why *image_id* cannot be a frame of type *image_type*, or ``None``."""
        if image_type == "UPLOADED":
            image = self.store.init_images.get(image_id)
            if image is None:
                return f"no init image {image_id!r} (imageType UPLOADED)"
            if not image.uploaded:
                return f"init image {image_id!r} was never uploaded"
            return None
        if not self.store.generated_image_ready(image_id, self.now()):
            return (
                f"no generated image {image_id!r} (imageType GENERATED needs the id of a "
                "generated image, not of a generation)"
            )
        return None

    # -- generations ---------------------------------------------------------------------

    def create_generation(
        self, request: SubmitRequest, body: dict[str, Any], api_key: str, cost: int
    ) -> GenerationRow:
        """Store a new generation for *request*, draw its fate, charge *cost* and count it."""
        config = self.config
        now = self.now()
        slots = None if config.refuse_at_concurrency else config.max_running
        started = self.store.start_time(api_key, now, slots)
        seed = request.seed if request.seed is not None else self.rng.randrange(2**31)
        failed = self.rng.random() < config.failure_rate
        row = GenerationRow(
            id=new_id(self.rng),
            api_key=api_key,
            endpoint=request.endpoint,
            body=body,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            model=request.model,
            duration=request.duration,
            resolution=request.resolution,
            width=request.width,
            height=request.height,
            public=request.public,
            seed=seed,
            cost=cost,
            created_wall=self.wall(),
            created_at=now,
            started_at=started,
            finish_at=started + config.durations.draw(self.rng),
            outcome="FAILED" if failed else "COMPLETE",
            image_id=new_id(self.rng),
            vanish=self.faults.draw(config.faults.vanish_rate, "vanish"),
            start_frame=None
            if request.image_id is None or request.image_type is None
            else (request.image_id, request.image_type),
            end_frame=request.end_frame,
        )
        stats = self.stats
        if self.store.add_generation(row, request.fingerprint(), slots):
            stats.duplicate_submissions += 1
        stats.generations_created += 1
        stats.credits_spent += cost
        stats.peak_running = max(stats.peak_running, self.store.running(api_key, now))
        stats.peak_queued = max(stats.peak_queued, self.store.queued(api_key, now))
        if self.on_created is not None:
            self.on_created(row)
        return row

    # -- videos --------------------------------------------------------------------------

    def video_bytes(self, row: GenerationRow) -> bytes:
        """Return the MP4 the CDN serves for *row*, as the ``video`` knob says.

        A rendered video (``video="frames"``, about a second of CPU) is kept for the last
        :data:`_RENDERED_KEPT` generations, so retries and range requests reuse it.
        """
        config = self.config
        if config.video == "clip":
            return mp4_bytes(row.id, config.video_size)
        video = self._rendered.get(row.id)
        if video is None:
            video = tagged(
                render_mp4(
                    start=self._frame_bytes(row.start_frame),
                    end=self._frame_bytes(row.end_frame),
                    start_key=row.start_frame[0] if row.start_frame else row.id,
                    width=row.width,
                    height=row.height,
                    duration=row.duration,
                ),
                row.id,
                config.video_size,
            )
            self._rendered[row.id] = video
            if len(self._rendered) > _RENDERED_KEPT:
                self._rendered.popitem(last=False)
        return video

    def _frame_bytes(self, frame: tuple[str, str] | None) -> bytes | None:
        """The uploaded bytes of *frame*, or ``None`` (a generated image has none here)."""
        if frame is None or frame[1] != "UPLOADED":
            return None
        image = self.store.init_images.get(frame[0])
        return None if image is None else image.data
