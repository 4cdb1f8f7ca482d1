"""docs/observability.md's counting examples run as written and count what they say.

``prometheus_client`` is no dependency of the project: a stand-in records what the examples
count (labels and amounts), which is all they ask of it.
"""

from __future__ import annotations

import logging
import re
import sys
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from idempotency_jobs import signals
from idempotency_jobs.jobs.tasks import execute_job
from idempotency_jobs.models import Job
from tests.helpers import CORE_DB, post

pytestmark = CORE_DB

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


class Metric:
    """Counts per label set: ``inc()`` adds its amount, ``observe()`` adds one."""

    def __init__(self, name: str, documentation: str, labelnames: Any = ()) -> None:
        self.counts: Counter[tuple[tuple[str, str], ...]] = Counter()

    def labels(self, **labels: str) -> Any:
        key = tuple(sorted(labels.items()))
        metric = self

        class Child:
            def inc(self, amount: float = 1) -> None:
                metric.counts[key] += amount

            def observe(self, value: float) -> None:
                assert value >= 0
                metric.counts[key] += 1

        return Child()


def examples() -> list[str]:
    counting = DOC.read_text().split("## Counting them", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", counting, flags=re.DOTALL)


@pytest.fixture
def run_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run the docs' n-th counting example; its receivers are disconnected afterwards."""
    fake = types.ModuleType("prometheus_client")
    fake.Counter = fake.Histogram = Metric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prometheus_client", fake)
    namespaces: list[dict[str, Any]] = []

    def run(index: int) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "docs_example"}
        exec(examples()[index], namespace)  # noqa: S102
        namespaces.append(namespace)
        return namespace

    yield run
    for namespace in namespaces:
        for value in namespace.values():
            for signal in (signals.key_replayed, signals.job_finished):
                signal.disconnect(value)


def test_the_docs_have_three_counting_examples():
    assert len(examples()) == 3


def test_the_replay_counter(api, store, run_example):
    example = run_example(0)
    post(api)
    post(api)
    post(api)
    assert example["REPLAYS"].counts == {(("view", "WidgetViewSet"),): 2}


def test_the_outcome_counter(api, store, run_example):
    example = run_example(1)
    logger = logging.getLogger("idempotency_jobs.outcomes")
    handler, level = example["OutcomeCounter"](), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        post(api)
        post(api)
        post(api, body={"name": "another request"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    counts = example["OUTCOMES"].counts
    assert counts == {
        (("outcome", "completed"),): 1,
        (("outcome", "replayed"),): 1,
        (("outcome", "mismatch"),): 1,
    }


def test_the_job_counter(run_example):
    example = run_example(2)
    job = Job.objects.create(kind="widget_batch", owner="auth.user:1", params={"names": ["a"]})
    assert execute_job(str(job.pk)) == "succeeded"
    assert example["JOBS"].counts == {(("kind", "widget_batch"), ("status", "succeeded")): 1}
    assert example["RUN_TIME"].counts == {(("kind", "widget_batch"),): 1}
