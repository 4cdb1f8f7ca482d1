"""Workspaces own everything; API keys authenticate as a workspace.

A key is ``mrk_<prefix>_<secret>``. Only the prefix (for lookup) and the SHA-256 of the whole
key are stored: the secret has 256 bits of entropy, so a plain hash is as good as a slow one
and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import ClassVar

from django.db import models

__all__ = ["KEY_PREFIX", "ApiKey", "Workspace"]

KEY_PREFIX = "mrk_"
SCOPE_PREFIX = "workspace:"
# Every issued key is visible ASCII; anything else (a NUL, which PostgreSQL refuses in text, or
# any other control byte) is refused before the lookup.
KEY_SHAPE = re.compile(rf"{KEY_PREFIX}[\x21-\x7e]+")


class Workspace(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def scope(self) -> str:
        """The idempotency scope and job owner of everything this workspace does."""
        return f"{SCOPE_PREFIX}{self.pk}"

    @staticmethod
    def id_from_scope(scope: str) -> int:
        """The workspace id behind a scope (a job's owner); ``ValueError`` if it is not one."""
        if not scope.startswith(SCOPE_PREFIX):
            raise ValueError(f"{scope!r} is not a workspace scope")
        return int(scope.removeprefix(SCOPE_PREFIX))


class ApiKeyManager(models.Manager["ApiKey"]):
    def issue(self, workspace: Workspace, *, label: str = "") -> tuple[ApiKey, str]:
        """Create a key; the secret is returned once and never stored."""
        prefix = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        key = self.create(
            workspace=workspace, prefix=prefix, secret_hash=hash_secret(secret), label=label
        )
        return key, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, else ``None``."""
        if not KEY_SHAPE.fullmatch(secret):
            return None
        prefix, _, rest = secret.removeprefix(KEY_PREFIX).partition("_")
        if not rest:
            return None
        key = self.select_related("workspace").filter(prefix=prefix, revoked_at=None).first()
        if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            return None
        return key


class ApiKey(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[ApiKeyManager] = ApiKeyManager()

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}_… ({self.workspace})"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
