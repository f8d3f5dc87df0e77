from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.exceptions import InvalidKeySettings
from accounts.management.arguments import csv_arg, datetime_arg, usd_arg, user_or_fail
from accounts.models import ApiKey
from accounts.selectors import organization_personal
from accounts.services import key_create


class Command(BaseCommand):
    help = "Manage API keys. `key create EMAIL` prints the new secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key in the user's personal org")
        create.add_argument("email")
        create.add_argument("--name", default="")
        create.add_argument("--models", help="allowed models, wildcards allowed: gpt-4o*,o3")
        create.add_argument("--allow-ips", help="allowed networks in CIDR: 10.0.0.0/8,::1")
        create.add_argument("--limit", help="spend limit in USD")
        create.add_argument("--expires", help="ISO 8601 date-time")
        create.add_argument("--rpm", type=int)
        create.add_argument("--tpm", type=int)
        create.add_argument("--scopes", default="relay", help="relay,manage")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = user_or_fail(opts["email"])
        scopes = csv_arg(opts["scopes"])
        unknown = set(scopes) - set(ApiKey.Scope.values)
        if unknown:
            raise CommandError(f"unknown scopes {sorted(unknown)}; use relay and/or manage")
        try:
            _, secret = key_create(
                organization=organization_personal(user=user),
                created_by=user,
                name=opts["name"],
                scopes=scopes,
                allowed_models=csv_arg(opts["models"]),
                allowed_ips=csv_arg(opts["allow_ips"]),
                spend_limit=usd_arg(opts["limit"], "--limit") if opts["limit"] else None,
                expires_at=datetime_arg(opts["expires"], "--expires") if opts["expires"] else None,
                rpm_limit=opts["rpm"],
                tpm_limit=opts["tpm"],
            )
        except InvalidKeySettings as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(secret)
