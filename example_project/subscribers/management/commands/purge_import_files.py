from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from example_project.subscribers.bulk.files import import_storage, orphaned_csvs

DURATION = re.compile(r"(?P<amount>\d+)(?P<unit>[smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise CommandError(f"Invalid duration {value!r}: use e.g. 90s, 30m, 1h or 7d.")
    return timedelta(**{UNITS[match["unit"]]: int(match["amount"])})


class Command(BaseCommand):
    help = (
        "Delete the stored CSVs of subscriber imports that no job refers to (their request "
        "rolled back or died), once older than --older-than. Run it hourly (cron), or keep it "
        "running with --every."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default="1h",
            help="Only files written longer ago than this (default 1h: longer than any request).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--every",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Keep running, one pass every SECONDS (a sidecar process instead of cron).",
        )

    def handle(
        self,
        *,
        older_than: str,
        dry_run: bool,
        every: float | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        age = parse_duration(older_than)
        if age <= timedelta(0):
            raise CommandError("--older-than must be longer than zero.")
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        if every is not None and dry_run:
            raise CommandError("--dry-run makes one pass; it cannot be combined with --every.")
        while True:
            names = orphaned_csvs(age)
            if dry_run:
                self.stdout.write(f"Would delete {len(names)} import files.")
                return
            storage = import_storage()
            for name in names:
                storage.delete(name)
            if every is None or names or verbosity >= 2:  # a sidecar stays quiet meanwhile
                self.stdout.write(self.style.SUCCESS(f"Deleted {len(names)} import files."))
                if verbosity >= 2:
                    for name in names:
                        self.stdout.write(f"  {name}")
            if every is None:
                return
            close_old_connections()
            time.sleep(every)
