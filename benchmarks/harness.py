"""What every benchmark shares: its database, its servers, its client, timing and reporting.

Each benchmark module runs in its own process (``python -m benchmarks.<module> --json FILE``)
so that it can configure Django for itself and measure its own peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "benchmarks" / "var"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
# Every Redis key a benchmark writes starts with this run's prefix (the servers it starts
# inherit it): flush_redis() deletes those, and nothing else in the database.
REDIS_PREFIX = os.environ.setdefault(
    "BENCH_REDIS_PREFIX", f"ij-bench-{os.getpid()}-{secrets.token_hex(4)}"
)
# PostgreSQL databases carry the same run token: two checkouts benchmarking at once never drop
# each other's databases.
RUN_TOKEN = re.sub(r"\W", "_", REDIS_PREFIX.removeprefix("ij-bench-"))
PORTS = range(18500, 18600)


@dataclass
class Result:
    """One line of the results table."""

    bench: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: reported, no target


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # broken behaviour, never a missed target
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.results.append(Result(*args, **kwargs))

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)


def main(run: Callable[[argparse.Namespace, Report], None], description: str) -> None:
    """The command line of a benchmark module: ``--smoke`` and ``--json FILE``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it still works")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    report = Report()
    try:
        run(args, report)
    except Exception as exc:
        report.failures.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if args.json:
            args.json.write_text(json.dumps(asdict(report), indent=2))
        for result in report.results:
            print(
                f"  [{result.bench}] {result.measure}: {result.value}  {result.target}", flush=True
            )
    sys.exit(1 if report.failures else 0)


# --- code as it was -------------------------------------------------------------------------


def module_at(rev: str, path: str) -> ModuleType:
    """The module at ``path`` as it was at git commit ``rev``, importable beside today's: what an
    A/B script measures today's code against."""
    source = subprocess.check_output(["git", "show", f"{rev}:{path}"], cwd=ROOT, text=True)
    package = path.removesuffix(".py").replace("/", ".").rsplit(".", 1)[0]
    name = f"{package}._at_{rev}"
    module = ModuleType(name)
    module.__package__ = package  # its relative imports find today's neighbours
    sys.modules[name] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102
    return module


# --- databases -----------------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database ``ij_bench_<name>_<run token>``, dropped afterwards; yields
    its URL."""
    import psycopg

    database = f"ij_bench_{name}_{RUN_TOKEN}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextlib.contextmanager
def sqlite_database(name: str) -> Iterator[str]:
    VAR.mkdir(exist_ok=True)
    path = VAR / f"{name}.sqlite3"
    for stale in VAR.glob(f"{name}.sqlite3*"):
        stale.unlink()
    try:
        yield f"sqlite:///{path}"
    finally:
        for stale in VAR.glob(f"{name}.sqlite3*"):
            stale.unlink()


def setup_django(settings_module: str, **env: str) -> None:
    """Configure Django in this process (and in the servers it starts) and migrate."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def flush_redis() -> None:
    """Delete this run's Redis keys (``REDIS_PREFIX``), and only those."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000))
    for start in range(0, len(names), 500):
        client.unlink(*names[start : start + 500])
    client.close()


# --- servers and clients --------------------------------------------------------------------


def ensure_tool(name: str) -> bool:
    """Whether the command ``name`` is installed: installed with apt (Debian's package of the
    same name) first if it is missing and this runs as root, as a benchmark's own set-up."""
    import shutil

    if shutil.which(name) is None and shutil.which("apt-get") and os.geteuid() == 0:
        print(f"Installing {name} with apt-get...", flush=True)
        install = ["apt-get", "install", "-y", "-qq", name]
        subprocess.run(install, check=False, stdout=subprocess.DEVNULL)
    return shutil.which(name) is not None


