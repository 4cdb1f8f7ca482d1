from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from idempotency_jobs.jobs.recovery import RecoveryReport, recover_jobs


class Command(BaseCommand):
    help = (
        "Enqueue again jobs whose enqueue was lost or whose worker died; fail those out of "
        "attempts. Run it every minute (cron), or keep it running with --every."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be done; change nothing."
        )
        parser.add_argument(
            "--every",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Keep running, one pass every SECONDS, for a sidecar process instead of cron "
            "(default: one pass, then exit).",
        )

    def handle(self, *, dry_run: bool, every: float | None, verbosity: int, **options: Any) -> None:
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        if every is not None and dry_run:
            raise CommandError("--dry-run makes one pass; it cannot be combined with --every.")
        while True:
            report = recover_jobs(dry_run=dry_run)
            if every is None:
                self.report(report, dry_run=dry_run, verbosity=verbosity)
                return
            if report.total or verbosity >= 2:  # a sidecar stays quiet while all is well
                self.report(report, dry_run=dry_run, verbosity=verbosity)
            close_old_connections()
            time.sleep(every)

    def report(self, report: RecoveryReport, *, dry_run: bool, verbosity: int) -> None:
        stale, orphaned, failed = (
            len(report.requeued_stale),
            len(report.requeued_orphaned),
            len(report.failed),
        )
        if dry_run:
            line = (
                f"Would re-enqueue {stale} stale and {orphaned} orphaned jobs, "
                f"and fail {failed} jobs."
            )
        else:
            line = f"Re-enqueued {stale} stale and {orphaned} orphaned jobs; failed {failed} jobs."
        self.stdout.write(self.style.SUCCESS(line) if not dry_run else line)
        if verbosity >= 2:
            for label, ids in (
                ("stale", report.requeued_stale),
                ("orphaned", report.requeued_orphaned),
                ("failed", report.failed),
            ):
                for job_id in ids:
                    self.stdout.write(f"  {label}: {job_id}")
