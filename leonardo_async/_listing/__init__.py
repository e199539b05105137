"""The generation listing, and what is learnt from it about submits whose answer was lost.

Top to bottom:

* :mod:`._pages`: :class:`Listing`, the one reader of ``GET /generations/user/{userId}``
  (page size, overlap, newest-first walks, the clock skew allowed for);
* :mod:`._lag`: :class:`~._lag.ListingLag`, how late the listing shows a new job,
  measured from our own answered submits (never below :data:`LISTING_LAG`);
* :mod:`._evidence`: :class:`Evidence`, what our own jobs have shown of the listing and
  the server (the lag, the server's clock, whether it keeps seeds and lists videos);
* :mod:`._reconciler`: :class:`Reconciler`, whether a lost submit created a generation,
  looked for in the listing over that window, and the seed policy that helps.
"""

from __future__ import annotations

from ._evidence import LISTING_LAG, Evidence
from ._pages import CLOCK_SKEW, Listing, ListingEntry, path_segment, read_entry
from ._reconciler import Reconciler

__all__ = [
    "CLOCK_SKEW",
    "LISTING_LAG",
    "Evidence",
    "Listing",
    "ListingEntry",
    "Reconciler",
    "path_segment",
    "read_entry",
]
