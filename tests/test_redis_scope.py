"""The suite shares a Redis database without harm: it touches only the keys it made (one prefix
per run, tests/redis_scope.py) and leaves none behind, and two runs at once do not collide.

Proved on a Redis server of our own, holding someone else's keys: two runs of a few Redis
tests (the key store, and jobs on RQ with a real ``rqworker``) at the same time, each on its
own SQLite file. Afterwards the server holds exactly what it held before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.redis_scope import PREFIX, RQ_PREFIX, STORE_PREFIX, redis_server
from tests.reliability.test_support import stop_process

ROOT = Path(__file__).resolve().parent.parent
# The store on Redis, and jobs through RQ run by a worker process.
SUBSET = [
    "tests/keys/test_keys.py::test_patch_takes_part_when_the_methods_setting_says_so",
    "tests/reliability/test_security.py::test_redis_keys_expire_with_their_bodies",
    "tests/jobs/test_workers.py::test_rq_worker_runs_a_job[rq]",
]
# What other users keep in the same database: an RQ queue with a job, a key store's record.
FOREIGN = {
    b"rq:queue:default": [b"someone-elses-job"],
    b"rq:workers": {b"rq:worker:someone-elses-worker"},
    b"idempotency:0123abcd": {b"state": b"completed"},
    b"unrelated": b"data",
}


def write(client: redis.Redis, name: bytes, value: object) -> None:
    if isinstance(value, list):
        client.rpush(name, *value)
    elif isinstance(value, set):
        client.sadd(name, *value)
    elif isinstance(value, dict):
        client.hset(name, mapping=value)
    else:
        client.set(name, value)  # type: ignore[arg-type]


def read(client: redis.Redis, name: bytes) -> object:
    kind = client.type(name)
    if kind == b"list":
        return client.lrange(name, 0, -1)
    if kind == b"set":
        return client.smembers(name)
    if kind == b"hash":
        return client.hgetall(name)
    return client.get(name)


def test_the_runs_prefix_covers_the_store_and_rq() -> None:
    import rq.defaults

    from idempotency_jobs.conf import idempotency_settings

    assert idempotency_settings.REDIS_KEY_PREFIX == STORE_PREFIX
    assert rq.defaults.RQ_KEY_PREFIX == RQ_PREFIX == f"{PREFIX}:rq"


@pytest.mark.redis
def test_two_runs_at_once_touch_only_their_own_keys_and_leave_none(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        client = redis.Redis.from_url(url)
        for name, value in FOREIGN.items():
            write(client, name, value)

        runs = [start_run(url, tmp_path / name) for name in ("one", "two")]
        try:
            codes = [run.wait(timeout=240) for run in runs]
        finally:
            for run in runs:
                stop_process(run, grace=0)
        for name, code in zip(("one", "two"), codes, strict=True):
            output = (tmp_path / name / "pytest.log").read_text(errors="replace")
            assert code == 0 and "4 passed" in output, output[-4000:]

        assert {name: read(client, name) for name in client.scan_iter()} == FOREIGN
        client.close()


def start_run(url: str, directory: Path) -> subprocess.Popen[bytes]:
    """A run of SUBSET against ``url``, on a fresh SQLite file, with its own prefix."""
    directory.mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"IJ_TEST_RUN_PREFIX", "RQ_KEY_PREFIX", "PYTEST_ADDOPTS"}
        and not name.startswith("PYTEST_")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
        SQLITE_TEST_NAME=str(directory / "test-db.sqlite3"),
        REDIS_URL=url,
        REQUIRE_SERVICES="1",
    )
    with (directory / "pytest.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
