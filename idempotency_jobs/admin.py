from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import IdempotencyKey, Job


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the request flow and workers; editing them would break guarantees."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "scope", "state", "response_status", "created_at", "expires_at"]
    list_filter = ["state", "replayable"]
    search_fields = ["key", "scope"]
    date_hierarchy = "created_at"
    exclude = ["response_body", "owner_token"]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "owner", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "owner", "task_id", "idempotency_key"]
    exclude = ["worker_token"]
    date_hierarchy = "created_at"
