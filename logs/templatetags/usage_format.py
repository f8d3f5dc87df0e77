"""Template tags for the usage pages: query strings that keep the current filters.

Money and times use accounts/templatetags/portal_format (`money`, `when`, ...)."""

from __future__ import annotations

from django import template
from django.http import QueryDict

register = template.Library()


@register.simple_tag
def with_params(params: QueryDict, **changes: object) -> str:
    """The current query string with CHANGES applied ("" removes a parameter)."""
    query = params.copy()
    for name, value in changes.items():
        if value in ("", None):
            query.pop(name, None)
        else:
            query[name] = str(value)
    return "?" + query.urlencode() if query else "?"
