"""Stannp-compatible letters: ``POST /api/v1/letters/create``, ``GET /api/v1/letters/get/<id>``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from example_project.openapi import LETTER_EXAMPLES, not_found
from example_project.parsers import JSONParser
from example_project.workspaces.api import WorkspaceAPIMixin
from idempotency_jobs.keys.drf import IdempotencyMixin

from .models import Letter
from .serializers import LetterCreateSerializer, letter_data, nest_form_fields

__all__ = ["LetterCreateView", "LetterDetailView"]

LETTER_RESPONSE = inline_serializer(
    "LetterResponse",
    {
        "success": serializers.BooleanField(),
        "data": inline_serializer(
            "Letter",
            {
                "pdf": serializers.URLField(allow_null=True),
                "id": serializers.CharField(),
                "created": serializers.DateTimeField(),
                "format": serializers.CharField(),
                "cost": serializers.CharField(),
                "status": serializers.CharField(),
            },
        ),
    },
)


class LetterCreateView(WorkspaceAPIMixin, IdempotencyMixin, APIView):
    """Stannp answers a replay with the original body and 409, hence the replay status."""

    idempotency_replay_status = 409
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="letters_create",
        summary="Create a letter",
        tags=["letters"],
        examples=LETTER_EXAMPLES,
        request={
            "application/x-www-form-urlencoded": LetterCreateSerializer,
            "application/json": LetterCreateSerializer,
        },
        responses={
            200: OpenApiResponse(LETTER_RESPONSE, description="The letter was created."),
            409: OpenApiResponse(
                LETTER_RESPONSE,
                description="A replay: the original body; nothing was created this time.",
            ),
        },
        description=(
            "Create a letter. With `X-Idempotency-Key`, a replay of the same request answers "
            "the original body with status 409 and creates nothing."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = LetterCreateSerializer(data=nest_form_fields(request.data))
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        letter = Letter.objects.create(
            workspace=self.workspace,
            status=Letter.Status.TEST if data["test"] else Letter.Status.RECEIVED,
            template=data.get("template"),
            background=data.get("background", ""),
            pages=data.get("pages", ""),
            file=data.get("file", ""),
            recipient=data["recipient"],
            tags=data.get("tags", ""),
            duplex=data["duplex"],
            cost=Letter.PRICE,
        )
        return Response({"success": True, "data": letter_data(letter)})


class LetterDetailView(WorkspaceAPIMixin, APIView):
    @extend_schema(
        operation_id="letters_get",
        summary="Get a letter",
        tags=["letters"],
        responses={200: LETTER_RESPONSE, **not_found("No letter of this workspace has this id.")},
    )
    def get(self, request: Request, id: str) -> Response:
        if not (id.isascii() and id.isdigit() and len(id) <= 18):
            raise NotFound("No such letter.")
        letter = Letter.objects.filter(workspace=self.workspace, pk=int(id)).first()
        if letter is None:
            raise NotFound("No such letter.")
        return Response({"success": True, "data": letter_data(letter)})
