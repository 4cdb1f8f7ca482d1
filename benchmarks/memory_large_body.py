"""Peak memory and time of one large JSON body, keyed and unkeyed (issue 10 item 14).

Two measurements, each in a fresh process: ``parse`` is DRF's parse of the body with the
example service's parsers (and, keyed, the fingerprint before it), from a file read as a server
reads its socket; ``request`` is a whole ``POST /v1/jobs/subscriber-imports`` to the example
service in-process (SQLite in a temporary directory). The figure is the process's peak RSS
(``VmHWM``) less its RSS just before the request. Two bodies of ``--megabytes`` each: one long
CSV text (what an import sends) and many small objects (the costliest JSON per byte).
Not part of ``run.py``; run it by hand:

    .venv/bin/python -m benchmarks.memory_large_body [--megabytes 20] [--what parse request]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "/v1/jobs/subscriber-imports"
MAPPINGS = [
    {"csv_column": "Email", "field": {"type": "email"}},
    {"csv_column": "Name", "field": {"type": "name"}},
]


def body(shape: str, size: int) -> bytes:
    """A subscriber-import body of about ``size`` bytes: one long CSV text, or many objects."""
    if shape == "text":
        row = "someone.with.a.long.name@example.com,Someone With A Long Name\n"
        csv_text = "Email,Name\n" + row * (size // len(json.dumps(row)[1:-1]))
        return json.dumps({"csv_text": csv_text, "mappings": MAPPINGS}).encode()
    item = {"csv_column": "Email", "field": {"type": "email"}}
    count = size // len(json.dumps(item) + ", ")
    return json.dumps({"csv_text": "Email\n", "mappings": [item] * count}).encode()


def kilobytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure_parse(path: str, keyed: bool) -> dict[str, Any]:
    from django.core.handlers.wsgi import WSGIRequest
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    from idempotency_jobs.keys.fingerprint import default_fingerprint

    with Path(path).open("rb") as stream:  # the server's socket
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": IMPORTS,
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(os.path.getsize(path)),
            "SERVER_NAME": "bench",
            "SERVER_PORT": "80",
            "wsgi.input": stream,
        }
        parsers = [parser() for parser in api_settings.DEFAULT_PARSER_CLASSES]
        request = Request(WSGIRequest(environ), parsers=parsers)
        start_rss = kilobytes("VmRSS")
        start = time.perf_counter()
        if keyed:
            default_fingerprint(request)
        fingerprinted = time.perf_counter()
        request.data  # noqa: B018  # DRF's parse, as the view triggers it
        done = time.perf_counter()
    return {
        "peak_mb": (kilobytes("VmHWM") - start_rss) / 1024,
        "fingerprint_s": fingerprinted - start,
        "parse_s": done - fingerprinted,
    }


def measure_request(path: str, keyed: bool) -> dict[str, Any]:
    from django.core.management import call_command
    from django.test import Client

    from example_project.workspaces.models import ApiKey, Workspace

    call_command("migrate", verbosity=0)
    secret = ApiKey.objects.issue(Workspace.objects.get_or_create(name="memory")[0])[1]
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {secret}")
    key = f"memory-{uuid.uuid4()}"
    headers = {"HTTP_IDEMPOTENCY_KEY": f"{key}-warm-up"} if keyed else {}
    client.post(IMPORTS, b"{}", content_type="application/json", **headers)  # imports done
    if keyed:
        headers = {"HTTP_IDEMPOTENCY_KEY": key}
    data = Path(path).read_bytes()  # a test client's body is in memory before the request
    start_rss = kilobytes("VmRSS")
    start = time.perf_counter()
    response = client.post(IMPORTS, data, content_type="application/json", **headers)
    return {
        "peak_mb": (kilobytes("VmHWM") - start_rss) / 1024,
        "request_s": time.perf_counter() - start,
        "status": response.status_code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--what", nargs="+", default=["parse", "request"])
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        what, path, mode = args.measure
        import django

        django.setup()
        measure = measure_parse if what == "parse" else measure_request
        print(json.dumps(measure(path, mode == "keyed")))
        return
    size = int(args.megabytes * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="ij-memory-") as directory:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DATABASE_URL": f"sqlite:///{directory}/db.sqlite3",
            "MEDIA_ROOT": f"{directory}/media",
            "TASKS_BACKEND": "db",  # queued, not run: the request alone
        }
        for shape in ("text", "objects"):
            path = f"{directory}/{shape}.json"
            Path(path).write_bytes(body(shape, size))
            actual = os.path.getsize(path) / 1024 / 1024
            for what in args.what:
                for mode in ("unkeyed", "keyed"):
                    command = [sys.executable, "-m", "benchmarks.memory_large_body"]
                    output = subprocess.run(
                        [*command, "--measure", what, path, mode],
                        cwd=ROOT,
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    figures = json.loads(output)
                    times = ", ".join(
                        f"{name.removesuffix('_s')} {value:.2f} s"
                        for name, value in figures.items()
                        if name.endswith("_s")
                    )
                    status = f", status {figures['status']}" if "status" in figures else ""
                    print(
                        f"{shape:8} {actual:5.1f} MB {what:8} {mode:8} "
                        f"peak +{figures['peak_mb']:7.1f} MB ({times}{status})"
                    )


if __name__ == "__main__":
    main()
