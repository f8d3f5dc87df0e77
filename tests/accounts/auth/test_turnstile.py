"""Cloudflare Turnstile on sign-up and sign-in when configured, checked against a loopback
stand-in for Cloudflare's siteverify endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

SECRET = "turnstile-secret"


@pytest.fixture
def siteverify(settings: SettingsWrapper) -> Iterator[list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            seen.append(form)
            ok = form.get("secret") == SECRET and form.get("response") == "solved"
            body = json.dumps({"success": ok}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.TURNSTILE_SITE_KEY = "site-key-123"
    settings.TURNSTILE_SECRET_KEY = SECRET
    settings.TURNSTILE_VERIFY_URL = f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    yield seen
    server.shutdown()
    server.server_close()


def test_sign_up_needs_a_solved_challenge(client: Client, siteverify):
    page = client.get("/accounts/signup/").content.decode()
    assert 'data-sitekey="site-key-123"' in page
    data = {
        "email": "bot@example.com",
        "password1": "pw-long-enough-9",
        "password2": "pw-long-enough-9",
    }
    refused = client.post("/accounts/signup/", {**data, "cf-turnstile-response": "forged"})
    assert refused.status_code == 200 and b"not a robot" in refused.content
    assert not User.objects.filter(email="bot@example.com").exists()
    accepted = client.post("/accounts/signup/", {**data, "cf-turnstile-response": "solved"})
    assert accepted.status_code == 302
    assert User.objects.filter(email="bot@example.com").exists()
    assert siteverify[-1]["response"] == "solved"


def test_sign_in_needs_a_solved_challenge(client: Client, owner: User, siteverify):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    creds = {"login": owner.email, "password": "owner-pass-123"}
    refused = client.post("/accounts/login/", creds)
    assert refused.status_code == 200 and b"not a robot" in refused.content
    assert "_auth_user_id" not in client.session
    assert (
        client.post("/accounts/login/", {**creds, "cf-turnstile-response": "solved"}).status_code
        == 302
    )
    assert siteverify[-1]["remoteip"] == "127.0.0.1"


def test_without_keys_there_is_no_challenge(client: Client):
    assert b"cf-turnstile" not in client.get("/accounts/signup/").content
