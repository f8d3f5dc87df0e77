"""OpenAPI descriptions drf-spectacular cannot infer: how a management key authenticates, and
the refusals (4xx) every /api/v1 operation may answer beside its success."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ManagementKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ManagementKeyAuthentication"
    name = "managementKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (sk-th-…) with the 'manage' scope; it acts as the user "
            "who created it, in the key's organization.",
        }


class ErrorSerializer(serializers.Serializer[Any]):
    """A refusal other than a 400: one sentence on what went wrong."""

    detail = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer[Any]):
    """A 400; its schema is ValidationErrorScheme's (no serializer field describes it)."""


class ValidationErrorScheme(OpenApiSerializerExtension):
    target_class = "accounts.api_schema.ValidationErrorSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": "What was wrong with the request: the messages for each field it "
            "got wrong (by position for a list's items), `detail` for a rule the request "
            "broke or a body that could not be parsed.",
            "additionalProperties": {
                "anyOf": [
                    {"type": "string"},
                    messages,
                    {"type": "object", "additionalProperties": messages},
                ]
            },
        }


class StrictInputScheme(OpenApiSerializerExtension):
    """A StrictInput body names only its own fields: the schema says so."""

    target_class = "accounts.serializers.StrictInput"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        return {**schema, "additionalProperties": False}


class ManagementApiSchema(AutoSchema):
    """Documents the refusals REST framework answers on its own, for every operation that can
    meet them: 400 and 415 where there is a body (one it cannot parse, validate or act on; one
    of a media type no parser reads), 401 and 403 where authentication is required, 404 where
    the path names an object. A view's own `extend_schema(responses=...)` wins; an operation
    without a body that can still break a rule declares its 400 there."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, response in self._refusals().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses

    # AutoSchema's helpers below are untyped: these typed doors let this class and its
    # subclasses call them under strict mypy. Named by class rather than super(), so that
    # mypy sees drf-spectacular's function (untyped_calls_exclude in pyproject.toml).
    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body: dict[str, Any] | None = AutoSchema._get_request_body(self, direction)
        return body

    def _get_response_for_code(
        self,
        serializer: Any,
        status_code: str,
        media_types: list[str] | None = None,
        direction: str = "response",
    ) -> dict[str, Any]:
        response: dict[str, Any] = AutoSchema._get_response_for_code(
            self, serializer, status_code, media_types, direction
        )
        return response

    def _refusals(self) -> dict[str, OpenApiResponse]:
        refusals = {}
        has_body = self._get_request_body() is not None
        if has_body:
            refusals["400"] = OpenApiResponse(
                ValidationErrorSerializer, description="the request is not valid"
            )
        auth = self.get_auth()
        if auth and {} not in auth:
            refusals["401"] = OpenApiResponse(
                ErrorSerializer, description="no valid session or management key"
            )
            refusals["403"] = OpenApiResponse(
                ErrorSerializer, description="your role or key does not allow this"
            )
        if "{" in self.path:
            refusals["404"] = OpenApiResponse(ErrorSerializer, description="no such object")
        if has_body:
            refusals["415"] = OpenApiResponse(
                ErrorSerializer, description="a body of a media type this operation does not read"
            )
        return refusals
