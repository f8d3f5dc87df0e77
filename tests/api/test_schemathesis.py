"""Schemathesis over /api/v1: every operation the served schema documents, called in-process
with a management key of a team's owner. No answer is a 5xx, and every answer matches the
schema (status code, content type, headers, body); every body the API reads refuses unknown
fields, NUL characters and integers out of range with a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings as SettingsWrapper
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey, Invitation, Membership, Organization, User
from accounts.services import invitation_create, key_create, organization_create, user_create
from billing.codes import redemption_batch_create
from tokenhub.wsgi import application

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

# What /api/schema/ serves, asked of the application itself (no request touches the database).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class World:
    owner: User
    org: Organization
    secret: str  # a manage key of the owner's, in the team: every request authenticates with it
    key: ApiKey
    other_key: ApiKey
    member: User
    invitation: Invitation
    code: str  # an unused redemption code

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture
def world(db: None, settings: SettingsWrapper) -> Iterator[World]:
    # EPay makes its checkout URL without a network call: top-ups can succeed.
    settings.EPAY_URL = "https://pay.example.test/"
    settings.EPAY_PID = "1001"
    settings.EPAY_KEY = "epay-merchant-key-123"
    owner = user_create(email="owner@example.com", email_verified=True)
    org = organization_create(name="Acme", owner=owner)
    key, secret = key_create(organization=org, created_by=owner, scopes=["relay", "manage"])
    other_key, _ = key_create(organization=org, created_by=owner, name="other")
    member = user_create(email="member@example.com")
    Membership.objects.create(user=member, organization=org, role=Membership.Role.MEMBER)
    invitation, _ = invitation_create(
        actor=Membership.objects.get(user=owner, organization=org), email="new@example.com"
    )
    code = redemption_batch_create(name="fuzz", count=1, amount=5_000_000).codes[0]
    # The requests run in this thread, in the test's transaction: like Django's test client,
    # keep the request signals from closing its connection. Failed redemptions are counted
    # in the cache (and answer 429 past a limit): start and leave it empty.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    cache.clear()
    try:
        yield World(owner, org, secret, key, other_key, member, invitation, code)
    finally:
        cache.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _real_values(world: World) -> dict[str, list[Any]]:
    """Values that name things that exist, for path parameters and body fields that would
    otherwise almost never do: the example then reaches past the 404 or the refusal."""
    return {
        "org_id": [world.org.pk],
        "key_id": [world.other_key.pk, world.key.pk],
        "user_id": [world.member.pk, world.owner.pk],
        "invitation_id": [world.invitation.pk],
        "code": [world.code],
        "amount_usd": ["25", "10.50"],
    }


def _maybe_real(data: st.DataObject, values: dict[str, Any], real: dict[str, list[Any]]) -> None:
    for name in values:
        if name in real and data.draw(st.booleans(), label=f"real {name}"):
            values[name] = data.draw(st.sampled_from(real[name]), label=name)


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=25,
    derandomize=True,  # the same examples on every run: CI does not flake on a new find
    # One world per operation, not per example (each example rolls its changes back).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_v1_answers_as_its_schema_says(
    case: schemathesis.Case[Any], data: st.DataObject, world: World
) -> None:
    real = _real_values(world)
    _maybe_real(data, case.path_parameters or {}, real)
    if isinstance(case.body, dict):
        _maybe_real(data, case.body, real)
    # Each example starts from the same state (deletes, rotations of the very key in use,
    # leaving the team): whatever it changed is rolled back.
    with transaction.atomic():
        case.call_and_validate(headers=world.auth, checks=CHECKS)
        transaction.set_rollback(True)


def _body_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, properties of the JSON body) for every operation that reads a body."""
    raw = schema.raw_schema
    found = []
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            ref = body["schema"]["$ref"].rsplit("/", 1)[1]
            found.append((method, path, raw["components"]["schemas"][ref]["properties"]))
    return found


def _bad_bodies() -> list[Any]:
    cases = []
    for method, path, properties in _body_operations():
        cases.append(pytest.param(method, path, "no_such_field", 1, id=f"{method} {path} unknown"))
        for name, prop in properties.items():
            if prop.get("readOnly"):
                continue
            kind = prop.get("type")
            if kind == "string" or "enum" in prop or "$ref" in str(prop):
                bad: Any = "x\x00y"
            elif kind == "array":
                bad = ["x\x00y"]
            elif kind == "integer":
                bad = 2**63
            else:
                continue
            cases.append(pytest.param(method, path, name, bad, id=f"{method} {path} {name}"))
    return cases


@pytest.mark.parametrize(("method", "path", "field", "value"), _bad_bodies())
def test_every_body_refuses_unknown_fields_nul_characters_and_huge_integers(
    client: Client, world: World, method: str, path: str, field: str, value: Any
) -> None:
    url = path.format(org_id=world.org.pk, key_id=world.other_key.pk, user_id=world.member.pk)

    body = json.dumps({field: value})

    response = client.generic(
        method.upper(), url, body, content_type="application/json", headers=world.auth
    )

    assert response.status_code == 400, response.content
    assert field in response.json()
