"""``leonardo-async doctor``: first contact with a real key, checked, spending nothing.

:func:`diagnose` runs the checks of :mod:`._checks` (and, with ``--spend``, those of
:mod:`._spend`) on a client whose session feeds a :class:`~._transcript.Transcript`;
this module prints the findings, writes the redacted transcript, stores the findings for
later commands (:mod:`._findings`) and picks the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, TextIO

import aiohttp
import anyio
import attrs

from .. import __version__
from .._client import LeonardoClient
from .._errors import AuthenticationError, LeonardoError, ValidationError
from .._limits import Limits
from .._transport import DEFAULT_BASE_URL
from ..models import Account
from ._checks import (
    STATEMENTS,
    Finding,
    Status,
    check_account,
    check_clock,
    check_listing,
    check_listing_lag,
    check_retry_after,
    check_upload,
    finding,
    not_checkable,
)
from ._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    report,
    report_invalid,
)
from ._findings import findings_path, save_findings
from ._remote import add_poll_options, schedule_from_args
from ._spend import SPEND_IDS, SpendOptions, check_with_job
from ._transcript import Transcript

__all__ = ["Diagnosis", "diagnose", "register"]

DEFAULT_TRANSCRIPT: Final = Path("leonardo-doctor-transcript.json")

_DESCRIPTION = """\
Check an API key and its account against what this client assumes. By default it spends
nothing: it reads /me, the generation listing and the server's clock, and uploads one
tiny image and deletes it.

Each statement is printed as held, not held or unknown. Those marked [?] are not
documented by Leonardo; the client copes either way, and the finding says which way this
account goes (see the README, "First contact: doctor", for what to do about each).

--spend ALSO RUNS ONE PAID JOB, the cheapest there is: VEO3_1FAST, 720p, 4 s, private
(about 535 credits by third-party figures; the submit's answer states the real price,
and doctor prints it). It reports the job's cost, how long it took, whether the listing
showed it, whether its seed came back, and whether its video downloads without the key.
Then it ASKS before the queue check, which submits one more such job per concurrency
slot (each charged) to see whether a submit past the slots queues or is refused; --yes
answers yes.

Every request and response is written, redacted (no API key, no presigned upload fields,
no URL signatures), to --transcript, to attach to a bug report. Findings are stored per
account under the user's cache directory, where later commands read them.

exit codes: 0 nothing failed (held or unknown), 1 some statement did not hold,
2 bad input, 3 the key was refused or the API could not be reached"""


@attrs.frozen
class Diagnosis:
    """What one doctor run found.

    :param account: ``/me``'s answer, ``None`` if it never came
    :param failure: why the run stopped at the key check, if it did
    """

    findings: list[Finding]
    account: Account | None = None
    failure: str | None = None

    @property
    def exit_code(self) -> int:
        """3 if the key check failed, 1 if some statement did not hold, else 0."""
        if self.failure is not None:
            return EXIT_API_ERROR
        if any(f.status is Status.NOT_HELD for f in self.findings):
            return EXIT_FAILED
        return EXIT_OK


def register(commands: Commands) -> None:
    """Add the ``doctor`` subcommand."""
    parser = commands.add(
        "doctor",
        run,
        help="check a key and account against the client's assumptions (free unless --spend)",
        description=_DESCRIPTION,
    )
    parser.add_argument(
        "--spend",
        action="store_true",
        help="also run ONE PAID JOB (VEO3_1FAST, 720p, 4 s, private) end to end",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="with --spend, run the queue check without asking: ONE MORE PAID JOB PER SLOT",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--transcript",
        type=Path,
        default=DEFAULT_TRANSCRIPT,
        metavar="FILE",
        help="where to write the redacted transcript (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="with --spend, seconds to wait for the job (default: %(default)g)",
    )
    parser.add_argument(
        "--listing-wait",
        type=float,
        default=20.0,
        metavar="S",
        help="with --spend, seconds to look for the finished job in the listing "
        "(default: %(default)g)",
    )
    parser.add_argument(
        "--webhook-listen",
        metavar="HOST:PORT",
        help="with --spend, receive Leonardo's callbacks here (where the webhook URL set "
        "for the key forwards to), with the callback key from LEONARDO_CALLBACK_KEY",
    )
    add_poll_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``doctor`` with the key and base URL from the environment."""
    api_key = os.environ.get("LEONARDO_API_KEY", "")
    if not api_key.strip():
        report("LEONARDO_API_KEY is not set: export your Leonardo API key first")
        return EXIT_BAD_INPUT
    if not args.timeout > 0 or not args.listing_wait >= 0:
        report("--timeout must be positive and --listing-wait not negative (seconds)")
        return EXIT_BAD_INPUT
    try:
        schedule = schedule_from_args(args)
    except ValidationError as exc:
        return report_invalid(exc)
    webhook = None
    if args.webhook_listen is not None:
        host, _, port = args.webhook_listen.rpartition(":")
        if not (host and port.isdigit() and int(port) < 65536):
            report(f"--webhook-listen: expected HOST:PORT, got {args.webhook_listen!r}")
            return EXIT_BAD_INPUT
        webhook = (host.strip("[]"), int(port))
    spend = None
    if args.spend:
        spend = SpendOptions(
            _yes if args.yes else _ask,
            schedule,
            args.timeout,
            args.listing_wait,
            webhook,
            os.environ.get("LEONARDO_CALLBACK_KEY") or None,
        )
    return anyio.run(
        functools.partial(
            execute,
            api_key=api_key,
            base_url=os.environ.get("LEONARDO_BASE_URL") or DEFAULT_BASE_URL,
            spend=spend,
            transcript_path=args.transcript,
            as_json=args.json,
        )
    )


