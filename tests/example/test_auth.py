"""API keys: create_api_key, hashed storage, Bearer and Basic, and 401 problems."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from example_project.subscribers.models import Subscriber
from example_project.workspaces.auth import CHALLENGES
from example_project.workspaces.models import ApiKey, Workspace
from tests.example.test_support import basic, bearer, export_media, make_key, workspace_client

__all__ = ["export_media", "make_key", "workspace_client"]

pytestmark = pytest.mark.django_db

SUBSCRIBERS = "/v1/subscribers"


def create_api_key(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_api_key_prints_only_the_secret_and_stores_its_hash() -> None:
    out, err = create_api_key("demo")
    secret = out.strip()
    assert out == secret + "\n"
    assert secret.startswith("mrk_") and len(secret) > 40
    assert "demo" in err  # the note about the new workspace goes to stderr
    key = ApiKey.objects.get()
    assert key.workspace.name == "demo"
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(value) for value in ApiKey.objects.values_list().get()]
    assert not any(secret in value or value in secret for value in stored if len(value) > 12)
    # A second key for the same workspace: no second workspace, a different secret.
    again, err = create_api_key("demo")
    assert again.strip() != secret and err == ""
    assert (Workspace.objects.count(), ApiKey.objects.count()) == (1, 2)


def test_create_api_key_refuses_a_bad_workspace_name() -> None:
    with pytest.raises(CommandError, match="Invalid workspace name"):
        create_api_key("not a slug")
    assert not Workspace.objects.exists()


def test_bearer_and_basic_authenticate_as_the_workspace(make_key: Callable[..., str]) -> None:
    secret = make_key("acme")
    Subscriber.objects.create(workspace=Workspace.objects.get(name="acme"), email="a@example.com")
    Subscriber.objects.create(workspace=Workspace.objects.create(name="b"), email="b@example.com")
    for header in (bearer(secret), basic(secret), f"bearer   {secret}"):
        answer = APIClient().get(SUBSCRIBERS, HTTP_AUTHORIZATION=header)
        assert answer.status_code == 200, header
        assert [s["email"] for s in answer.json()["results"]] == ["a@example.com"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no credentials"),
        pytest.param("Bearer mrk_example_secret_key", id="unknown key"),
        pytest.param("Bearer nonsense", id="not a key"),
        pytest.param("Bearer ", id="empty bearer"),
        pytest.param("Basic !!!", id="malformed basic"),
        pytest.param("Basic " + "bXJrX2E6Yg==", id="basic with a password"),
        pytest.param("Token abc", id="other scheme"),
    ],
)
def test_wrong_or_missing_key_is_a_401_problem(header: str | None) -> None:
    headers: dict[str, Any] = {} if header is None else {"HTTP_AUTHORIZATION": header}
    answer = APIClient().get(SUBSCRIBERS, **headers)
    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    # Every 401 offers both schemes the API takes (it offered only Bearer before issue 13).
    assert answer["WWW-Authenticate"] == CHALLENGES
    problem = answer.json()
    assert problem["status"] == 401 and problem["code"] in {
        "invalid_api_key",
        "not_authenticated",
        "unsupported_authorization_scheme",
    }


USAGE = (
    "Send the API key as Authorization: Bearer <key>, or with HTTP Basic as the user name and an "
    "empty password."
)


@pytest.mark.parametrize(
    ("header", "code", "detail"),
    [
        pytest.param(
            "Token {secret}",
            "unsupported_authorization_scheme",
            "This API does not accept the Token scheme. " + USAGE,
            id="token scheme",
        ),
        pytest.param(
            "{secret}",
            "unsupported_authorization_scheme",
            "The Authorization header has no scheme this API accepts. " + USAGE,
            id="bare key",
        ),
        pytest.param(
            "Bearer",
            "invalid_api_key",
            "No API key after Bearer: send Authorization: Bearer <key>.",
            id="empty bearer",
        ),
        pytest.param(
            "Bearer   ",
            "invalid_api_key",
            "No API key after Bearer: send Authorization: Bearer <key>.",
            id="blank bearer",
        ),
        pytest.param(
            "Basic " + base64.b64encode(b":").decode(),
            "invalid_api_key",
            "No API key in the Basic credentials: send it as the user name.",
            id="empty basic user",
        ),
        pytest.param("Bearer {secret}x", "invalid_api_key", "Invalid API key.", id="wrong key"),
        pytest.param(
            None,
            "not_authenticated",
            "Authentication credentials were not provided.",
            id="no header",
        ),
    ],
)
def test_each_401_says_how_to_send_the_key(
    make_key: Callable[..., str], header: str | None, code: str, detail: str
) -> None:
    """Issue 13 item 7: ``Token <key>`` and a bare key were "Authentication credentials were not
    provided.", which sent callers looking for a missing header instead of a wrong scheme."""
    secret = make_key()
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header.format(secret=secret)}
    answer = APIClient().get(SUBSCRIBERS, **headers)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="api", Basic realm="api"'
    problem = answer.json()
    assert (problem["status"], problem["code"], problem["detail"]) == (401, code, detail)
    assert secret not in answer.content.decode()


