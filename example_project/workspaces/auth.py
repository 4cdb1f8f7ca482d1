"""Authenticate as a workspace with an API key: ``Bearer <key>`` or Basic ``<key>:``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, NotFound, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from idempotency_jobs.exceptions import problem_exception_handler

from .models import ApiKey, Workspace

__all__ = ["ApiKeyAuthentication", "HasWorkspace", "WorkspaceAPIMixin", "workspace_scope"]


@dataclass(frozen=True)
class WorkspacePrincipal:
    """``request.user`` for an API key: the workspace, not a person."""

    workspace: Workspace
    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False

    @property
    def pk(self) -> int:
        return self.workspace.pk

    def __str__(self) -> str:
        return str(self.workspace)


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer mrk_…`` (Mailrith), or HTTP Basic ``mrk_…:`` (Stannp's ``-u``)."""

    def authenticate(self, request: Request) -> tuple[WorkspacePrincipal, ApiKey] | None:
        scheme, _, credentials = get_authorization_header(request).partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            secret = _text(credentials.strip())
        elif scheme == b"basic":
            secret = _basic_user(credentials.strip())
        else:
            return None
        key = ApiKey.objects.authenticate(secret)
        if key is None:
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        return WorkspacePrincipal(key.workspace), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("Invalid API key.", code="invalid_api_key") from None


def _basic_user(raw: bytes) -> str:
    """The user name of Basic credentials; the key goes there and the password stays empty."""
    try:
        user, _, password = base64.b64decode(raw, validate=True).decode("ascii").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("Malformed Basic credentials.", code="invalid_api_key") from None
    if password:
        raise AuthenticationFailed(
            "Send the API key as the Basic user name with an empty password.",
            code="invalid_api_key",
        )
    return user


class HasWorkspace(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey)


def workspace_scope(request: Request) -> str | None:
    """Idempotency keys (and jobs) belong to the workspace behind the API key."""
    auth = getattr(request, "auth", None)
    return auth.workspace.scope if isinstance(auth, ApiKey) else None


def workspace_exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """``problem_exception_handler``, also for Django's ``Http404`` and ``PermissionDenied``
    (e.g. ``get_object_or_404``), which it otherwise leaves as plain JSON."""
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = PermissionDenied()
    return problem_exception_handler(exc, context)


class WorkspaceAPIMixin:
    """API-key auth, the workspace as idempotency scope, problem details. List it first."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasWorkspace]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        """Problem details whatever the project's ``EXCEPTION_HANDLER``."""
        return workspace_exception_handler

    def get_idempotency_scope(self, request: Request) -> str | None:
        return workspace_scope(request)

    @property
    def workspace(self) -> Workspace:
        request: Request = self.request  # type: ignore[attr-defined]
        auth = request.auth
        assert isinstance(auth, ApiKey)  # noqa: S101 - HasWorkspace ran first
        return auth.workspace
