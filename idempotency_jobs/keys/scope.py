"""Whose key is it: the caller a key belongs to (docs/semantics.md#identity)."""

from __future__ import annotations

import hashlib

from rest_framework.request import Request

__all__ = ["default_scope"]


def default_scope(request: Request) -> str | None:
    """The authenticated user, else the credential; ``None`` for an anonymous caller.

    Anonymous callers have no scope: sharing one would let them replay each other's responses.
    Users need not be model instances (JWT libraries' token users are not); one without a
    ``pk`` is scoped by its credential, never by a ``None`` that all such users would share.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        pk = getattr(user, "pk", None)
        if pk is not None:
            return f"{_label(user)}:{pk}"
    auth = getattr(request, "auth", None)
    if auth is None:
        return None
    pk = getattr(auth, "pk", None)
    if pk is not None:
        return f"{_label(auth)}:{pk}"
    return "auth:" + hashlib.sha256(str(auth).encode()).hexdigest()


def _label(obj: object) -> str:
    meta = getattr(obj, "_meta", None)
    if meta is not None:
        return f"{meta.app_label}.{meta.model_name}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
