"""Management API views for accounts (thin: selectors and services do the work)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from accounts.selectors import keys_for_organization, organization_personal
from accounts.serializers import ApiKeySerializer


class ApiRootView(APIView):
    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        return Response(
            {
                "name": "TokenHub management API",
                "version": "v1",
                "endpoints": {"keys": request.build_absolute_uri(reverse("api-keys"))},
            }
        )


class KeyListView(APIView):
    def get(self, request: Request) -> Response:
        # A key acts within its own organization; a session within the personal one
        # (until organization switching arrives with the dashboard).
        if isinstance(request.auth, ApiKey):
            org = request.auth.organization
        else:
            org = organization_personal(user=request.user)  # type: ignore[arg-type]
        keys = keys_for_organization(organization=org)
        return Response({"data": ApiKeySerializer(keys, many=True).data})
