"""/api/schema/ documents the whole /api/v1 and validates; /api/docs/ renders offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver
from drf_spectacular.validation import validate_schema

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _api_v1_routes() -> set[str]:
    """Every /api/v1 route as OpenAPI writes it: <int:key_id> → {key_id}, <str:month> → {month}."""
    from tokenhub import api_urls

    routes = set()
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern | URLResolver)
        route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        routes.add("/api/v1/" + route)
    return routes - {"/api/v1/"}  # the root is a plain index, excluded from the schema


def test_the_schema_documents_every_api_v1_path_and_validates(client: Client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate_schema(schema)  # raises when invalid
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == _api_v1_routes()
    keys = schema["paths"]["/api/v1/keys"]
    assert set(keys) >= {"get", "post"}
    assert set(schema["paths"]["/api/v1/keys/{key_id}"]) >= {"get", "patch", "delete"}
    assert "post" in schema["paths"]["/api/v1/keys/{key_id}/rotate"]
    created = keys["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][created.rsplit("/", 1)[1]]
    assert "secret" in component["properties"]
    assert "key_hash" not in yaml.safe_dump(schema)


def test_the_schema_is_served_as_json_too(client: Client) -> None:
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert "/api/v1/organizations/{org_id}/members" in response.json()["paths"]


def test_the_swagger_ui_renders_from_local_assets(client: Client) -> None:
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/schema/" in html
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html
    asset = next(
        part.split('"')[0] for part in html.split('src="')[1:] if "swagger-ui-bundle" in part
    )
    served = client.get(asset)
    assert served.status_code == 200
    # Reading it to the end closes it (the test client's closing wrapper).
    assert isinstance(served, StreamingHttpResponse)
    assert b"SwaggerUIBundle" in served.getvalue()


def test_the_schema_generates_without_a_single_warning(tmp_path: Path) -> None:
    # Unresolvable serializers, authenticators or name collisions are warnings: none allowed.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )

    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    scheme = schema["components"]["securitySchemes"]["managementKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
