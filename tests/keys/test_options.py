"""Per-view options: one list (``IdempotencyOptions``), read as ``idempotency_<option>`` by the
mixin and taken as keywords by the decorator, checked on both faces when the view is defined,
resolved into a frozen object with nothing unset (docs/configuration.md#per-view)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from idempotency_jobs.exceptions import IdempotencyConfigurationError
from idempotency_jobs.keys.core import OPTION_NAMES, UNSET, IdempotencyOptions
from idempotency_jobs.keys.drf import IdempotencyMixin, idempotent
from idempotency_jobs.models import IdempotencyKey
from tests.testapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)


def shared_scope(request: Request) -> str:
    return "tenant:shared"


def name_only(request: Request) -> str:
    return str(request.data.get("name"))


class SharedWidgets(IdempotencyMixin, APIView):
    """Anonymous callers share one scope; only ``name`` makes two requests different."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    idempotency_scope = shared_scope
    idempotency_fingerprint = name_only
    idempotency_methods = ["post", "PUT"]
    idempotency_ttl = "2h"

    def post(self, request: Request) -> Response:
        widget = Widget.objects.create(name=request.data["name"])
        return Response({"id": widget.pk}, status=201)

    put = post


@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@idempotent(scope=shared_scope, fingerprint=name_only, required=True, ttl=60)
def shared_widgets(request: Request) -> Response:
    widget = Widget.objects.create(name=request.data["name"])
    return Response({"id": widget.pk}, status=201)


def call(view: Any, body: dict[str, Any], key: str | None, method: str = "post") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    request = getattr(APIRequestFactory(), method)("/shared", body, format="json", **headers)
    return view(request)


def test_there_is_one_list_of_options_and_both_faces_take_every_name() -> None:
    assert tuple(f.name for f in dataclasses.fields(IdempotencyOptions)) == OPTION_NAMES
    assert set(OPTION_NAMES) == {
        "required", "replay_status", "ttl", "methods", "store_4xx", "scope", "fingerprint"
    }  # fmt: skip
    for name in OPTION_NAMES:
        assert getattr(IdempotencyMixin, f"idempotency_{name}") is UNSET
    decorated = idempotent(lambda request: None, **{name: UNSET for name in OPTION_NAMES})
    assert decorated.idempotency_options == IdempotencyOptions()


def test_the_mixin_reads_every_option_from_its_attributes() -> None:
    options = SharedWidgets._idempotency_options
    assert options.scope is shared_scope and options.fingerprint is name_only
    assert options.methods == frozenset({"POST", "PUT"})
    assert options.ttl == timedelta(hours=2)


def test_the_mixin_s_scope_and_fingerprint_attributes_decide_a_replay(store: str) -> None:
    view = SharedWidgets.as_view()
    first = call(view, {"name": "a", "noise": 1}, "shared-key-0001")
    again = call(view, {"name": "a", "noise": 2}, "shared-key-0001")  # same name: same request
    other = call(view, {"name": "b"}, "shared-key-0001")
    assert first.status_code == again.status_code == 201
    first.render()
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert other.status_code == 422
    assert Widget.objects.count() == 1
    if store == "database":
        row = IdempotencyKey.objects.get()
        assert row.scope == "tenant:shared"
        assert row.expires_at - row.created_at == timedelta(hours=2)


def test_the_mixin_s_methods_attribute_covers_put(store: str) -> None:
    view = SharedWidgets.as_view()
    call(view, {"name": "p"}, "shared-key-0002", method="put")
    again = call(view, {"name": "p"}, "shared-key-0002", method="put")
    assert again["Idempotent-Replayed"] == "true"
    assert Widget.objects.count() == 1


def test_the_decorator_takes_the_same_names(store: str) -> None:
    assert call(shared_widgets, {"name": "a"}, None).status_code == 400  # required=True
    first = call(shared_widgets, {"name": "a", "noise": 1}, "shared-key-0003")
    again = call(shared_widgets, {"name": "a", "noise": 2}, "shared-key-0003")
    assert first.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert Widget.objects.count() == 1


MISTAKES = [
    ({"ttl": 0}, "ttl=0 must be positive."),
    ({"ttl": "1 day"}, "ttl='1 day' must be a timedelta"),
    ({"methods": "POST"}, "methods='POST': give a list of HTTP methods"),
    ({"methods": []}, "methods=[]: give a list of HTTP methods"),
    ({"required": "yes"}, "required='yes' must be True or False."),
    ({"store_4xx": 1}, "store_4xx=1 must be True or False."),
    ({"replay_status": 99}, "replay_status=99 is not an HTTP status"),
    ({"replay_status": True}, "replay_status=True is not an HTTP status"),
    ({"scope": "tests.scope"}, "scope='tests.scope' must be a function of the request."),
]


@pytest.mark.parametrize(("options", "message"), MISTAKES)
def test_a_mistake_on_the_decorator_is_an_error_when_the_view_is_defined(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(IdempotencyConfigurationError, match="^" + _escape(message)):
        idempotent(**options)


@pytest.mark.parametrize(("options", "message"), MISTAKES)
def test_the_same_mistake_on_the_mixin_is_an_error_naming_the_class_and_attribute(
    options: dict[str, Any], message: str
) -> None:
    attributes = {f"idempotency_{name}": value for name, value in options.items()}
    with pytest.raises(
        IdempotencyConfigurationError, match="^BadView.idempotency_" + _escape(message)
    ):
        type("BadView", (IdempotencyMixin, APIView), attributes)


def test_an_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(IdempotencyConfigurationError) as caught:
        idempotent(requierd=True)
    assert str(caught.value) == (
        "Unknown idempotency option(s) ['requierd']; the options are required, replay_status, "
        "ttl, methods, store_4xx, scope, fingerprint."
    )


def test_durations_take_the_forms_the_settings_take() -> None:
    assert IdempotencyOptions(ttl="90s").ttl == timedelta(seconds=90)
    assert IdempotencyOptions(ttl=3600).ttl == timedelta(hours=1)
    assert IdempotencyOptions(ttl=timedelta(days=1)).ttl == timedelta(days=1)


def test_resolved_options_are_frozen_with_nothing_unset(settings: Any) -> None:
    resolved = IdempotencyOptions(required=True).resolve()
    assert resolved.required is True
    assert resolved.ttl == timedelta(hours=24) and resolved.methods == frozenset({"POST"})
    assert resolved.replay_status is None and resolved.store_4xx is False
    # no scope or fingerprint chosen: the view's hook runs, else the setting's function
    assert resolved.scope is None and resolved.fingerprint is None
    assert UNSET not in [getattr(resolved, f.name) for f in dataclasses.fields(resolved)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.ttl = timedelta(0)  # type: ignore[misc]
    assert IdempotencyOptions(required=True).resolve() is resolved  # resolved once
    settings.IDEMPOTENCY_JOBS = {"TTL": "1h", "METHODS": ["POST", "PATCH"]}
    again = IdempotencyOptions(required=True).resolve()
    assert again.ttl == timedelta(hours=1) and again.covers("patch")
    assert not again.covers("GET") and not again.covers(None)


def _escape(message: str) -> str:
    return re.escape(message)
