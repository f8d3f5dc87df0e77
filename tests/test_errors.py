"""Refusals that happen before any API view runs still answer in the API's format under
/api/, and as Django's pages elsewhere."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_answers_an_unknown_api_path_with_a_json_404(client: Client) -> None:
    response = client.get("/api/v1/keys/not-a-number")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_it_answers_a_nul_in_an_api_query_with_a_json_400(client: Client) -> None:
    response = client.get("/api/v1/keys", {"after": "\x00"})

    assert response.status_code == 400
    assert response.json() == {"detail": "must not contain NUL characters"}


def test_it_answers_an_unreadable_multipart_api_body_with_a_json_400(client: Client) -> None:
    # A part whose headers never end: Django's parser gives up on it.
    body = b"--b\r\n" + b"x" * 2000 + b"\r\n--b--\r\n"

    response = client.post(
        "/api/v1/organizations", body, content_type="multipart/form-data; boundary=b"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_pages_outside_the_api_keep_django_s_own_404(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
