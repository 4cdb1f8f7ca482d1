"""One view, four ways: plain, ours, and under each peer package (when installed).

Every POST that executes creates one Widget, so executions are counted in the database.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import serializers, status, viewsets
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


VIEWSETS: dict[str, type[PlainWidgetViewSet]] = {
    "plain": PlainWidgetViewSet,
    "ours": OurWidgetViewSet,
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
