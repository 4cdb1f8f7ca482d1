"""Fixtures and helpers shared by the example project's tests (tests/example/)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from rest_framework.test import APIClient

from example_project.workspaces.models import ApiKey, Workspace

__all__ = [
    "HttpAnswer",
    "basic",
    "bearer",
    "export_media",
    "http",
    "make_key",
    "no_jobs_run",
    "valid_email",
    "workspace_client",
]


@pytest.fixture(autouse=True)
def export_media(settings: Any, tmp_path: Path) -> Path:
    """Export files go to a fresh directory per test (MEDIA_ROOT of the default storage)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def make_key(db: None) -> Callable[..., str]:
    """``make_key("acme")``: a new API key secret for that workspace (created if needed)."""

    def make(name: str = "acme") -> str:
        workspace, _ = Workspace.objects.get_or_create(name=name)
        return ApiKey.objects.issue(workspace)[1]

    return make


@pytest.fixture
def workspace_client(make_key: Callable[..., str]) -> Callable[..., APIClient]:
    """``workspace_client("acme")``: an APIClient sending a Bearer key of that workspace."""

    def client(name: str = "acme") -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=bearer(make_key(name)))
        return api

    return client


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> HttpAnswer:
    """One real HTTP request (urllib), whatever the status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpAnswer(error.code, dict(error.headers), error.read())


@pytest.fixture
def no_jobs_run(settings: Any) -> None:
    """Jobs stay ``queued`` (a task backend nobody works off): tests run them by hand."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}


def valid_email(email: str) -> bool:
    """What an import must accept: Django's validator passes it and it fits the column."""
    if len(email) > 254:
        return False
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True