def test_an_unsupported_scheme_is_not_echoed_unless_it_looks_like_one() -> None:
    answer = APIClient().get(SUBSCRIBERS, HTTP_AUTHORIZATION="<script>x</script> abc")
    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "The Authorization header has no scheme this API accepts. " + USAGE
    )


def test_a_tampered_or_revoked_key_is_refused(make_key: Callable[..., str]) -> None:
    secret = make_key()
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert APIClient().get(SUBSCRIBERS, HTTP_AUTHORIZATION=bearer(tampered)).status_code == 401
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert APIClient().get(SUBSCRIBERS, HTTP_AUTHORIZATION=bearer(secret)).status_code == 401


def test_subscriber_list_is_paginated_and_filtered(
    workspace_client: Callable[..., APIClient],
) -> None:
    api = workspace_client("acme")
    workspace = Workspace.objects.get(name="acme")
    Subscriber.objects.bulk_create(
        Subscriber(
            workspace=workspace, email=f"s{i}@example.com", status="active" if i % 2 else "bounced"
        )
        for i in range(7)
    )
    page = api.get(SUBSCRIBERS, {"page_size": 3}).json()
    assert page["count"] == 7 and len(page["results"]) == 3 and page["next"]
    assert api.get(SUBSCRIBERS, {"status": "bounced"}).json()["count"] == 4
    assert api.get(SUBSCRIBERS, {"email": "S3@Example.com"}).json()["results"][0]["email"] == (
        "s3@example.com"
    )


@pytest.mark.parametrize("value", ["null", "0", "-3", "1001", "ten", "2.5", "1e3", "9" * 5000])
def test_a_page_size_that_is_not_1_to_1000_is_a_400_naming_it(
    workspace_client: Callable[..., APIClient], value: str
) -> None:
    """DRF quietly answers its default page size instead; the client asked for something else."""
    answer = workspace_client("acme").get(SUBSCRIBERS, {"page_size": value})
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["errors"] == {
        "page_size": ["A whole number from 1 to 1000 (default 100)."]
    }


@pytest.mark.parametrize(("value", "size"), [("1", 1), ("1000", 7), (" 2 ", 2), ("", 7)])
def test_a_page_size_from_1_to_1000_sizes_the_page(
    workspace_client: Callable[..., APIClient], value: str, size: int
) -> None:
    """An empty one is the default, as an empty filter filters nothing."""
    api = workspace_client("acme")
    workspace = Workspace.objects.get(name="acme")
    Subscriber.objects.bulk_create(
        Subscriber(workspace=workspace, email=f"p{i}@example.com") for i in range(7)
    )
    assert len(api.get(SUBSCRIBERS, {"page_size": value}).json()["results"]) == size


def test_the_services_settings_close_a_view_that_does_not_list_the_api_mixin(
    settings: Any, make_key: Callable[..., str]
) -> None:
    """The API's policy is stated once, by WorkspaceAPIMixin; a DRF view of the service without
    it gets the settings' default permission, which no caller of the API has."""
    import importlib

    from rest_framework.response import Response
    from rest_framework.settings import api_settings
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from example_project.workspaces.api import WorkspaceAPIMixin

    service = importlib.import_module("example_project.settings")
    settings.REST_FRAMEWORK = service.REST_FRAMEWORK

    class Forgotten(APIView):
        # What APIView took from the settings when DRF was imported, had these been the
        # settings then (APIView reads them once, at its own definition).
        authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
        permission_classes = api_settings.DEFAULT_PERMISSION_CLASSES

        def get(self, request: Any) -> Response:
            return Response({"ok": True})

    class Listed(WorkspaceAPIMixin, APIView):
        def get(self, request: Any) -> Response:
            return Response({"workspace": self.workspace.pk})

    key = make_key("acme")
    workspace = Workspace.objects.get(name="acme")

    def get(view: type[APIView]) -> Any:
        request = APIRequestFactory().get("/x", HTTP_AUTHORIZATION=f"Bearer {key}")
        return view.as_view()(request)

    assert get(Forgotten).status_code in (401, 403)
    answered = get(Listed)
    assert answered.status_code == 200 and answered.data == {"workspace": workspace.pk}
