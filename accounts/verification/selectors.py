"""Reads on verification requests: an organization's current one, who may submit, whom
to email, and the admin's queue."""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When

from accounts.models import (
    Membership,
    Organization,
    User,
    VerificationDocument,
    VerificationRequest,
)

# Owners and admins speak for the organization; billing members and members do not.
SUBMITTING_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})


def verification_can_submit(*, membership: Membership) -> bool:
    return membership.role in SUBMITTING_ROLES


def verification_latest(*, organization: Organization) -> VerificationRequest | None:
    """The organization's most recent request, open or closed."""
    return VerificationRequest.objects.filter(organization=organization).first()


def verification_documents(*, verification: VerificationRequest) -> QuerySet[VerificationDocument]:
    """The request's documents without their bytes (names, sizes, hashes, purge times)."""
    return verification.documents.defer("data")


def owner_emails(*, organization: Organization) -> list[str]:
    """The addresses of the organization's active owners."""
    return sorted(
        User.objects.filter(
            membership__organization=organization,
            membership__role=Membership.Role.OWNER,
            is_active=True,
        )
        .exclude(email="")
        .values_list("email", flat=True)
    )


def verification_queue() -> QuerySet[VerificationRequest]:
    """Requests waiting on staff first (oldest submission first), then the others."""
    waiting = Case(
        When(state=VerificationRequest.State.SUBMITTED, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        VerificationRequest.objects.select_related("organization", "submitted_by")
        .annotate(waiting=waiting)
        .order_by("waiting", "submitted_at", "pk")
    )
