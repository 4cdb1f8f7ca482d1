"""``idempotency_claim(request)``: what a view may know of the key it runs under."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.decorators import api_view, authentication_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from idempotency_jobs.keys.drf import idempotency_claim, idempotent
from tests.testapp.auth import HeaderUserAuthentication

pytestmark = pytest.mark.django_db(transaction=True)

seen: list[Any] = []


@api_view(["POST"])
@authentication_classes([HeaderUserAuthentication])
@idempotent
def claim_view(request: Request) -> Response:
    claim = idempotency_claim(request)
    seen.append(claim)
    return Response({"key": getattr(claim, "key", None)}, status=201)


def post(**headers: str) -> Any:
    request = APIRequestFactory().post(
        "/claims", {"n": 1}, format="json", HTTP_X_USER="ada", **headers
    )
    return claim_view(request)


def test_a_keyed_request_s_view_sees_its_claim(store: str) -> None:
    seen.clear()
    answer = post(HTTP_IDEMPOTENCY_KEY="claim-key-0001")
    assert answer.status_code == 201 and answer.data == {"key": "claim-key-0001"}
    [claim] = seen
    assert claim.key == "claim-key-0001" and claim.scope.startswith("auth.user:")
    assert len(claim.token) >= 32 and claim.fingerprint


def test_a_request_without_a_key_has_no_claim(store: str) -> None:
    seen.clear()
    answer = post()
    assert answer.status_code == 201 and answer.data == {"key": None}
    assert seen == [None]


def test_a_replay_runs_no_view_so_nothing_sees_a_claim(store: str) -> None:
    seen.clear()
    first = post(HTTP_IDEMPOTENCY_KEY="claim-key-0002")
    again = post(HTTP_IDEMPOTENCY_KEY="claim-key-0002")
    assert first.status_code == again.status_code == 201
    assert len(seen) == 1
    assert idempotency_claim(APIRequestFactory().post("/claims")) is None
