from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import user_create
from billing.models import Plan

# The sample plan an embedded demo sells (docs/plans.md): $20 a month, $5 of usage per
# rolling 5 hours, $40 per rolling week, $150 per calendar month (micro-USD).
CODING_PRO = {
    "name": "Coding Pro",
    "description": "For coding agents: Claude Code, Codex CLI, Gemini CLI and the rest.",
    "price": 2000,
    "currency": "usd",
    "interval": Plan.Interval.MONTH,
    "window_5h_limit": 5_000_000,
    "week_limit": 40_000_000,
    "month_limit": 150_000_000,
}


class Command(BaseCommand):
    help = (
        "Create the demo admin once (DEMO_ADMIN_EMAIL / DEMO_ADMIN_PASSWORD or generated) "
        'and the sample "Coding Pro" plan when no plan exists yet.'
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not Plan.objects.exists():
            Plan.objects.create(slug="coding-pro", **CODING_PRO)
            self.stdout.write('Sample plan created: "Coding Pro" ($20/month); edit it in the admin')
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@example.com")
        if User.objects.filter(is_superuser=True).exists():
            return
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_create(email=email, password=password, is_admin=True, email_verified=True)
        self.stdout.write(f"Demo admin created: {email} / {password} (shown once)")
