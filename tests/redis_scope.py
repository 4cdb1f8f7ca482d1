"""This test run's share of a Redis database: one key prefix for all it writes, and cleanup of
exactly those keys, so that a shared database (or another checkout's run) is never touched.

Every key the run makes starts with ``PREFIX + ":"``: the key store's records (``STORE_PREFIX``),
cache entries (``CACHE_PREFIX``) and, through RQ's ``RQ_KEY_PREFIX``, all of RQ's own keys
(queues, jobs, registries, workers). The prefix is unique to the run, and the processes the
run starts inherit it through the environment. Imported by the test settings modules, so before
``rq`` is (RQ reads ``RQ_KEY_PREFIX`` once, when first imported).

``redis_server()`` starts a private Redis, for tests of processes that cannot take a prefix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_PREFIX",
    "PREFIX",
    "RQ_PREFIX",
    "STORE_PREFIX",
    "delete_run_keys",
    "redis_server",
    "run_keys",
]

PREFIX = os.environ.setdefault(
    "IJ_TEST_RUN_PREFIX", f"ij-test-{os.getpid()}-{secrets.token_hex(4)}"
)
STORE_PREFIX = f"{PREFIX}:idempotency"
CACHE_PREFIX = f"{PREFIX}:cache"
RQ_PREFIX = f"{PREFIX}:rq"
os.environ["RQ_KEY_PREFIX"] = RQ_PREFIX


def run_keys(client: Any, pattern: str = "*") -> list[bytes]:
    """The run's keys (``PREFIX:<pattern>``), found with SCAN: never KEYS on a shared server."""
    return list(client.scan_iter(match=f"{PREFIX}:{pattern}", count=1000))


def delete_run_keys(client: Any) -> int:
    """Delete every key of this run, and only those; how many there were."""
    names = run_keys(client)
    for start in range(0, len(names), 500):
        client.unlink(*names[start : start + 500])
    return len(names)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A Redis server of our own, on a free port, storing nothing on disk; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    for _attempt in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = directory / f"redis-{port}.conf"
        config.write_text(
            f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\n'
            f"dir {directory}\nlogfile {directory / f'redis-{port}.log'}\n"
        )
        process = subprocess.Popen(
            [binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            if _answers(port, process):
                yield f"redis://127.0.0.1:{port}/0"
                return
        finally:
            process.kill()
            process.wait(timeout=10)
    raise RuntimeError("a private redis-server did not start in three attempts")


def _answers(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Whether our server answers (``False``: it exited, e.g. another took the port first)."""
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 30
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                return bool(client.info("server")["process_id"] == process.pid)
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    return False
