from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.arguments import usd_arg
from billing.services import price_set

_FLAGS = {
    "input": "input_per_1m",
    "output": "output_per_1m",
    "cache_read": "cache_read_per_1m",
    "cache_write": "cache_write_per_1m",
    "cache_write_1h": "cache_write_1h_per_1m",
    "per_request": "per_request",
    "per_image": "per_image",
    "per_second": "per_second",
}


class Command(BaseCommand):
    help = "Set a model's prices in USD (per 1M tokens, or per request/image/second)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        setp = sub.add_parser("set")
        setp.add_argument("model")
        setp.add_argument("--input", metavar="USD_PER_1M")
        setp.add_argument("--output", metavar="USD_PER_1M")
        setp.add_argument("--cache-read", metavar="USD_PER_1M")
        setp.add_argument("--cache-write", metavar="USD_PER_1M")
        setp.add_argument("--cache-write-1h", metavar="USD_PER_1M")
        setp.add_argument("--per-request", metavar="USD")
        setp.add_argument("--per-image", metavar="USD")
        setp.add_argument("--per-second", metavar="USD")
        setp.add_argument("--max-output-tokens", type=int, metavar="N")

    def handle(self, *args: Any, **opts: Any) -> None:
        fields: dict[str, int | None] = {
            field: usd_arg(opts[flag], "--" + flag.replace("_", "-"))
            for flag, field in _FLAGS.items()
            if opts[flag] is not None
        }
        if opts["max_output_tokens"] is not None:
            fields["max_output_tokens"] = opts["max_output_tokens"]
        if not fields:
            raise CommandError("give at least one price, e.g. --input 2.5 --output 10")
        try:
            price = price_set(model=opts["model"], **fields)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(price.model)
