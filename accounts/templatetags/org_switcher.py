"""`{% org_switcher %}`: the signed-in user's organizations as a POST form (portal sidebar)."""

from __future__ import annotations

from typing import Any

from django import template

from accounts.selectors import memberships_of

register = template.Library()


@register.inclusion_tag("accounts/partials/org_switcher.html", takes_context=True)
def org_switcher(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    active = getattr(request, "organization", None)
    memberships = list(memberships_of(user=request.user)) if request.user.is_authenticated else []
    return {
        "memberships": memberships,
        "active_id": active.pk if active is not None else None,
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }
