"""Verification end to end in a real browser: an owner sends the organization's details
with a PDF, a staff user approves the request in the admin, and the verified badge shows
on the organization page. The pages have no serious axe-core violation. Screenshots go to
artifacts/screenshots/verification/.

Database work happens before the browser starts or after it closes (tests/browser.py).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User, VerificationDocument, VerificationRequest
from accounts.services import user_create
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

OUT = SCREENSHOTS / "verification"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256))


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_an_owner_submits_staff_approve_and_the_badge_shows(
    live_server: LiveServer, owner: User, org: Organization
) -> None:
    staff = user_create(email="review@tokenhub.example", password="staff-pass-123")
    staff.is_staff = staff.is_superuser = True
    staff.save(update_fields=["is_staff", "is_superuser"])
    customer_cookie, staff_cookie = _session(owner), _session(staff)
    cookie = {"name": settings.SESSION_COOKIE_NAME, "url": live_server.url}
    OUT.mkdir(parents=True, exist_ok=True)

    with chromium(axe=True) as browser:
        customer = browser.new_context(viewport={"width": 1280, "height": 900})
        customer.add_cookies([{**cookie, "value": customer_cookie}])
        page = customer.new_page()
        page.goto(f"{live_server.url}/dashboard/org/")
        before = page.locator("#verification-status").inner_text()
        page.click("#verification-status a")
        page.fill("input[name=legal_name]", "Acme GmbH")
        page.fill("input[name=registration_number]", "HRB 12345")
        page.fill("input[name=country]", "de")
        page.fill("textarea[name=address]", "Hauptstr. 1\n10115 Berlin")
        page.fill("input[name=contact_name]", "Ada Lovelace")
        page.fill("input[name=contact_email]", "ada@acme.example")
        page.set_input_files(
            "input[name=documents]",
            files=[{"name": "register.pdf", "mimeType": "application/pdf", "buffer": PDF}],
        )
        form_violations = axe_violations(page)
        page.screenshot(path=str(OUT / "form.png"), full_page=True)
        page.click("#verification-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/org/verification/")
        submitted = page.locator("#verification-state").inner_text()

        staff_context = browser.new_context(viewport={"width": 1280, "height": 900})
        staff_context.add_cookies([{**cookie, "value": staff_cookie}])
        admin = staff_context.new_page()
        admin.goto(f"{live_server.url}/admin/accounts/verificationrequest/")
        admin.click("table#result_list tbody tr a")
        documents = admin.locator(".field-document_list").inner_text()
        admin.select_option("select[name=decision]", "approve")
        admin.screenshot(path=str(OUT / "admin.png"), full_page=True)
        admin.click("input[name=_save]")
        admin.wait_for_url(f"{live_server.url}/admin/accounts/verificationrequest/")
        staff_context.close()

        page.goto(f"{live_server.url}/dashboard/org/")
        badge = page.locator("#verified-badge").inner_text()
        org_violations = axe_violations(page)
        page.screenshot(path=str(OUT / "org.png"), full_page=True)
        customer.close()

    assert "Not verified" in before
    assert not form_violations, "\n".join(form_violations)
    assert "Under review" in submitted and "register.pdf" in submitted
    assert "register.pdf" in documents
    assert "Verified organization" in badge
    assert not org_violations, "\n".join(org_violations)
    request = VerificationRequest.objects.get()
    assert request.state == "approved" and request.reviewed_by_id == staff.pk
    assert VerificationDocument.objects.get().size == len(PDF)
    org.refresh_from_db()
    assert org.verified_at is not None
