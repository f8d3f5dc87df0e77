from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.exceptions import EmailTaken
from accounts.services import user_create


class Command(BaseCommand):
    help = "Create a user (email verified) with a personal organization. Prints the user id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--password", help="omit for a user who signs in by reset link")
        parser.add_argument("--admin", action="store_true", help="staff and superuser")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            user = user_create(
                email=opts["email"],
                password=opts["password"],
                is_admin=opts["admin"],
                email_verified=True,
            )
        except (EmailTaken, ValueError, ValidationError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(user.pk))
