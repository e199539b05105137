"""The simulator's knobs: frozen value objects, and their JSON form.

Everything the simulator can be told lives here (the fault knobs in :mod:`._fault_config`),
as frozen attrs classes, so that a test, a
benchmark process (through ``POST /_sim/config``) and the CLI all change behaviour the same
way: by building a new config with :func:`attrs.evolve` or :func:`config_from_mapping`.
Nothing here touches the network or the clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_origin

import attrs
import cattrs
from attrs import validators as v

from ._fault_config import API_ROUTES, PROBABILITY, FaultConfig

__all__ = [
    "API_ROUTES",
    "FaultConfig",
    "JobDurations",
    "SimulatorConfig",
    "config_from_mapping",
    "config_to_json",
]


def _optional_positive_int(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    """Accept ``None`` (no limit) or a positive int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be None or a positive integer, got {value!r}")


def _renderable(_: object, __: attrs.Attribute[Any], value: str) -> None:
    """Refuse ``video="frames"`` up front when PyAV is missing, not at the first download."""
    if value == "frames":
        from ._render import RenderUnavailableError, check_available

        try:
            check_available()
        except RenderUnavailableError as exc:
            raise ValueError(str(exc)) from None


def _keys(value: Iterable[str]) -> tuple[str, ...]:
    """Store keys as a tuple; a lone string is one key, not its characters."""
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class JobDurations:
    """How long each generation stays ``PENDING``, drawn once at submit.

    All values are in seconds. ``kind`` chooses the distribution:

    * ``"fixed"``: always ``median``;
    * ``"uniform"``: between ``median * (1 - spread)`` and ``median * (1 + spread)``;
    * ``"lognormal"``: ``median * exp(N(0, spread))``, the long right tail real render queues show.

    The default is short (a median of two seconds) because the simulator is a development tool;
    :meth:`veo` gives timings close to real Veo 3.1 jobs.

    :param kind: the distribution.
    :param median: the median duration in seconds.
    :param spread: the width (fraction for ``uniform``, sigma for ``lognormal``).
    """

    kind: Literal["fixed", "uniform", "lognormal"] = attrs.field(
        default="lognormal", validator=v.in_(("fixed", "uniform", "lognormal"))
    )
    median: float = attrs.field(default=2.0, converter=float, validator=v.ge(0.0))
    spread: float = attrs.field(default=0.35, converter=float, validator=v.ge(0.0))

    @classmethod
    def fixed(cls, seconds: float) -> JobDurations:
        """Make every job take exactly *seconds*."""
        return cls(kind="fixed", median=seconds, spread=0.0)

    @classmethod
    def veo(cls) -> JobDurations:
        """Return realistic Veo 3.1 timings: lognormal, median 75 s, sigma 0.35."""
        return cls(kind="lognormal", median=75.0, spread=0.35)

    def draw(self, rng: random.Random) -> float:
        """Draw one duration in seconds from *rng* (never negative)."""
        if self.kind == "fixed":
            return self.median
        if self.kind == "uniform":
            return max(
                0.0, rng.uniform(self.median * (1 - self.spread), self.median * (1 + self.spread))
            )
        return self.median * math.exp(rng.gauss(0.0, self.spread))


