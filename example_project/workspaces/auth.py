"""Authenticate as a workspace with an API key: ``Bearer <key>`` or Basic ``<key>:``.

A project may name these classes in ``DEFAULT_AUTHENTICATION_CLASSES``, which DRF imports while
loading its own views, so this module must not import ``rest_framework.views``, directly or
not: view helpers live in ``api.py``.
"""

from __future__ import annotations

import base64
import binascii
import re
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
    "UnsupportedAuthorizationScheme",
    "WorkspacePrincipal",
    "workspace_scope",
]


SCHEMES = (b"bearer", b"basic")
# Every 401 offers both: a client learns from any of them how to send its key (RFC 9110 §11.6.1).
CHALLENGES = 'Bearer realm="api", Basic realm="api"'
USAGE = (
    "Send the API key as Authorization: Bearer <key>, or with HTTP Basic as the user name and an "
    "empty password."
)
SCHEME_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}")


class UnsupportedAuthorizationScheme(AuthenticationFailed):
    """An ``Authorization`` header neither ``Bearer`` nor ``Basic`` (``Token <key>``, a key)."""

    default_detail = "The Authorization header has no scheme this API accepts. " + USAGE
    default_code = "unsupported_authorization_scheme"


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
    missing = "No API key after Bearer: send Authorization: Bearer <key>."

    def authenticate(self, request: Request) -> tuple[WorkspacePrincipal, ApiKey] | None:
        header = get_authorization_header(request).strip()
        scheme, _, credentials = header.partition(b" ")
        if header and scheme.lower() not in SCHEMES:
            raise _unsupported(scheme, credentials)
        if scheme.lower() != self.scheme:
            return None
        secret = self.secret(credentials.strip())
        if not secret:
            raise AuthenticationFailed(self.missing, code="invalid_api_key")
        key = ApiKey.objects.authenticate(secret)
        if key is None:
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        return WorkspacePrincipal(key.workspace), key

    def secret(self, credentials: bytes) -> str:
        return _text(credentials)

    def authenticate_header(self, request: Request) -> str:
        return CHALLENGES


class ApiKeyBasicAuthentication(ApiKeyAuthentication):
    """HTTP Basic with the key as user name and an empty password (Stannp's ``curl -u KEY:``)."""

    scheme = b"basic"
    missing = "No API key in the Basic credentials: send it as the user name."

    def secret(self, credentials: bytes) -> str:
        return _basic_user(credentials) if credentials else ""


def _unsupported(scheme: bytes, credentials: bytes) -> UnsupportedAuthorizationScheme:
    """Names the scheme that was sent, never a bare key (a secret) sent without one."""
    if credentials.strip() and SCHEME_NAME.fullmatch(scheme):
        return UnsupportedAuthorizationScheme(
            f"This API does not accept the {scheme.decode()} scheme. {USAGE}"
        )
    return UnsupportedAuthorizationScheme()


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