def _yes(_: str) -> bool:
    return True


def _ask(question: str) -> bool:
    """Ask on the terminal; with no terminal to ask on, the answer is no."""
    if not sys.stdin.isatty():
        print(f"{question}\nNot asked (no terminal); --yes confirms.", file=sys.stderr)
        return False
    answer = input(f"{question}\nSpend it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def execute(
    *,
    api_key: str,
    base_url: str,
    spend: SpendOptions | None,
    transcript_path: Path,
    as_json: bool = False,
    cache: Path | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Diagnose, print, write the transcript and store the findings; returns the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    transcript = Transcript(base_url, secrets=[api_key])
    header = {
        "base_url": base_url,
        "spent": spend is not None,
        "client": f"leonardo-async {__version__}",
        "python": platform.python_version(),
        "local_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    async with aiohttp.ClientSession(trace_configs=[transcript.trace_config()]) as session:
        try:
            # No running bound of our own: the queue check must reach the server's.
            client = LeonardoClient(
                api_key,
                base_url=base_url,
                limits=Limits(max_running=None),
                poll_schedule=None if spend is None else spend.schedule,
                session=session,
            )
        except ValidationError as exc:
            return report_invalid(exc, stream=err)
        try:
            async with client:
                result = await diagnose(client, transcript, spend=spend)
        except BaseException:  # Ctrl-C: what was sent so far is worth keeping
            with contextlib.suppress(OSError):
                transcript.write(transcript_path, {**header, "interrupted": True})
                print(f"transcript so far (redacted): {transcript_path}", file=err)
            raise
    if result.failure is not None and not _uuid_shaped(api_key):
        hint = "; note that LEONARDO_API_KEY is not shaped like a UUID, as Leonardo's keys are"
        result = attrs.evolve(result, failure=result.failure + hint)
    written: Path | None = transcript_path
    try:
        transcript.write(transcript_path, header)
    except OSError as exc:
        print(f"transcript not written ({exc})", file=err)
        written = None
    stored = None
    if result.account is not None:
        stored = cache if cache is not None else findings_path()
        statuses = {f.id: f.status.value for f in result.findings}
        try:
            save_findings(stored, base_url, result.account.user_id, statuses)
        except OSError as exc:
            print(f"findings not stored ({exc})", file=err)
            stored = None
    if as_json:
        json.dump(_json(result, base_url, spend is not None, written, stored), out, indent=2)
        print(file=out)
    else:
        _print(result, base_url, written, stored, out)
    if result.failure is not None:
        report(result.failure, stream=err)
    return result.exit_code


def _uuid_shaped(key: str) -> bool:
    try:
        uuid.UUID(key.strip())
    except ValueError:
        return False
    return True


async def diagnose(
    client: LeonardoClient, transcript: Transcript, *, spend: SpendOptions | None = None
) -> Diagnosis:
    """Run every check on ``client`` (whose session feeds ``transcript``)."""
    try:
        account = await client.me()
    except AuthenticationError as exc:
        why = (
            f"LEONARDO_API_KEY was refused by {client.base_url} ({exc.error or exc.status}): "
            "use a production API key from Leonardo's API settings (a UUID); "
            "the key itself is not shown"
        )
        return Diagnosis([finding("key", Status.NOT_HELD, why)], failure=why)
    except LeonardoError as exc:
        why = f"could not check LEONARDO_API_KEY: {exc}"
        return Diagnosis([finding("key", Status.UNKNOWN, why)], failure=why)
    found = [
        finding("key", Status.HELD, f"/me answered for {account.username} ({account.user_id})"),
        check_account(account),
        *await check_listing(client),
        await check_upload(client),
    ]
    created_skew = None
    if spend is None:
        found += not_checkable(SPEND_IDS, "needs --spend (one paid job)")
    else:
        result = await check_with_job(client, account, transcript, spend)
        created_skew = result.created_skew
        # The new jobs give the listing checks something to look at; what the paid job
        # showed about itself outranks both listings.
        found = _merge(_merge(found, await check_listing(client)), result.findings)
    found += [
        check_clock(transcript, created_skew),
        check_listing_lag(client.statistics()),
        check_retry_after(transcript),
    ]
    if "webhook.video" not in {f.id for f in found}:
        found.append(
            finding(
                "webhook.video",
                Status.UNKNOWN,
                "not checked: --spend --webhook-listen HOST:PORT receives the job's callback",
            )
        )
    found.append(
        finding(
            "submit_rate",
            Status.UNKNOWN,
            "not checked: it takes about 100 paid submits; a 429 makes the client slow down",
        )
    )
    judged = {f.id for f in found}
    found += not_checkable([i for i in STATEMENTS if i not in judged], "not reached this run")
    order = list(STATEMENTS)
    return Diagnosis(sorted(found, key=lambda f: order.index(f.id)), account)


def _merge(earlier: list[Finding], later: list[Finding]) -> list[Finding]:
    """Both lists' findings; where both judged a statement, the later one wins unless
    it could not tell and the earlier one could."""
    merged = {f.id: f for f in earlier}
    for item in later:
        known = merged.get(item.id)
        if known is None or item.status is not Status.UNKNOWN or known.status is Status.UNKNOWN:
            merged[item.id] = item
    return list(merged.values())


def _print(
    result: Diagnosis, base_url: str, transcript: Path | None, stored: Path | None, out: TextIO
) -> None:
    print(f"doctor: {base_url}", file=out)
    for item in result.findings:
        tag = " [?]" if item.assumption else ""
        print(f"  {item.status.value:<9} {item.statement}{tag}", file=out)
        print(f"  {'':<9} {item.detail}", file=out)
    counts = {s: sum(f.status is s for f in result.findings) for s in Status}
    print(", ".join(f"{n} {s.value}" for s, n in counts.items()), file=out)
    if transcript is not None:
        print(f"transcript (redacted): {transcript}", file=out)
    if stored is not None:
        print(f"findings stored: {stored}", file=out)
    out.flush()


def _json(
    result: Diagnosis, base_url: str, spent: bool, transcript: Path | None, stored: Path | None
) -> dict[str, Any]:
    account = result.account
    return {
        "base_url": base_url,
        "user_id": None if account is None else account.user_id,
        "spent": spent,
        "exit_code": result.exit_code,
        "error": result.failure,
        "findings": [{**attrs.asdict(f), "status": f.status.value} for f in result.findings],
        "transcript": None if transcript is None else str(transcript),
        "findings_file": None if stored is None else str(stored),
    }
