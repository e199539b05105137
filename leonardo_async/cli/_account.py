"""``leonardo-async account``: who the key belongs to, its slots and its balance."""

from __future__ import annotations

import argparse
import sys

import attrs

from .._client import LeonardoClient
from ._common import EXIT_OK, Commands
from ._remote import print_json, run_with_client

__all__ = ["register"]

_DESCRIPTION = """\
Show the key's user, how many generations it may run at once (apiConcurrencySlots) and
its token balance (subscription plus paid), as GET /me reports them.

exit codes: 0 shown, 2 no key, 3 API or network error"""


@attrs.frozen
class AccountView:
    """The account as ``--json`` prints it."""

    user_id: str
    username: str | None
    concurrency_slots: int | None
    subscription_tokens: int | None
    paid_tokens: int | None
    balance: int


def register(commands: Commands) -> None:
    """Add the ``account`` subcommand."""
    parser = commands.add(
        "account", run, help="show the key's user, slots and balance", description=_DESCRIPTION
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run ``account``."""

    async def work(client: LeonardoClient) -> int:
        account = await client.me()
        view = AccountView(
            user_id=account.user_id,
            username=account.username,
            concurrency_slots=account.concurrency_slots,
            subscription_tokens=account.subscription_tokens,
            paid_tokens=account.paid_tokens,
            balance=account.token_balance,
        )
        if args.json:
            print_json(view)
            return EXIT_OK
        print(f"user: {view.username or '-'} ({view.user_id})", file=sys.stdout)
        print(f"concurrency slots: {_or_unknown(view.concurrency_slots)}", file=sys.stdout)
        print(
            f"balance: {view.balance} tokens (subscription "
            f"{_or_unknown(view.subscription_tokens)}, paid {_or_unknown(view.paid_tokens)})",
            file=sys.stdout,
        )
        return EXIT_OK

    return run_with_client(work)


def _or_unknown(value: int | None) -> str:
    return "not reported" if value is None else str(value)
