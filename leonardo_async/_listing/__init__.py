"""The generation listing, and what is learnt from it about submits whose answer was lost.

Top to bottom:

* :mod:`._pages`: :class:`Listing`, the one reader of ``GET /generations/user/{userId}``
  (page size, overlap, newest-first walks, the clock skew allowed for);
* :mod:`._reconciler`: :class:`Reconciler`, whether a lost submit created a generation,
  looked for in the listing over :data:`LISTING_LAG`, and the seed policy that helps.
"""

from __future__ import annotations

from ._pages import CLOCK_SKEW, Listing, ListingEntry, path_segment, read_entry
from ._reconciler import LISTING_LAG, Reconciler

__all__ = [
    "CLOCK_SKEW",
    "LISTING_LAG",
    "Listing",
    "ListingEntry",
    "Reconciler",
    "path_segment",
    "read_entry",
]
