"""The simulator's fault knobs: which misbehaviour to inject, and on which routes.

Kept apart from the rest of :mod:`._config` because the list grows with every fault a real
deployment is found to have; :class:`FaultConfig` is a plain frozen value, set through
:class:`~._config.SimulatorConfig`'s ``faults`` like any other knob.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
from attrs import validators as v

__all__ = ["API_ROUTES", "PROBABILITY", "FaultConfig"]

#: The names of the API routes, as stats count them and ``FaultConfig.routes`` filters them.
API_ROUTES = frozenset(
    {
        "POST /init-image",
        "GET /init-image/{id}",
        "DELETE /init-image/{id}",
        "POST /generations-image-to-video",
        "POST /generations-text-to-video",
        "GET /generations/user/{userId}",
        "GET /generations/{id}",
        "DELETE /generations/{id}",
        "GET /me",
    }
)

#: The validators of a knob that is a probability.
PROBABILITY = [v.instance_of(float), v.ge(0.0), v.le(1.0)]


def _routes(value: Iterable[str] | None) -> frozenset[str] | None:
    """Store route filters as a frozenset, whatever iterable was given."""
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


def _known_routes(_: object, attribute: attrs.Attribute[Any], value: frozenset[str] | None) -> None:
    """Refuse misspelt route names, which would otherwise silently disable the faults."""
    unknown = sorted((value or frozenset()) - API_ROUTES)
    if unknown:
        raise ValueError(f"unknown routes {unknown}; known: {sorted(API_ROUTES)}")


@attrs.frozen
class FaultConfig:
    """Misbehaviour to inject, each knob a probability drawn from the seeded RNG.

    All are off by default and any can be combined. ``routes`` limits the request-level
    faults (everything but the storage ones and ``vanish_rate``) to the named API routes, such
    as ``"POST /generations-image-to-video"`` or ``"GET /generations/{id}"``.

    :param server_error_rate: answer 500/502/503 with ``{"error": "internal error"}``.
    :param server_error_burst: once a server error fires, how many consecutive requests fail.
    :param reset_before_rate: drop the connection before handling (nothing is created).
    :param reset_after_submit_rate: on a submit, create the generation, then drop the
        connection so the response is lost.
    :param slow_rate: wait ``slow_seconds`` before handling (the request is still handled).
    :param slow_seconds: the delay of a slow request, in seconds.
    :param malformed_json_rate: replace a 200 body with truncated JSON (side effects happen).
    :param unexpected_shape_rate: replace a 200 body with a well-formed but wrong shape.
    :param rate_limit_storm_rate: start a run of 429s regardless of real usage.
    :param rate_limit_storm_length: how many consecutive requests a storm refuses.
    :param upload_expired_rate: the presigned upload answers "Policy expired" even in time.
    :param cdn_truncate_rate: the CDN announces the full length but sends part, then closes.
    :param vanish_rate: a generation disappears when it finishes (GET null, not listed).
    :param null_cost_rate: a successful submit's answer carries no usable price: ``cost`` is
        ``null``, or ``{"amount": null, "unit": null}``, or has a null ``amount`` (drawn in
        turn); ``apiCreditCost`` is always ``null``. The job is created and charged as usual.
    :param gateway_error_after_submit_rate: on a submit, create the generation, then answer
        502, 503 or 504 with a gateway's HTML page, as a proxy does when the origin is slow:
        the client cannot tell "created" from "not created" without looking.
    :param echo_authorization: every error answer of the API (any route, status >= 400)
        repeats the request's ``Authorization`` header, key and all, in its body, as some
        gateways and WAFs do; a client must keep that text out of its errors and logs.
    :param routes: API route names the request-level faults apply to; ``None`` means all.
    :param limit: at most this many request-level faults fire after these faults are set
        (then requests are served faithfully); ``None`` means no limit. ``limit=1`` with
        a rate of 1.0 is one fault exactly, on the first request of the routes.
    """

    server_error_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    server_error_burst: int = attrs.field(default=1, validator=[v.instance_of(int), v.ge(1)])
    reset_before_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    reset_after_submit_rate: float = attrs.field(
        default=0.0, converter=float, validator=PROBABILITY
    )
    slow_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    slow_seconds: float = attrs.field(default=30.0, converter=float, validator=v.ge(0.0))
    malformed_json_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    unexpected_shape_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    rate_limit_storm_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    rate_limit_storm_length: int = attrs.field(default=5, validator=[v.instance_of(int), v.ge(1)])
    upload_expired_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    cdn_truncate_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    vanish_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    null_cost_rate: float = attrs.field(default=0.0, converter=float, validator=PROBABILITY)
    gateway_error_after_submit_rate: float = attrs.field(
        default=0.0, converter=float, validator=PROBABILITY
    )
    echo_authorization: bool = False
    routes: frozenset[str] | None = attrs.field(
        default=None, converter=_routes, validator=_known_routes
    )
    limit: int | None = attrs.field(
        default=None, validator=v.optional([v.instance_of(int), v.ge(0)])
    )