@attrs.frozen
class SimulatorConfig:
    """Every knob of the simulator, with defaults suited to fast tests.

    Limits are per API key. Time values are in seconds. The defaults leave the request-rate
    limits off and jobs short; :meth:`realistic` gives Leonardo's documented limits and Veo
    timings.

    :param host: the interface both servers bind to (loopback by default).
    :param api_port: the API port; ``0`` picks a free one.
    :param storage_port: the upload/CDN port; ``0`` picks a free one.
    :param api_key: the accepted API key.
    :param extra_api_keys: more accepted keys (same user, their own limits).
    :param strict_variables: a query parameter or JSON body key the endpoint does not declare
        is a 400 ``Unexpected variable <name>``, as Hasura answers; ``False`` ignores them.
    :param auth_hook_errors: a presented key that is not UUID-shaped gets Leonardo's HTTP 500
        ``Invalid response from authorization hook`` (``code: "unexpected"``), as the real
        API answers; ``False`` answers it 401 ``access-denied`` like a well-formed unknown key.
    :param user_id: the user's id, as ``/me`` reports it.
    :param username: the user's name, as ``/me`` reports it.
    :param seed: seed of the one :class:`random.Random` all draws come from.
    :param durations: how long jobs stay ``PENDING``.
    :param failure_rate: probability that a job ends ``FAILED``.
    :param max_running: generations one key may have running at once (its slots). A
        submit while every slot is busy waits ``PENDING`` in the key's queue until one frees
        (Leonardo's documented behaviour); a full queue answers 429.
    :param queue_depth: generations one key may have queued behind its slots; ``None``
        means 20 per slot (one summary of Leonardo's docs; the guide says 200 per key).
    :param refuse_at_concurrency: refuse a submit with 429 while every slot is busy, with
        no queue (what some servers and plans do).
    :param concurrency_slots: what ``/me`` reports as ``apiConcurrencySlots``.
    :param requests_per_second: sliding-window rate over all authenticated API requests.
    :param requests_per_minute: the same over one minute.
    :param submits_per_minute: the same over the generation-creating endpoints only.
    :param retry_after_style: how a 429 says when to come back: ``"none"`` (the default: no
        header, as Leonardo documents none), ``"seconds"`` or ``"http-date"``.
    :param upload_url_ttl: seconds a presigned upload stays valid.
    :param max_upload_bytes: largest accepted upload.
    :param api_subscription_tokens: starting ``apiSubscriptionTokens`` balance.
    :param api_paid_tokens: starting ``apiPaidTokens`` balance (``None`` reports null).
    :param cost_1080p_multiplier: price factor of ``RESOLUTION_1080`` over 720p.
    :param cost_unit: what submits charge in: ``CREDITS``, or ``DOLLARS`` at $0.001 a credit.
    :param listing_order: order of ``GET /generations/user/{userId}``.
    :param listing_max_limit: largest ``limit`` honoured (larger ones are capped silently).
    :param listing_includes_video: whether the listing shows video generations at all.
    :param listing_drop_rate: probability that a listing leaves out a given item.
    :param listing_lag: seconds a new generation stays out of the listing (an eventually
        consistent read); ``GET /generations/{id}`` sees it at once.
    :param reject_seed: refuse a submit that carries ``seed`` with a 400 naming ``seed``.
    :param created_at_suffix: appended to ``createdAt`` (``""``, ``"Z"`` or ``"+00:00"``).
    :param timestamp_style: ``"postgres"`` (trailing zeros of the fraction trimmed:
        ``...08.03``, ``...08``) as Hasura prints them, or ``"milliseconds"`` (friendlier).
    :param video_size: least size in bytes of each generated MP4 (padded with a trailing
        ``free`` box; the bundled clip alone is about 38 KB).
    :param video: what each MP4 shows: ``"clip"``, the bundled test pattern (the default,
        no dependencies), or ``"frames"``, a crossfade from the request's start frame to its
        end frame at the requested size and duration (needs ``leonardo-async[video]``).
    :param clock_offset: seconds the server's wall clock runs ahead of the real one
        (negative: behind); moves ``createdAt`` and the ``Date`` header.
    :param webhook_url: where to POST completion callbacks; ``None`` for none.
    :param webhook_key: sent as ``authorization: Bearer <key>`` with callbacks.
    :param webhook_event_type: the callback's ``type``.
    :param webhook_timeout: seconds before a callback delivery counts as failed.
    :param faults: the misbehaviour to inject.
    """

    host: str = "127.0.0.1"
    api_port: int = attrs.field(default=0, validator=[v.instance_of(int), v.ge(0)])
    storage_port: int = attrs.field(default=0, validator=[v.instance_of(int), v.ge(0)])
    api_key: str = attrs.field(default="sim-test-key-0000", validator=v.min_len(1))
    extra_api_keys: tuple[str, ...] = attrs.field(default=(), converter=_keys)
    auth_hook_errors: bool = True
    strict_variables: bool = True
    user_id: str = "5f0e6c1a-2b7d-4c83-9a41-7d2e8b3f6a10"
    username: str = "simulator"
    seed: int = 0
    durations: JobDurations = JobDurations()
    failure_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    max_running: int | None = attrs.field(default=10, validator=_optional_positive_int)
    queue_depth: int | None = attrs.field(
        default=None, validator=v.optional([v.instance_of(int), v.ge(0)])
    )
    refuse_at_concurrency: bool = False
    concurrency_slots: int = 10
    requests_per_second: float | None = attrs.field(
        default=None, converter=attrs.converters.optional(float), validator=v.optional(v.gt(0.0))
    )
    requests_per_minute: int | None = attrs.field(default=None, validator=_optional_positive_int)
    submits_per_minute: int | None = attrs.field(default=None, validator=_optional_positive_int)
    retry_after_style: Literal["seconds", "http-date", "none"] = attrs.field(
        default="none", validator=v.in_(("seconds", "http-date", "none"))
    )
    upload_url_ttl: float = attrs.field(default=120.0, converter=float, validator=v.ge(0.0))
    max_upload_bytes: int = attrs.field(default=20 * 1024 * 1024, validator=v.ge(1))
    api_subscription_tokens: int = 1_000_000
    api_paid_tokens: int | None = None
    cost_1080p_multiplier: float = attrs.field(default=1.0, converter=float, validator=v.ge(0.0))
    cost_unit: str = attrs.field(default="CREDITS", validator=v.in_(("CREDITS", "DOLLARS")))
    listing_order: Literal["newest", "oldest", "random"] = attrs.field(
        default="newest", validator=v.in_(("newest", "oldest", "random"))
    )
    listing_max_limit: int = attrs.field(default=50, validator=v.ge(1))
    listing_includes_video: bool = True
    listing_drop_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    listing_lag: float = attrs.field(default=0.0, converter=float, validator=v.ge(0.0))
    reject_seed: bool = False
    created_at_suffix: str = ""
    clock_offset: float = attrs.field(default=0.0, converter=float)
    timestamp_style: Literal["postgres", "milliseconds"] = attrs.field(
        default="postgres", validator=v.in_(("postgres", "milliseconds"))
    )
    video_size: int = attrs.field(default=4096, validator=v.ge(256))
    video: Literal["clip", "frames"] = attrs.field(
        default="clip", validator=[v.in_(("clip", "frames")), _renderable]
    )
    webhook_url: str | None = None
    webhook_key: str | None = None
    webhook_event_type: str = "image_generation.complete"
    webhook_timeout: float = attrs.field(default=10.0, converter=float, validator=v.gt(0.0))
    faults: FaultConfig = attrs.field(factory=FaultConfig)

    @classmethod
    def realistic(cls, **changes: Any) -> SimulatorConfig:
        """Return Leonardo's documented limits with Veo timings, plus *changes*.

        2000 requests a minute per key, 100 submits a minute, 10 running jobs, and
        :meth:`JobDurations.veo` durations.
        """
        base = cls(
            requests_per_minute=2000,
            submits_per_minute=100,
            max_running=10,
            durations=JobDurations.veo(),
        )
        return attrs.evolve(base, **changes)

    @property
    def accepted_keys(self) -> tuple[str, ...]:
        """Every API key the simulator accepts, the main one first."""
        return (self.api_key, *self.extra_api_keys)


