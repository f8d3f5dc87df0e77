from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from relay.models import Channel
from sealed.fields import reveal


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key in TOKENHUB_ENCRYPTION_KEYS. "
        "Prints the number of channels re-encrypted."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        count = 0
        with transaction.atomic():
            for channel in Channel.objects.select_for_update():
                try:
                    keys = reveal(channel.api_keys)  # decrypts with any configured key
                except ValueError as exc:
                    raise CommandError(f"channel {channel.pk}: {exc}") from None
                channel.api_keys = keys
                channel.save(update_fields=["api_keys"])
                count += 1
        self.stdout.write(str(count))
