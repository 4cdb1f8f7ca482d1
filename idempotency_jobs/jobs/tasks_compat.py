"""Django's tasks framework wherever it lives: ``django.tasks`` (Django 6.0 and newer) or the
``django_tasks`` backport (Django 5.2, installed by ``idempotency-jobs[compat]``).

Jobs use only what every backend shares: a ``Task`` to build ``run_job`` with, the registry
of backends, and result statuses compared by value. Both ``Task`` classes are accepted
(django-tasks-rq builds the backport's even on Django 6), and nothing relies on task signals
(django-tasks-rq sends the backport's, which receivers of ``django.tasks.signals`` never get).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import django
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "BUILTIN",
    "DUMMY_BACKEND",
    "IMMEDIATE_BACKEND",
    "MODULE",
    "TASK_CLASSES",
    "Task",
    "TaskResultStatus",
    "build_task",
    "is_task",
    "reports_waiting",
    "same_status",
    "task_backends",
]

BUILTIN = django.VERSION >= (6, 0)
"""Whether ``django.tasks`` is part of Django (6.0 and newer)."""

if TYPE_CHECKING or BUILTIN:
    from django.tasks import Task, TaskResultStatus, task_backends
    from django.tasks.base import DEFAULT_TASK_PRIORITY

    MODULE = "django.tasks"
else:  # pragma: no cover - Django 5.2
    try:
        from django_tasks import TaskResultStatus, task_backends
        from django_tasks.base import DEFAULT_TASK_PRIORITY, Task
    except ImportError as exc:
        raise ImproperlyConfigured(
            "idempotency_jobs runs jobs through Django's tasks framework, which Django "
            f"{django.get_version()} does not include: install the django-tasks backport, "
            "e.g. pip install 'idempotency-jobs[compat]'."
        ) from exc
    MODULE = "django_tasks"

IMMEDIATE_BACKEND = f"{MODULE}.backends.immediate.ImmediateBackend"
"""The framework's own backend that runs a task when it is enqueued (tests, development)."""
DUMMY_BACKEND = f"{MODULE}.backends.dummy.DummyBackend"
"""The framework's own backend that keeps tasks and runs none."""


def build_task(func: Callable[..., Any], *, backend: str, queue_name: str) -> Task:
    """The framework's own ``Task`` running ``func``, whatever ``backend`` is.

    ``@task`` builds the backend's ``task_class``, and on Django 6 django-tasks-rq's is the
    backport's ``Task``, which django-tasks-db rejects: a task built here runs on every backend
    (the RQ worker accepts it too). ``idempotency_jobs.jobs.rq.RQBackend`` sets ``task_class`` to
    this ``Task`` for the project's own ``@task`` functions. Every field is given: Django 6.0's
    ``Task`` has no defaults (6.1's and the backport's do)."""
    return Task(
        priority=DEFAULT_TASK_PRIORITY,
        func=func,
        backend=backend,
        queue_name=queue_name,
        run_after=None,
    )


def _task_classes() -> tuple[type[Any], ...]:
    classes: list[type[Any]] = [Task]
    if BUILTIN:
        try:
            from django_tasks.base import Task as BackportTask
        except ImportError:
            pass
        else:
            classes.append(BackportTask)
    return tuple(classes)


TASK_CLASSES = _task_classes()
"""Every ``Task`` class a backend may build: the framework's, and on Django 6 the backport's
when it is installed (django-tasks-rq's ``task_class``)."""


def is_task(value: object) -> bool:
    """Whether ``value`` is a task of either framework."""
    return isinstance(value, TASK_CLASSES)


def same_status(status: object, expected: object) -> bool:
    """Compare result statuses by value: the two frameworks' ``TaskResultStatus`` members are
    equal strings, never the same object."""
    return str(getattr(status, "value", status)) == str(getattr(expected, "value", expected))


def reports_waiting(backend: Any) -> bool:
    """Whether ``backend.get_result()`` tells a task still waiting in its queue from a lost one.

    Celery's result backends answer ``PENDING`` (django-tasks-celery: ``READY``) for any id,
    also one no worker will ever see: there, only the job's age can tell, so recovery sends a
    stale job again (the claim turns a duplicate delivery into a no-op).
    """
    if not getattr(backend, "supports_get_result", False):
        return False
    return not any(cls.__module__.startswith("django_tasks_celery") for cls in type(backend).mro())
