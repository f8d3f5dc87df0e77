"""Portal pages for API keys: list, create (secret shown once), edit, rotate, disable, delete.

Input is validated by the same serializer as `/api/v1/keys`, so both accept and refuse the
same settings; caps are typed in USD here (KeyCapsForm) and handed over in micro-USD. The
list and the edit page show each cap with its use now.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, capability_required
from accounts.exceptions import AccountsError
from accounts.forms import KeyCapsForm
from accounts.http import PortalRequest
from accounts.models import ApiKey
from accounts.selectors import (
    keys_visible_to,
    user_can_create_keys,
)
from accounts.serializers import ApiKeyWriteSerializer
from accounts.services import CAP_FIELDS, key_create, key_delete, key_rotate, key_update
from billing.cap_display import cap_rows, key_cap_uses, organization_cap_uses
from billing.models import PricingGroup
from money import InvalidAmount, micros_to_usd, usd_to_micros

# The form's labels for the serializer's field names, in its error messages.
_FIELD_LABELS = {
    "name": gettext_lazy("Name"),
    "scopes": gettext_lazy("Scopes"),
    "expires_at": gettext_lazy("Expires"),
    "allowed_models": gettext_lazy("Allowed models"),
    "allowed_ips": gettext_lazy("Allowed IP networks"),
    "spend_limit": gettext_lazy("Spend limit"),
    "spend_limit_period": gettext_lazy("Spend limit period"),
    "rpm_limit": gettext_lazy("Requests per minute"),
    "tpm_limit": gettext_lazy("Tokens per minute"),
    "pricing_group": gettext_lazy("Pricing group"),
    **{name: KeyCapsForm.base_fields[name].label for name in (*CAP_FIELDS, "show_cost")},
}


def _lines(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace(",", "\n").splitlines() if part.strip()]


def _form_data(post: QueryDict, *, creating: bool) -> tuple[dict[str, Any], list[str], KeyCapsForm]:
    """The portal form as the API serializer's input; errors the serializer cannot see."""
    data: dict[str, Any] = {
        "name": post.get("name", ""),
        "allowed_models": _lines(post.get("allowed_models", "")),
        "allowed_ips": _lines(post.get("allowed_ips", "")),
        "spend_limit_period": post.get("spend_limit_period", ApiKey.LimitPeriod.TOTAL),
        "expires_at": post.get("expires_at") or None,
        "rpm_limit": post.get("rpm_limit") or None,
        "tpm_limit": post.get("tpm_limit") or None,
    }
    errors = []
    spend = post.get("spend_limit_usd", "").strip()
    try:
        data["spend_limit"] = usd_to_micros(spend) if spend else None
    except InvalidAmount:
        errors.append(_("The spend limit must be an amount in USD, like 25 or 2.50."))
    caps = KeyCapsForm(post)
    if caps.is_valid():
        data |= caps.caps()
        data["show_cost"] = caps.cleaned_data["show_cost"]
    else:
        errors += [
            f"{caps.fields[name].label}: {problem}"
            for name, problems in caps.errors.items()
            for problem in problems
        ]
    if creating:
        data["scopes"] = post.getlist("scopes") or [ApiKey.Scope.RELAY]
    if "pricing_group" in post:  # the field is only rendered for staff
        data["pricing_group"] = post.get("pricing_group") or None
    return data, errors, caps


def _validated(
    request: PortalRequest, *, creating: bool
) -> tuple[dict[str, Any] | None, list[str], KeyCapsForm]:
    data, errors, caps = _form_data(request.POST, creating=creating)
    form = ApiKeyWriteSerializer(data=data, partial=not creating, context={"request": request})
    if not form.is_valid():
        for field, problems in form.errors.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                errors.append(f"{_FIELD_LABELS.get(field, field)}: {problem}")
    return (dict(form.validated_data) if not errors else None), errors, caps


