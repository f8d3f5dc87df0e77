"""Support work orders: opening one in the portal (attachments checked by content, request
ids scoped to what the member may see), who sees which order, the thread with staff replies
and internal notes, emails, the admin's queue and times, data export and account deletion."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import (
    Membership,
    Organization,
    User,
    WorkOrder,
    WorkOrderAttachment,
    WorkOrderMessage,
)
from accounts.privacy import account_delete, data_export_contents
from accounts.services import key_create, organization_create, user_create
from accounts.support.attachments import MAX_BYTES, attachment_check, safe_name
from accounts.support.exceptions import AttachmentRefused, WorkOrderRefused
from accounts.support.selectors import workorder_queue
from accounts.support.services import (
    ERASED_TEXT,
    workorder_open,
    workorder_reopen,
    workorder_reply,
    workorder_set_status,
    workorder_staff_reply,
)
from logs.models import RequestLog
from tests.accounts.privacy.test_delete import database_hits

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + bytes(range(256))
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _client(user: User, organization: Organization | None = None) -> Client:
    client = Client()
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[ACTIVE_ORG_SESSION_KEY] = organization.pk
        session.save()
    return client


def _log(organization: Organization, key_id: int | None, request_id: str) -> RequestLog:
    return RequestLog.objects.create(
        request_id=request_id,
        organization_id=organization.pk,
        api_key_id=key_id,
        endpoint="chat",
        model="gpt-4o-mini",
        status_code=502,
        error_code="upstream_error",
    )


def _open(client: Client, **fields: object) -> Any:
    data = {
        "category": "technical",
        "subject": "Calls fail",
        "body": "Since 9:00 every call answers 502.",
        "request_ids": "",
    } | fields
    return client.post("/dashboard/support/new/", data)


def _membership(user: User, organization: Organization) -> Membership:
    return Membership.objects.get(user=user, organization=organization)


@pytest.fixture
def staff(db: None) -> User:
    user = user_create(email="help@tokenhub.example", password="staff-pass-123")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def team(owner: User) -> Organization:
    return organization_create(name="Acme", owner=owner)


def _join(team: Organization, email: str, role: str) -> User:
    user = user_create(email=email, password="member-pass-123")
    Membership.objects.create(user=user, organization=team, role=role)
    return user


# --- Opening an order ------------------------------------------------------------------


def test_it_opens_an_order_with_an_attachment_encrypted_and_emails_staff(
    owner: User, org: Organization, staff: User, django_capture_on_commit_callbacks
) -> None:
    key, _ = key_create(organization=org, created_by=owner)
    _log(org, key.pk, "req_fail1")
    client = _client(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = _open(client, request_ids="req_fail1", attachments=[_upload("screen.png", PNG)])

    order = WorkOrder.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/support/{order.pk}/"
    assert (order.status, order.request_ids, order.opened_by) == ("open", ["req_fail1"], owner)
    attachment = WorkOrderAttachment.objects.get()
    assert (attachment.name, attachment.content_type, attachment.size) == (
        "screen.png",
        "image/png",
        len(PNG),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM accounts_workorderattachment")
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:")
    assert base64.b64encode(PNG[:48]).decode() not in stored
    downloaded = client.get(f"/dashboard/support/{order.pk}/attachments/{attachment.pk}")
    assert downloaded.content == PNG
    assert downloaded["Content-Type"] == "image/png"
    assert downloaded["Content-Disposition"].startswith("attachment")
    assert [m.to for m in mail.outbox] == [[staff.email]]
    assert f"#{order.pk}" in mail.outbox[0].subject
    assert "every call" not in mail.outbox[0].body  # a link, never the text


@override_settings(SUPPORT_EMAIL="support@operator.example")
def test_it_emails_the_support_address_instead_of_every_staff_user(
    owner: User, staff: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _open(_client(owner))

    assert [m.to for m in mail.outbox] == [["support@operator.example"]]


def test_it_keeps_a_png_named_pdf_as_a_png(owner: User) -> None:
    response = _open(_client(owner), attachments=[_upload("report.pdf", PNG)])

    assert response.status_code == 302
    attachment = WorkOrderAttachment.objects.get()
    assert (attachment.name, attachment.content_type) == ("report.png", "image/png")


@pytest.mark.parametrize("payload", [ELF, PE], ids=["elf", "pe"])
def test_it_refuses_an_executable_named_png(owner: User, payload: bytes) -> None:
    response = _open(_client(owner), attachments=[_upload("cat.png", payload)])

    assert response.status_code == 400
    assert "is not a PNG or JPEG image, a PDF or a plain text file" in response.content.decode()
    assert not WorkOrder.objects.exists()


def test_it_takes_pdf_jpeg_and_text_by_content(owner: User) -> None:
    files = [
        _upload("a", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
        _upload("b.bin", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        _upload("trace.log", "Traceback: 请求失败\n\tline 3\r\n".encode()),
    ]
    assert _open(_client(owner), attachments=files).status_code == 302

    kept = list(WorkOrderAttachment.objects.order_by("pk").values_list("name", "content_type"))
    assert kept == [
        ("a.pdf", "application/pdf"),
        ("b.jpg", "image/jpeg"),
        ("trace.txt", "text/plain"),
    ]


def test_it_refuses_a_file_over_5_mb_and_a_fourth_file(owner: User) -> None:
    client = _client(owner)
    big = PNG + b"\x00" * (MAX_BYTES + 1 - len(PNG))
    just_fits = PNG + b"\x00" * (MAX_BYTES - len(PNG))

    too_big = _open(client, attachments=[_upload("big.png", big)])
    four = _open(client, attachments=[_upload(f"{i}.png", PNG) for i in range(4)])

    assert too_big.status_code == 400 and "larger than 5 MB" in too_big.content.decode()
    assert four.status_code == 400 and "At most 3 attachments" in four.content.decode()
    assert not WorkOrder.objects.exists()
    assert _open(client, attachments=[_upload("fits.png", just_fits)]).status_code == 302


def test_request_ids_must_be_the_members_own(
    owner: User, org: Organization, team: Organization, stranger: User
) -> None:
    member = _join(team, "member@example.com", Membership.Role.MEMBER)
    own_key, _ = key_create(organization=team, created_by=member)
    owners_key, _ = key_create(organization=team, created_by=owner)
    stranger_key, _ = key_create(
        organization=Organization.objects.get(membership__user=stranger), created_by=stranger
    )
    _log(team, own_key.pk, "req_mine")
    _log(team, owners_key.pk, "req_owners")
    _log(stranger_key.organization, stranger_key.pk, "req_strangers")
    member_client = _client(member, team)

    foreign = _open(member_client, request_ids="req_strangers")
    colleague = _open(member_client, request_ids="req_owners")
    malformed = _open(member_client, request_ids="req with spaces'<b>")
    accepted = _open(member_client, request_ids="req_mine, req_mine")
    # The owner sees all the organization's usage, so may name any of its requests.
    by_owner = _open(_client(owner, team), request_ids="req_owners\nreq_mine")

    assert foreign.status_code == colleague.status_code == malformed.status_code == 400
    assert "No request of yours has the id req_strangers" in foreign.content.decode()
    assert accepted.status_code == by_owner.status_code == 302
    assert [o.request_ids for o in WorkOrder.objects.order_by("pk")] == [
        ["req_mine"],
        ["req_owners", "req_mine"],
    ]


# --- Who sees what -------------------------------------------------------------------


def test_owners_and_admins_see_all_orders_members_and_billing_their_own(
    owner: User, team: Organization, stranger: User
) -> None:
    admin = _join(team, "admin@example.com", Membership.Role.ADMIN)
    member = _join(team, "member@example.com", Membership.Role.MEMBER)
    billing = _join(team, "billing@example.com", Membership.Role.BILLING)
    orders = {
        who: workorder_open(
            membership=_membership(who, team),
            category="billing",
            subject=f"from {who.email}",
            body="text",
        )
        for who in (member, billing)
    }

    def listed(user: User) -> set[str]:
        html = _client(user, team).get("/dashboard/support/").content.decode()
        return {o.subject for o in orders.values() if o.subject in html}

    assert listed(owner) == listed(admin) == {"from member@example.com", "from billing@example.com"}
    assert listed(member) == {"from member@example.com"}
    assert listed(billing) == {"from billing@example.com"}
    billing_order = orders[billing]
    assert _client(member, team).get(f"/dashboard/support/{billing_order.pk}/").status_code == 404
    assert _client(admin, team).get(f"/dashboard/support/{billing_order.pk}/").status_code == 200
    assert _client(stranger).get(f"/dashboard/support/{billing_order.pk}/").status_code == 404
    assert _client(stranger).post(f"/dashboard/support/{billing_order.pk}/close").status_code == 404


def test_an_empty_list_leads_to_a_new_order(owner: User) -> None:
    html = _client(owner).get("/dashboard/support/").content.decode()

    assert "No work orders yet." in html
    assert 'href="/dashboard/support/new/"' in html
    assert 'href="/dashboard/support/" aria-current="page"' in html


def test_another_organizations_attachment_is_not_found(owner: User, stranger: User) -> None:
    _open(_client(owner), attachments=[_upload("x.png", PNG)])
    attachment = WorkOrderAttachment.objects.select_related("message").get()
    url = f"/dashboard/support/{attachment.message.work_order_id}/attachments/{attachment.pk}"

    assert _client(stranger).get(url).status_code == 404


# --- The thread ----------------------------------------------------------------------


def test_internal_notes_are_never_shown_or_emailed_to_the_customer(
    owner: User, org: Organization, staff: User, django_capture_on_commit_callbacks
) -> None:
    order = workorder_open(
        membership=_membership(owner, org), category="technical", subject="Timeouts", body="help"
    )
    mail.outbox.clear()
    client = _client(owner)

    with django_capture_on_commit_callbacks(execute=True) as note_callbacks:
        workorder_staff_reply(
            work_order=order, staff=staff, body="NOTE: customer is on plan X", internal=True
        )
    after_note = client.get(f"/dashboard/support/{order.pk}/").content.decode()
    note_mail = list(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        workorder_staff_reply(
            work_order=order, staff=staff, body="Fixed on our side, please retry."
        )
    after_reply = client.get(f"/dashboard/support/{order.pk}/").content.decode()
    export = json.dumps(data_export_contents(user=owner), default=str)

    assert (note_mail, note_callbacks) == ([], [])
    assert "customer is on plan X" not in after_note + after_reply + export
    assert "Fixed on our side" in after_reply
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "customer is on plan X" not in mail.outbox[0].body
    assert f"/dashboard/support/{order.pk}/" in mail.outbox[0].body
    order.refresh_from_db()
    assert order.status == WorkOrder.Status.WAITING_ON_CUSTOMER


def test_a_customer_reply_waits_on_staff_and_emails_them(
    owner: User, org: Organization, staff: User, django_capture_on_commit_callbacks
) -> None:
    order = workorder_open(
        membership=_membership(owner, org), category="account", subject="Email change", body="hi"
    )
    workorder_staff_reply(work_order=order, staff=staff, body="Which address?")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = _client(owner).post(
            f"/dashboard/support/{order.pk}/",
            {"body": "new@example.com", "attachments": [_upload("proof.txt", b"it is me\n")]},
        )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == WorkOrder.Status.WAITING_ON_STAFF
    assert order.messages.count() == 3
    assert [m.to for m in mail.outbox] == [[staff.email]]


def test_customers_close_reopen_and_cannot_reply_to_a_closed_order(
    owner: User, org: Organization
) -> None:
    order = workorder_open(
        membership=_membership(owner, org), category="billing", subject="Invoice", body="hi"
    )
    client = _client(owner)

    client.post(f"/dashboard/support/{order.pk}/close")
    order.refresh_from_db()
    closed = (order.status, order.resolved_at is not None)
    refused = client.post(f"/dashboard/support/{order.pk}/", {"body": "one more thing"})
    client.post(f"/dashboard/support/{order.pk}/reopen")
    order.refresh_from_db()

    assert closed == (WorkOrder.Status.CLOSED, True)
    assert refused.status_code == 302
    assert not order.messages.filter(body="one more thing").exists()
    assert (order.status, order.resolved_at) == (WorkOrder.Status.WAITING_ON_STAFF, None)


def test_first_response_and_resolution_times_follow_the_clock(
    owner: User, org: Organization, staff: User, admin_client: Client
) -> None:
    hour = dt.timedelta(hours=1)
    order = workorder_open(
        membership=_membership(owner, org),
        category="technical",
        subject="Slow",
        body="slow",
        now=T0,
    )
    workorder_staff_reply(
        work_order=order, staff=staff, body="looking", internal=True, now=T0 + hour
    )
    order.refresh_from_db()
    after_note = order.first_response_at
    workorder_staff_reply(work_order=order, staff=staff, body="Can you retry?", now=T0 + 2 * hour)
    workorder_reply(work_order=order, author=owner, body="Still slow", now=T0 + 3 * hour)
    order.refresh_from_db()
    waiting = (order.status, order.waiting_since)
    workorder_set_status(work_order=order, status=WorkOrder.Status.RESOLVED, now=T0 + 5 * hour)
    order.refresh_from_db()

    assert after_note is None  # an internal note is not a response
    assert order.first_response_at == T0 + 2 * hour
    assert waiting == (WorkOrder.Status.WAITING_ON_STAFF, T0 + 3 * hour)
    assert (order.resolved_at, order.waiting_since) == (T0 + 5 * hour, None)
    listed = admin_client.get(reverse("admin:accounts_workorder_changelist")).content.decode()
    assert "2h 0m" in listed and "5h 0m" in listed

    resolved = order.resolved_at
    assert resolved is not None
    with pytest.raises(WorkOrderRefused):
        workorder_reopen(work_order=order, now=resolved + dt.timedelta(days=14, seconds=1))
    reopened = workorder_reopen(work_order=order, now=resolved + dt.timedelta(days=13))
    assert (reopened.status, reopened.resolved_at) == (WorkOrder.Status.WAITING_ON_STAFF, None)


# --- The admin -----------------------------------------------------------------------


def test_the_queue_puts_the_longest_waiting_first(
    owner: User, org: Organization, staff: User, admin_client: Client
) -> None:
    membership = _membership(owner, org)
    late = workorder_open(
        membership=membership,
        category="technical",
        subject="late",
        body="b",
        now=T0 + dt.timedelta(hours=3),
    )
    answered = workorder_open(
        membership=membership, category="technical", subject="answered", body="b", now=T0
    )
    workorder_staff_reply(work_order=answered, staff=staff, body="done?", now=T0)
    early = workorder_open(
        membership=membership,
        category="billing",
        subject="early",
        body="b",
        now=T0 + dt.timedelta(hours=1),
    )

    assert list(workorder_queue()) == [early, late, answered]
    listed = admin_client.get(
        reverse("admin:accounts_workorder_changelist") + "?status__exact=open"
    ).content.decode()
    assert listed.index(">early<") < listed.index(">late<")
    assert ">answered<" not in listed


def test_staff_answer_assign_and_resolve_in_the_admin(
    owner: User, org: Organization, admin_user: User, django_capture_on_commit_callbacks
) -> None:
    order = workorder_open(
        membership=_membership(owner, org), category="technical", subject="Broken", body="b"
    )
    mail.outbox.clear()
    client = _client(admin_user)
    url = reverse("admin:accounts_workorder_change", args=[order.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url,
            {
                "status": "resolved",
                "assignee": admin_user.pk,
                "reply": "Fixed.",
                "internal_note": "root cause: DNS",
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    order.refresh_from_db()
    assert (order.status, order.assignee) == (WorkOrder.Status.RESOLVED, admin_user)
    assert order.first_response_at is not None and order.resolved_at is not None
    bodies = list(order.messages.values_list("body", "internal", "from_staff"))
    assert bodies == [("b", False, False), ("root cause: DNS", True, True), ("Fixed.", False, True)]
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_the_admin_shows_only_the_named_requests_metadata(
    owner: User, org: Organization, admin_client: Client
) -> None:
    key, _ = key_create(organization=org, created_by=owner)
    _log(org, key.pk, "req_named")
    _log(org, key.pk, "req_other")
    _open(_client(owner), request_ids="req_named", attachments=[_upload("s.png", PNG)])
    order = WorkOrder.objects.get()
    attachment = WorkOrderAttachment.objects.get()

    html = admin_client.get(
        reverse("admin:accounts_workorder_change", args=[order.pk])
    ).content.decode()
    download = admin_client.get(
        reverse("admin:accounts_workorder_attachment", args=[order.pk, attachment.pk])
    )

    assert "req_named" in html and "upstream_error" in html
    assert "req_other" not in html
    assert download.content == PNG


# --- Privacy: export and deletion ----------------------------------------------------


def test_the_export_holds_orders_and_messages_with_attachment_names_not_bytes(
    owner: User, org: Organization, staff: User
) -> None:
    _open(_client(owner), subject="Export me", attachments=[_upload("s.png", PNG)])
    order = WorkOrder.objects.get()
    workorder_staff_reply(work_order=order, staff=staff, body="Answer")

    exported = data_export_contents(user=owner)["work_orders"]
    text = json.dumps(exported, default=str)

    assert [o["subject"] for o in exported] == ["Export me"]
    assert [m["from"] for m in exported[0]["messages"]] == ["you", "staff"]
    assert exported[0]["messages"][0]["attachments"] == [
        {"name": "s.png", "content_type": "image/png", "size": len(PNG)}
    ]
    assert base64.b64encode(PNG[:30]).decode()[:20] not in text


def test_deletion_removes_personal_orders_and_blanks_team_messages(
    owner: User, org: Organization, team: Organization, staff: User
) -> None:
    person = _join(team, "leaving@example.com", Membership.Role.MEMBER)
    personal = Organization.objects.get(membership__user=person, is_personal=True)
    workorder_open(
        membership=_membership(person, personal),
        category="account",
        subject="zanzibar-canary personal",
        body="zanzibar-canary text",
    )
    _open(
        _client(person, team),
        subject="zanzibar-canary team",
        body="zanzibar-canary body",
        attachments=[_upload("zanzibar-canary.png", PNG)],
    )
    team_order = WorkOrder.objects.get(organization=team)
    workorder_staff_reply(work_order=team_order, staff=staff, body="Staff answer stays")
    workorder_reply(work_order=team_order, author=owner, body="The owner's words stay")

    account_delete(user=person)

    assert not WorkOrder.objects.filter(organization=personal).exists()
    assert database_hits("zanzibar-canary") == []
    team_order.refresh_from_db()
    assert team_order.opened_by is None
    thread = list(team_order.messages.values_list("body", "author"))
    assert thread == [
        (ERASED_TEXT, None),
        ("Staff answer stays", staff.pk),
        ("The owner's words stay", owner.pk),
    ]
    assert not WorkOrderAttachment.objects.exists()
    assert WorkOrderMessage.objects.filter(work_order__organization=team).count() == 3


# --- Hostile input: never a 500 ------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=300)
_names = st.text(st.characters(codec="utf-8"), max_size=150)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    category=st.one_of(st.sampled_from(WorkOrder.Category.values), _text),
    subject=_text,
    body=_text,
    request_ids=_text,
    files=st.lists(
        st.tuples(_names, st.one_of(st.binary(max_size=2000), st.just(PNG))), max_size=4
    ),
)
def test_the_new_order_form_answers_any_input_without_a_server_error(
    owner: User,
    category: str,
    subject: str,
    body: str,
    request_ids: str,
    files: list[tuple[str, bytes]],
) -> None:
    client = _client(owner)
    uploads = [_upload(name.replace("\x00", "") or "f", data) for name, data in files]

    response = _open(
        client,
        category=category,
        subject=subject,
        body=body,
        request_ids=request_ids,
        attachments=uploads,
    )

    assert response.status_code in (302, 400)


@settings(max_examples=300, deadline=None)
@given(name=_names, data=st.binary(max_size=600))
def test_attachment_checks_accept_or_refuse_any_bytes(name: str, data: bytes) -> None:
    try:
        checked = attachment_check(name=name, data=data)
    except AttachmentRefused as exc:
        assert str(exc)
        return
    assert checked.content_type in ("image/png", "image/jpeg", "application/pdf", "text/plain")
    assert checked.data == data
    assert 0 < len(checked.name) <= 100
    assert "/" not in checked.name and "\\" not in checked.name
    assert not any(ord(c) < 32 for c in checked.name)


@given(name=_names, extension=st.sampled_from([".png", ".jpg", ".pdf", ".txt"]))
def test_safe_names_end_in_the_detected_type(name: str, extension: str) -> None:
    safe = safe_name(name, extension)

    assert safe.endswith(extension) and len(safe) <= 100
    assert not safe.startswith(".")
