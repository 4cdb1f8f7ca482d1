"""End to end: ``example_project/run.sh`` (what ``make run`` calls) on a fresh SQLite file.

It must migrate, print a working key and curl line, serve the API with gunicorn, run jobs with
the real ``db_worker`` process, serve the docs page offline, and stop everything on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.example.test_seeds import MAILRITH_BODY, STANNP_BODY, mailrith_post, stannp_post
from tests.example.test_support import http
from tests.redis_scope import redis_server

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port of this suite's range (18360-18399) free right now; random, because other runs
    of this suite may be probing the same range at the same time."""
    ports = list(range(18360, 18400))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18360-18399")


class Service:
    def __init__(self, process: subprocess.Popen[str], url: str, key: str, db: Path) -> None:
        self.process, self.url, self.key, self.db = process, url, key, db
        self.port = int(url.rsplit(":", 1)[1])
        self.output: list[str] = []
        self.banner = ""

    def log(self) -> str:
        ps = subprocess.run(
            ["ps", "-ww", "-o", "pid,ppid,stat,wchan:24,args", "-g", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return "".join(self.output[-60:]) + ps.stdout

    def count(self, table: str) -> int:
        with sqlite3.connect(self.db) as connection:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def poll(self, location: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = http(
                "GET", location, headers={"Authorization": f"Bearer {self.key}"}
            ).json()
            if job["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
                return job
            time.sleep(0.2)


@pytest.fixture(
    params=[
        pytest.param({"TASKS_BACKEND": "db", "IDEMPOTENCY_STORE": "database"}, id="db-worker"),
        pytest.param(
            {"TASKS_BACKEND": "rq", "IDEMPOTENCY_STORE": "redis"},
            id="rq-worker-redis-keys",
            marks=pytest.mark.redis,
        ),
        pytest.param(
            {"TASKS_BACKEND": "celery", "IDEMPOTENCY_STORE": "database"},
            id="celery-worker",
            marks=[
                pytest.mark.redis,
                pytest.mark.skipif(
                    "celery" not in settings.TASKS,
                    reason="django-tasks-celery needs Django 6.0 or newer",
                ),
            ],
        ),
    ]
)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    if request.param["TASKS_BACKEND"] not in ("rq", "celery"):
        yield from serve(tmp_path, request.param)
        return
    # run.sh's settings name their Redis keys themselves, with no per-run prefix: a Redis of
    # the test's own, so that nobody else's keys are touched.
    with redis_server(tmp_path) as url:
        yield from serve(tmp_path, {**request.param, "REDIS_URL": url})


def serve(tmp_path: Path, config: dict[str, str]) -> Iterator[Service]:
    for _attempt in range(3):
        port = free_port()
        launched = launch(tmp_path, port, config)
        if launched is None:
            continue  # another process took the port first
        try:
            yield launched
        finally:
            kill_group(launched.process)
        return
    raise AssertionError("gunicorn could not bind a port in three attempts")


def run_env(tmp_path: Path, port: int, **config: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / f'service-{port}.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PORT": str(port),
        "PYTHON": sys.executable,
        "REDIS_URL": "",  # none but the test's own (see service)
        "WEB_WORKERS": "2",
        **config,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def launch(tmp_path: Path, port: int, config: dict[str, str]) -> Service | None:
    """Start run.sh on ``port``; ``None`` if it found the port taken."""
    process = subprocess.Popen(
        ["bash", "example_project/run.sh"],
        cwd=ROOT,
        env=run_env(tmp_path, port, **config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner, complete = read_banner(process)
        # Taken before run.sh's own check, or between that check and gunicorn's bind.
        taken = (f"port {port} is in use", f"Connection in use: ('127.0.0.1', {port})")
        if not complete and any(message in banner for message in taken):
            kill_group(process)
            return None  # another process took the port first
        assert complete, "run.sh printed no banner:\n" + banner
        # The banner comes once our own gunicorn listens: a key and a curl line for a server
        # that never started would be a lie.
        listening = banner.find(f"Listening at: http://127.0.0.1:{port}")
        assert 0 <= listening < banner.index("API key for workspace"), banner
        key = re.search(r'API key for workspace "demo":\s+(mrk_\S+)', banner)
        assert key is not None, banner
        assert f"curl -X POST http://127.0.0.1:{port}/v1/jobs/subscriber-imports" in banner
        service = Service(
            process, f"http://127.0.0.1:{port}", key.group(1), tmp_path / f"service-{port}.sqlite3"
        )
        service.output.append(banner)
        service.banner = banner
        threading.Thread(
            target=lambda: service.output.extend(process.stdout or ()), daemon=True
        ).start()
        return service
    except BaseException:
        kill_group(process)
        raise


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def read_banner(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, bool]:
    """run.sh's output up to the end of its banner, and whether the banner came (``False``:
    run.sh ended, or printed nothing more for ``timeout`` seconds)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Stop with Ctrl-C" in line:
            return "".join(lines), True
    return "".join(lines), False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_script_serves_the_seeds_runs_jobs_and_stops_on_ctrl_c(service: Service) -> None:
    # Mailrith's curl, verbatim: 202, then the same bytes; the real db_worker runs the job.
    first = mailrith_post(service.url, service.key, MAILRITH_BODY)
    assert first.status == 202, (first.body, service.log())
    replay = mailrith_post(service.url, service.key, MAILRITH_BODY)
    assert (replay.status, replay.body) == (202, first.body)
    job = service.poll(first.headers["Location"])
    assert job["status"] == "succeeded", job
    assert job["result"]["created"] == 1
    assert service.count("idempotency_jobs_job") == 1

    # Stannp's curl, verbatim: 200, then the same bytes with 409.
    letter = stannp_post(service.url, service.key, STANNP_BODY)
    assert letter.status == 200, letter.body
    again = stannp_post(service.url, service.key, STANNP_BODY)
    assert (again.status, again.body) == (409, letter.body)
    assert service.count("letters_letter") == 1

    # An export through the worker, downloaded as CSV.
    auth = {"Authorization": f"Bearer {service.key}", "Content-Type": "application/json"}
    export = http("POST", f"{service.url}/v1/jobs/subscriber-exports", b"{}", auth)
    assert export.status == 202
    done = service.poll(export.headers["Location"])
    assert done["status"] == "succeeded" and done["result"]["row_count"] == 1
    assert done["result"]["url"] == export.headers["Location"] + "/file"
    assert done["result"]["url"].startswith(service.url + "/")
    csv_file = http("GET", done["result"]["url"], headers=auth)
    assert csv_file.status == 200
    rows = list(csv.reader(io.StringIO(csv_file.body.decode())))
    assert rows[1][:2] == ["ada@example.com", "Ada Lovelace"]

    # OpenAPI schema and an offline docs page: every asset it loads is served locally.
    schema = http("GET", f"{service.url}/v1/schema?format=json")
    assert schema.status == 200 and json.loads(schema.body)["openapi"].startswith("3.")
    docs = http("GET", f"{service.url}/v1/docs")
    assert docs.status == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.body.decode())
    assert assets and all(asset.startswith("/static/") for asset in assets), assets
    for asset in assets:
        assert http("GET", service.url + asset).status == 200, asset

    # What to do next: the docs, and a login for the admin made with the command it prints.
    assert f"API docs: {service.url}/v1/docs" in service.banner
    assert f"Admin: {service.url}/admin/" in service.banner
    command = re.search(r"^\s+(\S+ manage\.py createsuperuser)$", service.banner, re.MULTILINE)
    assert command is not None, service.banner
    assert command.group(1) == f"{sys.executable} manage.py createsuperuser"
    subprocess.run(
        [*command.group(1).split(), "--noinput", "--username", "ada", "--email", "ada@example.com"],
        cwd=ROOT,
        env={
            **run_env(service.db.parent, service.port),
            "DJANGO_SUPERUSER_PASSWORD": "an-admin-pw",
        },
        check=True,
        capture_output=True,
    )
    assert admin_login(service.url, "ada", "an-admin-pw")

    # Errors outside the API views are problem details too.
    missing = http("GET", f"{service.url}/no/such/page")
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "application/problem+json"

    # Ctrl-C (SIGINT to the foreground process group) stops web, worker and recovery.
    os.killpg(service.process.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    # poll() reaps run.sh itself: a zombie still counts as a member of its process group.
    while (service.process.poll() is None or group_alive(service.process.pid)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert service.process.poll() is not None, service.log()
    assert not group_alive(service.process.pid), service.log()


def admin_login(url: str, username: str, password: str) -> bool:
    """Log in through the admin's own login form; whether the admin index then shows."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{url}/admin/login/", timeout=30) as page:
        form = page.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None, form
    fields = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
    request = urllib.request.Request(  # noqa: S310
        f"{url}/admin/login/?next=/admin/", data=urllib.parse.urlencode(fields).encode()
    )
    with opener.open(request, timeout=30) as answer:
        return answer.url == f"{url}/admin/" and "Site administration" in answer.read().decode()


def run_to_the_end(tmp_path: Path, port: int, **config: str) -> tuple[int, str]:
    """run.sh, expected to stop by itself: its exit status and its output."""
    process = subprocess.Popen(
        ["bash", "example_project/run.sh"],
        cwd=ROOT,
        env=run_env(tmp_path, port, **config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        kill_group(process)
    return process.returncode, output


def test_run_script_on_a_busy_port_exits_non_zero_naming_the_port(tmp_path: Path) -> None:
    """Not the banner, a fresh key and a curl line, then "Connection in use" five times and
    status 0: a message naming the port, and a failure."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        status, output = run_to_the_end(tmp_path, port)

    assert status != 0, output
    assert f"run.sh: 127.0.0.1 port {port} is in use" in output, output
    assert f"make run PORT={port + 1}" in output, output
    for absent in ("API key", "mrk_", "curl", "Connection in use", "Migrating"):
        assert absent not in output, output


def test_run_script_stops_with_the_web_server_s_status_if_it_never_listens(
    tmp_path: Path,
) -> None:
    """gunicorn refusing to start (here its options; or the port taken just after the check):
    no banner, a message, and its status."""
    status, output = run_to_the_end(tmp_path, free_port(), WEB_WORKERS="many")

    assert status == 2, output
    assert "run.sh: the web server did not start on 127.0.0.1 port" in output, output
    for absent in ("API key", "mrk_", "curl"):
        assert absent not in output, output


def session_processes(sid: int, command: str) -> list[int]:
    """The processes of session ``sid`` (run.sh leads its own) whose command line has
    ``command``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == sid and command in cmdline:
            found.append(int(stat.parent.name))
    return found


def wait_for_one(service: Service, command: str, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = session_processes(service.process.pid, command)
        if len(pids) == 1 and pids[0] != other_than:
            return pids[0]
        assert service.process.poll() is None, service.log()
        time.sleep(0.1)
    raise AssertionError(f"no new {command} process:\n{service.log()}")


@pytest.mark.parametrize(
    "service", [{"TASKS_BACKEND": "db", "IDEMPOTENCY_STORE": "database"}], indirect=True
)
def test_run_script_starts_a_worker_again_when_it_exits(service: Service) -> None:
    """docs/jobs.md: a worker that exits (its database was away, it was killed) is restarted, with
    a pause that grows while it keeps exiting; the service runs on; SIGTERM still stops all."""
    first = wait_for_one(service, "manage.py db_worker")
    os.kill(first, signal.SIGKILL)
    second = wait_for_one(service, "manage.py db_worker", other_than=first)
    os.kill(second, signal.SIGKILL)
    third = wait_for_one(service, "manage.py db_worker", other_than=second)
    log = "".join(service.output)
    assert "run.sh: db_worker exited (status 137); starting it again in 1 s." in log, log
    assert "run.sh: db_worker exited (status 137); starting it again in 2 s." in log, log

    recovery = wait_for_one(service, "manage.py recover_jobs")
    os.kill(recovery, signal.SIGKILL)
    wait_for_one(service, "manage.py recover_jobs", other_than=recovery)

    created = mailrith_post(service.url, service.key, MAILRITH_BODY)
    assert created.status == 202, (created.body, service.log())
    job = service.poll(created.headers["Location"])
    assert job["status"] == "succeeded", (job, service.log())
    assert session_processes(service.process.pid, "manage.py db_worker") == [third]

    # A supervisor (systemd, Docker) sends SIGTERM to run.sh alone: it stops everything.
    service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (service.process.poll() is None or group_alive(service.process.pid)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert service.process.poll() is not None, service.log()
    assert not group_alive(service.process.pid), service.log()
