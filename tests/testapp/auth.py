"""Test authentication: ``X-User: alice`` authenticates as a user named alice, with no DB query."""

from __future__ import annotations

import zlib

from django.contrib.auth.models import User
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request


class HeaderUserAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, None] | None:
        name = request.headers.get("X-User")
        if not name:
            return None
        return User(pk=zlib.crc32(name.encode()), username=name), None

    def authenticate_header(self, request: Request) -> str:
        return "X-User"


class StatelessUser:
    """A user that is no model instance, as JWT libraries' token users are."""

    is_authenticated = True

    def __init__(self, username: str, pk: str | None) -> None:
        self.username = username
        self.pk = pk


class StatelessAuthentication(BaseAuthentication):
    """``X-Stateless-User: name`` (a user with a pk) or ``name;token`` (no pk, only a token)."""

    def authenticate(self, request: Request) -> tuple[StatelessUser, str | None] | None:
        value = request.headers.get("X-Stateless-User")
        if not value:
            return None
        name, _, token = value.partition(";")
        return StatelessUser(name, pk=None if token else name), token or None

    def authenticate_header(self, request: Request) -> str:
        return "X-Stateless-User"