def instructions_of(module: str, *args: str) -> int:
    """Instructions a fresh ``python -m benchmarks.<module> args`` runs, as callgrind counts
    them (``PYTHONHASHSEED=0``): the same count for the same code and input whatever else the
    machine does. Measure by difference (N and M calls) so that start-up cancels."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        f"benchmarks.{module}",
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", completed.stderr)
    if completed.returncode or not found:
        raise RuntimeError(f"callgrind of {module} {args} failed:\n{completed.stderr[-3000:]}")
    return int(found.group(1))


def free_port() -> int:
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"No free port in {PORTS}")


@contextlib.contextmanager
def gunicorn(
    wsgi: str, *, workers: int = 1, threads: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[int]:
    """A gunicorn (gthread, keep-alive) serving ``wsgi`` on 127.0.0.1; yields its port."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        wsgi,
        f"--bind=127.0.0.1:{port}",
        "--worker-class=gthread",
        f"--workers={workers}",
        f"--threads={threads}",
        "--keep-alive=30",
        "--backlog=256",
        "--log-level=warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {command}")
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Client:
    """One keep-alive HTTP/1.1 connection, as a load generator's worker holds it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        self.connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


# --- timing and formatting ------------------------------------------------------------------


def interleave(
    variants: Mapping[str, Callable[[], object]], *, samples: int, warmup: int
) -> dict[str, list[float]]:
    """Time each variant ``samples`` times, one call of each per round in a shuffled order.

    Interleaving spreads the noise of a shared machine evenly over the variants.
    """
    names = list(variants)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(warmup + samples):
        random.shuffle(names)
        for name in names:
            start = time.perf_counter()
            variants[name]()
            elapsed = time.perf_counter() - start
            if round_number >= warmup:
                timings[name].append(elapsed)
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_spread(a: list[float], b: list[float], blocks: int = 5) -> tuple[float, float, float]:
    """median(a)/median(b), and the lowest and highest ratio over consecutive blocks."""
    size = max(1, len(a) // blocks)
    ratios = [
        median(a[i : i + size]) / median(b[i : i + size]) for i in range(0, len(a) - size + 1, size)
    ]
    return median(a) / median(b), min(ratios), max(ratios)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {sys.version.split()[0]}"


def speed() -> str:
    """How fast this machine is right now, to compare absolute numbers across runs: a fixed
    Python loop, and a PostgreSQL round trip (``SELECT 1``), medians (lower is faster)."""
    import psycopg

    loops = []
    for _ in range(7):
        start = time.perf_counter()
        sum(i * i for i in range(200_000))
        loops.append(time.perf_counter() - start)
    trips = []
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        for _ in range(300):
            start = time.perf_counter()
            connection.execute("SELECT 1").fetchone()
            trips.append(time.perf_counter() - start)
    return f"Python loop {median(loops) * 1000:.1f} ms, PostgreSQL {median(trips) * 1e6:.0f} us"


def run_json(command: list[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark module and read back its report (used by ``run.py``)."""
    VAR.mkdir(exist_ok=True)
    out = VAR / f"report-{os.getpid()}-{time.monotonic_ns()}.json"
    completed = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, env={**os.environ, **(env or {})}
    )
    try:
        report: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        report = {"results": [], "failures": [], "notes": []}
    finally:
        out.unlink(missing_ok=True)
    if completed.returncode and not report["failures"]:
        report["failures"].append(f"{' '.join(command)} exited with {completed.returncode}")
    return report


def rss_now_mb() -> float:
    """This process's resident memory right now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> args`` in a fresh process; its last line is JSON.

    A fresh process per measurement keeps peak memory (ru_maxrss) its own.
    """
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if completed.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def example_django(database_url: str, *, migrate: bool = False) -> None:
    """The example service's settings (benchmarks/example_settings.py) on ``database_url``."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="benchmarks.example_settings",
        DATABASE_URL=database_url,
        CONN_MAX_AGE="600",
        TASKS_BACKEND="db",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1,testserver",
    )
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)
