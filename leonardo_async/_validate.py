"""Range checks for every number a caller configures: finite, and inside a sane range.

``nan`` compares false with everything, so ``value > 0`` lets it through, and a rate of
``1e-300`` per minute is positive yet means "never"; either one, reaching a limiter or a
budget, hangs a batch or takes its running slots for good. Every numeric option and
config field goes through :func:`number` (or the attrs validator :func:`in_range`) so that
such values are a :class:`ValidationError` naming the field, before anything is sent.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from ._errors import ValidationError

__all__ = ["MAX_SECONDS", "in_range", "is_text", "number", "positive_amount"]

#: The longest wait any setting may ask for: a week (anything longer is a typo).
MAX_SECONDS: Final = 7 * 24 * 3600.0
#: The shortest timeout or poll interval: a millisecond (anything shorter cannot work).
MIN_SECONDS: Final = 0.001


def number(
    field: str,
    value: object,
    minimum: float,
    maximum: float,
    *,
    integer: bool = False,
    allow_none: bool = False,
) -> None:
    """Check that ``value`` is a finite number in ``[minimum, maximum]``.

    :param integer: only whole numbers (``int``, never ``bool``)
    :param allow_none: ``None`` is accepted (a switched-off setting)
    :raises ValidationError: anything else, naming ``field`` and the allowed range
    """
    if value is None and allow_none:
        return
    allowed = f"{'an integer' if integer else 'a number'} from {minimum:g} to {maximum:g}" + (
        " or None" if allow_none else ""
    )
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or (integer and not isinstance(value, int))
        or not math.isfinite(value)
        or not minimum <= value <= maximum
    ):
        raise ValidationError(field, value, allowed)


def in_range(
    minimum: float, maximum: float, *, integer: bool = False, allow_none: bool = False
) -> Any:
    """An attrs validator applying :func:`number` to a field (named by the field)."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        number(attribute.name, value, minimum, maximum, integer=integer, allow_none=allow_none)

    return check


def positive_amount(field: str, value: object) -> Decimal:
    """A money amount as a finite, positive :class:`Decimal`.

    :raises ValidationError: not a number, ``nan``, infinite, zero or negative
    """
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(field, value, "a positive number") from None
    if isinstance(value, bool) or not amount.is_finite() or amount <= 0:
        raise ValidationError(field, value, "a positive, finite number")
    return amount


def is_text(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8. A lone surrogate (``"\\ud800"`` in JSON
    reads as one) cannot: sent, it is paid for, then breaks every file the result goes to."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
