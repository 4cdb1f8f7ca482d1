"""End to end: ``example_project/run.sh`` (what ``make run`` calls) on a fresh SQLite file.

It must migrate, print a working key and curl line, serve the API with gunicorn, run jobs with
the real ``db_worker`` process, serve the docs page offline, and stop everything on Ctrl-C.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_example_seeds import MAILRITH_BODY, STANNP_BODY, mailrith_post, stannp_post
from tests.test_example_support import http

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    for port in range(18360, 18400):
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


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PORT": str(port),
        "PYTHON": sys.executable,
        "TASKS_BACKEND": "db",
        "IDEMPOTENCY_STORE": "database",
        "WEB_WORKERS": "2",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        ["bash", "example_project/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner = read_banner(process)
        key = re.search(r'API key for workspace "demo":\s+(mrk_\S+)', banner)
        assert key is not None, banner
        assert f"curl -X POST http://127.0.0.1:{port}/v1/jobs/subscriber-imports" in banner
        url = f"http://127.0.0.1:{port}"
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True).start()
        wait_for_port(port)
        yield Service(process, url, key.group(1), tmp_path / "service.sqlite3")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def read_banner(process: subprocess.Popen[str], timeout: float = 60) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Stop with Ctrl-C" in line:
            return "".join(lines)
    raise AssertionError("run.sh printed no banner:\n" + "".join(lines))


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_script_serves_the_seeds_runs_jobs_and_stops_on_ctrl_c(service: Service) -> None:
    # Mailrith's curl, verbatim: 202, then the same bytes; the real db_worker runs the job.
    first = mailrith_post(service.url, service.key, MAILRITH_BODY)
    assert first.status == 202, first.body
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
    csv_file = http("GET", service.url + done["result"]["url"], headers=auth)
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

    # Errors outside the API views are problem details too.
    missing = http("GET", f"{service.url}/no/such/page")
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "application/problem+json"

    # Ctrl-C (SIGINT to the foreground process group) stops web, worker and recovery.
    os.killpg(service.process.pid, signal.SIGINT)
    assert service.process.wait(timeout=30) is not None
    deadline = time.monotonic() + 15
    while group_alive(service.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(service.process.pid)
