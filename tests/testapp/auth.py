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
