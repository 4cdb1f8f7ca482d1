"""docs/semantics.md#exactly-once-what-each-store-promises: any number of concurrent identical
requests produce exactly one execution.

Threads share this process; the gunicorn tests run several real server processes against the
PostgreSQL test database (and Redis), as deployments do.
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

from idempotency_jobs.models import IdempotencyKey
from tests.helpers import (
    BODY,
    CORE_DB,
    KEY,
    TWO_FACES,
    assert_problem,
    closed_port,
    configure,
    is_replay,
    post,
    redis_records,
    run_concurrently,
    stored_keys,
    widgets,
)
from tests.testapp.models import Widget

pytestmark = CORE_DB

REQUESTS = 50
ROOT = Path(__file__).resolve().parents[2]


def assert_exactly_one_execution(responses, store):
    """One real 201; every other answer is its replay or an in-flight 409."""
    executed = [r for r in responses if r.status_code == 201 and not is_replay(r)]
    assert len(executed) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_key_in_use")
        else:
            assert response.status_code == 201
            assert response.content == executed[0].content
    assert widgets() == 1
    assert stored_keys(store) == 1


# Threads -------------------------------------------------------------------------------------


@TWO_FACES
def test_concurrent_identical_requests_from_threads_run_once(store, path):
    responses = run_concurrently(REQUESTS, lambda client: post(client, f"{path}?sleep=0.2"))
    assert_exactly_one_execution(responses, store)


@TWO_FACES
def test_concurrent_identical_requests_in_wait_mode_all_get_the_response(settings, store, path):
    configure(settings, IN_FLIGHT="wait", WAIT_TIMEOUT=30)
    responses = run_concurrently(REQUESTS, lambda client: post(client, f"{path}?sleep=0.2"))
    assert_exactly_one_execution(responses, store)
    assert all(response.status_code == 201 for response in responses)


def test_concurrent_requests_from_two_callers_run_once_each(store):
    users = ["alice", "bob"] * (REQUESTS // 2)
    lock = threading.Lock()

    def send(client):
        with lock:
            user = users.pop()
        return post(client, "/widgets/?sleep=0.1", user=user)

    responses = run_concurrently(REQUESTS, send)
    executed = [r for r in responses if r.status_code == 201 and not is_replay(r)]
    assert sorted(r.json()["owner"] for r in executed) == ["alice", "bob"]
    assert widgets() == 2


@TWO_FACES
def test_bug_django_idempotency_key_runs_concurrent_duplicates(store, path):
    """A bug of django-idempotency-key, absent here: concurrent duplicates all ran the view."""
    responses = run_concurrently(20, lambda client: post(client, f"{path}?sleep=0.2"))
    assert widgets() == 1
    assert sum(1 for r in responses if r.status_code == 201 and not is_replay(r)) == 1


# Server processes ---------------------------------------------------------------------------


def wait_until_listening(port: int, server: subprocess.Popen) -> None:
    for _ in range(300):
        assert server.poll() is None, f"{server.args} exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{server.args} did not start")


@contextmanager
def listening(command: list[str], port: int, **options: Any) -> Iterator[None]:
    """``command`` running until the block ends, once something listens on ``port``."""
    process = subprocess.Popen(command, **options)
    try:
        wait_until_listening(port, process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def database_url(*, port: int | None = None) -> str:
    """This test's PostgreSQL database as a URL, reached on ``port`` if given (a proxy)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return (
        f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )


@contextmanager
def serve(store: str, database: str) -> Iterator[int]:
    """Four gunicorn workers with 8 threads each serving the test app; yields the port."""
    port = closed_port()  # nothing listens there: gunicorn takes it
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "IDEMPOTENCY_STORE": store,
        "DJANGO_SETTINGS_MODULE": "tests.testapp.server_settings",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "tests.testapp.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        "--workers=4",
        "--worker-class=gthread",
        "--threads=8",
        "--log-level=warning",
    ]
    with listening(command, port, cwd=ROOT, env=env):
        yield port


@pytest.fixture
def gunicorn(store) -> Iterator[int]:
    """Several server processes against this test's database."""
    with serve(store, database_url()) as port:
        yield port


