"""The doctor's findings, kept per account so later commands can act on them.

``doctor`` stores how each statement fared in ``findings.json`` under the user's cache
directory (``$XDG_CACHE_HOME/leonardo-async``, else ``~/.cache/leonardo-async``), keyed
by API base URL and user id, never by key. Commands that track jobs call
:func:`apply_findings` on their client, and three findings change its behaviour. Whether
the listing shows video generations sets the tracker's batched status (a listing that
shows none would cost a page per round for nothing) and how far the client trusts the
listing's silence about a lost submit; a seed the server rejects or does not keep turns
the random seed off (it would cost a rejected submit per run, or match nothing); a server
that refuses submits past the slots holds the in-flight bound at the slots
(``max_queued=0``: no refused probe per run). The rest are for the user to act on
(README, "First contact: doctor").
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

import attrs
import cattrs

from .._client import LeonardoClient

__all__ = ["apply_findings", "findings_path", "load_findings", "save_findings"]

FILE_NAME: Final = "findings.json"
HELD: Final = "held"
NOT_HELD: Final = "not held"
UNKNOWN: Final = "unknown"


@attrs.frozen
class AccountFindings:
    """What one doctor run found for one account: status by statement id."""

    checked_at: str
    statuses: dict[str, str]


@attrs.frozen
class FindingsFile:
    """Every account's findings, keyed by ``"<base URL> <user id>"``."""

    version: int = 1
    accounts: dict[str, AccountFindings] = attrs.field(factory=dict)


_converter = cattrs.Converter(forbid_extra_keys=False)


def findings_path() -> Path:
    """Where findings are kept: the user's cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "leonardo-async" / FILE_NAME


def _account_key(base_url: str, user_id: str) -> str:
    return f"{base_url.rstrip('/')} {user_id}"


def _read(path: Path) -> FindingsFile:
    """The stored findings; a missing or unreadable file is an empty store."""
    try:
        return _converter.structure(json.loads(path.read_text(encoding="utf-8")), FindingsFile)
    except (OSError, ValueError, cattrs.BaseValidationError):
        return FindingsFile()


def save_findings(path: Path, base_url: str, user_id: str, statuses: Mapping[str, str]) -> None:
    """Store ``statuses`` for the account (atomically).

    A statement this run could not tell (``unknown``) keeps what an earlier run found, so
    a free run does not erase what a paid one learnt.
    """
    store = _read(path)
    key = _account_key(base_url, user_id)
    earlier = store.accounts.get(key)
    merged = dict(earlier.statuses) if earlier is not None else {}
    merged.update({i: s for i, s in statuses.items() if s != UNKNOWN or i not in merged})
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    accounts = {**store.accounts, key: AccountFindings(stamp, merged)}
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(
            json.dumps(_converter.unstructure(FindingsFile(accounts=accounts)), indent=2),
            encoding="utf-8",
        )
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def load_findings(path: Path, base_url: str, user_id: str) -> dict[str, str]:
    """The stored statuses for the account (empty if doctor never ran for it)."""
    found = _read(path).accounts.get(_account_key(base_url, user_id))
    return {} if found is None else dict(found.statuses)


async def apply_findings(client: LeonardoClient, path: Path | None = None) -> None:
    """Adapt ``client`` to what doctor found for its account, if it found anything.

    Costs nothing when doctor never ran against this base URL; otherwise the account is
    asked of ``/me`` (which the client remembers) to find the right entry.
    """
    path = findings_path() if path is None else path
    prefix = _account_key(client.base_url, "")
    if not any(key.startswith(prefix) for key in _read(path).accounts):
        return
    statuses = load_findings(path, client.base_url, await client.user_id())
    if statuses.get("listing.video") == NOT_HELD:
        client.batched_status = False
        client.listing_shows_videos = False  # its silence never proves a submit failed
    elif statuses.get("listing.video") == HELD:
        client.listing_shows_videos = True
    if statuses.get("seed") == NOT_HELD:  # rejected or not kept: a seed buys nothing
        client.auto_seed = False
    if statuses.get("queue") == NOT_HELD:  # refused past the slots: never probe it again
        client.server_queues = False
