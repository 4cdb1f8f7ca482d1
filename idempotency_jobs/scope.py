"""Whose key is it: the caller a key belongs to (SPEC §2)."""

from __future__ import annotations

import hashlib

from rest_framework.request import Request

__all__ = ["default_scope"]


def default_scope(request: Request) -> str | None:
    """The authenticated user, else the credential; ``None`` for an anonymous caller.

    Anonymous callers have no scope: sharing one would let them replay each other's responses.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        meta = user._meta
        return f"{meta.app_label}.{meta.model_name}:{user.pk}"
    auth = getattr(request, "auth", None)
    if auth is None:
        return None
    pk = getattr(auth, "pk", None)
    if pk is not None:
        meta = auth._meta
        return f"{meta.app_label}.{meta.model_name}:{pk}"
    return "auth:" + hashlib.sha256(str(auth).encode()).hexdigest()