def _is_frozenset(kind: object) -> bool:
    return kind is frozenset or get_origin(kind) is frozenset


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    # A predicate, not the bare class: cattrs dispatches ``frozenset[str]`` (the routes
    # knob's type) to its own set hook, which keeps a frozenset that JSON cannot write.
    conv.register_unstructure_hook_func(_is_frozenset, lambda value: sorted(value))

    def _float(value: object, _: type) -> float:
        # JSON has one number type: take ints for float knobs, refuse strings and bools.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)

    def _int(value: object, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return value

    def _bool(value: object, _: type) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value

    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(bool, _bool)  # after int: bool is an int subclass
    return conv


_converter = _make_converter()


def config_to_json(config: SimulatorConfig) -> dict[str, Any]:
    """Return *config* as a JSON-ready dict (the shape ``POST /_sim/config`` takes)."""
    result: dict[str, Any] = _converter.unstructure(config)
    return result


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if attrs.has(type(value)):
            value = _converter.unstructure(value)
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_mapping(
    changes: Mapping[str, Any], base: SimulatorConfig | None = None
) -> SimulatorConfig:
    """Build a config from *base* (the defaults if ``None``) with *changes* applied.

    Nested knobs (``faults``, ``durations``) merge key by key, so ``{"faults":
    {"slow_rate": 0.1}}`` keeps the other fault knobs. Values may be plain JSON or the attrs
    objects themselves. Unknown knobs are refused.

    :raises ValueError: naming every bad knob.
    """
    merged = _merge(config_to_json(base or SimulatorConfig()), changes)
    try:
        return _converter.structure(merged, SimulatorConfig)
    except cattrs.ClassValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc))) from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
