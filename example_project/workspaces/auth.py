"""Authenticate as a workspace with an API key: ``Bearer <key>`` or Basic ``<key>:``.

DRF imports this module while loading its own views (``DEFAULT_AUTHENTICATION_CLASSES``), so
it must not import ``rest_framework.views``, directly or not: view helpers live in ``api.py``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .models import ApiKey, Workspace

__all__ = [
    "ApiKeyAuthentication",
    "ApiKeyBasicAuthentication",
    "HasWorkspace",
    "WorkspacePrincipal",
    "workspace_scope",
]


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
    """``Authorization: Bearer mrk_…`` (Mailrith)."""

    scheme = b"bearer"

    def authenticate(self, request: Request) -> tuple[WorkspacePrincipal, ApiKey] | None:
        scheme, _, credentials = get_authorization_header(request).partition(b" ")
        if scheme.lower() != self.scheme:
            return None
        key = ApiKey.objects.authenticate(self.secret(credentials.strip()))
        if key is None:
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        return WorkspacePrincipal(key.workspace), key

    def secret(self, credentials: bytes) -> str:
        return _text(credentials)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyBasicAuthentication(ApiKeyAuthentication):
    """HTTP Basic with the key as user name and an empty password (Stannp's ``curl -u KEY:``)."""

    scheme = b"basic"

    def secret(self, credentials: bytes) -> str:
        return _basic_user(credentials)

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="api"'


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
