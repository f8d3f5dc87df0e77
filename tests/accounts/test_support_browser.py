"""Work orders end to end in a real browser: a customer opens one with an attachment and
finds it in the list; a staff user answers it in the admin; the answer appears in the
customer's thread. The pages have no serious axe-core violation. Screenshots go to
artifacts/screenshots/support/.

Database work happens before the browser starts or after it closes (tests/browser.py).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.models import User, WorkOrder, WorkOrderAttachment
from accounts.services import user_create
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

OUT = SCREENSHOTS / "support"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256))


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_work_order_with_an_attachment_gets_a_staff_reply(
    live_server: LiveServer, owner: User
) -> None:
    staff = user_create(email="help@tokenhub.example", password="staff-pass-123")
    staff.is_staff = staff.is_superuser = True
    staff.save(update_fields=["is_staff", "is_superuser"])
    customer_cookie, staff_cookie = _session(owner), _session(staff)
    cookie = {"name": settings.SESSION_COOKIE_NAME, "url": live_server.url}
    OUT.mkdir(parents=True, exist_ok=True)

    with chromium(axe=True) as browser:
        customer = browser.new_context(viewport={"width": 1280, "height": 900})
        customer.add_cookies([{**cookie, "value": customer_cookie}])
        page = customer.new_page()
        page.goto(f"{live_server.url}/dashboard/support/")
        empty = page.locator("#no-work-orders").inner_text()
        page.click("#no-work-orders a")
        page.select_option("select[name=category]", "technical")
        page.fill("input[name=subject]", "Streaming stops after a minute")
        page.fill("textarea[name=body]", "Every stream to gpt-4o ends after about 60 s.")
        page.set_input_files(
            "input[name=attachments]",
            files=[{"name": "stream.png", "mimeType": "image/png", "buffer": PNG}],
        )
        form_violations = axe_violations(page)
        page.click("#work-order-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/support/*/")
        order_url = page.url
        attachment_link = page.locator("#thread a[download]").inner_text()
        page.goto(f"{live_server.url}/dashboard/support/")
        listed = page.locator("#work-orders tbody").inner_text()
        page.screenshot(path=str(OUT / "list.png"), full_page=True)

        staff_context = browser.new_context(viewport={"width": 1280, "height": 900})
        staff_context.add_cookies([{**cookie, "value": staff_cookie}])
        admin = staff_context.new_page()
        admin.goto(f"{live_server.url}/admin/accounts/workorder/")
        admin.click("table#result_list tbody tr a")
        admin.fill("textarea[name=reply]", "Fixed: the upstream's idle timeout was raised.")
        admin.screenshot(path=str(OUT / "admin.png"), full_page=True)
        admin.click("input[name=_save]")
        admin.wait_for_url(f"{live_server.url}/admin/accounts/workorder/")
        staff_context.close()

        page.goto(order_url)
        thread = page.locator("#thread").inner_text()
        status = page.locator(".log-detail").inner_text()
        thread_violations = axe_violations(page)
        page.screenshot(path=str(OUT / "thread.png"), full_page=True)
        customer.close()

    assert "No work orders yet." in empty
    assert not form_violations, "\n".join(form_violations)
    assert attachment_link == "stream.png"
    assert "Streaming stops after a minute" in listed and "Open" in listed
    assert "Fixed: the upstream's idle timeout was raised." in thread
    assert "Support team" in thread
    assert "Waiting on customer" in status
    assert not thread_violations, "\n".join(thread_violations)
    order = WorkOrder.objects.get()
    assert order.first_response_at is not None
    assert WorkOrderAttachment.objects.get().size == len(PNG)
