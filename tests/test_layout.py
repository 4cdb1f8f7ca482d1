"""The package's layout holds (docs/architecture.md): keys and jobs are two subsystems, jobs build
on keys and never the reverse, no module imports its way back to itself, and a worker never
loads DRF's views or the idempotency mixin."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` and the modules of ``package`` it imports, anywhere in it:
    at the top, inside functions (lazy) and under ``TYPE_CHECKING``."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                found = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(module for module in found if module in modules and module != name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once (as the path around it), found by depth-first search."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    assert (
        "idempotency_jobs.jobs.models"
        in import_graph("idempotency_jobs")["idempotency_jobs.models"]
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_has_no_import_cycle() -> None:
    assert cycles(import_graph("idempotency_jobs")) == []


def test_keys_never_import_jobs() -> None:
    graph = import_graph("idempotency_jobs")
    wrong = {
        module: sorted(t for t in targets if t.startswith("idempotency_jobs.jobs"))
        for module, targets in graph.items()
        if module.startswith("idempotency_jobs.keys")
    }
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_the_example_has_no_import_cycle() -> None:
    # imports <-> import_stage <-> import_lanes ended with the leaf module import_plan.py
    assert cycles(import_graph("example_project")) == []


WORKER = """
import json, sys
import django
django.setup()
from django.core.management import load_command_class
from idempotency_jobs.jobs.kinds import get_job_kind
from idempotency_jobs.jobs.recovery import recover_jobs
from idempotency_jobs.jobs.tasks import execute_job, run_job
load_command_class("idempotency_jobs", "recover_jobs")
kind = get_job_kind("subscriber_import")  # imports every app's jobs module, as a worker does
print(json.dumps(sorted(sys.modules)))
"""

NOT_IN_A_WORKER = [
    "rest_framework.views",
    "rest_framework.viewsets",
    "rest_framework.generics",
    "idempotency_jobs.keys.core",
    "idempotency_jobs.keys.drf",
    "idempotency_jobs.jobs.views",
    "idempotency_jobs.schema",
]


def test_a_worker_never_loads_drf_views_or_the_mixin(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("IDEMPOTENCY_STORE", None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "idempotency_jobs.jobs.tasks" in loaded  # the probe ran what a worker runs
    assert "drf_spectacular" in loaded  # ... with the schema extension registered
    assert [module for module in NOT_IN_A_WORKER if module in loaded] == []
