"""/api/v1/me/export: "Download my data" over the management API (session or manage key)."""

from __future__ import annotations

from typing import cast

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import DataExport, User
from accounts.privacy import data_export_request


class DataExportSerializer(serializers.ModelSerializer[DataExport]):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DataExport
        fields = ("id", "state", "created_at", "ready_at", "expires_at", "download_url")
        read_only_fields = fields

    def get_download_url(self, export: DataExport) -> str | None:
        if export.state != DataExport.State.READY:
            return None
        return reverse("settings-export-download", args=[export.pk])


class MyExportView(GenericAPIView[DataExport]):
    """GET: your archives still on offer. POST: ask for a new one (built in the background)."""

    serializer_class = DataExportSerializer
    pagination_class = None

    @extend_schema(
        summary="List my data exports",
        description="Archives still on offer, newest first.",
        responses=DataExportSerializer(many=True),
        tags=["me"],
    )
    def get(self, request: Request) -> Response:
        exports = DataExport.objects.filter(
            user=cast(User, request.user), expires_at__gt=timezone.now()
        ).order_by("-created_at")
        return Response(DataExportSerializer(exports, many=True).data)

    @extend_schema(
        summary="Ask for a data export",
        description="Accepted: the archive is built in the background; list the exports to "
        "see when it is ready and where to download it.",
        request=None,
        responses={202: DataExportSerializer},
        tags=["me"],
    )
    def post(self, request: Request) -> Response:
        export = data_export_request(user=cast(User, request.user))
        return Response(DataExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)
