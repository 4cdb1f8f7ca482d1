"""Views exercising both faces of idempotency: the mixin and the decorator."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import (
    action,
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from idempotency_jobs.keys.drf import IdempotencyMixin, idempotent

from .auth import StatelessAuthentication
from .models import Revocation, Widget


class NotRevoked(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return not Revocation.objects.filter(username=request.user.username).exists()


class Gate:
    """Holds the first request that reaches it until the test opens it: "still in flight"."""

    waiting: dict[str, Gate] = {}

    def __init__(self, name: str) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        Gate.waiting[name] = self

    @classmethod
    def pass_through(cls, name: str) -> None:
        gate = cls.waiting.pop(name, None)
        if gate is not None:
            gate.entered.set()
            gate.opened.wait(timeout=20)


class Failures:
    """Failures a test arms for the next executions only (``"runtime"``, ``"500"``, ...).

    Unlike the ``?fail=`` knob they are not part of the request, so the retry is the same
    request and succeeds.
    """

    armed: list[str] = []

    @classmethod
    def take(cls) -> str | None:
        return cls.armed.pop(0) if cls.armed else None


def fail_after_commit() -> None:
    raise RuntimeError("on_commit hook failed")


def exit_after_commit() -> None:
    raise SystemExit(1)  # what a server's worker timeout raises in the request's thread


class WidgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Widget
        fields = ["id", "owner", "name", "payload"]
        read_only_fields = ["owner"]


def perform(request: Request) -> Response:
    """The shared body of every test view: honour test knobs, then create one Widget."""
    knobs = request.query_params
    if "sleep" in knobs:
        time.sleep(float(knobs["sleep"]))
    if "gate" in knobs:
        Gate.pass_through(knobs["gate"])
    serializer = WidgetSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    widget = serializer.save(owner=request.user.username)
    failure = Failures.take() or knobs.get("fail")
    if failure == "on_commit":  # Django's default hook: its exception reaches the client
        transaction.on_commit(fail_after_commit)
    if failure == "exit_on_commit":  # a robust hook does not stop a SystemExit
        transaction.on_commit(exit_after_commit, robust=True)
    if failure == "runtime":
        raise RuntimeError("boom")
    if failure == "validation":
        raise ValidationError({"name": ["rejected after writing"]})
    status_code = knobs.get("status") or (failure if failure and failure.isdigit() else None)
    if status_code:
        return Response({"id": widget.pk, "error": "as asked"}, status=int(status_code))
    response = Response(serializer.data, status=status.HTTP_201_CREATED)
    response["Location"] = f"/widgets/{widget.pk}"
    response["Set-Cookie"] = "session=secret"
    response["X-Trace"] = "trace-1"
    return response


class WidgetViewSet(IdempotencyMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    queryset = Widget.objects.all()
    serializer_class = WidgetSerializer
    permission_classes = [IsAuthenticated, NotRevoked]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return perform(request)

    @action(detail=False, methods=["post"])
    def stream(self, request: Request) -> StreamingHttpResponse:
        Widget.objects.create(owner=request.user.username, name="streamed")
        return StreamingHttpResponse(iter([b"a", b"b"]), status=201)

    @action(detail=False, methods=["post"])
    @idempotent(required=True, replay_status=409)
    def strict(self, request: Request) -> Response:
        return perform(request)


class StannpStyleViewSet(WidgetViewSet):
    idempotency_replay_status = 409
    idempotency_required = True


class ThrottledViewSet(WidgetViewSet):
    class Throttle(SimpleRateThrottle):
        rate = "2/min"

        def get_cache_key(self, request: Request, view: Any) -> str:
            return f"throttle-{request.user.username}"

    throttle_classes = [Throttle]


@api_view(["POST"])
@idempotent
def widget_function(request: Request) -> Response:
    return perform(request)


class WidgetAPIView(APIView):
    permission_classes = [IsAuthenticated, NotRevoked]

    @idempotent(store_4xx=True)
    def post(self, request: Request) -> Response:
        return perform(request)


class NoKeyNeededView(APIView):
    """Not idempotent at all: the control in overhead measurements."""

    def post(self, request: Request) -> Response:
        return perform(request)


@api_view(["GET", "POST"])
@idempotent(methods=["POST", "PATCH"])
def echo(request: Request) -> HttpResponse:
    return HttpResponse(f"{request.method} ok", content_type="text/plain")


class Throttle(SimpleRateThrottle):
    rate = "2/min"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle-{request.user.username}"


class ListedWidgetViewSet(
    IdempotencyMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """GET, POST and PATCH on one mixin viewset; every POST or PATCH execution adds a Widget."""

    queryset = Widget.objects.all()
    serializer_class = WidgetSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return perform(request)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return perform(request)


def team_scope(request: Request) -> str | None:
    """Keys shared by a team (``X-Team``) rather than owned by one user."""
    return "team:" + request.headers["X-Team"] if "X-Team" in request.headers else None


def path_only_fingerprint(request: Request) -> str:
    """Two requests to the same path are the same request, whatever their bodies."""
    return f"{request.method} {request.path}"


def verbose_fingerprint(request: Request) -> str:
    """A readable fingerprint, longer than a digest: the whole request in words."""
    return f"{request.method} {request.get_full_path()} {request.body.decode()!r}" * 10


def verbose_scope(request: Request) -> str | None:
    """A scope longer than any column would hold."""
    return "caller:" + request.user.username * 100


class HookedWidgetViewSet(WidgetViewSet):
    """The mixin's hooks replaced: team scope, body-blind fingerprint."""

    def get_idempotency_scope(self, request: Request) -> str | None:
        return team_scope(request)

    def get_idempotency_fingerprint(self, request: Request) -> str:
        return path_only_fingerprint(request)


