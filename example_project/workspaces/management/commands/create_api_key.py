"""``manage.py create_api_key <workspace>``: print a new key's secret, alone, on stdout."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug
from django.db import transaction

from example_project.workspaces.models import ApiKey, Workspace


class Command(BaseCommand):
    help = (
        "Create an API key for a workspace (created if needed) and print its secret. "
        "The secret is shown only once: it is stored hashed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace", help="Workspace name (a slug, e.g. 'demo').")
        parser.add_argument("--label", default="", help="A note on what the key is for.")

    def handle(self, *args: Any, workspace: str, label: str, **options: Any) -> None:
        try:
            validate_slug(workspace)
        except ValidationError as exc:
            raise CommandError(
                f"Invalid workspace name {workspace!r}: use letters, digits, - and _."
            ) from exc
        with transaction.atomic():
            space, created = Workspace.objects.get_or_create(name=workspace)
            _, secret = ApiKey.objects.issue(space, label=label)
        if created:
            self.stderr.write(f"Created workspace {space.name!r}.")
        self.stdout.write(secret)
