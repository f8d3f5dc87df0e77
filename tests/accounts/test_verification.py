"""Verified organizations: submission from the portal (documents checked by content and
encrypted at rest, one open request per organization), who may submit, staff approve,
reject, ask for more and revoke (each audited and emailed), the documents' retention
purge, and what verification unlocks (large top-ups, credit lines)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.db import IntegrityError, connection, transaction
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import (
    AuditEvent,
    Membership,
    Organization,
    User,
    VerificationDocument,
    VerificationRequest,
)
from accounts.services import organization_create, user_create
from accounts.support.attachments import CheckedFile
from accounts.verification.documents import MAX_BYTES
from accounts.verification.exceptions import VerificationRefused
from accounts.verification.forms import VerificationForm
from accounts.verification.services import (
    VerificationDetails,
    organization_verification_revoke,
    verification_approve,
    verification_documents_purge,
    verification_reject,
    verification_request_more,
    verification_submit,
    verification_withdraw,
)
from billing.exceptions import InvalidTopUp
from billing.models import Wallet
from billing.services import wallet_credit_limit_set
from billing.topups import topup_quote

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256))
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + bytes(range(256))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
URL = "/dashboard/org/verification/"
DETAILS = VerificationDetails(
    legal_name="Acme GmbH",
    registration_number="HRB 12345",
    country="DE",
    address="Hauptstr. 1\n10115 Berlin",
    contact_name="Ada Lovelace",
    contact_email="ada@acme.example",
)


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _client(user: User, organization: Organization | None = None) -> Client:
    client = Client()
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[ACTIVE_ORG_SESSION_KEY] = organization.pk
        session.save()
    return client


def _form_data(**fields: object) -> dict[str, object]:
    return {
        "legal_name": DETAILS.legal_name,
        "registration_number": DETAILS.registration_number,
        "country": "de",
        "address": DETAILS.address,
        "contact_name": DETAILS.contact_name,
        "contact_email": DETAILS.contact_email,
        "documents": [_upload("register.pdf", PDF)],
    } | fields


def _membership(user: User, organization: Organization) -> Membership:
    return Membership.objects.get(user=user, organization=organization)


def _pdf() -> CheckedFile:
    return CheckedFile(name="register.pdf", content_type="application/pdf", data=PDF)


def _submit(owner: User, org: Organization, now: dt.datetime = T0) -> VerificationRequest:
    return verification_submit(
        membership=_membership(owner, org), details=DETAILS, files=[_pdf()], now=now
    )


def _events(org: Organization) -> list[str]:
    return [
        e.meta["verification"]
        for e in AuditEvent.objects.filter(
            organization=org, kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED
        ).order_by("pk")
        if "verification" in e.meta
    ]


@pytest.fixture
def staff(db: None) -> User:
    user = user_create(email="review@tokenhub.example", password="staff-pass-123")
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def team(owner: User) -> Organization:
    return organization_create(name="Acme", owner=owner)


def _join(team: Organization, email: str, role: str) -> User:
    user = user_create(email=email, password="member-pass-123")
    Membership.objects.create(user=user, organization=team, role=role)
    return user


# --- Submission ------------------------------------------------------------------------


def test_it_submits_details_and_an_encrypted_document_and_emails_owners_and_operator(
    owner: User, team: Organization, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(owner, team).post(URL, _form_data())
    assert response.status_code == 302
    request = VerificationRequest.objects.get(organization=team)
    assert request.state == VerificationRequest.State.SUBMITTED
    assert (request.legal_name, request.country) == ("Acme GmbH", "DE")
    document = VerificationDocument.objects.get(request=request)
    assert (document.name, document.content_type, document.size) == (
        "register.pdf",
        "application/pdf",
        len(PDF),
    )
    assert len(document.sha256) == 64
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data FROM accounts_verificationdocument WHERE id = %s", [document.pk]
        )
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:") and b"%PDF" not in stored.encode()
    assert _events(team) == ["submitted"]
    recipients = sorted(address for m in mail.outbox for address in m.to)
    assert recipients == ["owner@example.com", "review@tokenhub.example"]
    assert all("register.pdf" not in m.body for m in mail.outbox)
    page = _client(owner, team).get(URL).content.decode()
    assert "Under review" in page and 'id="verification-form"' not in page


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ([_upload("register.pdf", ELF)], "is not a PDF, PNG or JPEG file"),
        ([_upload("notes.pdf", b"plain text, not a PDF\n")], "is not a PDF, PNG or JPEG file"),
        ([_upload("empty.pdf", b"")], "is empty"),
        ([_upload("big.pdf", PDF + b"\x00" * MAX_BYTES)], "larger than 10 MB"),
        ([_upload(f"p{i}.pdf", PDF) for i in range(6)], "At most 5 documents"),
        ([], "This field is required"),
    ],
)
def test_it_refuses_documents_by_content_size_and_count(
    owner: User, team: Organization, files: list[SimpleUploadedFile], error: str
) -> None:
    response = _client(owner, team).post(URL, _form_data(documents=files))
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not VerificationRequest.objects.exists()


def test_a_png_sent_as_pdf_is_kept_as_png(owner: User, team: Organization) -> None:
    response = _client(owner, team).post(URL, _form_data(documents=[_upload("scan.pdf", PNG)]))
    assert response.status_code == 302
    assert VerificationDocument.objects.get().name == "scan.png"


def test_one_open_request_at_a_time(owner: User, team: Organization) -> None:
    _submit(owner, team)
    with pytest.raises(VerificationRefused, match="under way"):
        _submit(owner, team)
    response = _client(owner, team).post(URL, _form_data())
    assert response.status_code == 302 and VerificationRequest.objects.count() == 1
    # The database holds the rule too, whatever writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationRequest.objects.create(organization=team, state="more_info", **asdict(DETAILS))


def test_a_withdrawn_request_lets_a_new_one_in(owner: User, team: Organization) -> None:
    first = _submit(owner, team)
    _client(owner, team).post(reverse("verification-withdraw", args=[first.pk]))
    first.refresh_from_db()
    assert first.state == "withdrawn" and first.decided_at is not None
    assert _submit(owner, team).pk != first.pk
    assert _events(team) == ["submitted", "withdrawn", "submitted"]


# --- Access control --------------------------------------------------------------------


@pytest.mark.parametrize("role", [Membership.Role.MEMBER, Membership.Role.BILLING])
def test_members_and_billing_see_the_state_but_cannot_submit(
    owner: User, team: Organization, role: str
) -> None:
    user = _join(team, "someone@example.com", role)
    client = _client(user, team)
    page = client.get(URL)
    assert page.status_code == 200 and 'id="verification-form"' not in page.content.decode()
    assert client.post(URL, _form_data()).status_code == 403
    request = _submit(owner, team)
    assert client.post(reverse("verification-withdraw", args=[request.pk])).status_code == 403
    request.refresh_from_db()
    assert request.state == "submitted"


def test_an_admin_may_submit(owner: User, team: Organization) -> None:
    admin = _join(team, "admin@acme.example", Membership.Role.ADMIN)
    assert _client(admin, team).post(URL, _form_data()).status_code == 302


def test_another_organizations_request_is_not_found(
    owner: User, team: Organization, stranger: User
) -> None:
    request = _submit(owner, team)
    response = _client(stranger).post(reverse("verification-withdraw", args=[request.pk]))
    assert response.status_code == 404
    request.refresh_from_db()
    assert request.state == "submitted"
    assert "Acme GmbH" not in _client(stranger).get(URL).content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(db: None) -> None:
    assert Client().get(URL).status_code == 302


# --- Staff review ----------------------------------------------------------------------


def test_staff_approve_in_the_admin_and_the_badge_shows(
    owner: User, team: Organization, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    request = _submit(owner, team)
    mail.outbox.clear()
    admin = _client(staff)
    change = reverse("admin:accounts_verificationrequest_change", args=[request.pk])
    page = admin.get(change).content.decode()
    assert "register.pdf" in page and "HRB 12345" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(change, {"decision": "approve", "message": ""})
    assert response.status_code == 302
    team.refresh_from_db()
    request.refresh_from_db()
    assert team.verified_at is not None and request.state == "approved"
    assert request.reviewed_by == staff and request.decided_at is not None
    assert _events(team) == ["submitted", "approved"]
    event = AuditEvent.objects.filter(organization=team).latest("pk")
    assert event.actor == staff
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert "verified" in mail.outbox[0].subject
    assert 'id="verified-badge"' in _client(owner, team).get("/dashboard/org/").content.decode()


def test_the_admin_refuses_a_rejection_without_a_reason(
    owner: User, team: Organization, staff: User
) -> None:
    request = _submit(owner, team)
    change = reverse("admin:accounts_verificationrequest_change", args=[request.pk])
    response = _client(staff).post(change, {"decision": "reject", "message": ""})
    assert response.status_code == 200
    assert "needs a message" in response.content.decode()
    request.refresh_from_db()
    assert request.state == "submitted"


def test_staff_download_a_document_decrypted(owner: User, team: Organization, staff: User) -> None:
    request = _submit(owner, team)
    document = request.documents.get()
    url = reverse("admin:accounts_verificationrequest_document", args=[request.pk, document.pk])
    response = _client(staff).get(url)
    assert response.content == PDF
    assert response["Content-Disposition"].startswith("attachment")
    assert _client(owner).get(url).status_code == 302  # not staff: to the admin's login


def test_a_rejection_carries_its_reason_to_the_owners(
    owner: User, team: Organization, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    request = _submit(owner, team)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        verification_reject(verification=request, staff=staff, reason="The extract is expired.")
    request.refresh_from_db()
    team.refresh_from_db()
    assert request.state == "rejected" and team.verified_at is None
    assert "The extract is expired." in mail.outbox[0].body
    assert _events(team) == ["submitted", "rejected"]
    assert "The extract is expired." in _client(owner, team).get(URL).content.decode()
    with pytest.raises(VerificationRefused):
        verification_approve(verification=request, staff=staff)


def test_more_information_then_the_customer_answers_and_resubmits(
    owner: User, team: Organization, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    request = _submit(owner, team)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        verification_request_more(
            verification=request, staff=staff, message="Please add the shareholder list."
        )
    assert "Please add the shareholder list." in mail.outbox[0].body
    client = _client(owner, team)
    page = client.get(URL).content.decode()
    assert "Please add the shareholder list." in page and 'value="HRB 12345"' in page
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL,
            _form_data(
                note="Attached.", documents=[_upload("shareholders.png", PNG)], country="DE"
            ),
        )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == "submitted" and request.customer_note == "Attached."
    assert sorted(request.documents.values_list("name", flat=True)) == [
        "register.pdf",
        "shareholders.png",
    ]
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "owner@example.com",
        "review@tokenhub.example",
    ]
    assert _events(team) == ["submitted", "more_info_requested", "resubmitted"]


def test_only_staff_review(owner: User, team: Organization) -> None:
    request = _submit(owner, team)
    with pytest.raises(VerificationRefused):
        verification_approve(verification=request, staff=owner)
    request.refresh_from_db()
    assert request.state == "submitted"


def test_staff_revoke_a_verification_with_a_reason(
    owner: User, team: Organization, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    request = verification_approve(verification=_submit(owner, team), staff=staff)
    change = reverse("admin:accounts_verificationrequest_change", args=[request.pk])
    admin = _client(staff)
    assert admin.post(change, {"decision": "revoke", "message": ""}).status_code == 200
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(change, {"decision": "revoke", "message": "Company dissolved."})
    team.refresh_from_db()
    assert team.verified_at is None
    event = AuditEvent.objects.filter(organization=team).latest("pk")
    assert event.meta["verification"] == "revoked" and event.meta["reason"] == "Company dissolved."
    assert "no longer a verified organization" in mail.outbox[0].body
    with pytest.raises(VerificationRefused):
        organization_verification_revoke(organization=team, staff=staff, reason="again")
    # A new request may be sent.
    assert _submit(owner, team).state == "submitted"


# --- Retention -------------------------------------------------------------------------


def test_documents_are_purged_after_the_retention_period_keeping_the_record(
    owner: User, team: Organization, staff: User
) -> None:
    request = verification_approve(verification=_submit(owner, team), staff=staff, now=T0)
    other = organization_create(name="Beta", owner=owner)
    pending = _submit(owner, other, now=T0)  # open: kept however old
    digest = request.documents.get().sha256
    assert verification_documents_purge(now=T0 + dt.timedelta(days=89, hours=23)) == 0
    assert verification_documents_purge(now=T0 + dt.timedelta(days=90)) == 1
    assert verification_documents_purge(now=T0 + dt.timedelta(days=91)) == 0
    document = request.documents.get()
    assert document.data is None and document.purged_at == T0 + dt.timedelta(days=90)
    assert (document.name, document.size, document.sha256) == ("register.pdf", len(PDF), digest)
    assert pending.documents.get().data is not None
    request.refresh_from_db()
    assert request.legal_name == "Acme GmbH" and request.state == "approved"
    url = reverse("admin:accounts_verificationrequest_document", args=[request.pk, document.pk])
    assert _client(staff).get(url).status_code == 404
    change = reverse("admin:accounts_verificationrequest_change", args=[request.pk])
    assert "register.pdf (deleted 2026-05-31)" in _client(staff).get(change).content.decode()


@override_settings(VERIFICATION_DOCUMENT_RETENTION_DAYS=7)
def test_withdrawn_documents_follow_the_setting(owner: User, team: Organization) -> None:
    request = verification_withdraw(
        membership=_membership(owner, team), verification=_submit(owner, team), now=T0
    )
    assert verification_documents_purge(now=T0 + dt.timedelta(days=6)) == 0
    assert verification_documents_purge(now=T0 + dt.timedelta(days=7)) == 1
    assert request.documents.get().purged_at is not None


def test_the_purge_runs_daily_from_beat() -> None:
    from django.conf import settings as django_settings

    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-verification-documents"]
    assert entry["task"] == "accounts.verification.tasks.verification_documents_purge"
    from tokenhub.celery import app

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


# --- What verification unlocks ---------------------------------------------------------


@override_settings(VERIFICATION_REQUIRED_ABOVE_USD="100")
def test_top_ups_above_the_threshold_need_a_verified_organization(
    owner: User, team: Organization, staff: User
) -> None:
    assert topup_quote(organization=team, amount_usd="100").amount_usd == Decimal(100)
    with pytest.raises(InvalidTopUp, match="above 100 USD need a verified organization"):
        topup_quote(organization=team, amount_usd="100.01")
    verification_approve(verification=_submit(owner, team), staff=staff)
    team.refresh_from_db()
    assert topup_quote(organization=team, amount_usd="500").amount_usd == Decimal(500)


@override_settings(VERIFICATION_REQUIRED_ABOVE_USD="")
def test_without_a_threshold_any_top_up_goes(team: Organization) -> None:
    assert topup_quote(organization=team, amount_usd="5000").amount_usd == Decimal(5000)


def test_credit_lines_need_a_verified_organization(
    owner: User, team: Organization, staff: User
) -> None:
    with pytest.raises(ValueError, match="verified organizations only"):
        wallet_credit_limit_set(organization=team, limit=1_000_000, reason="net 30", set_by=staff)
    wallet = Wallet.objects.get(organization=team)
    url = reverse("admin:billing_wallet_credit_line", args=[wallet.pk])
    response = _client(staff).post(url, {"limit": "500", "reason": "net 30"})
    assert response.status_code == 200
    assert "verified organizations only" in response.content.decode()
    wallet.refresh_from_db()
    assert wallet.credit_limit == 0
    # Withdrawing a line needs no verification; granting one to a verified organization works.
    wallet_credit_limit_set(organization=team, limit=0, reason="none", set_by=staff)
    verification_approve(verification=_submit(owner, team), staff=staff)
    team.refresh_from_db()
    wallet = wallet_credit_limit_set(organization=team, limit=1_000_000, reason="ok", set_by=staff)
    assert wallet.credit_limit == 1_000_000


# --- The form on untrusted input -------------------------------------------------------


_text = st.text(max_size=300)
_bytes = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([PDF, PNG, ELF, b"\xff\xd8\xff\xe0JFIF"]).map(lambda b: b + b"x"),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    legal_name=st.one_of(_text, st.just(DETAILS.legal_name)),
    registration_number=st.one_of(_text, st.just(DETAILS.registration_number)),
    country=st.one_of(_text, st.sampled_from(["de", "US", "XX", " fr "])),
    address=st.one_of(_text, st.just(DETAILS.address)),
    contact_name=st.one_of(_text, st.just(DETAILS.contact_name)),
    contact_email=st.one_of(_text, st.emails()),
    files=st.lists(st.tuples(_text, _bytes), max_size=7),
)
def test_the_form_never_crashes_and_only_accepts_clean_values(
    legal_name: str,
    registration_number: str,
    country: str,
    address: str,
    contact_name: str,
    contact_email: str,
    files: list[tuple[str, bytes]],
) -> None:
    uploads: list[UploadedFile] = [SimpleUploadedFile(name or "f", data) for name, data in files]
    form = VerificationForm(
        {
            "legal_name": legal_name,
            "registration_number": registration_number,
            "country": country,
            "address": address,
            "contact_name": contact_name,
            "contact_email": contact_email,
        },
        MultiValueDict({"documents": uploads}),
    )
    if not form.is_valid():
        return
    details = form.details()
    assert len(details.country) == 2 and details.country.isupper()
    assert details.legal_name and "\n" not in details.legal_name
    assert details.address and len(details.address) <= 1000
    documents = form.cleaned_data["documents"]
    assert 1 <= len(documents) <= 5
    for document in documents:
        assert document.content_type in {"application/pdf", "image/png", "image/jpeg"}
        assert "/" not in document.name and "\\" not in document.name
