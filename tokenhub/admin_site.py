"""The admin site: TokenHub's branding, the links operators need, the mailbox page and the
margins page (relay/margins_page.py).

Installed in place of django.contrib.admin (see the embedded-mode block of settings), so
`admin.site` and every `@admin.register` stay as they are.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from accounts.mailbox import mailbox_in_use, mailbox_messages


class TokenHubAdminSite(admin.AdminSite):
    site_header = "TokenHub administration"
    site_title = "TokenHub admin"
    index_title = "Operations"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        mailbox = path("mailbox/", self.admin_view(self.mailbox_view), name="mailbox")
        # Imported here, not above: this module is loaded with the app registry (the admin's
        # AppConfig), before any model may be imported; URLs are built once it is ready.
        from relay.margins_page import margins_page

        margins = path("margins/", self.admin_view(margins_page), name="margins")
        return [mailbox, margins, *super().get_urls()]

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["show_mailbox"] = getattr(request.user, "is_superuser", False)
        return context

    def mailbox_view(self, request: HttpRequest) -> HttpResponse:
        """Emails kept in embedded mode; superusers only (the links sign people in)."""
        if not getattr(request.user, "is_superuser", False):
            raise PermissionDenied
        context = {
            **self.each_context(request),
            "title": "Mailbox",
            "messages_kept": mailbox_messages(),
            "mailbox_in_use": mailbox_in_use(),
            "retention_hours": settings.MAILBOX_RETENTION_HOURS,
            "email_backend": settings.EMAIL_BACKEND,
        }
        return TemplateResponse(request, "admin/mailbox.html", context)


class TokenHubAdminConfig(AdminConfig):
    default_site = "tokenhub.admin_site.TokenHubAdminSite"

    def ready(self) -> None:
        super().ready()
        # allauth's email-address app is also called "Accounts": two sections of one name.
        apps.get_app_config("account").verbose_name = "Sign-in email addresses"