def _page(request: PortalRequest, status: int = 200, **context: Any) -> HttpResponse:
    membership = request.membership
    # Each key with its caps' use now, as pairs the template unpacks.
    keys = [
        (key, cap_rows(key_cap_uses(key=key))) for key in keys_visible_to(membership=membership)
    ]
    context.setdefault("caps_form", KeyCapsForm(initial={"show_cost": True}))
    return render(
        request,
        "accounts/keys.html",
        {
            "section": "keys",
            "keys": keys,
            "can_create": user_can_create_keys(user=request.user),
            "pricing_groups": PricingGroup.objects.order_by("name")
            if request.user.is_staff
            else None,
            "periods": ApiKey.LimitPeriod.choices,
            **context,
        },
        status=status,
    )


@capability_required(Capability.USE_KEYS)
@require_http_methods(["GET", "POST"])
def keys_page(request: PortalRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    if not user_can_create_keys(user=request.user):
        messages.error(request, _("Verify your email address before creating keys."))
        return _page(request, status=403)
    settings, errors, caps = _validated(request, creating=True)
    if settings is None:
        return render_errors(request, errors, caps)
    try:
        key, secret = key_create(
            organization=request.organization,
            created_by=request.user,
            **settings,
        )
    except AccountsError as exc:
        return render_errors(request, [str(exc)], caps)
    # The secret is rendered into this response only; it is never stored or shown again.
    response = _page(request, new_key=key, secret=secret)
    response["Cache-Control"] = "no-store"
    return response


def render_errors(request: PortalRequest, errors: list[str], caps: KeyCapsForm) -> HttpResponse:
    return _page(request, status=400, errors=errors, form=request.POST, caps_form=caps)


def _key(request: PortalRequest, key_id: int) -> ApiKey:
    membership = request.membership
    return get_object_or_404(keys_visible_to(membership=membership), pk=key_id)


@capability_required(Capability.USE_KEYS)
@require_http_methods(["GET", "POST"])
def key_edit(request: PortalRequest, key_id: int) -> HttpResponse:
    key = _key(request, key_id)
    errors: list[str] = []
    caps = KeyCapsForm(
        initial={**{name: getattr(key, name) for name in CAP_FIELDS}, "show_cost": key.show_cost}
    )
    if request.method == "POST":
        settings, errors, caps = _validated(request, creating=False)
        if settings is not None:
            try:
                key_update(key=key, actor=request.user, **settings)
            except AccountsError as exc:
                errors = [str(exc)]
            else:
                messages.success(request, _("Key settings saved."))
                return redirect("portal-keys")
            key.refresh_from_db()  # the page shows the stored settings beside the form
    organization = request.organization
    context = {
        "section": "keys",
        "key": key,
        "errors": errors,
        "caps_form": caps,
        "key_caps": cap_rows(key_cap_uses(key=key)),
        "organization_caps": cap_rows(organization_cap_uses(organization=organization)),
        "spend_limit_usd": micros_to_usd(key.spend_limit) if key.spend_limit is not None else "",
        "periods": ApiKey.LimitPeriod.choices,
        "pricing_groups": PricingGroup.objects.order_by("name") if request.user.is_staff else None,
    }
    return render(request, "accounts/key_edit.html", context, status=400 if errors else 200)


@capability_required(Capability.USE_KEYS)
@require_POST
def key_status(request: PortalRequest, key_id: int) -> HttpResponse:
    key = _key(request, key_id)
    wanted = request.POST.get("status", "")
    try:
        key_update(key=key, actor=request.user, status=wanted)
    except AccountsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("Key enabled.") if wanted == ApiKey.Status.ACTIVE else _("Key disabled.")
        )
    return redirect("portal-keys")


@capability_required(Capability.USE_KEYS)
@require_POST
def key_rotate_page(request: PortalRequest, key_id: int) -> HttpResponse:
    try:
        key, secret = key_rotate(key=_key(request, key_id), actor=request.user)
    except AccountsError as exc:
        messages.error(request, str(exc))
        return redirect("portal-keys")
    response = _page(request, new_key=key, secret=secret, rotated=True)
    response["Cache-Control"] = "no-store"
    return response


@capability_required(Capability.USE_KEYS)
@require_POST
def key_delete_page(request: PortalRequest, key_id: int) -> HttpResponse:
    key_delete(key=_key(request, key_id), actor=request.user)
    messages.success(request, _("Key deleted."))
    return redirect("portal-keys")
