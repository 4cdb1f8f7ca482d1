from __future__ import annotations

from django.db import models
from django.utils import timezone

from example_project.workspaces.models import Workspace

__all__ = ["Subscriber"]


class Subscriber(models.Model):
    """A workspace's contact, unique by (lower-cased) email within the workspace."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"

    # Indexed by the composite indexes below, which all start with it.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="subscribers", db_index=False
    )
    email = models.CharField(max_length=254)
    name = models.CharField(max_length=255, blank=True, default="")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    custom_fields = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "email"], name="subscriber_workspace_email_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["workspace", "created_at", "id"], name="subscriber_ws_created_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.email