class HTTPAnswer:
    """An http.client answer with the test client's interface used by the assertions."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = headers
        self.content = content

    def get(self, name, default=None):
        return self.headers.get(name, default)

    def __getitem__(self, name):
        return self.headers[name]


def http_post(port: int, path: str, key: str = KEY) -> HTTPAnswer:
    conn = HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(BODY),
            headers={"Content-Type": "application/json", "X-User": "alice", "Idempotency-Key": key},
        )
        answer = conn.getresponse()
        return HTTPAnswer(answer.status, answer.headers, answer.read())
    finally:
        conn.close()


def run_over_http(count, port, path):
    barrier = threading.Barrier(count)
    answers = [None] * count

    def go(index):
        barrier.wait(timeout=30)
        answers[index] = http_post(port, path)

    threads = [threading.Thread(target=go, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert all(answer is not None for answer in answers)
    return answers


def forget_everything(store: str) -> None:
    """No keys and no widgets: the warm-up's requests do not count in the burst."""
    IdempotencyKey.objects.all().delete()
    if store == "redis":
        from django_redis import get_redis_connection

        client = get_redis_connection("redis")
        for name in redis_records(client):
            client.delete(name)
    Widget.objects.all().delete()


@pytest.mark.postgresql
@pytest.mark.parametrize("path", ["/widgets/", "/fn-widgets"])
def test_concurrent_identical_requests_to_several_server_processes_run_once(gunicorn, store, path):
    # Warm every worker up so the burst hits several processes at once.
    for number in range(8):
        assert http_post(gunicorn, path, key=f"warm-up-key-{number}").status_code == 201
    forget_everything(store)

    answers = run_over_http(60, gunicorn, f"{path}?sleep=0.3")
    assert_exactly_one_execution(answers, store)


# Behind a transaction-pooling proxy -----------------------------------------------------------

SERVER_SESSIONS = 2


@pytest.fixture
def pgbouncer() -> Iterator[int]:
    """PgBouncer in transaction pooling mode in front of this test's database: each transaction
    goes to whichever of its SERVER_SESSIONS server sessions is free. Yields its port."""
    binary = shutil.which("pgbouncer")
    if binary is None:
        pytest.skip("PgBouncer is not installed (apt install pgbouncer)")
    # PgBouncer will not run as root: it then switches to the database's system user, which
    # must be able to read its files.
    run_as = []
    if os.geteuid() == 0:
        try:
            run_as = [f"--user={pwd.getpwnam('postgres').pw_name}"]
        except KeyError:
            pytest.skip("PgBouncer will not run as root, and there is no 'postgres' user")
    db = connection.settings_dict
    port = closed_port()
    folder = Path(tempfile.mkdtemp(prefix="ij-pgbouncer-"))
    folder.chmod(0o777)
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} "
        f"user={db['USER'] or 'postgres'}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"default_pool_size = {SERVER_SESSIONS}\nmax_client_conn = 500\n"
        f"admin_users = {db['USER'] or 'postgres'}\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    config.chmod(0o644)
    try:
        with listening([binary, *run_as, str(config)], port, cwd=folder):
            yield port
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pgbouncer_servers(port: int) -> list[dict[str, object]]:
    """PgBouncer's own view of its server sessions (its admin console)."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=db["USER"] or "postgres",
        dbname="pgbouncer",
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,  # the console speaks the simple protocol only
    ) as console:
        cursor = console.execute("SHOW SERVERS")
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.postgresql
@pytest.mark.parametrize("path", ["/widgets/", "/fn-widgets"])
def test_behind_a_transaction_pooling_proxy_each_request_runs_once(pgbouncer, store, path):
    # The claim commits on its own, then the view's transaction and the completion commit
    # together: behind the proxy they may run on different server sessions, so neither may
    # leave anything in its session for the other (a prepared statement, a setting, a lock).
    with serve(store, database_url(port=pgbouncer)) as port:
        for number in range(8):  # every worker up, and keys on both server sessions
            assert http_post(port, path, key=f"warm-up-key-{number}").status_code == 201
        assert widgets() == 8
        replay = http_post(port, path, key="warm-up-key-0")
        assert replay.status_code == 201 and is_replay(replay)
        forget_everything(store)

        answers = run_over_http(60, port, f"{path}?sleep=0.3")

        assert_exactly_one_execution(answers, store)
        servers = pgbouncer_servers(pgbouncer)
        test_database = connection.settings_dict["NAME"]
        assert 1 <= len([s for s in servers if s["database"] == test_database]) <= SERVER_SESSIONS
