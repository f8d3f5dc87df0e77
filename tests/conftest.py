"""Shared fixtures: three users for access control (owner, teammate, stranger), built with the
real services, and a small key factory.

The SQLite test database is a file rather than Django's default in-memory database, so that
subprocesses (the CLI tests) and the live server see the same data as the test itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from django.conf import settings

from accounts.models import ApiKey, Membership, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(db["NAME"])
        db.setdefault("TEST", {})["NAME"] = str(path.with_name(f"test_{path.name}"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database; before it is dropped, end the sessions still open on
    it, naming them on stderr. A thread of the test process (an in-process relay server's,
    caught mid-query when the server stopped) can hold a connection past the pool's close,
    and DROP DATABASE then fails ("being accessed by other users"): an error about the
    test run's teardown, not about any test."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        others = (
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        cursor.execute(f"SELECT pid, application_name, state, left(query, 60) {others}")
        left = cursor.fetchall()
        if left:
            print(
                f"\nending {len(left)} session(s) left on the test database: {left}",
                file=sys.stderr,
            )
            cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")


@pytest.fixture
def owner(db: None) -> User:
    return user_create(email="owner@example.com", password="owner-pass-123", name="Owner")


@pytest.fixture
def org(owner: User) -> Organization:
    """The owner's personal organization, which the teammate also belongs to."""
    return organization_personal(user=owner)


@pytest.fixture
def teammate(org: Organization) -> User:
    user = user_create(email="teammate@example.com", password="teammate-pass-123")
    # No service adds members yet; the membership row is all a team is today.
    Membership.objects.create(user=user, organization=org, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def stranger(db: None) -> User:
    return user_create(email="stranger@example.com", password="stranger-pass-123")


@pytest.fixture
def admin_user(db: None) -> User:
    """A superuser made the way the CLI makes one (overrides pytest-django's fixture)."""
    return user_create(email="admin@example.com", password="admin-pass-123", is_admin=True)


class MakeKey(Protocol):
    def __call__(self, user: User, /, **options: Any) -> tuple[ApiKey, str]: ...


@pytest.fixture
def make_key(db: None) -> MakeKey:
    """make_key(user, scopes=["manage"], ...) -> (key, secret) in the user's personal org."""

    def make(user: User, /, **options: Any) -> tuple[ApiKey, str]:
        return key_create(organization=organization_personal(user=user), created_by=user, **options)

    return make


@pytest.fixture(autouse=True)
def _books_balance(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the database, whatever it did: each wallet's balance
    equals the sum of its ledger entries and its held amount the sum of its open holds
    (money invariant 1), and no request log shows a charge past its hold. A test that
    corrupts the books on purpose says so with @pytest.mark.books_tampered."""
    uses_db = request.node.get_closest_marker("django_db") is not None or any(
        name in request.fixturenames for name in ("db", "transactional_db")
    )
    if not uses_db or request.node.get_closest_marker("books_tampered"):
        yield
        return
    # Set the database up first, so this check runs before it is flushed or rolled back.
    request.getfixturevalue("_django_db_helper")
    yield
    from billing.reconcile import reconcile_run

    # ... and no request was charged more than its hold (money invariant 2).
    broken = [str(d) for d in reconcile_run() if d.check in ("balance", "held", "request")]
    assert not broken, "the books do not balance after this test: " + "; ".join(broken)


def balance_set(organization: Organization, micros: int) -> None:
    """Bring ORGANIZATION's balance to MICROS through a ledger adjustment (the books stay
    balanced, unlike a direct update of the wallet)."""
    from billing.models import Wallet
    from billing.services import wallet_adjust

    current = Wallet.objects.get(organization=organization).balance
    if current != micros:
        wallet_adjust(
            organization=organization, amount=micros - current, reason="test", created_by=None
        )
