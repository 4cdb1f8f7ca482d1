from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils import timezone

from idempotency_jobs.conf import SETTINGS_NAME, idempotency_settings, parse_duration
from idempotency_jobs.keys.stores import get_store, store_class
from idempotency_jobs.keys.stores.database import DatabaseStore


def older_than_age(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Delete idempotency keys past their TTL (or older than --older-than), in small batches. "
        "Claims still in progress are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=str,
            default=None,
            help="Delete keys created longer ago than this, e.g. 24h or 7d "
            "(default: the keys past their TTL).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="Rows per DELETE (default: %(default)s)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--database",
            default=None,
            help=f"Database alias of the key store (default: {SETTINGS_NAME}['DATABASE_ALIAS'], "
            f"now {idempotency_settings.DATABASE_ALIAS!r}).",
        )

    def handle(
        self,
        *,
        older_than: str | None,
        batch_size: int,
        dry_run: bool,
        database: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be a positive number.")
        age = older_than_age(older_than) if older_than is not None else None
        if age is not None and age <= timedelta(0):
            raise CommandError("--older-than must be longer than zero.")
        kind = store_class()
        if kind.expires_natively and database is None:
            # Keys it expires by itself; a database store used before may have left rows.
            self.stdout.write(
                f"The {idempotency_settings.STORE} store expires keys by itself; checking the "
                "database too."
            )
        alias = database or idempotency_settings.DATABASE_ALIAS
        if alias not in connections:
            source = "--database" if database else f"{SETTINGS_NAME}['DATABASE_ALIAS']"
            raise CommandError(
                f"Unknown database {alias!r} ({source}): DATABASES has "
                f"{', '.join(map(repr, connections))}."
            )
        # A store that expires keys itself leaves only what a database store left behind.
        store = DatabaseStore(alias) if kind.expires_natively or database else get_store()
        deleted = 0
        for deleted in store.purge(
            older_than=age, now=timezone.now(), batch_size=batch_size, dry_run=dry_run
        ):
            if verbosity >= 2 and not dry_run:
                self.stdout.write(f"Deleted {deleted} so far...")
        if dry_run:
            self.stdout.write(f"Would delete {deleted} idempotency keys.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} idempotency keys."))
