from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import user_create


class Command(BaseCommand):
    help = "Create the demo admin once (DEMO_ADMIN_EMAIL / DEMO_ADMIN_PASSWORD or generated)."

    def handle(self, *args: Any, **opts: Any) -> None:
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@example.com")
        if User.objects.filter(is_superuser=True).exists():
            return
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_create(email=email, password=password, is_admin=True, email_verified=True)
        self.stdout.write(f"Demo admin created: {email} / {password} (shown once)")
