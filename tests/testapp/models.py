from django.db import models


class Widget(models.Model):
    """One row per execution of a test view: tests count these."""

    owner = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)


class Revocation(models.Model):
    """A user whose access to the widget views was revoked."""

    username = models.CharField(max_length=100, unique=True)
