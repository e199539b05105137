"""The wire format: what Leonardo's JSON bodies hold, and the one converter that reads them.

Callers name this package for the wire (``from .. import _wire as wire``), never a module
of it. Top to bottom:

* :mod:`._json`: :func:`loads`, an answer's bytes as JSON within a nesting limit;
* :mod:`._envelopes`: the shapes of whole response bodies (``{"generations_by_pk": ...}``,
  the upload target, the webhook callback), private attrs classes and nothing else;
* :mod:`._convert`: the cattrs converter, JSON <-> attrs with the wire's renames, lenient
  where a job can go on and strict where it cannot, and :func:`parse_timestamp`.
"""

from __future__ import annotations

from ._convert import STRICT_HOOKS as STRICT_HOOKS  # for the jobs file's strict reader
from ._convert import dumps_generation, dumps_request, dumps_spec, parse_timestamp, structure
from ._envelopes import (
    CallbackEvent,
    DeletedEnvelope,
    DeletedImageEnvelope,
    GenerationCallback,
    GenerationEnvelope,
    GenerationListEnvelope,
    MeEnvelope,
    SubmitEnvelope,
    UploadEnvelope,
    UploadTarget,
    account_from,
)
from ._json import loads

__all__ = [
    "CallbackEvent",
    "DeletedEnvelope",
    "DeletedImageEnvelope",
    "GenerationCallback",
    "GenerationEnvelope",
    "GenerationListEnvelope",
    "MeEnvelope",
    "SubmitEnvelope",
    "UploadEnvelope",
    "UploadTarget",
    "account_from",
    "dumps_generation",
    "dumps_request",
    "dumps_spec",
    "loads",
    "parse_timestamp",
    "structure",
]
