from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_permission_codename
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from idempotency_jobs.jobs.tasks import enqueue_job
from idempotency_jobs.models import IdempotencyKey, Job


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the request flow and workers; editing them would break guarantees.

    The operators' actions below change them only through the models' compare-and-set methods,
    and need the model's change permission (``has_operate_permission``).
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def report(self, request: HttpRequest, done: int, message: str, left: int, why: str) -> None:
        """``Released 2 in-progress keys; 1 was not in progress and was left alone.``"""
        if left:
            alone = "was left alone" if left == 1 else "were left alone"
            message += f"; {left} {why} and {alone}"
        self.message_user(request, message + ".", messages.SUCCESS if done else messages.WARNING)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "scope", "state", "response_status", "created_at", "expires_at"]
    list_filter = ["state", "replayable"]
    search_fields = ["key", "scope"]
    date_hierarchy = "created_at"
    exclude = ["response_body", "owner_token"]
    actions = ["release_keys"]

    @admin.action(description="Release selected in-progress keys", permissions=["operate"])
    def release_keys(self, request: HttpRequest, queryset: QuerySet[IdempotencyKey]) -> None:
        """Free claims stuck in progress, so the client's retry runs for real."""
        released = left = 0
        for key in queryset.only("pk", "key", "state", "owner_token"):
            if not key.release():
                left += 1
                continue
            released += 1
            self.log_release(request, key)
        not_in_progress = "was not in progress" if left == 1 else "were not in progress"
        done = f"Released {released} in-progress key{_s(released)}"
        self.report(request, released, done, left, not_in_progress)

    def log_release(self, request: HttpRequest, key: IdempotencyKey) -> None:
        """A deletion in the admin's log, saying what the operator did."""
        user: Any = request.user
        LogEntry.objects.log_actions(
            user_id=user.pk,
            queryset=[key],
            action_flag=DELETION,
            change_message="Released the in-progress claim.",
        )


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "owner", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "owner", "task_id", "idempotency_key"]
    exclude = ["worker_token"]
    date_hierarchy = "created_at"
    actions = ["retry_jobs", "cancel_jobs"]

    @admin.action(description="Retry selected failed jobs", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Queue failed jobs again with their attempts reset; sent once the change commits."""
        retried = left = 0
        for job in queryset:
            with transaction.atomic(using=router.db_for_write(Job)):
                if not job.retry():
                    left += 1
                    continue
                retried += 1
                enqueue_job(job)
                self.log_change(request, job, "Re-queued the failed job (attempts reset).")
        done = f"Re-queued {retried} failed job{_s(retried)}"
        self.report(request, retried, done, left, "had not failed")

    @admin.action(description="Cancel selected queued jobs", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Fail queued jobs with ``job_cancelled``; a job already running is left to finish."""
        cancelled = left = 0
        for job in queryset:
            with transaction.atomic(using=router.db_for_write(Job)):
                if not job.cancel():
                    left += 1
                    continue
                cancelled += 1
                self.log_change(request, job, "Cancelled the queued job.")
        not_queued = "was not queued" if left == 1 else "were not queued"
        done = f"Cancelled {cancelled} queued job{_s(cancelled)}"
        self.report(request, cancelled, done, left, not_queued)
