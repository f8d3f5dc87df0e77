from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.arguments import csv_arg
from relay.models import Channel
from relay.services import InvalidChannel, channel_create


def _model_map(value: str | None) -> dict[str, str]:
    mapping = {}
    for pair in csv_arg(value):
        alias, sep, upstream = pair.partition("=")
        if not sep or not alias.strip() or not upstream.strip():
            raise CommandError(f"--map takes alias=upstream pairs, got {pair!r}")
        mapping[alias.strip()] = upstream.strip()
    return mapping


class Command(BaseCommand):
    help = "Manage upstream channels. `channel add` prints the new channel id."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("--name", required=True)
        add.add_argument("--type", required=True, choices=Channel.Type.values)
        add.add_argument("--base-url", required=True, help="as the provider's SDK takes it")
        add.add_argument("--api-key", required=True, help="comma-separated for several keys")
        add.add_argument("--models", required=True, help="m1,m2")
        add.add_argument("--priority", type=int, default=0)
        add.add_argument("--weight", type=int, default=1)
        add.add_argument("--map", help="alias=upstream,...")
        add.add_argument("--group", help="pricing groups served, comma-separated")
        add.add_argument("--api-version", help="azure-openai api-version")

    def handle(self, *args: Any, **opts: Any) -> None:
        options = {"api_version": opts["api_version"]} if opts["api_version"] else {}
        try:
            channel = channel_create(
                name=opts["name"],
                type=opts["type"],
                base_url=opts["base_url"],
                api_keys=csv_arg(opts["api_key"]),
                models=csv_arg(opts["models"]),
                model_map=_model_map(opts["map"]),
                groups=csv_arg(opts["group"]),
                priority=opts["priority"],
                weight=opts["weight"],
                options=options,
            )
        except InvalidChannel as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(channel.pk))
