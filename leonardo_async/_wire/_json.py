"""Reading an answer's bytes as JSON, within bounds a hostile or broken server cannot pass.

:func:`json.loads` recurses once per nesting level, so an answer of 100,000 ``[`` ends in a
``RecursionError`` (a traceback, not an error a caller can catch as a bad answer), and a
value nested a few hundred levels deep decodes but can still break whatever walks it later
(a ``repr``, a log line, ``json.dumps`` into a journal). No Leonardo answer nests more than
a handful of levels; :data:`MAX_DEPTH` allows ten times that, and anything deeper, or not
JSON at all, is one :class:`BadJSONError` with words a person can act on.
"""

from __future__ import annotations

import json
from typing import Any, Final

from .._errors import BadJSONError

__all__ = ["MAX_DEPTH", "loads"]

#: The deepest nesting of arrays and objects an answer may have (a listing page has six).
MAX_DEPTH: Final = 64


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``raw`` decoded, if it is JSON nested at most ``max_depth`` levels.

    :raises BadJSONError: not JSON, or nested too deep
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadJSONError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadJSONError(f"not JSON ({exc})") from None
    if _deeper_than(value, max_depth):
        raise BadJSONError(f"JSON nested deeper than {max_depth} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep.

    A loop with its own stack, not recursion: it must hold for any value ``json`` can make.
    """
    containers = (dict, list)
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, containers) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, containers))
    return False