class StoreClientErrorsViewSet(WidgetViewSet):
    idempotency_store_4xx = True


class PeekingPermission(BasePermission):
    """Reads the body before the view, as body-signing authentication does."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.data.get("name") != "forbidden"


class PeekingWidgetViewSet(WidgetViewSet):
    permission_classes = [IsAuthenticated, PeekingPermission]


@api_view(["POST"])
@idempotent(scope=team_scope, fingerprint=path_only_fingerprint)
def hooked_function(request: Request) -> Response:
    return perform(request)


@api_view(["POST"])
@idempotent(replay_status=409, required=True)
def stannp_function(request: Request) -> Response:
    return perform(request)


@api_view(["POST"])
@permission_classes([IsAuthenticated, NotRevoked])
@throttle_classes([Throttle])
@idempotent
def throttled_function(request: Request) -> Response:
    return perform(request)


@api_view(["POST"])
@idempotent
def stream_function(request: Request) -> StreamingHttpResponse:
    Widget.objects.create(owner=request.user.username, name="streamed")
    return StreamingHttpResponse(iter([b"a", b"b"]), status=201)


@api_view(["GET", "HEAD", "POST", "PATCH"])
@idempotent(methods=["POST", "PATCH"])
def methods_function(request: Request) -> Response:
    if request.method in ("GET", "HEAD"):
        return Response({"widgets": Widget.objects.count()})
    return perform(request)


@api_view(["POST"])
@permission_classes([IsAuthenticated, PeekingPermission])
@idempotent
def peeking_function(request: Request) -> Response:
    return perform(request)


@api_view(["POST"])
@authentication_classes([StatelessAuthentication])
@idempotent
def stateless_function(request: Request) -> Response:
    return perform(request)


class ShortLivedViewSet(WidgetViewSet):
    idempotency_ttl = timedelta(hours=1)


@api_view(["POST"])
@idempotent(ttl=timedelta(hours=1))
def short_lived_function(request: Request) -> Response:
    return perform(request)


class ActionOrderViewSet(viewsets.GenericViewSet):
    """``@idempotent`` on either side of ``@action``: both orders work."""

    queryset = Widget.objects.all()

    @action(detail=False, methods=["post"])
    @idempotent
    def below(self, request: Request) -> Response:
        return perform(request)

    @idempotent
    @action(detail=False, methods=["post"])
    def above(self, request: Request) -> Response:
        return perform(request)
