"""The README's Quickstart, followed as written in a brand-new ``startproject``.

Every fenced block of the section is used, in order: a Python block's first line names the
file it goes into (``# mysite/views.py``; ``..., at the end`` appends to what ``startproject``
wrote), a shell block's lines are run with ``bash`` in the project's directory, a line ending in
``&`` as a background process. Each ``curl`` line's comment is what the README promises, and is
what is checked: the status, a problem ``code``, ``a new id`` / ``the same id``,
``Idempotent-Replayed: true`` and a job's ``"status"`` (waited for: the worker runs it).

Three things are not run as written: ``pip install`` (this environment has the package, as an
editable install of this checkout); the port (``127.0.0.1:8000`` and ``runserver`` get a free
one, the machine is shared, and runserver runs without its autoreloader, so that stopping it
stops it); ``<id>`` is the id of the job created just before.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import django
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(django.VERSION < (6, 0), reason="Django 5.2 adds the backport's app too"),
]


@dataclass
class Block:
    language: str
    lines: list[str]


def quickstart_blocks() -> list[Block]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return [
        Block(language, body.splitlines())
        for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.S | re.M)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, object]


def parse_curl_output(output: str) -> Answer:
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, json.loads(body) if body else {})


@dataclass
class Session:
    """A shell walking through the Quickstart: its directory, its background processes."""

    cwd: Path
    port: int
    environ: dict[str, str]
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ids: list[object] = field(default_factory=list)
    job_id: str = ""

    def local(self, line: str) -> str:
        line = line.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}").replace("<id>", self.job_id)
        return re.sub(r"\brunserver\b", f"runserver 127.0.0.1:{self.port} --noreload", line)

    def run(self, line: str) -> str:
        """Run ``line`` in bash; the shell's directory afterwards becomes the session's."""
        read, write = os.pipe()
        try:
            done = subprocess.run(
                ["bash", "-ec", f"{self.local(line)}\npwd >&{write}"],
                cwd=self.cwd,
                env=self.environ,
                capture_output=True,
                text=True,
                timeout=120,
                pass_fds=(write,),
            )
        finally:
            os.close(write)
        with os.fdopen(read) as where:
            directory = where.read().strip()
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        self.cwd = Path(directory)
        return done.stdout

    def start(self, line: str, log: Path) -> None:
        command = self.local(line.removesuffix("&").strip())
        with log.open("ab") as out:
            self.background.append(
                subprocess.Popen(
                    ["bash", "-c", f"exec {command}"],
                    cwd=self.cwd,
                    env=self.environ,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.background:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait_until_listening(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for process in self.background:
                assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"runserver never listened:\n{log.read_text()}")

    def curl(self, line: str, promise: str, log: Path) -> None:
        answer = parse_curl_output(self.run(line))
        if wanted := re.search(r'"status": "(\w+)"', promise):
            deadline = time.monotonic() + 60
            while answer.body.get("status") != wanted[1] and time.monotonic() < deadline:
                assert answer.body.get("status") in {"queued", "running"}, answer
                time.sleep(0.5)
                answer = parse_curl_output(self.run(line))
            assert answer.body.get("status") == wanted[1], (answer, log.read_text())
        assert answer.status == int(promise[:3]), (line, answer)
        if code := re.search(r"\b(idempotency_\w+)\b", promise):
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.body["code"] == code[1]
        if "a new id" in promise:
            assert answer.body["id"] not in self.ids
        if "the same id" in promise:
            assert self.ids and answer.body["id"] == self.ids[-1]
        if "Idempotent-Replayed: true" in promise:
            assert answer.headers["idempotent-replayed"] == "true"
        else:
            assert "idempotent-replayed" not in answer.headers
        if "Location" in promise:
            assert answer.headers["location"].endswith(f"/reports/{answer.body['id']}")
            self.job_id = str(answer.body["id"])
        if "id" in answer.body:
            self.ids.append(answer.body["id"])


def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    assert [block.language for block in blocks] == [
        "sh",
        "python",
        "python",
        "python",
        "python",
        "sh",
        "sh",
    ]
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "IDEMPOTENCY_"))
    }
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    session = Session(cwd=tmp_path, port=free_port(), environ=environ)
    log = tmp_path / "services.log"
    curls = 0
    try:
        for block in blocks:
            if block.language == "python":
                target, _, how = block.lines[0].removeprefix("# ").partition(",")
                path = session.cwd / target.split(":")[0].strip()
                text = "\n".join(block.lines) + "\n"
                if "at the end" in how:
                    path.write_text(path.read_text() + "\n" + text)
                else:
                    assert not path.exists(), path
                    path.write_text(text)
                continue
            for line in block.lines:
                command, _, promise = re.sub(r"\s+#\s", "\0", line, count=1).partition("\0")
                if command.startswith("pip install"):
                    continue
                if command.endswith("&"):
                    session.start(command, log)
                    if "runserver" in command:
                        session.wait_until_listening(log)
                elif command.startswith("curl"):
                    session.curl(command, promise, log)
                    curls += 1
                else:
                    session.run(command)
    finally:
        session.stop()
    assert curls == 7
