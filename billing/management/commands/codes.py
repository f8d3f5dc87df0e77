from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.arguments import datetime_arg, usd_arg
from billing.codes import MAX_BATCH, redemption_batch_create


class Command(BaseCommand):
    help = "Redemption codes. `generate` prints new codes, one per line (shown only now)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        gen = sub.add_parser("generate", help="create a batch and print its codes")
        gen.add_argument("--count", type=int, required=True, help=f"1..{MAX_BATCH}")
        gen.add_argument("--amount", required=True, help="USD per code, e.g. 10")
        gen.add_argument("--expires", help="ISO 8601, e.g. 2027-01-01T00:00:00Z")
        gen.add_argument("--name", default="", help="batch name")
        gen.add_argument("--per-user-limit", type=int, help="codes of this batch per user")

    def handle(self, *args: Any, **opts: Any) -> None:
        amount = usd_arg(opts["amount"], "--amount")
        expires = datetime_arg(opts["expires"], "--expires") if opts["expires"] else None
        try:
            new = redemption_batch_create(
                name=opts["name"] or "command line",
                count=opts["count"],
                amount=amount,
                expires_at=expires,
                per_user_limit=opts["per_user_limit"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for code in new.codes:
            self.stdout.write(code)
        self.stderr.write(f"batch {new.batch.pk}: {len(new.codes)} codes")
