"""What every API view of the service shares, stated here and nowhere else (not in settings):
API-key auth, the workspace as permission and as idempotency scope, problem details."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from idempotency_jobs.exceptions import problem_exception_handler

from .auth import ApiKeyAuthentication, ApiKeyBasicAuthentication, HasWorkspace, workspace_scope
from .models import ApiKey, Workspace

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

__all__ = ["WorkspaceAPIMixin"]


class WorkspaceAPIMixin:
    """API-key auth, the workspace as idempotency scope, problem details. List it first."""

    authentication_classes: Sequence[type[BaseAuthentication]] = [
        ApiKeyAuthentication,
        ApiKeyBasicAuthentication,
    ]
    permission_classes: Sequence[_PermissionClass] = [HasWorkspace]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        """Problem details for every error of the API."""
        return problem_exception_handler

    def get_idempotency_scope(self, request: Request) -> str | None:
        """The workspace's keys are its own: two workspaces may use the same key."""
        return workspace_scope(request)

    @property
    def workspace(self) -> Workspace:
        request: Request = self.request  # type: ignore[attr-defined]
        auth = request.auth
        assert isinstance(auth, ApiKey)  # noqa: S101 - HasWorkspace ran first
        return auth.workspace
