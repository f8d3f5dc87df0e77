""" "Download my data": a JSON archive built by a Celery task, offered for a limited time."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import DataExport, Organization, User
from accounts.privacy import build_data_export, data_exports_purge
from accounts.services import key_create
from billing.services import wallet_credit
from logs.models import RequestLog
from tests.test_celery_worker import _until, worker  # noqa: F401 - the worker fixture

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def footprint(owner: User, org: Organization) -> str:
    wallet_credit(organization=org, amount=2_000_000, kind="topup", source_type="t", source_id="e1")
    key, secret = key_create(organization=org, created_by=owner, name="laptop")
    RequestLog.objects.create(
        request_id="req_e1",
        organization_id=org.pk,
        api_key_id=key.pk,
        endpoint="chat",
        model="gpt-4o-mini",
        status_code=200,
        cost=42,
    )
    return secret


@pytest.mark.embedded
def test_it_builds_and_offers_the_archive_to_its_owner_only(
    owner: User, stranger: User, footprint: str, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(owner)
    with django_capture_on_commit_callbacks() as queued:
        assert client.post("/dashboard/settings/export").status_code == 302
    assert len(queued) == 1  # the task is enqueued only once the row is committed
    export = DataExport.objects.get(user=owner)
    assert export.state == DataExport.State.PENDING
    assert b"being prepared" in client.get("/dashboard/settings/").content

    build_data_export.apply(args=(export.pk,))  # what the worker runs

    response = client.get(f"/dashboard/settings/export/{export.pk}")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    archive = json.loads(response.content)
    assert archive["profile"]["email"] == "owner@example.com"
    assert [k["name"] for k in archive["api_keys"]] == ["laptop"]
    assert [e["amount"] for e in archive["ledger"]] == [2_000_000]
    assert [r["request_id"] for r in archive["request_logs"]] == ["req_e1"]
    assert footprint not in response.content.decode()  # never a secret, nor its hash
    assert "key_hash" not in archive["api_keys"][0]

    other = Client()
    other.force_login(stranger)
    assert other.get(f"/dashboard/settings/export/{export.pk}").status_code == 404


@pytest.mark.embedded
def test_it_expires_archives(owner: User):
    old = DataExport.objects.create(
        user=owner, state="ready", archive="{}", expires_at=timezone.now() - dt.timedelta(hours=1)
    )
    client = Client()
    client.force_login(owner)
    assert client.get(f"/dashboard/settings/export/{old.pk}").status_code == 404
    assert data_exports_purge() == 1
    assert not DataExport.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_builds_the_archive(worker: None, owner: User, footprint: str):  # noqa: F811
    client = Client()
    client.force_login(owner)
    assert client.post("/dashboard/settings/export").status_code == 302
    export = DataExport.objects.get(user=owner)
    _until(lambda: DataExport.objects.get(pk=export.pk).state == DataExport.State.READY)
    archive = json.loads(DataExport.objects.get(pk=export.pk).archive)
    assert archive["profile"]["email"] == "owner@example.com"


@pytest.mark.embedded
def test_the_api_queues_and_lists_archives(owner: User, stranger: User, make_key):
    _, secret = make_key(owner, scopes=["manage"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.post("/api/v1/me/export")
    assert response.status_code == 202
    body = response.json()
    assert (body["state"], body["download_url"]) == ("pending", None)
    build_data_export.apply(args=(body["id"],))
    listed = api.get("/api/v1/me/export").json()
    assert [e["download_url"] for e in listed] == [f"/dashboard/settings/export/{body['id']}"]
    assert Client().get("/api/v1/me/export").status_code in (401, 403)
    other = Client()
    other.force_login(stranger)
    assert other.get("/api/v1/me/export").json() == []
