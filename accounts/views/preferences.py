"""The theme switcher: light, dark or auto (the browser's choice), kept in the `theme` cookie.

The language switcher is Django's own `set_language` view (`/i18n/setlang/`); both are plain
POST forms in the top bar, so they work without JavaScript.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

THEMES = ("light", "dark", "auto")
THEME_COOKIE = "theme"
THEME_COOKIE_AGE = 365 * 24 * 3600


def _next_url(request: HttpRequest) -> str:
    """Where to go back to: `next`, else the referring page, if on this site; else "/"."""
    for candidate in (request.POST.get("next"), request.headers.get("referer")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return "/"


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    theme = request.POST.get("theme", "")
    if theme not in THEMES:
        return HttpResponseBadRequest(
            _("Unknown theme: choose light, dark or auto."), content_type="text/plain"
        )
    response = HttpResponseRedirect(_next_url(request))
    if theme == "auto":
        response.delete_cookie(THEME_COOKIE, samesite="Lax")  # auto is the default
    else:
        response.set_cookie(
            THEME_COOKIE,
            theme,
            max_age=THEME_COOKIE_AGE,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response
