"""What the reliability, hostile-input and security tests share: the example service under
gunicorn against the test database, a TCP proxy that can refuse connections, real HTTP.

Every process started here is started in its own session and killed by its id when the test
ends. Ports come from this suite's range, 18600-18699.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from example_project.workspaces.models import ApiKey, Workspace
from idempotency_jobs.exceptions import PROBLEM_CONTENT_TYPE
from tests import redis_scope

__all__ = [
    "IMPORT_URL",
    "MAPPINGS",
    "ROOT",
    "Answer",
    "Background",
    "Service",
    "TcpProxy",
    "assert_problem",
    "free_port",
    "import_body",
    "redis_url",
    "request",
    "run_manage",
    "service",
    "service_env",
    "stop_process",
    "test_database_url",
    "wait_for",
    "workspace_secret",
]

ROOT = Path(__file__).resolve().parents[2]
IMPORT_URL = "/v1/jobs/subscriber-imports"
PORTS = range(18600, 18700)
MAPPINGS = [
    {"csv_column": "Email", "field": {"type": "email"}},
    {"csv_column": "Name", "field": {"type": "name"}},
]


def free_port() -> int:
    """A port in 18600-18699 that nothing listens on (random, so parallel runs rarely meet)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18600-18699")


def wait_for(condition: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_database_url(*, port: int | None = None) -> str:
    """A URL for this test run's database (optionally through another port, e.g. a proxy)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{port or db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def redis_url(*, port: int | None = None) -> str:
    """The suite's Redis database URL (optionally through another port)."""
    url: str = settings.REDIS_URL
    if port is None:
        return url
    _host_port, _, db = url.removeprefix("redis://").partition("/")
    return f"redis://127.0.0.1:{port}/{db or 0}"


def workspace_secret(name: str = "acme") -> str:
    """A new API key secret for workspace ``name`` (committed: the service must see it)."""
    workspace, _ = Workspace.objects.get_or_create(name=name)
    return ApiKey.objects.issue(workspace)[1]


def import_body(rows: int = 3, *, prefix: str = "user") -> bytes:
    lines = ["Email,Name", *(f"{prefix}{n}@example.com,User {n}" for n in range(rows))]
    return json.dumps({"csv_text": "\n".join(lines) + "\n", "mappings": MAPPINGS}).encode()


class Background:
    """``fn()`` in a thread; ``result()`` is its value, or the exception it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # handed to the test by result()
            self.value = exc

    def result(self, timeout: float = 90) -> Any:
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "background call hung"
        return self.value


# HTTP -------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def replayed(self) -> bool:
        return self.header("Idempotent-Replayed") == "true"


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 60,
) -> Answer:
    """One real HTTP request; any status is an answer."""
    host, _, port = base.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        sent = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers={**sent, **(headers or {})})
        response = conn.getresponse()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def assert_problem(answer: Answer, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem: the status, every member, and (if given) the stable code."""
    assert answer.status == status, (answer.status, answer.body[:500])
    assert answer.header("Content-Type") == PROBLEM_CONTENT_TYPE, answer.headers
    problem: dict[str, Any] = json.loads(answer.body)
    assert problem["status"] == status
    assert problem["title"] and problem["detail"] and problem["type"] and problem["code"]
    if code is not None:
        assert problem["code"] == code, problem
    assert not answer.replayed
    return problem


# Processes --------------------------------------------------------------------------------------


def service_env(tmp_path: Path, **env: str) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("IJ_", "DJANGO_", "PYTEST", "DATABASE_URL", "REDIS_URL"))
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "tests.settings.example_server",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_url(),
        "IJ_TEST_RUN_PREFIX": redis_scope.PREFIX,
        "IDEMPOTENCY_STORE": "database",
        "TASKS_BACKEND": "db",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "IJ_TEST_HOLD_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        **env,
    }


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5) -> None:
    """End a process we started, and its children (it leads its own process group)."""
    if process.poll() is None and grace:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the leader may be gone, its children not
    process.wait(timeout=10)


def run_manage(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> str:
    """``manage.py <args>`` with the example's test settings; its output (fails on an error)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=service_env(tmp_path, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        stop_process(process)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


@dataclass
class Service:
    """The example service under gunicorn: ``base`` is its URL."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    killed: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, **kwargs: Any) -> Answer:
        return request(self.base, method, path, body, **kwargs)

    def post_import(
        self, secret: str, key: str | None, body: bytes, *, timeout: float = 60, **headers: str
    ) -> Answer:
        sent = {"Authorization": f"Bearer {secret}", **headers}
        if key is not None:
            sent["Idempotency-Key"] = key
        return self.request("POST", IMPORT_URL, body, headers=sent, timeout=timeout)

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one of this server's worker processes (checked to be our child)."""
        status = Path(f"/proc/{pid}/status").read_text()
        parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
        assert int(parent.split()[1]) == self.process.pid, "not a worker of this server"
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``service(workers=4, **env)``: start the example service; stopped at the test's end.

    ``worker_class="sync"`` (one request per process, in its main thread) with a short
    ``timeout``: a request stuck that long is ended by gunicorn's ``SystemExit`` in its thread.
    """
    started: list[Service] = []

    def start(
        *,
        workers: int = 2,
        threads: int = 4,
        worker_class: str = "gthread",
        timeout: int = 120,
        **env: str,
    ) -> Service:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                f"--bind=127.0.0.1:{port}",
                f"--workers={workers}",
                f"--worker-class={worker_class}",
                f"--threads={threads if worker_class == 'gthread' else 1}",
                f"--timeout={timeout}",
                "--graceful-timeout=5",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=service_env(tmp_path, **env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Service(process, port, log)
        started.append(server)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gunicorn exited:\n{server.logs()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"gunicorn did not start:\n{server.logs()}"
                time.sleep(0.05)
        # Workers import the app before they accept: one answer each means all are up.
        for _ in range(workers):
            assert server.request("GET", "/v1/subscribers").status == 401, server.logs()
        return server

    yield start
    for server in started:
        stop_process(server.process, grace=0)


# A TCP proxy ------------------------------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a real server; ``down()`` closes the port (connections
    are refused, open ones cut), ``up()`` listens again on the same port. ``freeze()`` makes it
    a server that accepts connections and answers nothing (a hung server: new connections are
    accepted and left unanswered, open ones forward nothing more) until ``down()``."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.frozen = False
        self.up()

    def freeze(self) -> None:
        self.frozen = True

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
            self._accepting.join(timeout=10)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        self.frozen = False  # only now: a frozen pipe must not forward what it held
        assert self.refuses()

    def refuses(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.frozen:  # accepted (the kernel did that), never answered
                with self._lock:
                    self._sockets.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, one: socket.socket, other: socket.socket) -> None:
        sockets = [one, other]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 0.5)
                if self.frozen:  # what was sent stays unread, until down() discards it
                    time.sleep(0.05)
                    continue
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (other if sock is one else one).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                for sock in sockets:
                    self._sockets.discard(sock)
                    sock.close()
