"""The admin as operators meet it: TokenHub's branding, a link to the status page, distinct
section names, "API keys", and a request-log list with organization names and money."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Organization, User
from accounts.selectors import organization_personal
from accounts.services import user_create
from logs.models import RequestLog

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _log(org: Organization, n: int, **fields: object) -> RequestLog:
    values: dict[str, object] = {
        "request_id": f"req_{org.pk}_{n}",
        "organization_id": org.pk,
        "endpoint": "chat",
        "model": "gpt-test",
        "status_code": 200,
        "prompt_tokens": 1200,
        "completion_tokens": 340,
        "cost": 1_534_567,
        "latency_ms": 1830,
    }
    return RequestLog.objects.create(**(values | fields))


def test_the_admin_is_branded_and_links_the_status_page(admin_client: Client) -> None:
    html = admin_client.get("/admin/").content.decode()

    assert "<title>Operations | TokenHub admin</title>" in html
    assert "TokenHub administration" in html and "Django administration" not in html
    assert html.count('href="/admin/status/"') >= 2  # the top links and the index


def test_sections_have_distinct_names_and_api_keys_are_spelled_so(admin_client: Client) -> None:
    html = admin_client.get("/admin/").content.decode()

    assert "People, organizations and keys" in html and "Sign-in email addresses" in html
    assert ">Accounts<" not in html
    assert "API keys" in html and "Api keys" not in html
    assert "Top-ups" in html and "Top ups" not in html


def test_request_logs_show_organization_names_in_one_query(
    admin_client: Client, owner: User, org: Organization
) -> None:
    others = [organization_personal(user=user_create(email=f"o{i}@example.com")) for i in range(5)]
    for i, other in enumerate([org, *others]):
        _log(other, i)
    _log(org, 99, organization_id=987654)  # an organization deleted since

    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get("/admin/logs/requestlog/").content.decode()

    organization_queries = [q for q in queries if 'FROM "accounts_organization"' in q["sql"]]
    assert len(organization_queries) == 1
    assert org.name in html and others[4].name in html and "#987654" in html
    assert "$1.53" in html and 'title="$1.534567"' in html
    assert "1,200 / 340" in html and "1,830 ms" in html


def test_a_staff_member_sees_the_status_link_but_not_the_mailbox(db: None) -> None:
    staff = user_create(email="staff@example.com", password="staff-pass-123")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(staff)

    html = client.get("/admin/").content.decode()

    assert 'href="/admin/status/"' in html and "/admin/mailbox/" not in html
