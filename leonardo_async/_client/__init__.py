"""The client: one API key's parts, and the door every call goes through.

Top to bottom:

* :mod:`._endpoints`: :class:`~._endpoints.Endpoints`, the one-request calls (the
  account, generations read or deleted);
* :mod:`._submitter`: :class:`~._submitter.Submitter`, a submit without ever paying twice
  (one in-flight slot, one send, reconciliation when the answer is lost);
* :mod:`._parts`: :func:`~._parts.build`, the composition root that makes each part with
  what it depends on;
* :mod:`._client`: :class:`LeonardoClient`, which owns the parts for its lifetime and
  hands every call to one of them.
"""

from __future__ import annotations

from ._client import ImageSource, LeonardoClient
from ._submitter import CancelledSubmit, Submitter

__all__ = ["CancelledSubmit", "ImageSource", "LeonardoClient", "Submitter"]
