"""Provider callbacks and the page providers send the customer back to.

Webhooks verify first and store the raw event before anything else; nothing changes for
a callback that fails verification.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import organization_for_request
from accounts.models import Membership
from billing.events import Outcome, payment_event_process, payment_event_record
from billing.exceptions import PaymentMismatch
from billing.models import Subscription, TopUp
from billing.plans import subscription_current
from billing.provider_events import stripe_subscriptions
from billing.providers import InvalidCallback, ProviderError, ProviderUnavailable
from billing.providers import epay as epay_provider
from billing.providers import stripe as stripe_provider
from billing.topups import topup_recover

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store, queue, answer 200 fast; a Celery task does the crediting."""
    try:
        event = stripe_provider.webhook_verify(
            body=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except InvalidCallback as exc:
        log.warning("Stripe webhook refused: %s", exc)
        return JsonResponse({"error": str(exc)}, status=400)
    _, created = payment_event_record(
        provider="stripe",
        event_id=event["id"],
        event_type=str(event.get("type", "")),
        payload=request.body.decode("utf-8"),
    )
    return JsonResponse({"received": True, "duplicate": not created})


def _epay_params(request: HttpRequest) -> dict[str, str]:
    params = {k: str(v) for k, v in request.GET.items()}
    if request.method == "POST":
        params.update({k: str(v) for k, v in request.POST.items()})
    return params


@csrf_exempt
@require_http_methods(["GET", "POST"])
def epay_notify(request: HttpRequest) -> HttpResponse:
    """EPay's asynchronous notify: plain `success` once recorded and credited."""
    try:
        data = epay_provider.callback_verify(_epay_params(request))
    except InvalidCallback as exc:
        log.warning("EPay notify refused: %s", exc)
        return HttpResponse("fail", status=400, content_type="text/plain")
    outcome = _epay_record_and_apply(data)
    if outcome == Outcome.REJECTED:
        return HttpResponse("fail", status=400, content_type="text/plain")
    return HttpResponse("success", content_type="text/plain")


def _epay_record_and_apply(data: dict[str, str]) -> Outcome:
    # One event per distinct signed payload: a corrected notify is not a duplicate.
    event, _ = payment_event_record(
        provider="epay",
        event_id=f"{data['trade_no']}:{data['sign'].lower()}",
        event_type=data["trade_status"],
        payload=json.dumps(data, sort_keys=True),
        enqueue=False,
    )
    return payment_event_process(event_pk=event.pk)


def _plan_return(request: HttpRequest, canceled: bool) -> HttpResponse:
    """Back from paying for a plan: a completed Stripe checkout is applied now (the same
    idempotent path as its webhook), then the organization's plan is shown."""
    subscription: Subscription | None = None
    if request.user.is_authenticated:
        session_id = request.GET.get("plan_session", "")
        if session_id.startswith("cs_") and not canceled:
            org_ids = list(
                Membership.objects.filter(user_id=request.user.pk).values_list(
                    "organization_id", flat=True
                )
            )
            subscription = stripe_subscriptions.checkout_return(
                session_id=session_id, organization_ids=org_ids
            )
        if subscription is None:
            organization, _membership = organization_for_request(request)
            subscription = subscription_current(organization_id=organization.pk)
    context = {"plan_return": True, "subscription": subscription, "canceled": canceled}
    return render(request, "billing/return.html", context)


def payment_return(request: HttpRequest) -> HttpResponse:
    """Where the customer lands after paying. Shows the top-up's state; a signed EPay
    return is applied like its notify (the gateway's notify may come later or never)."""
    topup: TopUp | None = None
    canceled = request.GET.get("canceled") == "1"
    if "plan_session" in request.GET or "plan" in request.GET:
        return _plan_return(request, canceled)
    if request.GET.get("sign"):
        try:
            data = epay_provider.callback_verify(_epay_params(request))
        except InvalidCallback:
            data = None
        if data is not None:
            _epay_record_and_apply(data)
            topup = TopUp.objects.filter(
                provider=epay_provider.NAME, provider_ref=data["out_trade_no"]
            ).first()
    elif request.GET.get("topup", "").isdigit() and request.user.is_authenticated:
        topup = TopUp.objects.filter(
            pk=int(request.GET["topup"]),
            organization__membership__user=request.user,
        ).first()
        if topup is not None and topup.state == TopUp.State.PENDING and not canceled:
            # Back from paying: ask the provider now rather than wait for the webhook.
            try:
                topup_recover(topup=topup)
            except (ProviderError, ProviderUnavailable, PaymentMismatch) as exc:
                log.warning("status of top-up %s unknown on return: %s", topup.pk, exc)
            topup.refresh_from_db()
    context = {"topup": topup, "canceled": canceled}
    return render(request, "billing/return.html", context)
