"""django-tasks-rq's backend, adapted to the tasks framework ``run_job`` is built with.

django-tasks-rq 0.12 is written against the ``django_tasks`` backport, which it uses on every
Django. On Django 6 it runs Django's ``Task`` objects fine (enqueue,
``rqworker --job-class django_tasks_rq.Job``, results), with two flaws this subclass removes:

* ``task_class`` is the backport's ``Task``: ``@django.tasks.task(backend="rq")`` returns an
  object that is not a ``django.tasks.Task`` (django-tasks-db refuses to run it, and
  ``isinstance`` checks fail). Here it is the framework's ``Task`` (``tasks_compat.Task``).
* ``get_result()`` looks jobs up on ``RQ_QUEUES["default"]``, a ``KeyError`` unless a queue
  named ``default`` exists. Here it uses the backend's own queues' connection.

Use ``"BACKEND": "idempotency_jobs.jobs.rq.RQBackend"`` in ``TASKS``; run workers with
``manage.py rqworker <queues> --job-class django_tasks_rq.Job`` (without ``--job-class`` every
job fails: ``'Task' object is not callable``). All queues of one backend must live on one Redis.
Task signals are sent as the backport's (``django_tasks.signals``), which nothing here uses.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import Any

import django_rq
import django_tasks_rq
from django.core import checks
from rq.exceptions import NoSuchJobError

from idempotency_jobs.jobs.tasks_compat import Task

__all__ = ["BACKPORT_TESTED", "RQBackend"]

BACKPORT_TESTED = (0, 12)
"""The django-tasks (backport) series django-tasks-rq was tested on here, with every Django."""


class RQBackend(django_tasks_rq.RQBackend):
    task_class = Task  # type: ignore[assignment]  # why: tasks_compat.build_task

    def _get_job(self, result_id: str) -> Any:
        connection = django_rq.get_connection(sorted(self.queues)[0])
        try:
            return django_tasks_rq.Job.fetch(result_id, connection=connection)
        except NoSuchJobError:
            return None

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        installed = backport_version()
        if installed[:2] != BACKPORT_TESTED:
            tested = ".".join(map(str, BACKPORT_TESTED))
            yield checks.Error(
                f"django-tasks-rq runs on the django-tasks backport, here version "
                f"{'.'.join(map(str, installed))}; idempotency_jobs was tested with {tested}.x "
                "(the backport's later releases may drop Django 6).",
                hint=f"pip install 'django-tasks~={tested}.0' (idempotency-jobs[rq] pins it).",
                obj=self.alias,
                id="idempotency_jobs.E101",
            )


def backport_version() -> tuple[int, ...]:
    """The installed django-tasks backport's version, as numbers (``(0, 12, 0)``)."""
    version = importlib.metadata.version("django-tasks")
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
