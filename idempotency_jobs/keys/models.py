"""The idempotency key: one row per (scope, key) (docs/semantics.md#identity)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

__all__ = ["IdempotencyKey"]


class IdempotencyKeyQuerySet(models.QuerySet["IdempotencyKey"]):
    def purgeable(
        self, *, older_than: timedelta | None = None, now: datetime | None = None
    ) -> IdempotencyKeyQuerySet:
        """Keys the purge command may delete: expired (or older than ``older_than``), not live."""
        now = now or timezone.now()
        old = (
            Q(created_at__lt=now - older_than) if older_than is not None else Q(expires_at__lte=now)
        )
        live = Q(state=IdempotencyKey.State.IN_PROGRESS, lease_expires_at__gt=now)
        return self.filter(old).exclude(live)

    def delete_batch(self, size: int) -> int:
        """Delete up to ``size`` of these keys in one short transaction; how many were deleted.
        Rows another transaction holds (a takeover of an expired key) are skipped, not waited
        for while this batch holds its own: claims of those would queue up. The DELETE
        re-checks this queryset's condition, so a key claimed again since stays.
        """
        using = self._db or router.db_for_write(self.model)  # type: ignore[attr-defined]
        connection = connections[using]
        with transaction.atomic(using=using):
            if connection.vendor == "postgresql":
                # The DELETE finds the rows by their address (ctid), not by a lookup in the
                # primary key's index per row (half of its time). It only sees row versions as
                # they were when it began: a row changed since is left alone.
                rows = self.annotate(row=RawSQL("ctid", ())).values_list("row", flat=True)
                rows = rows.select_for_update(skip_locked=True)[:size]
                picked, params = rows.query.get_compiler(using).as_sql()
                at = f"ctid = ANY(ARRAY({picked}))"
                batch = self.filter(RawSQL(at, params, output_field=models.BooleanField()))  # noqa: S611
            else:
                pks = self.values_list("pk", flat=True)
                if connection.features.allow_sliced_subqueries_with_in:  # SQLite: one statement
                    batch = self.filter(pk__in=pks[:size])
                else:  # MySQL: the ids through Python
                    if connection.features.has_select_for_update_skip_locked:
                        pks = pks.select_for_update(skip_locked=True)
                    batch = self.filter(pk__in=list(pks[:size]))
            return batch.delete()[0]


class IdempotencyKey(models.Model):
    """One caller's use of one key: the claim while it runs, then the stored response."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    scope = models.CharField(max_length=255)
    key = models.CharField(max_length=1024)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State, default=State.IN_PROGRESS)
    owner_token = models.CharField(max_length=32)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=list, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    replayable = models.BooleanField(default=True)

    objects = IdempotencyKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "idempotency key"
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_scope_key_uniq"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="idempotency_key_expires_idx"),
            models.Index(fields=["created_at"], name="idempotency_key_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())

    def lease_expired(self, now: datetime | None = None) -> bool:
        return self.lease_expires_at is None or self.lease_expires_at <= (now or timezone.now())

    def release(self) -> bool:
        """An operator frees a stuck claim: deleted only while it is still this in-progress
        claim (a compare-and-delete), so a completed key is never released. Its request, if
        it still runs, then loses its lease and its writes roll back."""
        claim = IdempotencyKey.objects.filter(
            pk=self.pk, state=IdempotencyKey.State.IN_PROGRESS, owner_token=self.owner_token
        )
        return bool(claim.delete()[0])
