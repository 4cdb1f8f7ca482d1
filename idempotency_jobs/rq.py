"""django-tasks-rq's backend, adapted to Django's own ``django.tasks``.

django-tasks-rq 0.12 is written against the ``django_tasks`` backport. With Django 6.1 it runs
Django's ``Task`` objects fine (enqueue, ``rqworker --job-class django_tasks_rq.Job``, results),
with two flaws this subclass removes:

* ``task_class`` is the backport's ``Task``: ``@django.tasks.task(backend="rq")`` returns an
  object that is not a ``django.tasks.Task`` (django-tasks-db refuses to run it, and
  ``isinstance`` checks fail). Here it is Django's ``Task``.
* ``get_result()`` looks jobs up on ``RQ_QUEUES["default"]``, a ``KeyError`` unless a queue
  named ``default`` exists. Here it uses the backend's own queues' connection.

Use ``"BACKEND": "idempotency_jobs.rq.RQBackend"`` in ``TASKS``; run workers with
``manage.py rqworker <queues> --job-class django_tasks_rq.Job``. All queues of one backend
must live on one Redis. Task signals are sent as the backport's (``django_tasks.signals``).
"""

from __future__ import annotations

from typing import Any

import django_rq
import django_tasks_rq
from django.tasks import Task
from rq.exceptions import NoSuchJobError

__all__ = ["RQBackend"]


class RQBackend(django_tasks_rq.RQBackend):
    task_class = Task  # type: ignore[assignment]

    def _get_job(self, result_id: str) -> Any:
        connection = django_rq.get_connection(sorted(self.queues)[0])
        try:
            return django_tasks_rq.Job.fetch(result_id, connection=connection)
        except NoSuchJobError:
            return None
