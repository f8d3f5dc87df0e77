"""/announcements/ and dismissing the banner."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.views.decorators.http import require_POST

from accounts.announcements import announcement_dismiss, announcement_in, announcements_published


def announcements_page(request: HttpRequest) -> HttpResponse:
    language = get_language() or "en"
    items = [announcement_in(a, language) for a in announcements_published()[:50]]
    return render(request, "accounts/announcements.html", {"announcements": items})


@require_POST
def announcement_dismiss_view(request: HttpRequest, announcement_id: int) -> HttpResponse:
    announcement_dismiss(request, announcement_id=announcement_id)
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return HttpResponseRedirect(target)
