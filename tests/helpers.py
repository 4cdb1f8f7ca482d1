"""Shared request helpers and assertions for the core test suite."""

from __future__ import annotations

import ast
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from rest_framework import exceptions as drf_exceptions
from rest_framework.test import APIClient

from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE, problem_json, problem_type
from idempotency_jobs.models import IdempotencyKey
from tests.testapp.models import Widget
from tests.testapp.views import Gate

KEY = "key-0000000001"
BODY = {"name": "w", "payload": {"a": 1}}

MIXIN = "/widgets/"
DECORATOR = "/fn-widgets"
# Both public faces: the viewset mixin and the decorator (function view and APIView method).
FACES = pytest.mark.parametrize("path", [MIXIN, DECORATOR, "/view-widgets"])
TWO_FACES = pytest.mark.parametrize("path", [MIXIN, DECORATOR])


def post(
    api: APIClient,
    path: str = MIXIN,
    key: str | None = KEY,
    user: str | None = "alice",
    body: Any = BODY,
    *,
    header: str = "HTTP_IDEMPOTENCY_KEY",
    method: str = "post",
    **extra: Any,
) -> Any:
    """One JSON request as ``user`` with ``key``; ``None`` leaves the header out."""
    headers = dict(extra)
    if user is not None:
        headers["HTTP_X_USER"] = user
    if key is not None:
        headers[header] = key
    return getattr(api, method)(path, body, format="json", **headers)


def widgets() -> int:
    """Executions of the test views: each one that committed left one Widget row."""
    return Widget.objects.count()


def stored_keys(store: str) -> int:
    """How many idempotency records the store holds."""
    if store == "redis":
        from django_redis import get_redis_connection

        return len(redis_records(get_redis_connection("redis")))
    return IdempotencyKey.objects.count()


def redis_records(client: Any) -> list[bytes]:
    """The Redis store's records (under this run's ``REDIS_KEY_PREFIX``)."""
    from idempotency_jobs.conf import idempotency_settings

    return list(client.scan_iter(match=f"{idempotency_settings.REDIS_KEY_PREFIX}:*"))


def is_replay(response: Any) -> bool:
    return response.get("Idempotent-Replayed") == "true"


def assert_executed(response: Any, status: int = 201) -> None:
    assert response.status_code == status, response.content
    assert not is_replay(response)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with every member docs/problems.md promises."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    problem: dict[str, Any] = json.loads(response.content)
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == problem_type(code)
    assert response.content == problem_json(problem)  # one rendering for every problem
    assert problem["title"]
    assert problem["detail"]
    assert not is_replay(response)
    return problem


class Background:
    """A request running in another thread (with its own database connection)."""

    def __init__(self, send: Callable[[APIClient], Any]) -> None:
        self.response: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self.thread.start()

    def _run(self, send: Callable[[APIClient], Any]) -> None:
        try:
            self.response = send(APIClient(raise_request_exception=False))
        except BaseException as exc:  # reported by result()
            self.error = exc
        finally:
            connections.close_all()

    def result(self) -> Any:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "background request hung"
        if self.error is not None:
            raise self.error
        return self.response


@contextmanager
def in_flight(
    path: str = MIXIN, key: str = KEY, body: Any = BODY, user: str = "alice", gate: str = "g"
) -> Iterator[Background]:
    """A first request held inside its view (claim taken) until the block ends.

    The request carries ``?gate=<gate>`` (part of its fingerprint): only the first request to
    reach the gate is held, later ones with the same query pass through.
    """
    held = Gate(gate)
    first = Background(lambda api: post(api, f"{path}?gate={gate}", key, user, body))
    try:
        assert held.entered.wait(timeout=20), "the first request never reached its view"
        yield first
    finally:
        held.opened.set()
        first.thread.join(timeout=30)


def run_concurrently(count: int, send: Callable[[APIClient], Any]) -> list[Any]:
    """``count`` requests from as many threads, released together."""
    barrier = threading.Barrier(count)

    def go(api: APIClient) -> Any:
        barrier.wait(timeout=30)
        return send(api)

    requests = [Background(go) for _ in range(count)]
    return [request.result() for request in requests]


def configure(settings: Any, **values: Any) -> None:
    """Override some ``IDEMPOTENCY_JOBS`` settings for one test (keeps the store choice)."""
    settings.IDEMPOTENCY_JOBS = {**settings.IDEMPOTENCY_JOBS, **values}


def closed_port() -> int:
    """A port in this suite's range (18100-18199) that nothing listens on."""
    for port in range(18199, 18099, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18100-18199")


# Seconds: Redis leases run on Redis's clock, so tests let a short one run out.
REDIS_LEASE = 0.3


# Real transactions (threads, Redis's on-commit completion), flushing only the tables the core
# suite writes: truncating every installed app's tables after each test is what makes it slow.
CORE_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "idempotency_jobs",
    "tests.testapp",
]
CORE_DB = pytest.mark.django_db(transaction=True, available_apps=CORE_APPS)


# The job JSON members docs/jobs.md#the-job-json names.
JOB_FIELDS = {
    "id",
    "object",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "progress",
    "result",
    "error",
}


ROOT = Path(__file__).resolve().parent.parent
PROBLEMS_PAGE = ROOT / "docs" / "problems.md"
# DRF's exceptions: problem_exception_handler answers each with its ``default_code``.
DRF_EXCEPTIONS = {
    name: cls
    for name, cls in vars(drf_exceptions).items()
    if isinstance(cls, type) and issubclass(cls, drf_exceptions.APIException)
}


def documented_codes() -> set[str]:
    """The codes with a section (``### code``) in docs/problems.md."""
    return set(re.findall(r"^### (\w+)$", PROBLEMS_PAGE.read_text(), flags=re.MULTILINE))


def emittable_codes(package: str) -> set[str]:
    """Every problem ``code`` the sources under ``package`` can answer, read from their syntax:
    each exception class's ``default_code``, each ``code=`` given to a DRF exception (but
    ``ValidationError``, whose codes are its fields' and whose problem is ``invalid``), and
    each code given to ``problem_details``. A code that is not a literal fails the test, but
    in exceptions.py, whose calls forward the codes of the exception classes."""
    codes: set[str] = set()
    for source in sorted((ROOT / package).rglob("*.py")):
        forwards = source == ROOT / "idempotency_jobs" / "exceptions.py"
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "default_code"
                for target in node.targets
            ):
                codes.add(_literal(node.value, source))
            if not isinstance(node, ast.Call):
                continue
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            given = {keyword.arg: keyword.value for keyword in node.keywords}
            if name == "problem_details" and not forwards:
                codes.add(_literal(given.get("code") or node.args[1], source))
            elif name in DRF_EXCEPTIONS and name != "ValidationError" and "code" in given:
                codes.add(_literal(given["code"], source))
    return codes


def _literal(node: ast.expr, source: Path) -> str:
    assert isinstance(node, ast.Constant) and isinstance(node.value, str), (
        f"{source}:{node.lineno}: a problem code must be a string literal, to be documented"
    )
    return node.value
