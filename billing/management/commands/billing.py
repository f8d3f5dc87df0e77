from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.reconcile import reconcile_run


class Command(BaseCommand):
    help = "Billing checks. `reconcile`: prove the ledger; exits non-zero on discrepancies."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser(
            "reconcile",
            help="balance == sum(ledger) and held == open holds per wallet, no stale "
            "holds, every paid top-up credited",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        found = reconcile_run()
        for discrepancy in found:
            self.stdout.write(str(discrepancy))
        if found:
            raise CommandError(f"{len(found)} discrepancies")
        self.stdout.write("ok: the books balance")
