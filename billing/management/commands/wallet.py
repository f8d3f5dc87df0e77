from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.arguments import usd_arg, user_or_fail
from accounts.selectors import organization_personal
from billing.models import LedgerEntry, Wallet
from billing.services import wallet_credit
from money import micros_to_usd


class Command(BaseCommand):
    help = "Credit or show the wallet of a user's personal organization (USD)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        credit = sub.add_parser("credit", help="add credit; prints the new balance")
        credit.add_argument("email")
        credit.add_argument("amount", help="USD, e.g. 12.5")
        credit.add_argument("--note", default="")
        show = sub.add_parser("show", help="print the balance, e.g. 12.500000")
        show.add_argument("email")

    def handle(self, *args: Any, **opts: Any) -> None:
        org = organization_personal(user=user_or_fail(opts["email"]))
        if opts["action"] == "credit":
            amount = usd_arg(opts["amount"], "AMOUNT")
            if amount <= 0:
                raise CommandError("AMOUNT must be positive")
            wallet_credit(
                organization=org,
                amount=amount,
                kind=LedgerEntry.Kind.ADJUST,
                source_type="cli",
                source_id=uuid.uuid4().hex,
                note=opts["note"] or "credited from the command line",
            )
        self.stdout.write(micros_to_usd(Wallet.objects.get(organization=org).balance))
