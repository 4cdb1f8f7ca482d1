from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from example_project.workspaces.models import Workspace

__all__ = ["Letter"]


class Letter(models.Model):
    """A letter queued for printing: one row per real execution of ``letters/create``."""

    class Status(models.TextChoices):
        TEST = "test", "Test"
        RECEIVED = "received", "Received"

    PRICE = Decimal("0.78")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="letters")
    status = models.CharField(max_length=16, choices=Status)
    template = models.PositiveIntegerField(null=True, blank=True)
    background = models.URLField(max_length=2000, blank=True)
    pages = models.TextField(blank=True)
    file = models.URLField(max_length=2000, blank=True)
    recipient = models.JSONField(default=dict)
    tags = models.CharField(max_length=255, blank=True)
    duplex = models.BooleanField(default=True)
    cost = models.DecimalField(max_digits=8, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"], name="letter_ws_created_idx")]

    def __str__(self) -> str:
        return f"letter {self.pk} ({self.status})"
