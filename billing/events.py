"""Provider callbacks: stored raw first (unique per provider event id), then processed.

Storing first means a crash between receipt and processing loses nothing (the row stays
unprocessed and is retried), and a duplicate delivery is recognised by the unique key.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import OperationalError, transaction
from django.utils import timezone

from billing.exceptions import PaymentMismatch, PaymentNotReady
from billing.models import PaymentEvent
from billing.provider_events import stripe_subscriptions
from billing.provider_events.demo import callback_apply as demo_apply
from billing.provider_events.epay import callback_apply as epay_apply
from billing.provider_events.stripe_topups import event_apply as topup_apply

log = logging.getLogger(__name__)

NOT_READY_RETRIES = 12


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    ALREADY = "already processed"
    NOT_READY = "not ready"
    REJECTED = "rejected"


def payment_event_record(
    *, provider: str, event_id: str, event_type: str, payload: str, enqueue: bool = True
) -> tuple[PaymentEvent, bool]:
    """Store a verified callback once; returns (event, created).

    With ENQUEUE, a not yet processed event is queued for `process_payment_event` when
    the transaction commits (a duplicate delivery re-queues it; processing is idempotent).
    """
    with transaction.atomic():
        event, created = PaymentEvent.objects.get_or_create(
            provider=provider,
            event_id=event_id,
            defaults={"event_type": event_type[:100], "payload": payload},
        )
        if enqueue and event.processed_at is None:
            pk = event.pk
            transaction.on_commit(lambda: process_payment_event.delay(pk))
    return event, created


# Defined beside the code that enqueues it (billing/tasks.py imports it for Celery's
# autodiscovery); the name stays the one queued messages and the beat schedule carry.
@shared_task(
    bind=True,
    max_retries=NOT_READY_RETRIES,
    autoretry_for=(OSError, OperationalError),
    name="billing.tasks.process_payment_event",
)
def process_payment_event(self: Any, event_pk: int) -> str:
    """Apply a stored provider event; retries (backing off) while its payment is unknown."""
    outcome = payment_event_process(event_pk=event_pk)
    if outcome == Outcome.NOT_READY:
        raise self.retry(countdown=min(5 * 2**self.request.retries, 900))
    return str(outcome)


def payment_event_process(*, event_pk: int) -> Outcome:
    """Apply a stored event exactly once. Atomic with what it changes.

    NOT_READY (the payment it refers to is not known yet) leaves the event unprocessed
    for a retry; a mismatched amount marks it processed with the error and credits nothing.
    """

    def stripe_apply(event: dict[str, Any]) -> str:
        # One endpoint, two kinds of purchase: plans' events, and top-ups' (the rest).
        if stripe_subscriptions.handles(event):
            return stripe_subscriptions.event_apply(event)
        return topup_apply(event)

    appliers: dict[str, Callable[[dict[str, Any]], str]] = {
        "stripe": stripe_apply,
        "epay": epay_apply,
        "demo": demo_apply,
    }
    with transaction.atomic():
        event = PaymentEvent.objects.select_for_update().get(pk=event_pk)
        if event.processed_at is not None:
            return Outcome.ALREADY
        event.attempts += 1
        apply = appliers.get(event.provider)
        try:
            with transaction.atomic():
                if apply is None:
                    raise PaymentMismatch(f"no processor for {event.provider} events")
                result = apply(json.loads(event.payload))
        except PaymentNotReady as exc:
            event.error = str(exc)[:500]
            event.save(update_fields=["attempts", "error"])
            return Outcome.NOT_READY
        except PaymentMismatch as exc:
            log.error("payment event %s rejected: %s", event.event_id, exc)
            event.error = str(exc)[:500]
            event.processed_at = timezone.now()
            event.save(update_fields=["attempts", "error", "processed_at"])
            return Outcome.REJECTED
        event.error = "" if not result.startswith("ignored") else result[:500]
        event.processed_at = timezone.now()
        event.save(update_fields=["attempts", "error", "processed_at"])
    return Outcome.PROCESSED
