"""One view, four ways: plain, ours, and under each peer package (when installed).

Every POST that executes creates one Widget, so executions are counted in the database.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from idempotency_jobs.keys.drf import IdempotencyMixin
from tests.testapp.models import Widget


class WidgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Widget
        fields = ["id", "owner", "name", "payload"]
        read_only_fields = ["owner"]


class PlainWidgetViewSet(viewsets.GenericViewSet):
    """No idempotency at all: the control."""

    queryset = Widget.objects.all()
    serializer_class = WidgetSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if "sleep" in request.query_params:  # a slow request, for the lease benchmark
            time.sleep(float(request.query_params["sleep"]))
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save(owner=request.user.username)
        response = Response(serializer.data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/widgets/{serializer.instance.pk}"
        return response


class OurWidgetViewSet(IdempotencyMixin, PlainWidgetViewSet):
    pass


class LeanViewSet(viewsets.ViewSet):
    """The cheapest create DRF serves: one INSERT, JSON in and out, no serializer. What a key
    adds to it is the key's own cost, not hidden by a heavier view (benchmark 8)."""

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def create(self, request: Request) -> Response:
        name = request.data.get("name", "") if isinstance(request.data, dict) else ""
        widget = Widget.objects.create(owner=request.user.username, name=str(name)[:100])
        return Response({"id": widget.pk, "name": widget.name}, status=status.HTTP_201_CREATED)


class LeanKeyedViewSet(IdempotencyMixin, LeanViewSet):
    pass


VIEWSETS: dict[str, type[viewsets.ViewSetMixin]] = {
    "plain": PlainWidgetViewSet,
    "ours": OurWidgetViewSet,
    "lean": LeanViewSet,
    "lean-keyed": LeanKeyedViewSet,
}

if settings.PEERS:
    from drf_idempotency.middleware import IdempotencyMiddleware
    from idempotency_key.decorators import idempotency_key

    class DrfIdempotencyMiddleware(IdempotencyMiddleware):
        """drf-idempotency's middleware, for its own view only."""

        def __call__(self, request: HttpRequest) -> HttpResponse:
            if request.path != "/drf-idempotency":
                return self.get_response(request)
            return super().__call__(request)

    class DjangoIdempotencyKeyWidgetViewSet(PlainWidgetViewSet):
        create = idempotency_key(optional=True)(PlainWidgetViewSet.create)

    VIEWSETS["drf-idempotency"] = PlainWidgetViewSet
    VIEWSETS["django-idempotency-key"] = DjangoIdempotencyKeyWidgetViewSet
